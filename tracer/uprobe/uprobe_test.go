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
	"github.com/offsetdb/offsetdb/tracer/spans"
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
func fake(name string, probes ...uprobe.Probe) uprobe.Instrumentation {
	return uprobe.Instrumentation{
		Name:   name,
		Probes: probes,
		Spec: func() (*ebpf.CollectionSpec, error) {
			return nil, errors.New("the BPF object should not be needed")
		},
		Decode: func([]byte, *spans.Span) error { return nil },
	}
}

func TestAttachNamesInstrumentationSymbolAndBinaryOfMissingFunction(t *testing.T) {
	bin := self(t)
	inst := fake("fake http", uprobe.Probe{Symbol: "net/http.(*Transport).noSuchFunction", Entry: "entry"})

	_, err := uprobe.Attach(context.Background(), bin, 0, []uprobe.Instrumentation{inst}, nil, nil)
	require.Error(t, err)
	assert.ErrorIs(t, err, gobinary.ErrSymbolNotFound)
	assert.ErrorIs(t, err, uprobe.ErrProbeSkipped)
	assert.ErrorContains(t, err, "attach to "+bin.Path+": instrumentation fake http: probe skipped: function net/http.(*Transport).noSuchFunction not in the binary (not linked in, or renamed)")
}

func TestLocateSkipsOptionalAndVersionBoundProbes(t *testing.T) {
	bin := self(t)
	// Test binaries record no dependencies, so the bounds are on std: the
	// Go release that built the test.
	require.NoError(t, bin.GoVersionErr)
	present := uprobe.Probe{Symbol: "runtime.main", Entry: "entry"}
	missing := uprobe.Probe{Symbol: "net/http.(*Transport).noSuchFunction", Entry: "entry", Optional: true}
	tooNew := uprobe.Probe{Symbol: "runtime.newobject", Entry: "entry", Versions: ">=go1.99", Optional: true}
	fits := uprobe.Probe{Symbol: "runtime.newobject", Entry: "entry", Versions: ">=go1.17,<=" + bin.GoVersion.String()}
	notLinked := uprobe.Probe{Symbol: "example.com/nolib.(*Server).serve", Entry: "entry", Optional: true}

	inst := fake("fake", present, missing, tooNew, fits, notLinked)
	located, skipped, err := inst.Locate(bin)
	require.NoError(t, err)
	if assert.Len(t, located, 2) {
		assert.Equal(t, present.Symbol, located[0].Probe.Symbol)
		assert.Equal(t, fits.Symbol, located[1].Probe.Symbol)
		assert.NotZero(t, located[1].Function.EntryOffset)
	}
	if assert.Len(t, skipped, 3) {
		assert.ErrorIs(t, skipped[0].Err, uprobe.ErrProbeSkipped)
		assert.ErrorContains(t, skipped[0].Err, "noSuchFunction not in the binary")
		assert.False(t, skipped[0].OutsideVersions, "a missing function is not a version bound")
		assert.False(t, skipped[0].NotLinked, "std is linked")
		assert.True(t, skipped[1].OutsideVersions, "a probe for other versions")
		assert.ErrorContains(t, skipped[1].Err, "runtime.newobject needs std >=go1.99; the binary has "+bin.GoVersion.String())
		assert.True(t, skipped[2].NotLinked, "a probe of a library the binary does not use")
	}

	tooNew.Optional = false
	strict := fake("strict", present, tooNew)
	_, _, err = strict.Locate(bin)
	assert.ErrorIs(t, err, uprobe.ErrProbeSkipped)
	assert.ErrorContains(t, err, "instrumentation strict: probe skipped: runtime.newobject needs std >=go1.99")

	noneFit := fake("none fit", missing)
	_, _, err = noneFit.Locate(bin)
	assert.ErrorContains(t, err, "no probe fits")
}

func TestAttachNamesMissingRequiredField(t *testing.T) {
	bin := self(t)
	inst := fake("fake http")
	inst.Fields = []uprobe.Field{
		{ID: mustField(t, "net/http.Request.Pattern"), Const: "off_Request_Pattern", Optional: true},
		{ID: mustField(t, "net/http.Request.Method"), Const: "off_Request_Method"},
	}

	_, err := uprobe.Attach(context.Background(), bin, 0, []uprobe.Instrumentation{inst}, nil, nil)
	require.Error(t, err)
	assert.ErrorIs(t, err, uprobe.ErrMissingField)
	assert.ErrorContains(t, err, "instrumentation fake http")
	assert.ErrorContains(t, err, "net/http.Request.Method (constant off_Request_Method)")
	assert.NotContains(t, err.Error(), "Pattern", "an optional field is not an error")
}

func TestAttachRejectsInconsistentInstrumentations(t *testing.T) {
	bin := self(t)
	noSpec := fake("b")
	noSpec.Spec = nil
	for _, tt := range []struct {
		name  string
		insts []uprobe.Instrumentation
		want  string
	}{
		{"no name", []uprobe.Instrumentation{fake("")}, "has no name"},
		{"same name", []uprobe.Instrumentation{fake("a"), fake("a")}, "a given twice"},
		{"no spec", []uprobe.Instrumentation{fake("a"), noSpec}, "b has no Spec"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := uprobe.Attach(context.Background(), bin, 0, tt.insts, nil, nil)
			assert.ErrorIs(t, err, uprobe.ErrInvalidInstrumentation)
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

func TestAttachRequiresAnInstrumentation(t *testing.T) {
	_, err := uprobe.Attach(context.Background(), self(t), 0, nil, nil, nil)
	assert.ErrorContains(t, err, "no instrumentation given")
}

func TestFieldsListsEachFieldOnceInDeclarationOrder(t *testing.T) {
	a, b := fake("a"), fake("b")
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
