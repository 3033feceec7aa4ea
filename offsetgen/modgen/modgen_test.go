package modgen

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"

	"github.com/offsetdb/offsetdb/fieldset"
	"github.com/offsetdb/offsetdb/goversion"
	"github.com/offsetdb/offsetdb/offsetgen/probe"
	"github.com/offsetdb/offsetdb/offsetgen/toolchain"
	"github.com/offsetdb/offsetdb/offsets"
)

// moduleProxy serves example.com/lib: each version's files (the go.mod
// included) as a module proxy does, with the list of versions.
func moduleProxy(t *testing.T, versions map[string]map[string]string) *toolchain.Proxy {
	t.Helper()
	var served []servedVersion
	for v, files := range versions {
		served = append(served, servedVersion{path: "example.com/lib", version: v, files: files})
	}
	return modulesProxy(t, served)
}

// servedVersion is a module version the test proxy serves.
type servedVersion struct {
	path, version string
	time          string            // .info Time, "2024-01-01" when ""
	files         map[string]string // the module's files; without a go.mod, the proxy makes one with the module line
	noZip         bool              // .info and .mod served, the zip refused (403), as the real proxy does for some versions
}

// modulesProxy serves module versions as a module proxy does: each
// version's zip, go.mod and .info, and each module's list of versions.
func modulesProxy(t *testing.T, versions []servedVersion) *toolchain.Proxy {
	t.Helper()
	files := map[string][]byte{}
	lists := map[string][]string{}
	refused := map[string]bool{}
	for _, sv := range versions {
		lists[sv.path] = append(lists[sv.path], sv.version)
		dir := t.TempDir()
		for name, text := range sv.files {
			require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644))
		}
		var zip bytes.Buffer
		require.NoError(t, modzip.CreateFromDir(&zip, module.Version{Path: sv.path, Version: sv.version}, dir))
		base := "/" + sv.path + "/@v/" + sv.version
		if sv.noZip {
			refused[base+".zip"] = true
		} else {
			files[base+".zip"] = zip.Bytes()
		}
		gomod, ok := sv.files["go.mod"]
		if !ok {
			gomod = "module " + sv.path + "\n"
		}
		files[base+".mod"] = []byte(gomod)
		date := sv.time
		if date == "" {
			date = "2024-01-01"
		}
		files[base+".info"] = []byte(`{"Version":"` + sv.version + `","Time":"` + date + `T00:00:00Z"}`)
	}
	for p, list := range lists {
		files["/"+p+"/@v/list"] = []byte(strings.Join(list, "\n") + "\n")
	}
	// Toolchains and the checksum database come from the real proxy, so
	// that tests can fetch real older Go releases through this one.
	real, err := url.Parse(toolchain.ProxyURLFromEnv())
	require.NoError(t, err)
	forward := httputil.NewSingleHostReverseProxy(real)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/golang.org/toolchain/") || strings.HasPrefix(r.URL.Path, "/sumdb/") {
			r.Host = real.Host
			forward.ServeHTTP(w, r)
			return
		}
		if refused[r.URL.Path] {
			http.Error(w, "This module version is not available.", http.StatusForbidden)
			return
		}
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

