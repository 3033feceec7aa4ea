package offsets

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

var (
	// ErrFieldSetMismatch reports partial databases of one module built for
	// different field sets: their absences mean different things, so they
	// cannot be combined.
	ErrFieldSetMismatch = errors.New("field sets differ")
	// ErrConflict reports two successful builds of the same module, version
	// and GOARCH that disagree on a value. One of them is wrong; merging must
	// not pick either silently.
	ErrConflict = errors.New("conflicting values")
)

// MergeSource is one module's shard from one partial database, with the
// name it is reported under (usually the database directory).
type MergeSource struct {
	Name  string
	Shard *Shard
}

// ConflictError is two ok builds of the same (module, version, GOARCH) that
// disagree on a field. A nil value means the field is absent in that build.
type ConflictError struct {
	Module, Version, Arch, Field string
	A, B                         *Value
	// GoA and GoB hold the values per Go release when the field's value
	// depends on it in that input (A or B is then nil).
	GoA, GoB         []GoValue
	SourceA, SourceB string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s@%s (%s) %s: %s in %s, %s in %s", e.Module, e.Version, e.Arch, e.Field,
		FormatValues(e.A, e.GoA), e.SourceA, FormatValues(e.B, e.GoB), e.SourceB)
}

// FormatValues renders a field's value, or its values per Go release when
// gvs is not empty: "232 (16 bytes, context.Context) for >=go1.24.0; ...".
func FormatValues(v *Value, gvs []GoValue) string {
	if len(gvs) == 0 {
		return FormatValue(v)
	}
	parts := make([]string, len(gvs))
	for i, gv := range gvs {
		parts[i] = FormatValue(&gv.Value) + " for " + gv.Go
	}
	return strings.Join(parts, "; ")
}

func (e *ConflictError) Unwrap() error { return ErrConflict }

// FormatValue renders a value for messages: "232 (16 bytes, context.Context)",
// or "absent" for nil.
func FormatValue(v *Value) string {
	if v == nil {
		return "absent"
	}
	return fmt.Sprintf("%d (%d bytes, %s)", v.Offset, v.Size, v.Type)
}

// MergeNote records a choice Merge made between two records of the same
// build, for the caller to log.
type MergeNote struct {
	Module, Version, Arch string
	Kept, Dropped         Status
	KeptFrom, DroppedFrom string
}

func (n MergeNote) String() string {
	return fmt.Sprintf("%s@%s (%s): kept %s from %s over %s from %s", n.Module, n.Version, n.Arch, n.Kept, n.KeptFrom, n.Dropped, n.DroppedFrom)
}

