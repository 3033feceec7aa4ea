package generate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb"
	"github.com/offsetdb/offsetdb/fieldset"
	"github.com/offsetdb/offsetdb/goversion"
	"github.com/offsetdb/offsetdb/offsetgen/toolchain"
	"github.com/offsetdb/offsetdb/offsets"
)

// testCache is shared between runs of the test binary so that the real
// toolchain is downloaded once per machine, not once per test.
func testCache(t *testing.T) string {
	dir, err := os.UserCacheDir()
	require.NoError(t, err)
	dir = filepath.Join(dir, "offsetdb-test")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

// newestCommitted returns the newest Go release the committed database
// built for amd64: the test rebuilds it and must get the same values.
func newestCommitted(t *testing.T) (*offsets.Shard, goversion.Version) {
	db, err := offsets.Open(offsetdb.Data())
	require.NoError(t, err)
	s, err := db.Shard(offsets.StdModule)
	require.NoError(t, err, "the committed database has no std shard: run make offsets")
	covs := s.Coverage["amd64"]
	for i := len(covs) - 1; i >= 0; i-- {
		if covs[i].Status == offsets.StatusOK {
			return s, goversion.MustParse(covs[i].Version)
		}
	}
	t.Fatal("committed std shard has no ok amd64 build")
	return nil, goversion.Version{}
}

func skipIfProxyUnreachable(t *testing.T, err error) {
	if errors.Is(err, toolchain.ErrUnreachable) {
		t.Skipf("SKIPPED: the Go module proxy is unreachable, so the end-to-end rebuild cannot run: %v", err)
	}
}

// TestRebuildMatchesCommittedDatabase downloads a real toolchain from the
// module proxy, builds the real probe, reads its DWARF and compares every
// value with the committed data/. It also checks that a second run is a
// no-op and that output bytes are reproducible.
func TestRebuildMatchesCommittedDatabase(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: downloads a ~70 MB toolchain and builds a probe")
	}
	committed, v := newestCommitted(t)
	set, err := fieldset.Load(offsets.StdModule)
	require.NoError(t, err)
	out := t.TempDir()
	cache := testCache(t)
	cfg := Config{
		Set: set, Arches: []string{"amd64"}, Versions: []goversion.Version{v}, Workers: 1,
		CacheDir: cache, OutDir: out, KeepToolchains: true,
		Proxy: &toolchain.Proxy{URL: toolchain.ProxyURLFromEnv(), ConfigDir: filepath.Join(cache, "sumdb")},
	}
	rep, err := Run(context.Background(), cfg)
	skipIfProxyUnreachable(t, err)
	require.NoError(t, err)
	require.Equal(t, 1, rep.Built, "one probe built")
	require.Len(t, rep.Costs, 1)
	t.Logf("%s: download %s, verify %s, unpack %s, build %s, extract %s", v, rep.Costs[0].Download, rep.Costs[0].Verify,
		rep.Costs[0].Unpack, rep.Costs[0].Build["amd64"], rep.Costs[0].Extract["amd64"])

	db, err := offsets.OpenDir(out)
	require.NoError(t, err)
	fresh, err := db.Shard(offsets.StdModule)
	require.NoError(t, err)
	assert.Equal(t, committed.FieldSet, fresh.FieldSet, "field set changed since data/ was generated: run make offsets")
	found := 0
	for _, id := range set.Fields {
		want, werr := committed.Lookup(v.String(), "amd64", id)
		got, gerr := fresh.Lookup(v.String(), "amd64", id)
		if errors.Is(werr, offsets.ErrFieldAbsent) {
			assert.ErrorIs(t, gerr, offsets.ErrFieldAbsent, "%s absent in data/ but found by rebuild", id)
			continue
		}
		require.NoError(t, werr, id.String())
		require.NoError(t, gerr, id.String())
		assert.Equal(t, want.Value, got.Value, "%s at %s", id, v)
		found++
	}
	assert.Greater(t, found, len(set.Fields)/2, "most fields exist in the newest release")

	// A second run over the same inputs builds nothing and changes no byte.
	before, err := os.ReadFile(filepath.Join(out, "std.json"))
	require.NoError(t, err)
	start := time.Now()
	rep, err = Run(context.Background(), cfg)
	require.NoError(t, err)
	assert.Equal(t, 0, rep.Built)
	assert.Equal(t, 1, rep.UpToDate)
	t.Logf("no-op regeneration: %s", time.Since(start))
	after, err := os.ReadFile(filepath.Join(out, "std.json"))
	require.NoError(t, err)
	assert.Equal(t, before, after)
	require.NoError(t, offsets.Verify(os.DirFS(out)))
}

// TestFailedBuildIsRecordedWithReason gives the probe an expression that
// does not compile: the version is recorded as failed with the compiler's
// words, not dropped and not fatal.
func TestFailedBuildIsRecordedWithReason(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: needs a real toolchain")
	}
	_, v := newestCommitted(t)
	set, err := fieldset.Parse(strings.NewReader("keep http.NoSuchFunction\nnet/http.Request.Method\n"))
	require.NoError(t, err)
	set.Module = offsets.StdModule
	out := t.TempDir()
	cache := testCache(t)
	rep, err := Run(context.Background(), Config{
		Set: set, Arches: []string{"amd64"}, Versions: []goversion.Version{v}, Workers: 1,
		CacheDir: cache, OutDir: out, KeepToolchains: true,
		Proxy: &toolchain.Proxy{URL: toolchain.ProxyURLFromEnv(), ConfigDir: filepath.Join(cache, "sumdb")},
	})
	skipIfProxyUnreachable(t, err)
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Failed)
	db, err := offsets.OpenDir(out)
	require.NoError(t, err)
	_, err = db.Lookup(offsets.StdModule, v.String(), "amd64", offsets.FieldID{Package: "net/http", Struct: "Request", Field: "Method"})
	var verr *offsets.VersionError
	require.ErrorAs(t, err, &verr)
	assert.Equal(t, offsets.StatusFailed, verr.Status)
	assert.Contains(t, verr.Reason, "NoSuchFunction")
}
