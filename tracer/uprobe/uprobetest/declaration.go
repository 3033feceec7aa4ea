package uprobetest

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/fieldset"
	"github.com/offsetdb/offsetdb/gobinary"
	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/spans"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
)

// FieldSetModule returns the module whose field set (fieldset/*.fields)
// must list a field of package pkg: "std" for the standard library, else
// the longest module with a field set that is pkg or a prefix of it; ok is
// false when there is none.
func FieldSetModule(pkg string) (module string, ok bool) {
	first, _, _ := strings.Cut(pkg, "/")
	if !strings.Contains(first, ".") {
		return offsets.StdModule, true
	}
	for _, m := range fieldset.Modules() {
		if m != offsets.StdModule && (pkg == m || strings.HasPrefix(pkg, m+"/")) && len(m) > len(module) {
			module = m
		}
	}
	return module, module != ""
}

// CheckDeclaration checks that an instrumentation's declaration agrees with
// the field sets of its fields' modules and with its own BPF object, which
// needs no privileges:
//
//   - every field parses, is declared once, and is listed in the field set
//     of the module its package belongs to (FieldSetModule), so the
//     database tracks it;
//   - the object has a constant for every field and for uprobe.KindConst,
//     and every constant it has is one of those, so none is left unset;
//   - the object has every program and every map the declaration names,
//     and the runtime maps; every probe's Versions bound parses for the
//     module of its symbol.
func CheckDeclaration(t *testing.T, inst uprobe.Instrumentation) {
	t.Helper()
	require.NotEmpty(t, inst.Name, "instrumentation without a name")
	require.NotEmpty(t, inst.Probes, "instrumentation %s without probes", inst.Name)
	listed := make(map[string]map[offsets.FieldID]bool)
	inSet := func(module string, id offsets.FieldID) bool {
		if listed[module] == nil {
			set, err := fieldset.Load(module)
			require.NoError(t, err, "field set of module %s", module)
			listed[module] = make(map[offsets.FieldID]bool)
			for _, id := range set.Fields {
				listed[module][id] = true
			}
			pending, err := fieldset.Pending(module)
			require.NoError(t, err, "pending fields of module %s", module)
			for _, id := range pending {
				listed[module][id] = true
			}
		}
		return listed[module][id]
	}

	spec, err := inst.Spec()
	require.NoError(t, err, "load the BPF object of %s", inst.Name)

	consts := map[string]bool{uprobe.KindConst: true}
	for _, name := range append(append([]string(nil), uprobe.OptionConsts...), uprobe.ABIConsts...) {
		consts[name] = true
	}
	seen := make(map[offsets.FieldID]bool)
	for _, f := range inst.Fields {
		parsed, err := offsets.ParseFieldID(f.ID.String())
		if assert.NoError(t, err, "field %s", f.ID) {
			assert.Equal(t, f.ID, parsed, "field %s does not round-trip", f.ID)
		}
		assert.False(t, seen[f.ID], "field %s declared twice", f.ID)
		seen[f.ID] = true
		if module, ok := FieldSetModule(f.ID.Package); assert.True(t, ok, "field %s of %s: no field set covers package %s (have %v)", f.ID, inst.Name, f.ID.Package, fieldset.Modules()) {
			assert.True(t, inSet(module, f.ID), "field %s of %s is not listed in the field set of %s (nor in its .pending file)", f.ID, inst.Name, module)
		}
		assert.False(t, consts[f.Const], "constant %s used twice", f.Const)
		consts[f.Const] = true
		if v, ok := spec.Variables[f.Const]; assert.True(t, ok, "BPF object has no constant %s for %s", f.Const, f.ID) {
			assert.True(t, v.Constant(), "%s is not a volatile const", f.Const)
			assert.EqualValues(t, 8, v.Size(), "%s is not a __u64", f.Const)
		}
	}
	for _, name := range inst.BinaryConsts {
		assert.False(t, consts[name], "constant %s used twice", name)
		consts[name] = true
		if v, ok := spec.Variables[name]; assert.True(t, ok, "BPF object has no constant %s", name) {
			assert.True(t, v.Constant(), "%s is not a volatile const", name)
			assert.EqualValues(t, 8, v.Size(), "%s is not a __u64", name)
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
		assert.True(t, p.Entry != "" || p.Return != "", "probe %s attaches no program", p.Symbol)
		if p.Versions != "" {
			module, ok := FieldSetModule(gobinary.SymbolPackage(p.Symbol))
			if assert.True(t, ok, "probe %s: no field set covers its package", p.Symbol) {
				_, err := offsets.ParseConstraint(module, p.Versions)
				assert.NoError(t, err, "probe %s: Versions %q", p.Symbol, p.Versions)
			}
		}
	}
	for prog := range spec.Programs {
		used := slices.ContainsFunc(inst.Probes, func(p uprobe.Probe) bool { return p.Entry == prog || p.Return == prog })
		assert.True(t, used, "BPF program %s of %s is attached by no probe", prog, inst.Name)
	}
	for _, m := range append([]string{uprobe.EventsMap, uprobe.DropsMap}, inst.SharedMaps...) {
		assert.Contains(t, spec.Maps, m)
	}
}

// DecodeCase is one record and the span an instrumentation must make of it.
type DecodeCase struct {
	Name   string
	Record []byte
	// WantErr, when set, is a substring of the error Decode must return.
	WantErr string
	// Want are the span's expected name, kind, IDs and times; Attributes
	// and Status are checked through WantAttrs and WantStatus instead.
	Want       spans.Span
	WantAttrs  map[string]any
	WantStatus codes.Code
	// WantDescription is the expected status description.
	WantDescription string
}

// CheckInstrumentation runs CheckDeclaration, then decodes each case's
// record with inst.Decode and compares the span with the case: the one
// test entry point an instrumentation's unit test needs.
func CheckInstrumentation(t *testing.T, inst uprobe.Instrumentation, cases []DecodeCase) {
	t.Helper()
	t.Run("declaration", func(t *testing.T) { CheckDeclaration(t, inst) })
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			var got spans.Span
			err := inst.Decode(c.Record, &got)
			if c.WantErr != "" {
				assert.ErrorContains(t, err, c.WantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, c.Want.Name, got.Name, "name")
			if c.Want.Kind != trace.SpanKindUnspecified {
				assert.Equal(t, c.Want.Kind, got.Kind, "kind")
			}
			if c.Want.TraceID.IsValid() {
				assert.Equal(t, c.Want.TraceID, got.TraceID, "trace ID")
				assert.Equal(t, c.Want.SpanID, got.SpanID, "span ID")
				assert.Equal(t, c.Want.ParentSpanID, got.ParentSpanID, "parent span ID")
				assert.Equal(t, c.Want.RemoteParent, got.RemoteParent, "remote parent")
			}
			if !c.Want.Start.IsZero() {
				assert.Equal(t, c.Want.Start, got.Start, "start")
				assert.Equal(t, c.Want.End, got.End, "end")
			}
			assert.Equal(t, c.WantAttrs, AttrMap(t, got.Attributes), "attributes")
			assert.Equal(t, c.WantStatus, got.Status, "status")
			assert.Equal(t, c.WantDescription, got.StatusDescription, "status description")
		})
	}
}

// AttrMap returns attrs as key -> value and fails on duplicate keys.
func AttrMap(t *testing.T, attrs []attribute.KeyValue) map[string]any {
	t.Helper()
	m := make(map[string]any, len(attrs))
	for _, kv := range attrs {
		_, dup := m[string(kv.Key)]
		assert.False(t, dup, "duplicate attribute %s", kv.Key)
		m[string(kv.Key)] = kv.Value.AsInterface()
	}
	return m
}
