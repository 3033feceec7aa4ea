package generate

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/fieldset"
	"github.com/offsetdb/offsetdb/goversion"
	"github.com/offsetdb/offsetdb/offsetgen/toolchain"
	"github.com/offsetdb/offsetdb/offsets"
)

// TestExperimentsDifferReadsTheProbesBuildInfo: a probe counts as an
// experiment build only when its build information records exactly the
// experiments asked for (built here with the installed toolchain).
func TestExperimentsDifferReadsTheProbesBuildInfo(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: builds the standard library with an experiment")
	}
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nimport \"net/http\"\n\nfunc main() { _ = http.ListenAndServe(\"\", nil) }\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/p\n\ngo 1.22\n"), 0o644))
	build := func(exp string) string {
		out := filepath.Join(dir, "bin-"+exp)
		cmd := exec.Command("go", "build", "-ldflags=-s -w", "-o", out, ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOEXPERIMENT="+exp)
		msg, err := cmd.CombinedOutput()
		if strings.Contains(string(msg), "unknown GOEXPERIMENT") {
			t.Skipf("SKIPPED: the installed Go has no experiment %s", exp)
		}
		require.NoError(t, err, "%s", msg)
		return out
	}
	jsonv2 := build("jsonv2")
	assert.Empty(t, experimentsDiffer(jsonv2, []string{"jsonv2"}))
	assert.Contains(t, experimentsDiffer(jsonv2, []string{"boringcrypto"}), "records experiments jsonv2")
	plain := build("")
	assert.Contains(t, experimentsDiffer(plain, []string{"jsonv2"}), "records experiments none")
}

// TestUnknownExperimentIsRecordedFailed: a release without the experiment
// asked for is recorded failed in the experiment's shard, with the go
// command's words, and std's shard is not written.
func TestUnknownExperimentIsRecordedFailed(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: needs a real toolchain")
	}
	_, v := newestCommitted(t)
	set, err := fieldset.Load(offsets.StdModule)
	require.NoError(t, err)
	out := t.TempDir()
	cache := testCache(t)
	cfg := Config{
		Set: set, Arches: []string{"amd64"}, Versions: []goversion.Version{v}, Workers: 1,
		CacheDir: cache, OutDir: out, KeepToolchains: true, Experiments: []string{"Bogus"},
		Proxy: &toolchain.Proxy{URL: toolchain.ProxyURLFromEnv(), ConfigDir: filepath.Join(cache, "sumdb")},
	}
	assert.Equal(t, "std+bogus", cfg.ModuleName())
	rep, err := Run(context.Background(), cfg)
	skipIfProxyUnreachable(t, err)
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Failed)
	db, err := offsets.OpenDir(out)
	require.NoError(t, err)
	assert.Equal(t, []string{"std+bogus"}, db.Modules())
	_, err = db.Lookup("std+bogus", v.String(), "amd64", set.Fields[0])
	var verr *offsets.VersionError
	require.ErrorAs(t, err, &verr)
	assert.Equal(t, offsets.StatusFailed, verr.Status)
	assert.Contains(t, verr.Reason, "unknown GOEXPERIMENT bogus")
	require.NoError(t, offsets.Verify(os.DirFS(out)))
}
