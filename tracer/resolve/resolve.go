// Package resolve finds the offset of every struct field an instrumentation
// needs in one target binary: from the offset database first, then from the
// binary's own DWARF, and says precisely why when neither knows.
package resolve

import (
	"errors"
	"fmt"
	"github.com/offsetdb/offsetdb/fieldset"
	"slices"
	"strings"

	"github.com/offsetdb/offsetdb/gobinary"
	"github.com/offsetdb/offsetdb/layout"
	"github.com/offsetdb/offsetdb/offsets"
)

// Status is the outcome of resolving one field.
type Status int

const (
	// Resolved: the field exists and its offset is known.
	Resolved Status = iota
	// Absent: the field is known not to exist in the target's version (for
	// example net/http.Request.Pattern before Go 1.23).
	Absent
	// Unresolved: neither the database nor the binary can tell.
	Unresolved
)

func (s Status) String() string {
	switch s {
	case Resolved:
		return "resolved"
	case Absent:
		return "absent"
	}
	return "unresolved"
}

// Field is one resolved (or not) field.
type Field struct {
	ID     offsets.FieldID
	Status Status
	Value  offsets.Value // valid when Status is Resolved
	// Provenance says where the answer came from: "database std
	// go1.22.0..go1.22.12", "dwarf /path/to/binary", or empty.
	Provenance string
	// Err says why the field is Unresolved: what the database and the
	// binary each answered.
	Err error
}

// Resolver resolves fields against databases and a binary's DWARF.
type Resolver struct {
	// DBs are consulted in order; the first that knows the version answers.
	// Put user-supplied databases (--offsets-dir) before the embedded one.
	DBs []*offsets.DB
	// NoDWARF disables the DWARF fallback (for debugging the database path).
	NoDWARF bool
	// Interpolate lets the databases answer for a release they never built
	// when the builds around it in its release line agree (see
	// offsets.WithInterpolation); the provenance says so.
	Interpolate bool
}

// Resolve resolves ids for bin. It never fails as a whole: each Field says
// what happened to it, so callers can disable only what depends on the
// unresolved ones. DWARF is read at most once, and only for the fields the
// databases could not answer.
func (r *Resolver) Resolve(bin *gobinary.Binary, ids []offsets.FieldID) map[offsets.FieldID]Field {
	out := make(map[offsets.FieldID]Field, len(ids))
	why := map[offsets.FieldID][]string{}
	var needDWARF []offsets.FieldID
	for _, id := range ids {
		f, reason := r.fromDatabase(bin, id)
		if f != nil {
			out[id] = *f
			continue
		}
		why[id] = append(why[id], reason)
		needDWARF = append(needDWARF, id)
	}
	if len(needDWARF) == 0 {
		return out
	}
	values, missing, dwarfErr := r.fromDWARF(bin, needDWARF)
	for _, id := range needDWARF {
		switch {
		case dwarfErr == nil && values != nil && hasValue(values, id):
			out[id] = Field{ID: id, Status: Resolved, Value: values[id], Provenance: "dwarf " + bin.Path}
		case dwarfErr == nil && missing[id] != nil && errors.Is(missing[id], layout.ErrUndecodable):
			// The binary has the field but not a location layout can
			// decode: not absent, and no offset to guess.
			reasons := append(why[id], "binary: "+missing[id].Error())
			out[id] = Field{ID: id, Status: Unresolved, Err: errors.New(strings.Join(reasons, "; "))}
		case dwarfErr == nil && missing[id] != nil:
			out[id] = Field{ID: id, Status: Absent, Provenance: "dwarf " + bin.Path, Err: missing[id]}
		default:
			reasons := append(why[id], "binary: "+dwarfErr.Error())
			out[id] = Field{ID: id, Status: Unresolved, Err: errors.New(strings.Join(reasons, "; "))}
		}
	}
	return out
}

func hasValue(m map[offsets.FieldID]offsets.Value, id offsets.FieldID) bool {
	_, ok := m[id]
	return ok
}

// Module returns the module a field's package belongs to in bin: "std" for
// the standard library, else the longest module path of bin that prefixes
// the package.
func Module(bin *gobinary.Binary, id offsets.FieldID) (string, bool) {
	m, ok := bin.PackageModule(id.Package)
	return m.Path, ok
}

