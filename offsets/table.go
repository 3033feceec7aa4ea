package offsets

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Table is the expanded form of a shard: every value of every covered
// version, as the generator produces them. Shard compacts a Table into
// ranges, Expand turns a Shard back into one; the two are inverse.
type Table struct {
	Module string
	Fields []FieldID
	// Builds holds, per GOARCH, what happened to each version.
	Builds map[string]map[string]Build
}

// Build is the outcome of one probe build: its coverage record and, when the
// status is ok, the value of every field that exists in that version.
type Build struct {
	Coverage
	Values map[FieldID]Value
	// GoValues holds the fields whose layout in this version depends on the
	// Go release the target is built with: one value per bound on that
	// release, in Go order (a field that exists only with some releases has
	// one). A field is in Values or in GoValues, not both. Standard-library
	// builds never have any.
	GoValues map[FieldID][]GoValue
}

// GoValue is a field's value for targets built with the Go releases Go
// (a Constraint of std, in canonical form: ">=go1.24.0") allows.
type GoValue struct {
	Go string `json:"go"`
	Value
}

// NewTable returns an empty table for module tracking fields.
func NewTable(module string, fields []FieldID) *Table {
	fs := slices.Clone(fields)
	slices.SortFunc(fs, func(a, b FieldID) int { return cmp.Compare(a.String(), b.String()) })
	fs = slices.Compact(fs)
	return &Table{Module: module, Fields: fs, Builds: map[string]map[string]Build{}}
}

// Set records a build, replacing any earlier one for the same version and
// GOARCH. Values of fields the table does not track are an error: they would
// be dropped silently otherwise.
func (t *Table) Set(arch string, b Build) error {
	v, err := CanonicalVersion(t.Module, b.Version)
	if err != nil {
		return err
	}
	b.Version = v
	if b.Status == "" {
		return fmt.Errorf("build of %s %s/%s has no status", t.Module, v, arch)
	}
	if b.Status != StatusOK && len(b.Values)+len(b.GoValues) > 0 {
		return fmt.Errorf("build of %s %s/%s has status %s but carries values", t.Module, v, arch, b.Status)
	}
	tracked := func(id FieldID) bool {
		_, ok := slices.BinarySearchFunc(t.Fields, id, func(a, b FieldID) int { return cmp.Compare(a.String(), b.String()) })
		return ok
	}
	for id := range b.Values {
		if !tracked(id) {
			return fmt.Errorf("build of %s %s/%s has a value for untracked field %s", t.Module, v, arch, id)
		}
	}
	for id, gvs := range b.GoValues {
		switch {
		case !tracked(id):
			return fmt.Errorf("build of %s %s/%s has a value for untracked field %s", t.Module, v, arch, id)
		case IsStd(t.Module):
			return fmt.Errorf("build of std %s/%s: %s: standard-library values cannot depend on the Go release", v, arch, id)
		case len(gvs) == 0:
			return fmt.Errorf("build of %s %s/%s: %s depends on the Go release but has no value", t.Module, v, arch, id)
		}
		if _, both := b.Values[id]; both {
			return fmt.Errorf("build of %s %s/%s: %s has a value and values per Go release", t.Module, v, arch, id)
		}
		for _, gv := range gvs {
			c, err := ParseConstraint(StdModule, gv.Go)
			if err != nil || c.IsZero() || c.String() != gv.Go {
				return fmt.Errorf("build of %s %s/%s: %s: Go bound %q is not a canonical constraint on Go releases", t.Module, v, arch, id, gv.Go)
			}
		}
	}
	if t.Builds[arch] == nil {
		t.Builds[arch] = map[string]Build{}
	}
	t.Builds[arch][v] = b
	return nil
}

// Versions returns the versions recorded for arch, oldest first.
func (t *Table) Versions(arch string) []string {
	vs := slices.Collect(maps.Keys(t.Builds[arch]))
	slices.SortFunc(vs, func(a, b string) int { return CompareVersions(t.Module, a, b) })
	return vs
}

// Shard compacts the table: per field and GOARCH, consecutive ok versions
// with equal values (and equal Go bounds, see Range.Go) become one range.
// The result is deterministic.
func (t *Table) Shard() *Shard {
	s := &Shard{
		Generated: GeneratedNotice,
		Schema:    SchemaVersion,
		Module:    t.Module,
		FieldSet:  FieldSetHash(t.Fields),
		Coverage:  map[string][]Coverage{},
		Fields:    map[string]map[string][]Range{},
	}
	for _, id := range t.Fields {
		s.Fields[id.String()] = map[string][]Range{}
	}
	for arch := range t.Builds {
		var ok []string
		for _, v := range t.Versions(arch) {
			b := t.Builds[arch][v]
			s.Coverage[arch] = append(s.Coverage[arch], b.Coverage)
			if b.Status == StatusOK {
				ok = append(ok, v)
			}
		}
		for _, id := range t.Fields {
			s.Fields[id.String()][arch] = t.ranges(arch, id, ok)
		}
	}
	return s
}

