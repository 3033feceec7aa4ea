package offsets

import (
	"fmt"
	"strings"
)

// FieldID names a struct field by import path, struct name and field path,
// written "net/http.Request.ctx" or, for a field reached through nested or
// embedded structs, "context.valueCtx.Context.data" (a dotted path).
//
// The package is everything up to the last '/' plus the first dot-separated
// element after it, so an import path whose last element has a dot
// ("gopkg.in/yaml.v3") must be written as the Go linker writes it in DWARF,
// with the dot escaped: "gopkg.in/yaml%2ev3.Node.Kind".
type FieldID struct {
	Package string // import path, "net/http"
	Struct  string // type name in that package, "Request"
	Field   string // field path inside the struct, "URL" or "a.b.c"
}

// ParseFieldID parses the string form of a FieldID.
func ParseFieldID(s string) (FieldID, error) {
	slash := strings.LastIndexByte(s, '/')
	rest := s[slash+1:]
	parts := strings.SplitN(rest, ".", 3)
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return FieldID{}, fmt.Errorf("invalid field %q: want import/path.Struct.field", s)
	}
	for _, p := range strings.Split(parts[2], ".") {
		if p == "" {
			return FieldID{}, fmt.Errorf("invalid field %q: empty element in field path", s)
		}
	}
	if strings.ContainsAny(s, " \t\n") {
		return FieldID{}, fmt.Errorf("invalid field %q: contains white space", s)
	}
	return FieldID{Package: s[:slash+1] + parts[0], Struct: parts[1], Field: parts[2]}, nil
}

// MustParseFieldID is ParseFieldID for field IDs written in code, such as
// an instrumentation's declaration; it panics on a malformed one, which
// that package's tests then catch.
func MustParseFieldID(s string) FieldID {
	id, err := ParseFieldID(s)
	if err != nil {
		panic(err)
	}
	return id
}

// String returns the form ParseFieldID reads.
func (f FieldID) String() string { return f.Package + "." + f.Struct + "." + f.Field }

// TypeName returns the struct's name as the Go linker writes it in DWARF:
// "net/http.Request".
func (f FieldID) TypeName() string { return f.Package + "." + f.Struct }

// Path returns the field path split at dots.
func (f FieldID) Path() []string { return strings.Split(f.Field, ".") }

// Less orders FieldIDs by their string form, the order used in shards.
func (f FieldID) Less(g FieldID) bool { return f.String() < g.String() }

// Value is where a field lives inside its struct: byte offset from the start
// of the outermost struct, size in bytes, and the Go type name from DWARF
// ("*net/url.URL", "string", "[]uint8").
type Value struct {
	Offset uint64 `json:"offset"`
	Size   uint64 `json:"size"`
	Type   string `json:"type"`
}
