package offsets

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/mod/semver"

	"github.com/offsetdb/offsetdb/goversion"
)

// SchemaVersion is the version of the on-disk format written by this
// package. Readers refuse other versions rather than misread them.
const SchemaVersion = 1

// StdModule is the module name under which standard library offsets are
// stored; its versions are Go releases.
const StdModule = "std"

// IndexFile is the name of the index inside a database directory.
const IndexFile = "index.json"

// Index lists the shards of a database. It is small and read first, so that
// a reader decodes only the shards of the modules it needs.
type Index struct {
	Schema int          `json:"schema"`
	Shards []IndexEntry `json:"shards"`
}

// IndexEntry names one shard and the sha256 of its file.
type IndexEntry struct {
	Module string `json:"module"`
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
}

// Status says what happened when a version was processed.
type Status string

const (
	// StatusOK: a probe was built and every field read; its values are in the shard.
	StatusOK Status = "ok"
	// StatusUnavailable: the toolchain or module version could not be downloaded.
	StatusUnavailable Status = "unavailable"
	// StatusFailed: the probe did not build (the reason holds the compiler's words).
	StatusFailed Status = "failed"
)

// Coverage records one version processed for one GOARCH.
type Coverage struct {
	Version   string `json:"version"`
	Status    Status `json:"status"`
	Toolchain string `json:"toolchain,omitempty"` // Go toolchain that built the probe
	Reason    string `json:"reason,omitempty"`    // why it is not ok
}

// Range is one value that holds for every covered (StatusOK) version from
// From to To inclusive. Versions between them that were not covered are not
// implied: a lookup only answers for versions listed in Coverage as ok.
type Range struct {
	From string `json:"from"`
	To   string `json:"to"`
	Value
}

// Shard holds every field of one module, compacted into ranges.
//
// Fields maps each tracked field to its ranges per GOARCH. A tracked field
// with no range covering a covered version is absent in that version (for
// example net/http.Request.Pattern before Go 1.23).
type Shard struct {
	Schema   int                           `json:"schema"`
	Module   string                        `json:"module"`
	FieldSet string                        `json:"fieldset"`
	Coverage map[string][]Coverage         `json:"coverage"`
	Fields   map[string]map[string][]Range `json:"fields"`
}

// FieldSetHash identifies a set of fields. A version built for a different
// set must be rebuilt before its absences can be trusted.
func FieldSetHash(ids []FieldID) string {
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = id.String()
	}
	slices.Sort(names)
	names = slices.Compact(names)
	sum := sha256.Sum256([]byte(strings.Join(names, "\n")))
	return hex.EncodeToString(sum[:8])
}

// ShardFile returns the file name of a module's shard: the module path with
// each '/' replaced by '_' and upper case letters escaped as in the module
// cache ("!"-prefixed lower case), so names are portable and unique.
func ShardFile(module string) string {
	var b strings.Builder
	for _, r := range module {
		switch {
		case r == '/':
			b.WriteString("_")
		case r >= 'A' && r <= 'Z':
			b.WriteByte('!')
			b.WriteRune(r + ('a' - 'A'))
		default:
			b.WriteRune(r)
		}
	}
	return b.String() + ".json"
}

// CanonicalVersion returns the spelling of version v that the database uses
// for module: toolchain names for std ("go1.12", "go1.22.5"), semantic
// versions with a "v" for modules.
func CanonicalVersion(module, v string) (string, error) {
	if module == StdModule {
		gv, err := goversion.Parse(v)
		if err != nil {
			return "", err
		}
		return gv.String(), nil
	}
	if !strings.HasPrefix(v, "v") {
		v = "v" + v
	}
	if !semver.IsValid(v) {
		return "", fmt.Errorf("invalid version %q for module %s: want a semantic version such as v1.2.3", v, module)
	}
	return v, nil
}

// CompareVersions orders two canonical versions of module.
func CompareVersions(module, a, b string) int {
	if module == StdModule {
		va, erra := goversion.Parse(a)
		vb, errb := goversion.Parse(b)
		if erra == nil && errb == nil {
			return va.Compare(vb)
		}
		return strings.Compare(a, b)
	}
	return semver.Compare(a, b)
}

// sameLine reports whether two canonical versions belong to the same release
// line: the Go minor for std, major.minor for modules.
func sameLine(module, a, b string) bool {
	if module == StdModule {
		va, erra := goversion.Parse(a)
		vb, errb := goversion.Parse(b)
		return erra == nil && errb == nil && va.Line() == vb.Line()
	}
	return semver.MajorMinor(a) == semver.MajorMinor(b)
}
