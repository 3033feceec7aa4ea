package main

import (
	"context"
	"encoding/json"
	"fmt"
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
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// variant is how buildVariant builds a test program beyond the plain
// build of buildProgram.
type variant struct {
	// GOEXPERIMENT is passed to the build ("" for the default build).
	goexperiment string
	// cgo builds with CGO_ENABLED=1 and the host's gcc (boringcrypto
	// needs it).
	cgo bool
	// ldflags are the linker flags ("-s -w" strips).
	ldflags string
}

// buildVariant builds testdata/NAME with the Go release v (fetched from the
// module proxy, cached between runs) as va says, into a temporary
// directory as NAME, and returns its path.
func buildVariant(t *testing.T, name string, v goversion.Version, va variant) string {
	cacheDir, err := os.UserCacheDir()
	require.NoError(t, err)
	cacheDir = filepath.Join(cacheDir, "offsetdb-test")
	cache := &toolchain.Cache{Dir: filepath.Join(cacheDir, "toolchains"),
		Proxy: &toolchain.Proxy{URL: toolchain.ProxyURLFromEnv(), ConfigDir: filepath.Join(cacheDir, "sumdb")}}
	goroot, _, err := cache.Toolchain(context.Background(), v)
	if err != nil && strings.Contains(err.Error(), "unreachable") {
		t.Skipf("SKIPPED: module proxy unreachable, cannot fetch %s: %v", v, err)
	}
	require.NoError(t, err)
	src := t.TempDir()
	files, err := filepath.Glob(filepath.Join("testdata", name, "*.go"))
	require.NoError(t, err)
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(src, filepath.Base(f)), data, 0o644))
	}
	gomod := fmt.Sprintf("module example.com/%s\n\ngo %d.%d\n", name, v.Major, v.Minor)
	require.NoError(t, os.WriteFile(filepath.Join(src, "go.mod"), []byte(gomod), 0o644))
	out := t.TempDir()
	bin := filepath.Join(out, name)
	cgo := "0"
	if va.cgo {
		cgo = "1"
	}
	cmd := exec.Command(filepath.Join(goroot, "bin", "go"), "build", "-ldflags="+va.ldflags, "-o", bin, ".")
	cmd.Dir = src
	// Each experiment set gets a build cache of its own: the go command
	// keys its cache by the experiments anyway, this only keeps the
	// plain builds' cache small.
	gocache := filepath.Join(cacheDir, "gocache-"+v.String())
	if va.goexperiment != "" {
		gocache += "-" + va.goexperiment
	}
	cmd.Env = []string{"PATH=" + filepath.Join(goroot, "bin") + ":/usr/bin:/bin", "HOME=" + out, "GOROOT=" + goroot,
		"GOPATH=" + filepath.Join(out, "gopath"), "GOCACHE=" + gocache,
		"GOFLAGS=", "GOTOOLCHAIN=local", "GO111MODULE=on", "GOPROXY=off", "CGO_ENABLED=" + cgo, "GOENV=off",
		"GOEXPERIMENT=" + va.goexperiment}
	msg, err := cmd.CombinedOutput()
	require.NoError(t, err, "build %s with %s (%+v): %s", name, v, va, msg)
	return bin
}

// inspectBinary runs `tracer inspect --json` on bin.
func inspectBinary(t *testing.T, bin string, flags ...string) inspection {
	out, err := exec.Command(tracerBinary(t), append(append([]string{"inspect", "--json"}, flags...), bin)...).Output()
	require.NoError(t, err)
	var in inspection
	require.NoError(t, json.Unmarshal(out, &in))
	return in
}

// traceAndCheck runs bin under the tracer with flags, sends the standard
// requests and checks the spans, as TestTraceHTTPAcrossGoReleases does.
func traceAndCheck(t *testing.T, bin string, v goversion.Version, flags ...string) {
	r := startTraced(t, bin, flags...)
	r.exercise(t)
	want := 3*itemRequests + 1
	r.recv.WaitForSpans(t, want, eventTimeout)
	r.stop(t)
	got := r.recv.Spans()
	require.Len(t, got, want, "exactly one span per request; tracer stderr:\n%s", r.stderr)
	checkSpans(t, got, v, r.addr)
	assert.Contains(t, r.stderr.String(), "dropped=0")
}

// requireFromDatabase asserts that every net/http field the tracer reads
// for bin is resolved from the database (provenance prefix want), not from
// DWARF (a stripped binary has none).
func requireFromDatabase(t *testing.T, in inspection, want string) {
	n := 0
	for _, ii := range in.Instrumentations {
		if ii.NotUsed || !strings.HasPrefix(ii.Name, "net/http") {
			continue
		}
		require.True(t, ii.Enabled, "%s: %s", ii.Name, ii.Reason)
		for _, f := range ii.Fields {
			id, err := offsets.ParseFieldID(f.Field)
			if f.Status == "absent" || (err == nil && fieldset.IsPending(offsets.StdModule, id)) {
				continue
			}
			assert.True(t, strings.HasPrefix(f.Provenance, want), "%s: %s %s", f.Field, f.Status, f.Provenance)
			n++
		}
	}
	require.NotZero(t, n, "net/http fields checked")
}

// TestTraceBoringCryptoForkVersion: binaries of the old BoringCrypto fork
// report versions such as go1.17.13b7. A stripped go1.17.13 build that
// reports go1.17.13b7 (set with -X runtime.buildVersion, where the fork's
// linker put it; the fork's toolchains are not on the module proxy) is
// looked up as go1.17.13 and traced with offsets from the database.
func TestTraceBoringCryptoForkVersion(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: downloads a toolchain")
	}
	v := goversion.MustParse("go1.17.13")
	bin := buildVariant(t, "service", v, variant{ldflags: "-s -w -X runtime.buildVersion=go1.17.13b7"})
	in := inspectBinary(t, bin)
	require.Equal(t, "go1.17.13b7", in.GoVersion)
	assert.True(t, in.Stripped)
	assert.Empty(t, in.Experiments)
	requireFromDatabase(t, in, "database std go1.1")
	traceAndCheck(t, bin, v)
}