// ranges compacts one field's values over the ok versions of arch. Each
// Go bound is a lane of its own (the unbounded values are the lane ""):
// consecutive versions with equal values in a lane become one range. The
// result is sorted by From, then by Go bound.
func (t *Table) ranges(arch string, id FieldID, ok []string) []Range {
	lanes := []string{""}
	for _, v := range ok {
		for _, gv := range t.Builds[arch][v].GoValues[id] {
			if !slices.Contains(lanes, gv.Go) {
				lanes = append(lanes, gv.Go)
			}
		}
	}
	ranges := []Range{}
	for _, lane := range lanes {
		var open *Range
		for _, v := range ok {
			b := t.Builds[arch][v]
			val, present := b.Values[id]
			if lane != "" {
				i := slices.IndexFunc(b.GoValues[id], func(gv GoValue) bool { return gv.Go == lane })
				present = i >= 0
				if present {
					val = b.GoValues[id][i].Value
				}
			}
			switch {
			case !present:
				if open != nil {
					ranges = append(ranges, *open)
				}
				open = nil
			case open != nil && open.Value == val:
				open.To = v
			default:
				if open != nil {
					ranges = append(ranges, *open)
				}
				open = &Range{From: v, To: v, Go: lane, Value: val}
			}
		}
		if open != nil {
			ranges = append(ranges, *open)
		}
	}
	slices.SortStableFunc(ranges, func(a, b Range) int {
		if c := CompareVersions(t.Module, a.From, b.From); c != 0 {
			return c
		}
		return compareGoBounds(a.Go, b.Go)
	})
	return ranges
}

// compareGoBounds orders Go bounds by their first version, "" first.
func compareGoBounds(a, b string) int {
	if a == "" || b == "" {
		return cmp.Compare(a, b)
	}
	trim := func(s string) string { return strings.TrimLeft(strings.SplitN(s, ",", 2)[0], "<>=") }
	if c := CompareVersions(StdModule, trim(a), trim(b)); c != 0 {
		return c
	}
	return cmp.Compare(a, b)
}

// Expand returns the table a shard was compacted from.
func (s *Shard) Expand() (*Table, error) {
	var fields []FieldID
	for name := range s.Fields {
		id, err := ParseFieldID(name)
		if err != nil {
			return nil, fmt.Errorf("shard %s: %w", s.Module, err)
		}
		fields = append(fields, id)
	}
	t := NewTable(s.Module, fields)
	for arch, covs := range s.Coverage {
		for _, c := range covs {
			b := Build{Coverage: c}
			if c.Status == StatusOK {
				b.Values = map[FieldID]Value{}
				for _, id := range t.Fields {
					for _, r := range s.findAll(id.String(), arch, c.Version) {
						if r.Go == "" {
							b.Values[id] = r.Value
							continue
						}
						if b.GoValues == nil {
							b.GoValues = map[FieldID][]GoValue{}
						}
						b.GoValues[id] = append(b.GoValues[id], GoValue{Go: r.Go, Value: r.Value})
					}
				}
			}
			if err := t.Set(arch, b); err != nil {
				return nil, err
			}
		}
	}
	return t, nil
}

// find returns the range of field that contains the ok-covered version v
// and holds for every Go release (no Go bound).
func (s *Shard) find(field, arch, v string) (Range, bool) {
	for _, r := range s.findAll(field, arch, v) {
		if r.Go == "" {
			return r, true
		}
	}
	return Range{}, false
}

// findAll returns every range of field that contains the ok-covered
// version v: one without a Go bound, or one per Go bound.
func (s *Shard) findAll(field, arch, v string) []Range {
	ranges := s.Fields[field][arch]
	// Ranges are sorted by From: binary search for the first one starting
	// after v; only those before it can contain v.
	end, _ := slices.BinarySearchFunc(ranges, v, func(r Range, v string) int {
		if CompareVersions(s.Module, r.From, v) <= 0 {
			return -1
		}
		return 1
	})
	if IsStd(s.Module) {
		// No Go bounds: ranges are disjoint, only the last one can.
		if end > 0 && CompareVersions(s.Module, v, ranges[end-1].To) <= 0 {
			return ranges[end-1 : end]
		}
		return nil
	}
	var out []Range
	for j := end - 1; j >= 0; j-- {
		if CompareVersions(s.Module, v, ranges[j].To) <= 0 {
			out = append(out, ranges[j])
		}
	}
	slices.Reverse(out)
	return out
}

// DifferingFields compares the ok builds of version for arch in two tables
// of the standard library, such as a GOEXPERIMENT shard's and std's: it
// returns the fields both track whose value differs, or that exist in one
// build only, sorted. compared is false when either table has no ok build
// of that version for arch.
func DifferingFields(a, b *Table, arch, version string) (differ []FieldID, compared bool) {
	ba, okA := a.Builds[arch][version]
	bb, okB := b.Builds[arch][version]
	if !okA || !okB || ba.Status != StatusOK || bb.Status != StatusOK {
		return nil, false
	}
	for _, id := range a.Fields {
		if _, tracked := slices.BinarySearchFunc(b.Fields, id, func(x, y FieldID) int { return cmp.Compare(x.String(), y.String()) }); !tracked {
			continue
		}
		va, inA := ba.Values[id]
		vb, inB := bb.Values[id]
		if inA != inB || va != vb {
			differ = append(differ, id)
		}
	}
	return differ, true
}
