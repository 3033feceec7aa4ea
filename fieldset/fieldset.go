// Package fieldset declares, as data, which struct fields the database
// tracks for each module, and the Go expressions a probe program must
// reference so that those structs survive the linker.
//
// The files live beside this package (std.fields, one per module) and are
// embedded, so the generator and the tracer read one source of truth.
package fieldset

import (
	"bufio"
	"embed"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"

	"github.com/offsetdb/offsetdb/offsets"
)

//go:embed *.fields
var files embed.FS

// Set is the declaration for one module.
type Set struct {
	Module string
	Fields []offsets.FieldID // sorted, unique
	// Keep lists Go expressions the probe references to keep unexported
	// structs (and the code that uses them) in the binary.
	Keep []string
}

// Packages returns the import paths the set's fields live in, sorted.
func (s *Set) Packages() []string {
	var ps []string
	for _, f := range s.Fields {
		ps = append(ps, f.Package)
	}
	slices.Sort(ps)
	return slices.Compact(ps)
}

// Load returns the built-in set of module ("std" for the standard library).
func Load(module string) (*Set, error) {
	name := strings.TrimSuffix(offsets.ShardFile(module), ".json") + ".fields"
	f, err := files.Open(name)
	if err != nil {
		return nil, fmt.Errorf("no built-in field set for module %s (have %v)", module, Modules())
	}
	defer f.Close()
	s, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("field set %s: %w", name, err)
	}
	s.Module = module
	return s, nil
}

// Modules lists the modules with a built-in field set.
func Modules() []string {
	names, _ := fs.Glob(files, "*.fields")
	var ms []string
	for _, n := range names {
		m := strings.TrimSuffix(n, ".fields")
		ms = append(ms, strings.ReplaceAll(m, "_", "/"))
	}
	return ms
}

// Parse reads a field set: one field per line, "keep EXPR" lines, blank
// lines and "#" comments.
func Parse(r io.Reader) (*Set, error) {
	s := &Set{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if i := strings.Index(line, "#"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		switch {
		case line == "":
			continue
		case strings.HasPrefix(line, "keep "):
			s.Keep = append(s.Keep, strings.TrimSpace(strings.TrimPrefix(line, "keep ")))
			continue
		}
		id, err := offsets.ParseFieldID(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		s.Fields = append(s.Fields, id)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(s.Fields, func(a, b offsets.FieldID) int { return strings.Compare(a.String(), b.String()) })
	if i := firstDuplicate(s.Fields); i >= 0 {
		return nil, fmt.Errorf("field %s listed twice", s.Fields[i])
	}
	return s, nil
}

func firstDuplicate(ids []offsets.FieldID) int {
	for i := 1; i < len(ids); i++ {
		if ids[i] == ids[i-1] {
			return i
		}
	}
	return -1
}
