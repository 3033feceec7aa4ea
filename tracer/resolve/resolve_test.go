package resolve

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/gobinary"
	"github.com/offsetdb/offsetdb/goversion"
	"github.com/offsetdb/offsetdb/offsets"
)

var (
	reqCtx     = offsets.FieldID{Package: "net/http", Struct: "Request", Field: "ctx"}
	reqMethod  = offsets.FieldID{Package: "net/http", Struct: "Request", Field: "Method"}
	reqPattern = offsets.FieldID{Package: "net/http", Struct: "Request", Field: "Pattern"}
	reqNope    = offsets.FieldID{Package: "net/http", Struct: "Request", Field: "noSuchField"}
)

// oracle is the layout of net/http.Request in this test binary, which was
// built by the same toolchain as the targets below.
func oracle(t *testing.T, name string) offsets.Value {
	f, ok := reflect.TypeOf(http.Request{}).FieldByName(name)
	require.True(t, ok, name)
	return offsets.Value{Offset: uint64(f.Offset), Size: uint64(f.Type.Size()), Type: f.Type.String()}
}

var (
	buildOnce sync.Once
	builds    map[string]string
	buildErr  error
)

// targets builds a small server once: normal and stripped.
func targets(t *testing.T) map[string]string {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "resolve-test-")
		if err != nil {
			buildErr = err
			return
		}
		src := "package main\n\nimport \"net/http\"\n\nfunc main() {\n\thttp.HandleFunc(\"/\", func(w http.ResponseWriter, r *http.Request) {})\n\t_ = http.ListenAndServe(\"127.0.0.1:0\", nil)\n}\n"
		if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
			buildErr = err
			return
		}
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/target\n\ngo 1.22\n"), 0o644); err != nil {
			buildErr = err
			return
		}
		builds = map[string]string{}
		for name, ldflags := range map[string]string{"normal": "", "stripped": "-s -w"} {
			out := filepath.Join(dir, name)
			cmd := exec.Command("go", "build", "-ldflags="+ldflags, "-o", out, ".")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
			if msg, err := cmd.CombinedOutput(); err != nil {
				buildErr = err
				builds = nil
				_ = msg
				return
			}
			builds[name] = out
		}
	})
	require.NoError(t, buildErr)
	return builds
}

func open(t *testing.T, path string) *gobinary.Binary {
	b, err := gobinary.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b
}

// dbFor writes a database that knows this toolchain's release with the
// oracle's values, and records Pattern as absent.
func dbFor(t *testing.T, withPattern bool) *offsets.DB {
	v := goversion.MustParse(runtime.Version()).String()
	tb := offsets.NewTable(offsets.StdModule, []offsets.FieldID{reqCtx, reqMethod, reqPattern})
	vals := map[offsets.FieldID]offsets.Value{
		reqCtx:    {Offset: oracle(t, "ctx").Offset, Size: 16, Type: "context.Context"},
		reqMethod: {Offset: oracle(t, "Method").Offset, Size: 16, Type: "string"},
	}
	if withPattern {
		vals[reqPattern] = offsets.Value{Offset: oracle(t, "Pattern").Offset, Size: 16, Type: "string"}
	}
	require.NoError(t, tb.Set(runtime.GOARCH, offsets.Build{Coverage: offsets.Coverage{Version: v, Status: offsets.StatusOK, Toolchain: v}, Values: vals}))
	dir := t.TempDir()
	require.NoError(t, offsets.WriteShard(dir, tb.Shard()))
	db, err := offsets.OpenDir(dir)
	require.NoError(t, err)
	return db
}

func TestResolveFallsBackToDWARFForUnknownVersion(t *testing.T) {
	bin := open(t, targets(t)["normal"])
	r := Resolver{} // no database: every version is unknown
	got := r.Resolve(bin, []offsets.FieldID{reqCtx, reqMethod, reqNope})
	require.Equal(t, Resolved, got[reqCtx].Status, got[reqCtx].Err)
	assert.Equal(t, oracle(t, "ctx").Offset, got[reqCtx].Value.Offset)
	assert.Equal(t, oracle(t, "Method").Offset, got[reqMethod].Value.Offset)
	assert.True(t, strings.HasPrefix(got[reqCtx].Provenance, "dwarf "), got[reqCtx].Provenance)
	assert.Equal(t, Absent, got[reqNope].Status, "a field the struct does not have is absent, not unresolved")
}

