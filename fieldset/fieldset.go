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

//go:embed *.fields *.pending
var files embed.FS

// Set is the declaration for one module.
type Set struct {
	Module string
	Fields []offsets.FieldID // sorted, unique
	// Keep lists Go expressions the probe references to keep unexported
	// structs (and the code that uses them) in the binary.
	Keep []string
	// Imports lists packages the probe imports for its keep lines beside
	// the packages of the fields ("import PATH" in the file), for example
	// a public package whose functions reach an internal one.
	Imports []string
	// ImportBounds holds the bounds of import lines, by index in Imports:
	// a package that exists only in some versions (an API that moved).
	ImportBounds map[int]offsets.Constraint
	// Bounds holds, for fields that do not exist in every version of
	// Module, the versions that have them ("FIELD >=v1.60.0" in the file).
	// The generator does not ask for a field outside its bounds.
	Bounds map[offsets.FieldID]offsets.Constraint
	// KeepBounds holds the bounds of keep lines, by index in Keep: an
	// expression that compiles only in some versions.
	KeepBounds map[int]offsets.Constraint
}

// At returns the part of the set that applies to version (canonical): the
// fields, keep and import lines whose bounds allow it. The result shares nothing
// with s that the caller could change.
func (s *Set) At(version string) *Set {
	out := &Set{Module: s.Module, Bounds: map[offsets.FieldID]offsets.Constraint{}}
	out.Imports, out.ImportBounds = linesAt(s.Imports, s.ImportBounds, version)
	out.Keep, out.KeepBounds = linesAt(s.Keep, s.KeepBounds, version)
	for _, f := range s.Fields {
		b, bounded := s.Bounds[f]
		if bounded && !b.Allows(version) {
			continue
		}
		out.Fields = append(out.Fields, f)
		if bounded {
			out.Bounds[f] = b
		}
	}
	return out
}

// linesAt returns the lines (keep or import) whose bounds, given by index,
// allow version, with their bounds re-indexed to the result.
func linesAt(lines []string, bounds map[int]offsets.Constraint, version string) ([]string, map[int]offsets.Constraint) {
	var out []string
	outBounds := map[int]offsets.Constraint{}
	for i, l := range lines {
		b, bounded := bounds[i]
		if bounded && !b.Allows(version) {
			continue
		}
		if bounded {
			outBounds[len(out)] = b
		}
		out = append(out, l)
	}
	return out, outBounds
}

// Packages returns the import paths the set's fields live in and those
// of its import lines, sorted.
func (s *Set) Packages() []string {
	ps := slices.Clone(s.Imports)
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
	s, err := ParseModule(module, f)
	if err != nil {
		return nil, fmt.Errorf("field set %s: %w", name, err)
	}
	return s, nil
}

// Pending returns the fields of module declared in its ".pending" file:
// fields instrumentations read that the committed database does not cover
// yet, because adding them to the field set means regenerating every
// version of the module. The generator ignores them; the tracer resolves
// them from a target's DWARF only. A module without the file has none.
func Pending(module string) ([]offsets.FieldID, error) {
	name := strings.TrimSuffix(offsets.ShardFile(module), ".json") + ".pending"
	f, err := files.Open(name)
	if err != nil {
		return nil, nil
	}
	defer f.Close()
	s, err := ParseModule(module, f)
	if err != nil {
		return nil, fmt.Errorf("pending fields %s: %w", name, err)
	}
	if len(s.Keep) > 0 || len(s.Imports) > 0 {
		return nil, fmt.Errorf("pending fields %s: only fields belong there", name)
	}
	return s.Fields, nil
}

// IsPending reports whether id is a pending field of module (see Pending).
func IsPending(module string, id offsets.FieldID) bool {
	fs, _ := Pending(module)
	return slices.Contains(fs, id)
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

// Parse reads a field set whose module is not known (bounds are read as
// semantic versions); see ParseModule.
func Parse(r io.Reader) (*Set, error) { return ParseModule("", r) }

// ParseModule reads the field set of module: one field per line, "keep
// EXPR" lines, "import PATH" lines, blank lines and "#" comments. A field,
// keep or import line may end with a version bound, comparisons joined by
// commas as in offsets.ParseConstraint: "FIELD >=v1.60.0", "keep EXPR
// >=v1.69.0,<v2.0.0", "import PATH <v0.14.0" (a keep expression ends at
// the first word starting with <, > or =).
func ParseModule(module string, r io.Reader) (*Set, error) {
	s := &Set{Module: module, Bounds: map[offsets.FieldID]offsets.Constraint{}, KeepBounds: map[int]offsets.Constraint{}, ImportBounds: map[int]offsets.Constraint{}}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if i := strings.Index(line, "#"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		imp := strings.HasPrefix(line, "import ")
		if imp {
			line = strings.TrimSpace(strings.TrimPrefix(line, "import "))
		}
		keep := strings.HasPrefix(line, "keep ")
		if keep {
			line = strings.TrimSpace(strings.TrimPrefix(line, "keep "))
		}
		words := strings.Fields(line)
		end := len(words)
		for i, w := range words {
			if i > 0 && strings.ContainsAny(w[:1], "<>=") {
				end = i
				break
			}
		}
		var bound *offsets.Constraint
		if end < len(words) {
			c, err := offsets.ParseConstraint(module, strings.Join(words[end:], ""))
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			bound = &c
		}
		item := strings.Join(words[:end], " ")
		if imp {
			if end != 1 || strings.Contains(item, "\"") {
				return nil, fmt.Errorf("line %d: want \"import IMPORT/PATH [BOUND]\"", n)
			}
			if bound != nil {
				s.ImportBounds[len(s.Imports)] = *bound
			}
			s.Imports = append(s.Imports, item)
			continue
		}
		if keep {
			if bound != nil {
				s.KeepBounds[len(s.Keep)] = *bound
			}
			s.Keep = append(s.Keep, item)
			continue
		}
		id, err := offsets.ParseFieldID(item)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if bound != nil {
			s.Bounds[id] = *bound
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
