package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
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

// embeddedData is the committed database, opened once per test binary.
var embeddedData = sync.OnceValues(func() (*offsets.DB, error) { return offsets.OpenDir("../data") })

// requireFromDatabase asserts that every net/http field the tracer reads
// for bin is resolved from the database (provenance prefix want), not from
// DWARF (a stripped binary has none). Fields the embedded shard does not
// track are the exception: a GOEXPERIMENT shard keeps the field set it was
// generated with until `make offsets-experiments` runs again (after a
// field is added to fieldset/std.fields), and the tracer must then say
// they are unresolved, or take them from a database of the same set
// (--offsets-dir), never from the default build.
func requireFromDatabase(t *testing.T, in inspection, want string) {
	module := strings.Fields(strings.TrimPrefix(want, "database "))[0]
	db, err := embeddedData()
	require.NoError(t, err)
	shard, err := db.Shard(module)
	require.NoError(t, err, "shard %s", module)
	table, err := shard.Expand()
	require.NoError(t, err)
	tracked := map[string]bool{}
	for _, id := range table.Fields {
		tracked[id.String()] = true
	}
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
			if !tracked[f.Field] && f.Status != "resolved" {
				// Not tracked by the embedded shard: unresolved, unless a
				// database of the same set (--offsets-dir) has it; never
				// taken from another shard (checked below).
				assert.Equal(t, "unresolved", f.Status, "%s: not tracked by shard %s: %s", f.Field, module, f.Provenance)
				continue
			}
			assert.True(t, strings.HasPrefix(f.Provenance, want), "%s: %s %s", f.Field, f.Status, f.Provenance)
			n++
		}
	}
	require.NotZero(t, n, "net/http fields checked")
}

// TestTraceBoringCryptoForkVersion: binaries of the old BoringCrypto fork
// report versions such as go1.16.15b7. Stripped go1.16.15 (stack-based
// calling convention) and go1.17.13 builds that report go1.16.15b7 and
// go1.17.13b7 (set with -X runtime.buildVersion, where the fork's linker
// put it; the fork's toolchains are not on the module proxy) are looked up
// as go1.16.15 and go1.17.13 and traced with offsets from the database.
func TestTraceBoringCryptoForkVersion(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: downloads two toolchains")
	}
	for _, vs := range []string{"go1.16.15", "go1.17.13"} {
		t.Run(vs, func(t *testing.T) {
			v := goversion.MustParse(vs)
			bin := buildVariant(t, "service", v, variant{ldflags: "-s -w -X runtime.buildVersion=" + vs + "b7"})
			in := inspectBinary(t, bin)
			require.Equal(t, vs+"b7", in.GoVersion)
			assert.True(t, in.Stripped)
			assert.Empty(t, in.Experiments)
			requireFromDatabase(t, in, "database std go1.1")
			traceAndCheck(t, bin, v)
		})
	}
}

// experimentReleases are the two recent Go releases the GOEXPERIMENT tests
// build with; data/ holds the experiment shards of both (generated by
// offsetgen generate --goexperiment, see README "GOEXPERIMENT builds").
var experimentReleases = []string{"go1.26.11", "go1.27.4"}

// TestTraceStrippedExperimentBuildsFromDatabase: stripped builds with
// GOEXPERIMENT=boringcrypto (cgo, BoringSSL linked: a FIPS build) and
// GOEXPERIMENT=nogreenteagc (the garbage collector before Green Tea) of two
// recent releases have no DWARF; every field comes from the database's
// shard of exactly that experiment set, and the spans are the same as for a
// default build.
func TestTraceStrippedExperimentBuildsFromDatabase(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: downloads two toolchains and builds with experiments")
	}
	for _, vs := range experimentReleases {
		v := goversion.MustParse(vs)
		for _, va := range []variant{
			{goexperiment: "boringcrypto", cgo: true, ldflags: "-s -w"},
			{goexperiment: "nogreenteagc", ldflags: "-s -w"},
		} {
			t.Run(vs+"/"+va.goexperiment, func(t *testing.T) {
				bin := buildVariant(t, "service", v, va)
				in := inspectBinary(t, bin)
				require.Equal(t, []string{va.goexperiment}, in.Experiments, "gobinary reads the experiment set of %s", in.GoVersion)
				require.True(t, in.Stripped)
				require.False(t, in.DWARF)
				assert.Equal(t, va.cgo, in.CGO)
				requireFromDatabase(t, in, "database std+"+va.goexperiment+" ")
				traceAndCheck(t, bin, v)
			})
		}
	}
}

// TestExperimentHintNamesACommandThatWorks: a stripped boringcrypto build
// with no database (--no-embedded-offsets) is not traced, and the tracer
// names the offsetgen command to run; running exactly that command (DIR
// filled in) builds a database with which the same binary is traced.
func TestExperimentHintNamesACommandThatWorks(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: downloads a toolchain and builds a boringcrypto probe")
	}
	v := goversion.MustParse(experimentReleases[len(experimentReleases)-1])
	bin := buildVariant(t, "service", v, variant{goexperiment: "boringcrypto", cgo: true, ldflags: "-s -w"})
	r := startTraced(t, bin, "--no-embedded-offsets")
	assert.Equal(t, http.StatusOK, r.get(t, "/items/1"), "the program still serves")
	r.stopExpecting(t, exitNothingTraced)
	stderr := r.stderr.String()
	assert.Contains(t, stderr, "net/http server disabled")
	hint := regexp.MustCompile("offsetgen generate [^`;\"]*--out DIR").FindString(stderr)
	require.NotEmpty(t, hint, "the tracer names an offsetgen command:\n%s", stderr)
	assert.Equal(t, "offsetgen generate --goexperiment boringcrypto --versions "+strings.TrimPrefix(v.String(), "go")+" --arch amd64 --out DIR", hint)

	dir := t.TempDir()
	args := strings.Fields(strings.TrimPrefix(hint, "offsetgen "))
	args[len(args)-1] = dir
	cacheDir, err := os.UserCacheDir()
	require.NoError(t, err)
	args = append(args, "--cache", filepath.Join(cacheDir, "offsetdb-test"), "--keep-toolchains")
	cmd := exec.Command("go", append([]string{"run", "../offsetgen"}, args...)...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "offsetgen %s:\n%s", strings.Join(args, " "), out)
	assert.Contains(t, string(out), "std+boringcrypto: 1 releases listed, 1 probes built")

	in := inspectBinary(t, bin, "--no-embedded-offsets", "--offsets-dir", dir)
	requireFromDatabase(t, in, "database std+boringcrypto ")
	traceAndCheck(t, bin, v, "--no-embedded-offsets", "--offsets-dir", dir)
}