func TestResolvePrefersDatabase(t *testing.T) {
	bin := open(t, targets(t)["stripped"])
	r := Resolver{DBs: []*offsets.DB{dbFor(t, false)}}
	got := r.Resolve(bin, []offsets.FieldID{reqCtx, reqPattern})
	require.Equal(t, Resolved, got[reqCtx].Status, got[reqCtx].Err)
	assert.Equal(t, oracle(t, "ctx").Offset, got[reqCtx].Value.Offset)
	assert.True(t, strings.HasPrefix(got[reqCtx].Provenance, "database std"), got[reqCtx].Provenance)
	assert.Equal(t, Absent, got[reqPattern].Status, "the database says Pattern is absent in this (test) database")
}

func TestResolveStrippedAndUnknownIsUnresolvedWithReasons(t *testing.T) {
	bin := open(t, targets(t)["stripped"])
	r := Resolver{}
	got := r.Resolve(bin, []offsets.FieldID{reqCtx})
	f := got[reqCtx]
	require.Equal(t, Unresolved, f.Status)
	assert.Contains(t, f.Err.Error(), "no DWARF")
	assert.Contains(t, f.Err.Error(), "database")
	missing := Missing(got, []offsets.FieldID{reqCtx}, func(offsets.FieldID) bool { return false })
	require.Len(t, missing, 1)
	assert.Contains(t, Hint(bin, missing), "offsetgen generate --versions")
}

func TestResolveLaterDatabaseAnswersWhenFirstDoesNotKnow(t *testing.T) {
	bin := open(t, targets(t)["stripped"])
	empty := offsets.NewTable(offsets.StdModule, []offsets.FieldID{reqCtx})
	dir := t.TempDir()
	require.NoError(t, offsets.WriteShard(dir, empty.Shard()))
	first, err := offsets.OpenDir(dir)
	require.NoError(t, err)
	r := Resolver{DBs: []*offsets.DB{first, dbFor(t, true)}}
	got := r.Resolve(bin, []offsets.FieldID{reqPattern})
	require.Equal(t, Resolved, got[reqPattern].Status, got[reqPattern].Err)
	assert.Equal(t, oracle(t, "Pattern").Offset, got[reqPattern].Value.Offset)
}

func TestResolveIgnoresDatabaseForExperiments(t *testing.T) {
	bin := open(t, targets(t)["normal"])
	bin.Experiments = []string{"boringcrypto"} // as gobinary reports for such a build
	r := Resolver{DBs: []*offsets.DB{dbFor(t, true)}}
	got := r.Resolve(bin, []offsets.FieldID{reqCtx})
	require.Equal(t, Resolved, got[reqCtx].Status)
	assert.True(t, strings.HasPrefix(got[reqCtx].Provenance, "dwarf"), "experiment builds must not use the default-build database")
}

func TestModuleOfField(t *testing.T) {
	bin := &gobinary.Binary{Modules: []gobinary.Module{{Path: "google.golang.org/grpc"}, {Path: "golang.org/x/net"}}}
	m, ok := Module(bin, offsets.FieldID{Package: "google.golang.org/grpc/internal/transport", Struct: "Stream", Field: "id"})
	assert.True(t, ok)
	assert.Equal(t, "google.golang.org/grpc", m)
	m, _ = Module(bin, reqCtx)
	assert.Equal(t, "std", m)
	_, ok = Module(bin, offsets.FieldID{Package: "example.com/x", Struct: "T", Field: "f"})
	assert.False(t, ok)
}

