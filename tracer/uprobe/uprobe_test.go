package uprobe_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/offsetdb/offsetdb/gobinary"
	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
)

// self opens the test binary, a Go binary Attach can inspect without
// privileges.
func self(t *testing.T) *gobinary.Binary {
	t.Helper()
	path, err := os.Executable()
	require.NoError(t, err)
	bin, err := gobinary.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { bin.Close() })
	return bin
}

func mustField(t *testing.T, s string) offsets.FieldID {
	t.Helper()
	id, err := offsets.ParseFieldID(s)
	require.NoError(t, err)
	return id
}

// fake is an instrumentation whose BPF object must never be needed.
func fake(name string, kind uint8, probes ...uprobe.Probe) uprobe.Instrumentation {
	return uprobe.Instrumentation{
		Name:   name,
		Module: "std",
		Kind:   kind,
		Probes: probes,
		Spec: func() (*ebpf.CollectionSpec, error) {
			return nil, errors.New("the BPF object should not be needed")
		},
		Decode: func([]byte) (any, error) { return nil, nil },
	}
}

func TestAttachNamesInstrumentationSymbolAndBinaryOfMissingFunction(t *testing.T) {
	bin := self(t)
	inst := fake("fake http", 1, uprobe.Probe{Symbol: "net/http.(*Transport).noSuchFunction", Entry: "entry"})

	_, err := uprobe.Attach(context.Background(), bin, 0, []uprobe.Instrumentation{inst}, nil)
	require.Error(t, err)
	assert.ErrorIs(t, err, gobinary.ErrSymbolNotFound)
	assert.ErrorContains(t, err, "instrumentation fake http: symbol net/http.(*Transport).noSuchFunction not found in "+bin.Path+": not linked in?")
}

func TestAttachNamesMissingRequiredField(t *testing.T) {
	bin := self(t)
	inst := fake("fake http", 1)
	inst.Fields = []uprobe.Field{
		{ID: mustField(t, "net/http.Request.Pattern"), Const: "off_Request_Pattern", Optional: true},
		{ID: mustField(t, "net/http.Request.Method"), Const: "off_Request_Method"},
	}

	_, err := uprobe.Attach(context.Background(), bin, 0, []uprobe.Instrumentation{inst}, nil)
	require.Error(t, err)
	assert.ErrorIs(t, err, uprobe.ErrMissingField)
	assert.ErrorContains(t, err, "instrumentation fake http")
	assert.ErrorContains(t, err, "net/http.Request.Method (constant off_Request_Method)")
	assert.NotContains(t, err.Error(), "Pattern", "an optional field is not an error")
}

func TestAttachRejectsInconsistentInstrumentations(t *testing.T) {
	bin := self(t)
	noSpec := fake("b", 2)
	noSpec.Spec = nil
	for _, tt := range []struct {
		name  string
		insts []uprobe.Instrumentation
		want  string
	}{
		{"no name", []uprobe.Instrumentation{fake("", 1)}, "has no name"},
		{"same name", []uprobe.Instrumentation{fake("a", 1), fake("a", 2)}, "a given twice"},
		{"kind zero", []uprobe.Instrumentation{fake("a", 0)}, "Kind 0"},
		{"same kind", []uprobe.Instrumentation{fake("a", 1), fake("b", 1)}, "a and b have the same Kind 1"},
		{"no spec", []uprobe.Instrumentation{fake("a", 1), noSpec}, "b has no Spec"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := uprobe.Attach(context.Background(), bin, 0, tt.insts, nil)
			assert.ErrorIs(t, err, uprobe.ErrInvalidInstrumentation)
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

func TestAttachRequiresAnInstrumentation(t *testing.T) {
	_, err := uprobe.Attach(context.Background(), self(t), 0, nil, nil)
	assert.ErrorContains(t, err, "no instrumentation given")
}

func TestFieldsListsEachFieldOnceInDeclarationOrder(t *testing.T) {
	a, b := fake("a", 1), fake("b", 2)
	goid, method, status := mustField(t, "runtime.g.goid"), mustField(t, "net/http.Request.Method"), mustField(t, "net/http.Response.StatusCode")
	a.Fields = []uprobe.Field{{ID: goid}, {ID: method}}
	b.Fields = []uprobe.Field{{ID: goid}, {ID: status}}
	assert.Equal(t, []offsets.FieldID{goid, method, status}, uprobe.Fields(a, b))
}

func TestWallTimeConvertsMonotonicClock(t *testing.T) {
	var ts unix.Timespec
	require.NoError(t, unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts))
	assert.WithinDuration(t, time.Now(), uprobe.WallTime(uint64(ts.Nano())), 5*time.Millisecond)

	later := uprobe.WallTime(uint64(ts.Nano()) + 1500)
	assert.Equal(t, 1500*time.Nanosecond, later.Sub(uprobe.WallTime(uint64(ts.Nano()))))
}