// fromDatabase answers from the databases, or returns why it cannot.
func (r *Resolver) fromDatabase(bin *gobinary.Binary, id offsets.FieldID) (*Field, string) {
	module, ok := Module(bin, id)
	if !ok {
		return nil, fmt.Sprintf("database: no module of the binary provides package %s", id.Package)
	}
	var version string
	if module == offsets.StdModule {
		if bin.GoVersionErr != nil {
			return nil, fmt.Sprintf("database: Go version unknown (%v)", bin.GoVersionErr)
		}
		version = bin.GoVersion.String()
		// Experiments can change layouts: a build with GOEXPERIMENTs is
		// looked up in the shard of exactly its experiment set, never in
		// the default builds'.
		if len(bin.Experiments) > 0 {
			m, err := offsets.ExperimentModule(bin.Experiments)
			if err != nil {
				return nil, fmt.Sprintf("database: GOEXPERIMENT=%s: %v", strings.Join(bin.Experiments, ","), err)
			}
			module = m
		}
	} else {
		m, _ := bin.Module(module)
		version = m.EffectiveVersion()
		if m.Replace != nil && (m.Replace.Version == "" || m.Replace.Version == "(devel)") {
			return nil, fmt.Sprintf("database: %s is replaced by the local directory %s", module, m.Replace.Path)
		}
	}
	if len(r.DBs) == 0 {
		return nil, "database: none loaded"
	}
	var opts []offsets.LookupOption
	if bin.GoVersionErr == nil {
		// Library layouts may depend on the Go release that built them.
		opts = append(opts, offsets.WithGoVersion(bin.GoVersion.String()))
	}
	if r.Interpolate {
		opts = append(opts, offsets.WithInterpolation())
	}
	var reasons []string
	for _, db := range r.DBs {
		res, err := db.Lookup(module, version, bin.Arch, id, opts...)
		switch {
		case err == nil:
			return &Field{ID: id, Status: Resolved, Value: res.Value, Provenance: res.Provenance.String()}, ""
		case errors.Is(err, offsets.ErrFieldAbsent):
			return &Field{ID: id, Status: Absent, Provenance: fmt.Sprintf("database %s %s", module, version), Err: err}, ""
		}
		reasons = append(reasons, err.Error())
	}
	slices.Sort(reasons)
	return nil, "database: " + strings.Join(slices.Compact(reasons), "; ")
}

// fromDWARF reads the fields from the binary's own DWARF.
func (r *Resolver) fromDWARF(bin *gobinary.Binary, ids []offsets.FieldID) (map[offsets.FieldID]offsets.Value, map[offsets.FieldID]error, error) {
	if r.NoDWARF {
		return nil, nil, errors.New("DWARF fallback disabled")
	}
	if !bin.HasDWARF {
		return nil, nil, fmt.Errorf("%s has no DWARF (stripped with -ldflags=-w or -s)", bin.Path)
	}
	f, err := layout.Open(bin.Path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	values, err := f.Fields(ids)
	var missing *layout.MissingError
	if errors.As(err, &missing) {
		return values, missing.Missing, nil
	}
	return values, nil, err
}

// Missing returns the fields of fs that are not usable as required
// fields: unresolved ones always, absent ones unless optional says so.
func Missing(fs map[offsets.FieldID]Field, ids []offsets.FieldID, optional func(offsets.FieldID) bool) []Field {
	var out []Field
	for _, id := range ids {
		f := fs[id]
		if f.Status == Unresolved || (f.Status == Absent && !optional(id)) {
			out = append(out, f)
		}
	}
	return out
}

// Hint is the advice printed with unresolved fields: for each module the
// missing fields belong to, the offsetgen command that would put the
// target's version of it into a database the tracer can load (--offsets-dir),
// or `offsetgen local` for a module replaced by a local directory; and the
// DWARF fallback.
func Hint(bin *gobinary.Binary, missing []Field) string {
	var hints []string
	seen := map[string]bool{}
	pending := false
	for _, f := range missing {
		module, ok := Module(bin, f.ID)
		if ok && fieldset.IsPending(module, f.ID) {
			pending = true
			continue
		}
		if !ok || seen[module] {
			continue
		}
		seen[module] = true
		if h := moduleHint(bin, module); h != "" {
			hints = append(hints, h)
		}
	}
	if pending && len(hints) == 0 {
		return "the offset database does not cover this field yet (fieldset/*.pending: it waits for the next full regeneration); trace an unstripped build, whose DWARF has it"
	}
	if len(hints) == 0 {
		return "build the target with released versions of its modules, or keep its DWARF (do not strip with -s/-w)"
	}
	return strings.Join(hints, "; ") + "; and pass --offsets-dir DIR, or trace an unstripped build (DWARF is read as a fallback)"
}

// moduleHint is the command that generates module's offsets for bin, or ""
// when there is none.
func moduleHint(bin *gobinary.Binary, module string) string {
	if module == offsets.StdModule {
		if bin.GoVersionErr != nil {
			return ""
		}
		std, err := offsets.ExperimentModule(bin.Experiments)
		if err != nil {
			return ""
		}
		return fmt.Sprintf("run `%s`", offsets.GenerateCommand(std, bin.GoVersion.String(), bin.Arch))
	}
	m, ok := bin.Module(module)
	if !ok {
		return ""
	}
	if m.Replace != nil && (m.Replace.Version == "" || m.Replace.Version == offsets.DevelVersion) {
		return fmt.Sprintf("run `offsetgen local --module %s --arch %s --out DIR` (%s is replaced by that local directory)",
			m.Replace.Path, bin.Arch, module)
	}
	return fmt.Sprintf("run `offsetgen generate --modules %s --versions %s --arch %s --out DIR`", module, m.EffectiveVersion(), bin.Arch)
}