// Merge combines shards of one module from partial databases (for example
// one per Go release line, built by parallel CI jobs) into one shard.
//
// Coverage is the union of the sources'. When two sources recorded the same
// version and GOARCH, an ok build wins over an unavailable or failed one, a
// failed one over an unavailable one (it got further), and two ok builds
// must agree on every value: a disagreement is a *ConflictError (wrapping
// ErrConflict) naming both sources; all conflicts are reported, joined.
// Sources must share a field set (ErrFieldSetMismatch).
//
// The result does not depend on the order of sources: ties between equal
// statuses are broken by the records' contents, never by position.
func Merge(sources []MergeSource) (*Shard, []MergeNote, error) {
	if len(sources) == 0 {
		return nil, nil, errors.New("merge: no sources")
	}
	srcs := slices.Clone(sources)
	slices.SortStableFunc(srcs, func(a, b MergeSource) int { return cmp.Compare(a.Name, b.Name) })
	module := srcs[0].Shard.Module
	first := srcs[0]
	for _, s := range srcs[1:] {
		if s.Shard.Module != module {
			return nil, nil, fmt.Errorf("merge: %s holds module %s, %s holds %s", first.Name, module, s.Name, s.Shard.Module)
		}
		if s.Shard.FieldSet != first.Shard.FieldSet {
			return nil, nil, fieldSetError(module, first, s)
		}
	}

	var out *Table
	origin := map[string]map[string]string{} // arch -> version -> source name
	var notes []MergeNote
	var conflicts []error
	for _, src := range srcs {
		t, err := src.Shard.Expand()
		if err != nil {
			return nil, nil, fmt.Errorf("merge: %s: %w", src.Name, err)
		}
		if out == nil {
			out = NewTable(module, t.Fields)
		}
		for _, arch := range sortedKeys(t.Builds) {
			if origin[arch] == nil {
				origin[arch] = map[string]string{}
			}
			for _, v := range t.Versions(arch) {
				b := t.Builds[arch][v]
				have, seen := out.Builds[arch][v]
				if !seen {
					if err := out.Set(arch, b); err != nil {
						return nil, nil, fmt.Errorf("merge: %s: %w", src.Name, err)
					}
					origin[arch][v] = src.Name
					continue
				}
				if have.Status == StatusOK && b.Status == StatusOK {
					conflicts = append(conflicts, compareValues(out.Fields, module, v, arch, have, b, origin[arch][v], src.Name)...)
				}
				if !prefer(b, have) {
					if rank(b.Status) != rank(have.Status) {
						notes = append(notes, MergeNote{Module: module, Version: v, Arch: arch, Kept: have.Status, Dropped: b.Status, KeptFrom: origin[arch][v], DroppedFrom: src.Name})
					}
					continue
				}
				if rank(b.Status) != rank(have.Status) {
					notes = append(notes, MergeNote{Module: module, Version: v, Arch: arch, Kept: b.Status, Dropped: have.Status, KeptFrom: src.Name, DroppedFrom: origin[arch][v]})
				}
				if err := out.Set(arch, b); err != nil {
					return nil, nil, fmt.Errorf("merge: %s: %w", src.Name, err)
				}
				origin[arch][v] = src.Name
			}
		}
	}
	if len(conflicts) > 0 {
		return nil, nil, fmt.Errorf("merge %s: %d conflicting values:\n%w", module, len(conflicts), errors.Join(conflicts...))
	}
	return out.Shard(), notes, nil
}

// rank orders statuses by how far the build got.
func rank(s Status) int {
	switch s {
	case StatusOK:
		return 3
	case StatusFailed:
		return 2
	default:
		return 1
	}
}

// prefer reports whether build b should replace build have. It is a strict
// total order on records, so the merge result is independent of input order.
func prefer(b, have Build) bool {
	if r := cmp.Compare(rank(b.Status), rank(have.Status)); r != 0 {
		return r > 0
	}
	if r := cmp.Compare(b.Toolchain, have.Toolchain); r != 0 {
		return r < 0
	}
	return b.Reason < have.Reason
}

func compareValues(fields []FieldID, module, version, arch string, a, b Build, srcA, srcB string) []error {
	var errs []error
	for _, id := range fields {
		va, okA := a.Values[id]
		vb, okB := b.Values[id]
		if okA == okB && va == vb && slices.Equal(a.GoValues[id], b.GoValues[id]) {
			continue
		}
		e := &ConflictError{Module: module, Version: version, Arch: arch, Field: id.String(), SourceA: srcA, SourceB: srcB,
			GoA: a.GoValues[id], GoB: b.GoValues[id]}
		if okA {
			e.A = &va
		}
		if okB {
			e.B = &vb
		}
		errs = append(errs, e)
	}
	return errs
}

func fieldSetError(module string, a, b MergeSource) error {
	var onlyA, onlyB []string
	for f := range a.Shard.Fields {
		if _, ok := b.Shard.Fields[f]; !ok {
			onlyA = append(onlyA, f)
		}
	}
	for f := range b.Shard.Fields {
		if _, ok := a.Shard.Fields[f]; !ok {
			onlyB = append(onlyB, f)
		}
	}
	slices.Sort(onlyA)
	slices.Sort(onlyB)
	return fmt.Errorf("merge %s: field set %s in %s, %s in %s (only in %s: [%s]; only in %s: [%s]); regenerate both with the same fieldset: %w",
		module, a.Shard.FieldSet, a.Name, b.Shard.FieldSet, b.Name,
		a.Name, strings.Join(onlyA, " "), b.Name, strings.Join(onlyB, " "), ErrFieldSetMismatch)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