// TestRunRecordsAVersionWhoseZipIsRefusedAsUnavailable: the proxy answers
// for the version's .info and go.mod but refuses its zip; that is the
// proxy's answer, recorded unavailable, not a compiler failure.
func TestRunRecordsAVersionWhoseZipIsRefusedAsUnavailable(t *testing.T) {
	gomod := "module example.com/lib\n\ngo 1.21\n"
	src := "package lib\n\ntype Conn struct{ id uint32 }\n"
	proxy := modulesProxy(t, []servedVersion{
		{path: "example.com/lib", version: "v1.0.0", files: map[string]string{"go.mod": gomod, "lib.go": src}},
		{path: "example.com/lib", version: "v1.1.0", files: map[string]string{"go.mod": gomod, "lib.go": src}, noZip: true},
	})
	local, err := toolchain.Local(context.Background())
	require.NoError(t, err)
	set, err := fieldset.ParseModule("example.com/lib", strings.NewReader("example.com/lib.Conn.id\n"))
	require.NoError(t, err)
	out := t.TempDir()
	rep, err := Run(context.Background(), Config{Set: set, Arches: []string{"amd64"}, CacheDir: t.TempDir(), OutDir: out, Proxy: proxy, Local: local, NoFallback: true,
		ModuleEnv: []string{"GOSUMDB=off", "GOFLAGS=-mod=mod -modcacherw", "GOMODCACHE=" + t.TempDir()}})
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Built)
	assert.Equal(t, 1, rep.Unavailable)
	assert.Equal(t, 0, rep.Failed)
	db, err := offsets.OpenDir(out)
	require.NoError(t, err)
	_, err = db.Lookup("example.com/lib", "v1.1.0", "amd64", set.Fields[0])
	var verr *offsets.VersionError
	require.ErrorAs(t, err, &verr)
	assert.Equal(t, offsets.StatusUnavailable, verr.Status)
	assert.Contains(t, verr.Reason, "403")
}

