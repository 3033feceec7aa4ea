package modgen

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"

	"github.com/offsetdb/offsetdb/fieldset"
	"github.com/offsetdb/offsetdb/offsetgen/toolchain"
	"github.com/offsetdb/offsetdb/offsets"
)

// moduleProxy serves example.com/lib: each version's files (the go.mod
// included) as a module proxy does, with the list of versions.
func moduleProxy(t *testing.T, versions map[string]map[string]string) *toolchain.Proxy {
	t.Helper()
	files := map[string][]byte{}
	var list []string
	for v, srcs := range versions {
		list = append(list, v)
		dir := t.TempDir()
		for name, text := range srcs {
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644))
		}
		var zip bytes.Buffer
		require.NoError(t, modzip.CreateFromDir(&zip, module.Version{Path: "example.com/lib", Version: v}, dir))
		base := "/example.com/lib/@v/" + v
		files[base+".zip"] = zip.Bytes()
		files[base+".mod"] = []byte(srcs["go.mod"])
		files[base+".info"] = []byte(`{"Version":"` + v + `","Time":"2024-01-01T00:00:00Z"}`)
	}
	files["/example.com/lib/@v/list"] = []byte(strings.Join(list, "\n") + "\n")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := files[r.URL.Path]
		if !ok {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		_, _ = w.Write(data)
	}))
	t.Cleanup(srv.Close)
	return &toolchain.Proxy{URL: srv.URL}
}

func TestRunBuildsEachModuleVersion(t *testing.T) {
	gomod := "module example.com/lib\n\ngo 1.21\n"
	proxy := moduleProxy(t, map[string]map[string]string{
		"v1.0.0": {"go.mod": gomod, "lib.go": "package lib\n\ntype Conn struct {\n\tid   uint32\n\tName string\n}\n"},
		"v1.1.0": {"go.mod": gomod, "lib.go": "package lib\n\ntype Conn struct {\n\tflags uint64\n\tid    uint32\n\tName  string\n\tPeer  string\n}\n"},
		"v1.2.0": {"go.mod": gomod, "lib.go": "package lib\n\ntype Conn struct { broken }\n"},
		"v1.3.0": {"go.mod": gomod + "\nretract v1.2.0 // does not build\n", "lib.go": "package lib\n\ntype Conn struct{ id uint32 }\n"},
	})
	local, err := toolchain.Local(context.Background())
	require.NoError(t, err)
	set, err := fieldset.ParseModule("example.com/lib", strings.NewReader("example.com/lib.Conn.id\nexample.com/lib.Conn.Name\nexample.com/lib.Conn.Peer >=v1.1.0\n"))
	require.NoError(t, err)
	out := t.TempDir()
	cfg := Config{
		Set: set, Arches: []string{"amd64"}, CacheDir: t.TempDir(), OutDir: out, Proxy: proxy, Local: local, NoFallback: true,
		// An offline test: no checksum database, a module cache of its own.
		ModuleEnv: []string{"GOSUMDB=off", "GOFLAGS=-mod=mod -modcacherw", "GOMODCACHE=" + t.TempDir()},
	}
	rep, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	assert.Equal(t, 3, rep.Versions)
	assert.Equal(t, map[string]string{"v1.2.0": "does not build"}, rep.Retracted)
	assert.Equal(t, 3, rep.Built)
	assert.Contains(t, strings.Join(rep.Warnings, "\n"), "example.com/lib@v1.3.0/amd64: example.com/lib.Conn.Peer absent although its bound includes this version")

	db, err := offsets.OpenDir(out)
	require.NoError(t, err)
	id := offsets.FieldID{Package: "example.com/lib", Struct: "Conn", Field: "id"}
	for v, want := range map[string]uint64{"v1.0.0": 0, "v1.1.0": 8, "v1.3.0": 0} {
		r, err := db.Lookup("example.com/lib", v, "amd64", id)
		require.NoError(t, err, v)
		assert.Equal(t, want, r.Offset, v)
	}
	s, err := db.Shard("example.com/lib")
	require.NoError(t, err)
	assert.Equal(t, local.Version, s.Coverage["amd64"][0].Toolchain, "the toolchain is recorded")

	// A version that does not build is recorded failed, with the compiler's words.
	cfg.Versions = []string{"v1.2.0"}
	rep, err = Run(context.Background(), cfg)
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Failed)
	db, err = offsets.OpenDir(out) // DB caches shards: reopen
	require.NoError(t, err)
	_, err = db.Lookup("example.com/lib", "v1.2.0", "amd64", id)
	var verr *offsets.VersionError
	require.ErrorAs(t, err, &verr)
	assert.Equal(t, offsets.StatusFailed, verr.Status)
	assert.Contains(t, verr.Reason, local.Version+":")
	assert.Contains(t, verr.Reason, "lib.go")

	// A second run has nothing to do.
	cfg.Versions = nil
	rep, err = Run(context.Background(), cfg)
	require.NoError(t, err)
	assert.Equal(t, 0, rep.Built)
	assert.Equal(t, 3, rep.UpToDate)
}

