package offsets

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
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
	if b.Status != StatusOK && len(b.Values) > 0 {
		return fmt.Errorf("build of %s %s/%s has status %s but carries values", t.Module, v, arch, b.Status)
	}
	for id := range b.Values {
		if _, ok := slices.BinarySearchFunc(t.Fields, id, func(a, b FieldID) int { return cmp.Compare(a.String(), b.String()) }); !ok {
			return fmt.Errorf("build of %s %s/%s has a value for untracked field %s", t.Module, v, arch, id)
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
// with equal values become one range. The result is deterministic.
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
			ranges := []Range{}
			var open *Range
			for _, v := range ok {
				val, present := t.Builds[arch][v].Values[id]
				switch {
				case !present:
					open = nil
				case open != nil && open.Value == val:
					open.To = v
				default:
					ranges = append(ranges, Range{From: v, To: v, Value: val})
					open = &ranges[len(ranges)-1]
				}
			}
			s.Fields[id.String()][arch] = ranges
		}
	}
	return s
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
					if r, ok := s.find(id.String(), arch, c.Version); ok {
						b.Values[id] = r.Value
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

// find returns the range of field that contains the ok-covered version v.
func (s *Shard) find(field, arch, v string) (Range, bool) {
	ranges := s.Fields[field][arch]
	// Ranges are sorted and disjoint: binary search on From.
	i, _ := slices.BinarySearchFunc(ranges, v, func(r Range, v string) int { return CompareVersions(s.Module, r.From, v) })
	for _, j := range []int{i, i - 1} {
		if j >= 0 && j < len(ranges) {
			r := ranges[j]
			if CompareVersions(s.Module, r.From, v) <= 0 && CompareVersions(s.Module, v, r.To) <= 0 {
				return r, true
			}
		}
	}
	return Range{}, false
}
