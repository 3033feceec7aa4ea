package modgen

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/fieldset"
	"github.com/offsetdb/offsetdb/offsetgen/toolchain"
	"github.com/offsetdb/offsetdb/offsets"
)

func TestNewestAtPicksWhatGoGetWouldHavePickedThen(t *testing.T) {
	dep := func(v, date string) servedVersion {
		return servedVersion{path: "example.com/dep", version: v, time: date, files: map[string]string{"dep.go": "package dep\n"}}
	}
	proxy := modulesProxy(t, []servedVersion{
		// A pseudo-version's date is its own; its .info says otherwise,
		// and is not asked for.
		dep("v0.0.0-20190601000000-abcdefabcdef", "2030-01-01"),
		dep("v1.0.0", "2020-01-01"),
		dep("v1.1.0", "2021-01-01"),
		dep("v1.0.1", "2022-02-01"), // a patch of an older line, published later
		dep("v1.2.0-rc.1", "2022-06-01"),
		dep("v1.2.0", "2023-01-01"),
	})
	dates := newVersionDates(proxy)
	for _, tc := range []struct {
		name, at, want string
	}{
		{name: "nothing published yet", at: "2019-01-01", want: ""},
		{name: "a pseudo-version when no release was", at: "2019-12-31", want: "v0.0.0-20190601000000-abcdefabcdef"},
		{name: "a release on its day", at: "2020-01-01", want: "v1.0.0"},
		{name: "the highest release, not the latest published", at: "2022-03-01", want: "v1.1.0"},
		{name: "a release rather than a newer pre-release", at: "2022-07-01", want: "v1.1.0"},
		{name: "the newest", at: "2025-01-01", want: "v1.2.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at, err := time.Parse(time.DateOnly, tc.at)
			require.NoError(t, err)
			got, err := dates.newestAt(context.Background(), "example.com/dep", at)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
	got, err := dates.newestAt(context.Background(), "example.com/unknown", time.Now())
	require.NoError(t, err)
	assert.Empty(t, got, "a module the proxy does not know has no version")
}

// TestRunPinsTheDependenciesOfAVersionWithoutRequirementsToItsDate builds
// versions of example.com/lib whose Conn holds a dep.Stats by value, so
// the offset of Conn.id says which dep version was linked: 8 for v1.0.0,
// 16 for v1.1.0 with dep2 v1.0.0 (24 with dep2 v1.1.0), 32 for v1.2.0.
func TestRunPinsTheDependenciesOfAVersionWithoutRequirementsToItsDate(t *testing.T) {
	conn := "package lib\n\nimport \"example.com/dep\"\n\ntype Conn struct {\n\tstats dep.Stats\n\tid    uint32\n}\n"
	proxy := modulesProxy(t, []servedVersion{
		{path: "example.com/dep", version: "v1.0.0", time: "2020-01-01", files: map[string]string{
			"go.mod": "module example.com/dep\n", "dep.go": "package dep\n\ntype Stats struct{ A uint64 }\n"}},
		// Without a go.mod, and with a dependency of its own, which
		// the second round of pinning pins.
		{path: "example.com/dep", version: "v1.1.0", time: "2021-01-01", files: map[string]string{
			"dep.go": "package dep\n\nimport \"example.com/dep2\"\n\ntype Stats struct {\n\tA  uint64\n\tIn dep2.Inner\n}\n"}},
		{path: "example.com/dep", version: "v1.2.0", time: "2023-01-01", files: map[string]string{
			"go.mod": "module example.com/dep\n", "dep.go": "package dep\n\ntype Stats struct{ A, B, C, D uint64 }\n"}},
		{path: "example.com/dep2", version: "v1.0.0", time: "2020-06-01", files: map[string]string{
			"dep2.go": "package dep2\n\ntype Inner struct{ X uint64 }\n"}},
		{path: "example.com/dep2", version: "v1.1.0", time: "2022-01-01", files: map[string]string{
			"dep2.go": "package dep2\n\ntype Inner struct{ X, Y uint64 }\n"}},
		// Older than every dep version: the go command's choice stays.
		{path: "example.com/lib", version: "v0.8.0", time: "2019-01-01", files: map[string]string{"lib.go": conn}},
		{path: "example.com/lib", version: "v1.0.0", time: "2021-06-01", files: map[string]string{"lib.go": conn}},
		// Uses what only the newest dep has: built with the go command's
		// choice after the pinned build fails.
		{path: "example.com/lib", version: "v1.0.1", time: "2021-06-01", files: map[string]string{
			"lib.go": conn + "\nvar _ = dep.Stats{}.D\n"}},
		// Requirements of its own, which stand.
		{path: "example.com/lib", version: "v1.1.0", time: "2021-06-01", files: map[string]string{
			"go.mod": "module example.com/lib\n\ngo 1.12\n\nrequire example.com/dep v1.0.0\n", "lib.go": conn}},
	})
	local, err := toolchain.Local(context.Background())
	require.NoError(t, err)
	set, err := fieldset.ParseModule("example.com/lib", strings.NewReader("example.com/lib.Conn.id\n"))
	require.NoError(t, err)
	out := t.TempDir()
	rep, err := Run(context.Background(), Config{
		Set: set, Arches: []string{"amd64"}, CacheDir: t.TempDir(), OutDir: out, Proxy: proxy, Local: local, NoFallback: true,
		ModuleEnv: []string{"GOSUMDB=off", "GOFLAGS=-mod=mod -modcacherw", "GOMODCACHE=" + t.TempDir()},
	})
	require.NoError(t, err)
	assert.Equal(t, 4, rep.Built, "warnings: %v", rep.Warnings)
	assert.Equal(t, 1, rep.Pinned, "v1.0.0; v0.8.0's only dependency has no version that old, v1.0.1 does not build with it")
	require.Len(t, rep.Warnings, 2)
	assert.Equal(t, "example.com/lib@v0.8.0: example.com/dep has no version on the proxy published by 2019-01-01, the version's date: "+
		"built with example.com/dep@v1.2.0, the go command's choice", rep.Warnings[0])
	assert.Contains(t, rep.Warnings[1], "example.com/lib@v1.0.1/amd64: does not build with dependencies of the version's date, built with their newest versions: ")
	assert.Contains(t, rep.Warnings[1], "dep.Stats{}.D undefined")

	db, err := offsets.OpenDir(out)
	require.NoError(t, err)
	for _, tc := range []struct {
		version string
		want    uint64
		why     string
	}{
		{"v0.8.0", 32, "dep v1.2.0, the newest"},
		{"v1.0.0", 16, "dep v1.1.0 and dep2 v1.0.0, the newest in June 2021"},
		{"v1.0.1", 32, "dep v1.2.0, the go command's choice"},
		{"v1.1.0", 8, "dep v1.0.0, as its go.mod requires"},
	} {
		r, err := db.Lookup("example.com/lib", tc.version, "amd64", set.Fields[0])
		require.NoError(t, err, tc.version)
		assert.Equal(t, tc.want, r.Offset, "%s: %s", tc.version, tc.why)
	}
}