// TestRunBuildsAVersionRecordedUnavailableOnceServed: module versions
// recorded unavailable are asked about again on every run (unlike ok and
// failed ones), so one the proxy serves later is built by the next run.
func TestRunBuildsAVersionRecordedUnavailableOnceServed(t *testing.T) {
	gomod := "module example.com/lib\n\ngo 1.21\n"
	src := "package lib\n\ntype Conn struct{ id uint32 }\n"
	versions := func(zip bool) []servedVersion {
		return []servedVersion{
			{path: "example.com/lib", version: "v1.0.0", files: map[string]string{"go.mod": gomod, "lib.go": src}},
			{path: "example.com/lib", version: "v1.1.0", files: map[string]string{"go.mod": gomod, "lib.go": src}, noZip: !zip},
		}
	}
	local, err := toolchain.Local(context.Background())
	require.NoError(t, err)
	set, err := fieldset.ParseModule("example.com/lib", strings.NewReader("example.com/lib.Conn.id\n"))
	require.NoError(t, err)
	out := t.TempDir()
	run := func(proxy *toolchain.Proxy) *Report {
		rep, err := Run(context.Background(), Config{Set: set, Arches: []string{"amd64"}, CacheDir: t.TempDir(), OutDir: out, Proxy: proxy, Local: local, NoFallback: true,
			ModuleEnv: []string{"GOSUMDB=off", "GOFLAGS=-mod=mod -modcacherw", "GOMODCACHE=" + t.TempDir()}})
		require.NoError(t, err)
		return rep
	}
	rep := run(modulesProxy(t, versions(false)))
	require.Equal(t, 1, rep.Unavailable)

	rep = run(modulesProxy(t, versions(true)))
	assert.Equal(t, 1, rep.UpToDate, "v1.0.0 is not built again")
	assert.Equal(t, 1, rep.Built, "v1.1.0 is asked about again and built")
	assert.Equal(t, 0, rep.Unavailable)
	db, err := offsets.OpenDir(out)
	require.NoError(t, err)
	r, err := db.Lookup("example.com/lib", "v1.1.0", "amd64", set.Fields[0])
	require.NoError(t, err)
	assert.Equal(t, uint64(0), r.Offset)
	assert.Equal(t, "uint32", r.Type)
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
	values, byGo, err := splitByGo([]offsets.FieldID{same, moved, added}, []goPoint{
		{goversion.MustParse("go1.21.13"), map[offsets.FieldID]offsets.Value{same: v(0), moved: v(8)}},
		{goversion.MustParse("go1.26.8"), map[offsets.FieldID]offsets.Value{same: v(0), moved: v(16), added: v(24)}},
	})
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

func TestSplitByGoBoundsEachRunOfAgreeingToolchains(t *testing.T) {
	id := offsets.FieldID{Package: "example.com/lib", Struct: "Conn", Field: "mu"}
	v := func(off uint64) offsets.Value { return offsets.Value{Offset: off, Size: 8, Type: "int"} }
	at := func(tc string, off uint64) goPoint {
		if off == 0 {
			return goPoint{goversion.MustParse(tc), map[offsets.FieldID]offsets.Value{}}
		}
		return goPoint{goversion.MustParse(tc), map[offsets.FieldID]offsets.Value{id: v(off)}}
	}
	for _, tc := range []struct {
		name   string
		points []goPoint
		want   []offsets.GoValue
	}{{
		name:   "adjacent lines split at the first release of the newer",
		points: []goPoint{at("go1.21.13", 8), at("go1.22.12", 16)},
		want:   []offsets.GoValue{{Go: "<go1.22.0", Value: v(8)}, {Go: ">=go1.22.0", Value: v(16)}},
	}, {
		name:   "first releases before go1.21 are named go1.N",
		points: []goPoint{at("go1.17.13", 8), at("go1.19.13", 8), at("go1.20.14", 16), at("go1.26.8", 16)},
		want:   []offsets.GoValue{{Go: "<go1.20", Value: v(8)}, {Go: ">=go1.20", Value: v(16)}},
	}, {
		name:   "a run in the middle is bounded on both sides",
		points: []goPoint{at("go1.19.13", 8), at("go1.20.14", 16), at("go1.24.13", 16), at("go1.25.7", 24)},
		want: []offsets.GoValue{{Go: "<go1.20", Value: v(8)}, {Go: ">=go1.20,<go1.25.0", Value: v(16)},
			{Go: ">=go1.25.0", Value: v(24)}},
	}, {
		name:   "lines apart keep the toolchains built as bounds",
		points: []goPoint{at("go1.17.13", 8), at("go1.21.13", 8), at("go1.26.8", 16)},
		want:   []offsets.GoValue{{Go: "<=go1.21.13", Value: v(8)}, {Go: ">=go1.26.8", Value: v(16)}},
	}, {
		name:   "no value where the field is absent",
		points: []goPoint{at("go1.23.12", 0), at("go1.24.13", 8)},
		want:   []offsets.GoValue{{Go: ">=go1.24.0", Value: v(8)}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			values, byGo, err := splitByGo([]offsets.FieldID{id}, tc.points)
			require.NoError(t, err)
			assert.Empty(t, values)
			assert.Equal(t, tc.want, byGo[id])
		})
	}
}

// goLines are the newest releases of the Go lines the bisection tests
// pretend the proxy has, with an older patch release for some.
var goLines = []string{"go1.17.13", "go1.18.10", "go1.19.13", "go1.20", "go1.20.14", "go1.21.0", "go1.21.13",
	"go1.22.0", "go1.22.12", "go1.23.12", "go1.24.13", "go1.25.7", "go1.26.8"}

func TestCompareGoBisectsTheGoLinesBetweenDisagreeingToolchains(t *testing.T) {
	mu := offsets.FieldID{Package: "example.com/lib", Struct: "Conn", Field: "mu"}
	id := offsets.FieldID{Package: "example.com/lib", Struct: "Conn", Field: "id"}
	v := func(off uint64) offsets.Value { return offsets.Value{Offset: off, Size: 8, Type: "int"} }
	type lookup struct {
		goVersion string
		want      uint64 // 0: no value for that release (ErrGoDependent)
	}
	for _, tc := range []struct {
		name string
		// muAt is the offset of Conn.mu a toolchain of the Go line minor
		// lays out; 0 leaves the field out.
		muAt     func(minor int) uint64
		fail     int // line whose build fails, or 0
		built    []string
		bounds   []string
		lookups  []lookup
		warnings string
	}{{
		name: "one change is located with about log2(lines) builds",
		muAt: func(minor int) uint64 { return map[bool]uint64{true: 8, false: 16}[minor <= 21] },
		// [17,26] → 21; [21,26] → 23; [21,23] → 22.
		built:   []string{"go1.21.13", "go1.23.12", "go1.22.12"},
		bounds:  []string{"<go1.22.0", ">=go1.22.0"},
		lookups: []lookup{{"go1.17.5", 8}, {"go1.21.13", 8}, {"go1.22.0", 16}, {"go1.22rc1", 8}, {"go1.26.8", 16}, {"go1.27.0", 16}},
	}, {
		name: "two changes",
		muAt: func(minor int) uint64 {
			switch {
			case minor < 20:
				return 8
			case minor < 25:
				return 16
			}
			return 24
		},
		built:   []string{"go1.21.13", "go1.19.13", "go1.20.14", "go1.23.12", "go1.24.13", "go1.25.7"},
		bounds:  []string{"<go1.20", ">=go1.20,<go1.25.0", ">=go1.25.0"},
		lookups: []lookup{{"go1.19.13", 8}, {"go1.20", 16}, {"go1.20.1", 16}, {"go1.24.13", 16}, {"go1.25.0", 24}, {"go1.26.8", 24}},
	}, {
		name: "a field the newer releases add",
		muAt: func(minor int) uint64 { return map[bool]uint64{true: 0, false: 8}[minor < 24] },
		// [17,26] → 21; [21,26] → 23; [23,26] → 24.
		built:   []string{"go1.21.13", "go1.23.12", "go1.24.13"},
		bounds:  []string{">=go1.24.0"},
		lookups: []lookup{{"go1.23.12", 0}, {"go1.24.0", 8}, {"go1.26.8", 8}},
	}, {
		name: "a failed bisection build keeps the coarser bounds",
		muAt: func(minor int) uint64 { return map[bool]uint64{true: 8, false: 16}[minor <= 21] },
		fail: 23,
		// [17,26] → 21; [21,26] → 23, which fails: the change lies in (21, 26).
		built:    []string{"go1.21.13", "go1.23.12"},
		bounds:   []string{"<=go1.21.13", ">=go1.26.8"},
		lookups:  []lookup{{"go1.17.5", 8}, {"go1.21.13", 8}, {"go1.22.0", 0}, {"go1.26.8", 16}},
		warnings: "example.com/lib@v1.0.0/amd64: Go release of the layout change between go1.21.13 and go1.26.8 not located: go1.23.12: no luck",
	}, {
		name:    "toolchains that agree build nothing in between",
		muAt:    func(int) uint64 { return 8 },
		lookups: []lookup{{"go1.17.5", 8}, {"go1.22.0", 8}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			proxy := moduleProxy(t, map[string]map[string]string{
				// With a requirement, so that no dependency is pinned (the
				// fake builds have no go command to list them).
				"v1.0.0": {"go.mod": "module example.com/lib\n\ngo 1.17\n\nrequire example.com/dep v1.0.0\n", "lib.go": "package lib\n"},
			})
			set, err := fieldset.ParseModule("example.com/lib", strings.NewReader("example.com/lib.Conn.mu\nexample.com/lib.Conn.id\n"))
			require.NoError(t, err)
			out := t.TempDir()
			cfg := Config{Set: set, Arches: []string{"amd64"}, CacheDir: t.TempDir(), OutDir: out, Proxy: proxy, CompareGo: true,
				Local:    &toolchain.Installed{Version: "go1.26.8", GOROOT: "/nonexistent"},
				Fallback: &toolchain.Installed{Version: "go1.17.13", GOROOT: "/nonexistent"}}
			var built []string
			fake := func(_ context.Context, c *candidate, arch string, _ *target, set *fieldset.Set) (map[offsets.FieldID]offsets.Value, error) {
				gv := goversion.MustParse(c.name)
				if c.name != "go1.26.8" && c.name != "go1.17.13" {
					built = append(built, c.name)
				}
				if gv.Minor == tc.fail {
					return nil, errors.New("no luck")
				}
				values := map[offsets.FieldID]offsets.Value{id: v(0)}
				if off := tc.muAt(gv.Minor); off != 0 {
					values[mu] = v(off)
				}
				return values, nil
			}
			rep, err := run(context.Background(), cfg, func(g *generator) {
				g.build = fake
				for _, s := range goLines {
					g.releases = append(g.releases, toolchain.Release{Version: goversion.MustParse(s), Available: true})
				}
			})
			require.NoError(t, err)
			assert.Equal(t, tc.built, built, "the Go lines bisected")
			assert.Equal(t, len(tc.built), rep.BisectBuilds)
			assert.Equal(t, 1, rep.Built)
			if tc.warnings == "" {
				assert.Empty(t, rep.Warnings)
			} else {
				assert.Equal(t, []string{tc.warnings}, rep.Warnings)
			}

			db, err := offsets.OpenDir(out)
			require.NoError(t, err)
			s, err := db.Shard("example.com/lib")
			require.NoError(t, err)
			require.NoError(t, s.Check())
			var bounds []string
			for _, r := range s.Fields[mu.String()]["amd64"] {
				if r.Go != "" {
					bounds = append(bounds, r.Go)
				}
			}
			assert.Equal(t, tc.bounds, bounds)
			for _, l := range tc.lookups {
				r, err := db.Lookup("example.com/lib", "v1.0.0", "amd64", mu, offsets.WithGoVersion(l.goVersion))
				if l.want == 0 {
					assert.ErrorIs(t, err, offsets.ErrGoDependent, l.goVersion)
					continue
				}
				if assert.NoError(t, err, l.goVersion) {
					assert.Equal(t, l.want, r.Offset, l.goVersion)
				}
			}
			r, err := db.Lookup("example.com/lib", "v1.0.0", "amd64", id)
			require.NoError(t, err, "a field every toolchain agrees on needs no Go release")
			assert.Empty(t, r.Provenance.Go)
		})
	}
}

func TestRunWithWorkersWritesTheSameShardAsOneWorker(t *testing.T) {
	gomod := "module example.com/lib\n\ngo 1.21\n"
	proxy := moduleProxy(t, map[string]map[string]string{
		"v1.0.0": {"go.mod": gomod, "lib.go": "package lib\n\ntype Conn struct {\n\tid   uint32\n\tName string\n}\n"},
		"v1.1.0": {"go.mod": gomod, "lib.go": "package lib\n\ntype Conn struct {\n\tflags uint64\n\tid    uint32\n\tName  string\n}\n"},
		"v1.2.0": {"go.mod": gomod, "lib.go": "package lib\n\ntype Conn struct { broken }\n"},
	})
	local, err := toolchain.Local(context.Background())
	require.NoError(t, err)
	set, err := fieldset.ParseModule("example.com/lib", strings.NewReader("example.com/lib.Conn.id\nexample.com/lib.Conn.Name\n"))
	require.NoError(t, err)
	shards := map[int][]byte{} // by workers
	for _, workers := range []int{1, 2} {
		out := t.TempDir()
		var bar bytes.Buffer
		rep, err := Run(context.Background(), Config{
			Set: set, Arches: []string{"amd64"}, CacheDir: t.TempDir(), OutDir: out, Proxy: proxy, Local: local, NoFallback: true,
			// A module cache of each run's own: the failure's words include
			// the go command's downloads.
			ModuleEnv: []string{"GOSUMDB=off", "GOFLAGS=-mod=mod -modcacherw", "GOMODCACHE=" + t.TempDir()},
			// v9.9.9 is not on the proxy.
			Versions: []string{"v1.0.0", "v1.1.0", "v1.2.0", "v9.9.9"}, Workers: workers, Progress: &bar,
		})
		require.NoError(t, err, "workers=%d", workers)
		assert.Equal(t, 2, rep.Built)
		assert.Equal(t, 1, rep.Failed)
		assert.Equal(t, 1, rep.Unavailable)
		assert.Contains(t, strings.Join(rep.Warnings, "\n"), "example.com/lib@v9.9.9: recorded unavailable: ")
		assert.Contains(t, bar.String(), "4/4", "one step per version")
		var costs []string
		for _, c := range rep.Costs {
			assert.Positive(t, c.Build)
			costs = append(costs, c.Version+"/"+c.Arch+"/"+c.Toolchain)
		}
		assert.Equal(t, []string{"v1.0.0/amd64/" + local.Version, "v1.1.0/amd64/" + local.Version, "v1.2.0/amd64/" + local.Version}, costs,
			"one cost per probe, by version")
		data, err := os.ReadFile(filepath.Join(out, offsets.ShardFile("example.com/lib")))
		require.NoError(t, err)
		s, err := offsets.DecodeShard(data)
		require.NoError(t, err)
		for i, c := range s.Coverage["amd64"] {
			if c.Status == offsets.StatusFailed {
				// The compiler names the module cache, another per run.
				assert.Contains(t, c.Reason, "undefined: broken")
				s.Coverage["amd64"][i].Reason = ""
			}
		}
		shards[workers], err = s.Encode()
		require.NoError(t, err)
	}
	assert.Equal(t, string(shards[1]), string(shards[2]))
}

// TestRunRefusesAProbeTheGoCommandUpgraded: a package the field set
// imports that an old version lacks makes the go command pull in the newest
// version instead; that build must not be recorded as the old version's.
func TestRunRefusesAProbeTheGoCommandUpgraded(t *testing.T) {
	gomod := "module example.com/lib\n\ngo 1.21\n"
	proxy := moduleProxy(t, map[string]map[string]string{
		"v1.0.0": {"go.mod": gomod, "lib.go": "package lib\n\ntype Conn struct{ id uint32 }\n"},
		"v1.1.0": {"go.mod": gomod, "lib.go": "package lib\n\ntype Conn struct {\n\tflags uint64\n\tid    uint32\n}\n", "api/api.go": "package api\n\nfunc New() {}\n"},
	})
	local, err := toolchain.Local(context.Background())
	require.NoError(t, err)
	set, err := fieldset.ParseModule("example.com/lib", strings.NewReader("import example.com/lib/api\nkeep api.New\nexample.com/lib.Conn.id\n"))
	require.NoError(t, err)
	out := t.TempDir()
	rep, err := Run(context.Background(), Config{
		Set: set, Arches: []string{"amd64"}, CacheDir: t.TempDir(), OutDir: out, Proxy: proxy, Local: local, NoFallback: true,
		ModuleEnv: []string{"GOSUMDB=off", "GOFLAGS=-mod=mod -modcacherw", "GOMODCACHE=" + t.TempDir()},
	})
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Built, "v1.1.0 has the package")
	assert.Equal(t, 1, rep.Failed, "v1.0.0 built only by linking v1.1.0")

	db, err := offsets.OpenDir(out)
	require.NoError(t, err)
	_, err = db.Lookup("example.com/lib", "v1.0.0", "amd64", offsets.FieldID{Package: "example.com/lib", Struct: "Conn", Field: "id"})
	var verr *offsets.VersionError
	require.ErrorAs(t, err, &verr)
	assert.Contains(t, verr.Reason, "linked example.com/lib@v1.1.0 instead of v1.0.0")
	r, err := db.Lookup("example.com/lib", "v1.1.0", "amd64", offsets.FieldID{Package: "example.com/lib", Struct: "Conn", Field: "id"})
	require.NoError(t, err)
	assert.Equal(t, uint64(8), r.Offset)
}