func TestResolveInterpolatesOnlyWhenAsked(t *testing.T) {
	// A database that built the releases just below and above this
	// toolchain's, with the same values, but not this one.
	v := goversion.MustParse(runtime.Version())
	if v.Patch == 0 {
		t.Skip("needs a toolchain with a patch number above 0 to have a release below it")
	}
	below, above := v, v
	below.Patch--
	above.Patch++
	tb := offsets.NewTable(offsets.StdModule, []offsets.FieldID{reqCtx})
	val := offsets.Value{Offset: oracle(t, "ctx").Offset, Size: 16, Type: "context.Context"}
	for _, w := range []goversion.Version{below, above} {
		require.NoError(t, tb.Set(runtime.GOARCH, offsets.Build{Coverage: offsets.Coverage{Version: w.String(), Status: offsets.StatusOK, Toolchain: w.String()},
			Values: map[offsets.FieldID]offsets.Value{reqCtx: val}}))
	}
	db := func(t *testing.T, tb *offsets.Table) *offsets.DB {
		dir := t.TempDir()
		require.NoError(t, offsets.WriteShard(dir, tb.Shard()))
		db, err := offsets.OpenDir(dir)
		require.NoError(t, err)
		return db
	}
	bin := open(t, targets(t)["stripped"])

	// This release has no record: nothing says it exists, so no answer.
	r := Resolver{DBs: []*offsets.DB{db(t, tb)}, Interpolate: true}
	f := r.Resolve(bin, []offsets.FieldID{reqCtx})[reqCtx]
	require.Equal(t, Unresolved, f.Status)
	assert.Contains(t, f.Err.Error(), "no record of this version")

	// Recorded as withheld by the proxy: interpolated when asked.
	require.NoError(t, tb.Set(runtime.GOARCH, offsets.Build{Coverage: offsets.Coverage{Version: v.String(), Status: offsets.StatusUnavailable, Reason: "proxy answered 403"}}))
	r = Resolver{DBs: []*offsets.DB{db(t, tb)}}
	assert.Equal(t, Unresolved, r.Resolve(bin, []offsets.FieldID{reqCtx})[reqCtx].Status)
	r.Interpolate = true
	f = r.Resolve(bin, []offsets.FieldID{reqCtx})[reqCtx]
	require.Equal(t, Resolved, f.Status, f.Err)
	assert.Equal(t, val, f.Value)
	assert.Contains(t, f.Provenance, "interpolated")
}

// experimentTarget builds the test server stripped with GOEXPERIMENT=exp
// and the toolchain running the test.
func experimentTarget(t *testing.T, exp string) string {
	dir := filepath.Dir(targets(t)["normal"])
	out := filepath.Join(t.TempDir(), "stripped-"+exp)
	cmd := exec.Command("go", "build", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOEXPERIMENT="+exp)
	msg, err := cmd.CombinedOutput()
	if err != nil && strings.Contains(string(msg), "unknown GOEXPERIMENT") {
		t.Skipf("SKIPPED: %s has no experiment %s", runtime.Version(), exp)
	}
	require.NoError(t, err, "%s", msg)
	return out
}

// TestResolveExperimentBuildFromItsOwnShard: a stripped build with a
// GOEXPERIMENT is resolved from the shard of exactly its experiment set,
// never from the default builds' (which here holds different values, so
// the test sees which one answered); without such a shard it stays
// unresolved, and the hint is the offsetgen command that builds it.
func TestResolveExperimentBuildFromItsOwnShard(t *testing.T) {
	const exp = "jsonv2"
	bin := open(t, experimentTarget(t, exp))
	require.Equal(t, []string{exp}, bin.Experiments)
	require.False(t, bin.HasDWARF)
	v := goversion.MustParse(runtime.Version()).String()
	want := offsets.Value{Offset: oracle(t, "ctx").Offset, Size: 16, Type: "context.Context"}
	dir := t.TempDir()
	write := func(module string, val offsets.Value) {
		tb := offsets.NewTable(module, []offsets.FieldID{reqCtx})
		require.NoError(t, tb.Set(runtime.GOARCH, offsets.Build{Coverage: offsets.Coverage{Version: v, Status: offsets.StatusOK, Toolchain: v},
			Values: map[offsets.FieldID]offsets.Value{reqCtx: val}}))
		require.NoError(t, offsets.WriteShard(dir, tb.Shard()))
	}
	write(offsets.StdModule, offsets.Value{Offset: want.Offset + 8, Size: 16, Type: "context.Context"})
	db, err := offsets.OpenDir(dir)
	require.NoError(t, err)

	r := Resolver{DBs: []*offsets.DB{db}}
	f := r.Resolve(bin, []offsets.FieldID{reqCtx})[reqCtx]
	require.Equal(t, Unresolved, f.Status, "the default build's values are not used")
	assert.Contains(t, f.Err.Error(), "std+"+exp)
	assert.Contains(t, Hint(bin, []Field{f}), "offsetgen generate --goexperiment "+exp+" --versions "+strings.TrimPrefix(v, "go")+" --arch "+runtime.GOARCH+" --out DIR")

	write("std+"+exp, want)
	db, err = offsets.OpenDir(dir)
	require.NoError(t, err)
	r = Resolver{DBs: []*offsets.DB{db}}
	f = r.Resolve(bin, []offsets.FieldID{reqCtx})[reqCtx]
	require.Equal(t, Resolved, f.Status, f.Err)
	assert.Equal(t, want, f.Value)
	assert.Contains(t, f.Provenance, "database std+"+exp+" ")
}