func TestSplitByGoBoundsOnlyTheFieldsThatDiffer(t *testing.T) {
	same := offsets.FieldID{Package: "example.com/lib", Struct: "Conn", Field: "id"}
	moved := offsets.FieldID{Package: "example.com/lib", Struct: "Conn", Field: "mu"}
	added := offsets.FieldID{Package: "example.com/lib", Struct: "Conn", Field: "new"}
	v := func(off uint64) offsets.Value { return offsets.Value{Offset: off, Size: 8, Type: "int"} }
	values, byGo, err := splitByGo([]offsets.FieldID{same, moved, added},
		"go1.21.13", map[offsets.FieldID]offsets.Value{same: v(0), moved: v(8)},
		"go1.26.8", map[offsets.FieldID]offsets.Value{same: v(0), moved: v(16), added: v(24)})
	require.NoError(t, err)
	assert.Equal(t, map[offsets.FieldID]offsets.Value{same: v(0)}, values)
	assert.Equal(t, []offsets.GoValue{{Go: "<=go1.21.13", Value: v(8)}, {Go: ">=go1.26.8", Value: v(16)}}, byGo[moved])
	assert.Equal(t, []offsets.GoValue{{Go: ">=go1.26.8", Value: v(24)}}, byGo[added], "a field only the newer release lays out")

	tb := offsets.NewTable("example.com/lib", []offsets.FieldID{same, moved, added})
	require.NoError(t, tb.Set("amd64", offsets.Build{Coverage: offsets.Coverage{Version: "v1.0.0", Status: offsets.StatusOK, Toolchain: "go1.26.8"},
		Values: values, GoValues: byGo}), "the split is a valid build")
	require.NoError(t, tb.Shard().Check())
}

func TestRunComparesToolchainsAndRetriesWithTheFallback(t *testing.T) {
	gomod := "module example.com/lib\n\ngo 1.21\n"
	proxy := moduleProxy(t, map[string]map[string]string{
		"v1.0.0": {"go.mod": gomod, "lib.go": "package lib\n\ntype Conn struct {\n\tid   uint32\n\tName string\n}\n"},
	})
	local, err := toolchain.Local(context.Background())
	require.NoError(t, err)
	set, err := fieldset.ParseModule("example.com/lib", strings.NewReader("example.com/lib.Conn.Name\n"))
	require.NoError(t, err)
	env := []string{"GOSUMDB=off", "GOFLAGS=-mod=mod -modcacherw", "GOMODCACHE=" + t.TempDir()}

	// The same toolchain under another name stands in for an older release:
	// equal layouts, so nothing depends on the Go release.
	older := *local
	older.Version = "go1.21.13"
	out := t.TempDir()
	rep, err := Run(context.Background(), Config{Set: set, Arches: []string{"amd64"}, CacheDir: t.TempDir(), OutDir: out, Proxy: proxy,
		Local: local, Fallback: &older, CompareGo: true, ModuleEnv: env})
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Built)
	assert.Equal(t, 0, rep.GoDependent)
	db, err := offsets.OpenDir(out)
	require.NoError(t, err)
	r, err := db.Lookup("example.com/lib", "v1.0.0", "amd64", set.Fields[0])
	require.NoError(t, err)
	assert.Empty(t, r.Provenance.Go)

	// A local toolchain that cannot build (a GOROOT without go) leaves the
	// build to the fallback, which is recorded.
	broken := *local
	broken.GOROOT = t.TempDir()
	out = t.TempDir()
	rep, err = Run(context.Background(), Config{Set: set, Arches: []string{"amd64"}, CacheDir: t.TempDir(), OutDir: out, Proxy: proxy,
		Local: &broken, Fallback: &older, ModuleEnv: env})
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Built)
	db, err = offsets.OpenDir(out)
	require.NoError(t, err)
	s, err := db.Shard("example.com/lib")
	require.NoError(t, err)
	assert.Equal(t, "go1.21.13", s.Coverage["amd64"][0].Toolchain, "the toolchain that built is recorded")
}