// TestCompareGoFindsTheGoReleaseThatMovedAField is the Go-release
// dependence the issue names: sync.Map was reimplemented in Go 1.24, so a
// field placed after one moves with the Go release that compiles the
// library. Real toolchains (go1.23.12, go1.24.x, go1.25.x from the proxy,
// the installed one) build a real probe; the test checks the change is
// placed between 1.23 and 1.24 and that lookups give each Go release the
// offset its own build has.
func TestCompareGoFindsTheGoReleaseThatMovedAField(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: fetches three Go toolchains from the module proxy")
	}
	local, err := toolchain.Local(context.Background())
	require.NoError(t, err)
	if lv, err := goversion.Parse(local.Version); err != nil || lv.Minor < 25 {
		t.Skipf("SKIPPED: the installed toolchain %s is older than go1.25, so there is no Go line to bisect after go1.24", local.Version)
	}
	gomod := "module example.com/lib\n\ngo 1.23\n"
	proxy := moduleProxy(t, map[string]map[string]string{
		"v1.0.0": {"go.mod": gomod, "lib.go": "package lib\n\nimport \"sync\"\n\ntype Cache struct {\n\tm    sync.Map\n\thits uint64\n}\n"},
	})
	cacheDir, err := os.UserCacheDir()
	require.NoError(t, err)
	cacheDir = filepath.Join(cacheDir, "offsetdb-test")
	proxy.ConfigDir = filepath.Join(cacheDir, "sumdb")
	set, err := fieldset.ParseModule("example.com/lib", strings.NewReader("example.com/lib.Cache.hits\n"))
	require.NoError(t, err)
	out := t.TempDir()
	rep, err := Run(context.Background(), Config{Set: set, Arches: []string{"amd64"}, CacheDir: cacheDir, OutDir: out, Proxy: proxy,
		Local: local, CompareGo: true, ModuleEnv: []string{"GOSUMDB=off", "GOFLAGS=-mod=mod -modcacherw", "GOMODCACHE=" + t.TempDir()}})
	if errors.Is(err, toolchain.ErrUnreachable) {
		t.Skipf("SKIPPED: the Go module proxy is unreachable: %v", err)
	}
	require.NoError(t, err)
	require.Equal(t, 1, rep.Built, "warnings: %v", rep.Warnings)
	assert.Equal(t, 1, rep.GoDependent, "warnings: %v", rep.Warnings)
	assert.Positive(t, rep.BisectBuilds, "the lines between go1.23 and the installed one were bisected")

	// Each Go release's own build is the reference: build the probe with
	// go1.23.12 and with the installed toolchain, and compare lookups.
	db, err := offsets.OpenDir(out)
	require.NoError(t, err)
	s, err := db.Shard("example.com/lib")
	require.NoError(t, err)
	id := set.Fields[0]
	before, err := s.Lookup("v1.0.0", "amd64", id, offsets.WithGoVersion("go1.23.12"))
	require.NoError(t, err)
	atChange, err := s.Lookup("v1.0.0", "amd64", id, offsets.WithGoVersion("go1.24.0"))
	require.NoError(t, err)
	after, err := s.Lookup("v1.0.0", "amd64", id, offsets.WithGoVersion(local.Version))
	require.NoError(t, err)
	assert.NotEqual(t, before.Offset, after.Offset, "sync.Map changed size in Go 1.24")
	assert.Equal(t, after.Offset, atChange.Offset, "the change is placed at go1.24.0")
	_, err = s.Lookup("v1.0.0", "amd64", id)
	assert.ErrorIs(t, err, offsets.ErrGoDependent, "without the target's Go release there is no answer")
	t.Logf("Cache.hits: offset %d up to go1.23, %d from go1.24.0 (%s); %d bisection builds", before.Offset, after.Offset, atChange.Provenance.Go, rep.BisectBuilds)

	old := filepath.Join(cacheDir, "toolchains", "go1.23.12")
	for _, c := range []struct {
		goroot, name string
		want         uint64
	}{{old, "go1.23.12", before.Offset}, {local.GOROOT, local.Version, after.Offset}} {
		bin, err := probe.Build{GOROOT: c.goroot, Arch: "amd64", Dir: t.TempDir(), GOCACHE: filepath.Join(cacheDir, "gocache-"+c.name),
			Require: []probe.Requirement{{Path: "example.com/lib", Version: "v1.0.0"}}, GoVersion: "1.23",
			ModuleEnv: []string{"GOPROXY=" + proxy.URL, "GOSUMDB=off", "GOFLAGS=-mod=mod -modcacherw", "GOMODCACHE=" + t.TempDir()}}.Run(context.Background(), set)
		require.NoError(t, err, c.name)
		values, err := probe.Read(bin, set.Fields)
		require.NoError(t, err)
		assert.Equal(t, c.want, values[id].Offset, "%s's own build", c.name)
	}
}
