package modgen

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	offsetdb "github.com/offsetdb/offsetdb"
	"github.com/offsetdb/offsetdb/fieldset"
	"github.com/offsetdb/offsetdb/goversion"
	"github.com/offsetdb/offsetdb/offsetgen/toolchain"
	"github.com/offsetdb/offsetdb/offsets"
)

// TestRebuildMatchesCommittedModuleShards rebuilds, for every module shard
// in the committed database, its newest version for amd64 with the
// toolchain recorded for it (the installed one, or fetched from the proxy)
// and compares every field with data/: the committed values are what the
// generator produces, not something typed in.
func TestRebuildMatchesCommittedModuleShards(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: builds one real probe per committed module shard")
	}
	db, err := offsets.Open(offsetdb.Data())
	require.NoError(t, err)
	local, err := toolchain.Local(context.Background())
	require.NoError(t, err)
	cacheDir, err := os.UserCacheDir()
	require.NoError(t, err)
	cacheDir = filepath.Join(cacheDir, "offsetdb-test")
	proxy := &toolchain.Proxy{URL: toolchain.ProxyURLFromEnv(), ConfigDir: filepath.Join(cacheDir, "sumdb")}

	modules := 0
	for _, mod := range db.Modules() {
		if offsets.IsStd(mod) {
			continue // std and its GOEXPERIMENT shards: package generate
		}
		modules++
		t.Run(mod, func(t *testing.T) {
			committed, err := db.Shard(mod)
			require.NoError(t, err)
			var cov offsets.Coverage
			for _, c := range committed.Coverage["amd64"] {
				if c.Status == offsets.StatusOK {
					cov = c // the newest ok version: coverage is oldest first
				}
			}
			require.NotEmpty(t, cov.Version, "%s: no ok amd64 build committed", mod)
			set, err := fieldset.Load(mod)
			require.NoError(t, err)

			tc := local
			if cov.Toolchain != local.Version {
				v, err := goversion.Parse(cov.Toolchain)
				require.NoError(t, err)
				goroot, _, err := (&toolchain.Cache{Dir: filepath.Join(cacheDir, "toolchains"), Proxy: proxy}).Toolchain(context.Background(), v)
				if errors.Is(err, toolchain.ErrUnreachable) {
					t.Skipf("SKIPPED: the Go module proxy is unreachable: %v", err)
				}
				require.NoError(t, err)
				tc = &toolchain.Installed{GOROOT: goroot, Version: cov.Toolchain, GOCACHE: filepath.Join(cacheDir, "gocache-"+cov.Toolchain), ModuleEnv: local.ModuleEnv}
			}
			out := t.TempDir()
			rep, err := Run(context.Background(), Config{
				Set: set, Arches: []string{"amd64"}, Versions: []string{cov.Version}, NoFallback: true,
				CacheDir: cacheDir, OutDir: out, Proxy: proxy, Local: tc,
			})
			if errors.Is(err, toolchain.ErrUnreachable) {
				t.Skipf("SKIPPED: the Go module proxy is unreachable: %v", err)
			}
			require.NoError(t, err)
			require.Equal(t, 1, rep.Built, "%s@%s built with %s: %v", mod, cov.Version, tc.Version, rep.Warnings)

			fresh, err := offsets.OpenDir(out)
			require.NoError(t, err)
			fs, err := fresh.Shard(mod)
			require.NoError(t, err)
			assert.Equal(t, committed.FieldSet, fs.FieldSet, "field set of %s changed since data/ was generated: regenerate its shard", mod)
			found := 0
			for _, id := range set.At(cov.Version).Fields {
				want, werr := committed.Lookup(cov.Version, "amd64", id, offsets.WithGoVersion(tc.Version))
				got, gerr := fs.Lookup(cov.Version, "amd64", id)
				if errors.Is(werr, offsets.ErrFieldAbsent) {
					assert.ErrorIs(t, gerr, offsets.ErrFieldAbsent, "%s absent in data/ but found by the rebuild", id)
					continue
				}
				require.NoError(t, werr, id.String())
				require.NoError(t, gerr, id.String())
				assert.Equal(t, want.Value, got.Value, "%s@%s %s", mod, cov.Version, id)
				found++
			}
			assert.Positive(t, found, "%s@%s: no field found", mod, cov.Version)
			t.Logf("%s@%s: %d fields equal to data/ (built with %s)", mod, cov.Version, found, tc.Version)
		})
	}
	assert.Positive(t, modules, "the committed database has no module shards: run make offsets")
}
