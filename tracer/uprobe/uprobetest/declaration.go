package uprobetest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/fieldset"
	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
)

// CheckDeclaration checks that an instrumentation's declaration agrees with
// the field set of its module and with its own BPF object, which needs no
// privileges:
//
//   - every field parses, is declared once, and is listed in the module's
//     field set (fieldset.Load(inst.Module)), so the database tracks it;
//   - the object has a constant for every field and for uprobe.KindConst,
//     and every constant it has is one of those, so none is left unset;
//   - the object has every program and every shared map named.
func CheckDeclaration(t *testing.T, inst uprobe.Instrumentation) {
	t.Helper()
	set, err := fieldset.Load(inst.Module)
	require.NoError(t, err)
	listed := make(map[offsets.FieldID]bool)
	for _, id := range set.Fields {
		listed[id] = true
	}

	spec, err := inst.Spec()
	require.NoError(t, err, "load the BPF object of %s", inst.Name)

	consts := map[string]bool{uprobe.KindConst: true}
	seen := make(map[offsets.FieldID]bool)
	for _, f := range inst.Fields {
		parsed, err := offsets.ParseFieldID(f.ID.String())
		if assert.NoError(t, err, "field %s", f.ID) {
			assert.Equal(t, f.ID, parsed, "field %s does not round-trip", f.ID)
		}
		assert.False(t, seen[f.ID], "field %s declared twice", f.ID)
		seen[f.ID] = true
		assert.True(t, listed[f.ID], "field %s of %s is not listed in fieldset/%s.fields", f.ID, inst.Name, inst.Module)
		assert.False(t, consts[f.Const], "constant %s used twice", f.Const)
		consts[f.Const] = true
		if v, ok := spec.Variables[f.Const]; assert.True(t, ok, "BPF object has no constant %s for %s", f.Const, f.ID) {
			assert.True(t, v.Constant(), "%s is not a volatile const", f.Const)
			assert.EqualValues(t, 8, v.Size(), "%s is not a __u64", f.Const)
		}
	}
	for name, v := range spec.Variables {
		if v.Constant() {
			assert.True(t, consts[name], "BPF constant %s is set by no Field of %s", name, inst.Name)
		}
	}
	if v, ok := spec.Variables[uprobe.KindConst]; assert.True(t, ok, "no %s constant", uprobe.KindConst) {
		assert.EqualValues(t, 1, v.Size(), "%s is not a __u8", uprobe.KindConst)
	}
	for _, p := range inst.Probes {
		for _, prog := range []string{p.Entry, p.Return} {
			if prog != "" {
				assert.Contains(t, spec.Programs, prog, "program of %s", p.Symbol)
			}
		}
	}
	for _, m := range append([]string{uprobe.EventsMap, uprobe.DropsMap}, inst.SharedMaps...) {
		assert.Contains(t, spec.Maps, m)
	}
}
