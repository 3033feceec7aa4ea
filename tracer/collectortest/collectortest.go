// Package collectortest runs a real OpenTelemetry Collector on the loopback
// interface for end-to-end tests: the tracer (or any OTLP exporter) sends
// its spans to the collector, which forwards every trace over OTLP/HTTP to a
// receiver the test reads, usually an [otlptest.Receiver]:
//
//	rcv := otlptest.NewHTTP(t)
//	col := collectortest.Start(t, rcv.Endpoint())
//	// run the traced program with OTEL_EXPORTER_OTLP_ENDPOINT=col.HTTPEndpoint()
//	spans := rcv.WaitForSpans(t, n, 30*time.Second)
//
// The collector is a distribution built with the collector's own builder
// (ocb, go.opentelemetry.io/collector/cmd/builder at [BuilderVersion]) from
// the manifest testdata/builder-config.yaml: the OTLP receiver, the batch
// processor, and the OTLP/gRPC, OTLP/HTTP and debug exporters, core
// components only (contrib releases are not all served whole by the module
// proxy). The builder runs with the installed go command; the modules come
// from GOPROXY.
//
// A cold build downloads the collector's modules (about 600 MB in the module
// cache) and compiles them: 3.5 minutes of CPU, measured at 7 to 14 minutes
// of wall time on two cores shared with other builds, so a test that starts
// the first collector needs `go test -timeout` above that (make test gives
// 30m; the build also stops a minute before the test's deadline). The binary is
// then cached in <user cache dir>/offsetdb-test/otelcol-<version>/<hash>/,
// keyed by a hash of the manifest, the builder version and the go command's
// version, and later runs cost nothing. Concurrent test processes wait for
// one another on a lock file, and a build is written under a temporary name
// and renamed into place, so an interrupted build never leaves a broken
// binary behind.
//
// [BuildOtelApp] builds otelapp (testdata/otelapp), a client and a server
// instrumented with the OpenTelemetry Go SDK's otelhttp, for
// interoperability tests; it is cached the same way.
//
// Builds skip the test ("SKIPPED: ...") only when the module proxy is
// unreachable; any other failure fails the test with the builder's output.
package collectortest

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/offsetdb/offsetdb/offsetgen/toolchain"
)

// BuilderVersion is the release of the collector's builder, and of the core
// components in testdata/builder-config.yaml, that the tests use.
const BuilderVersion = "v0.165.0"

// builderModule is the builder's main package, run with go run.
const builderModule = "go.opentelemetry.io/collector/cmd/builder"

//go:embed testdata/builder-config.yaml
var manifest []byte

// distName is dist.name in the manifest: the name of the built binary.
const distName = "otelcol-offsetdb-test"

// buildLocks serialises builds of one cache entry within this process;
// between processes a lock file does (see cacheEntry).
var buildLocks sync.Map // cache entry → *sync.Mutex

// Build returns the path of the collector distribution built from
// testdata/builder-config.yaml, building it first when the cache lacks it
// (see the package documentation for the cost and where it is cached).
func Build(tb testing.TB) string {
	tb.Helper()
	env := newGoEnv(tb)
	entry := filepath.Join(env.base, "otelcol-"+strings.TrimPrefix(BuilderVersion, "v"), hashOf(manifest, []byte(BuilderVersion), []byte(env.version)))
	bin := filepath.Join(entry, distName)
	return cacheEntry(tb, entry, bin, func(ctx context.Context, tmp string) error {
		checkProxy(ctx, tb, env.base, builderModule, BuilderVersion)
		src := filepath.Join(tmp, "src")
		m := strings.Replace(string(manifest), "\ndist:\n", "\ndist:\n  output_path: "+src+"\n", 1)
		if m == string(manifest) {
			return errors.New("testdata/builder-config.yaml has no top-level dist: section")
		}
		config := filepath.Join(tmp, "builder-config.yaml")
		if err := os.WriteFile(config, []byte(m), 0o644); err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, env.gocmd, "run", builderModule+"@"+BuilderVersion, "--config", config)
		cmd.Dir = tmp
		cmd.Env = env.environ(tmp, "-mod=mod")
		if out, err := cmd.CombinedOutput(); err != nil {
			if unreachable(string(out)) {
				tb.Skipf("SKIPPED: module proxy unreachable while building the OpenTelemetry Collector with builder %s: %s", BuilderVersion, out)
			}
			return fmt.Errorf("build the OpenTelemetry Collector with builder %s: %w\n%s", BuilderVersion, err, out)
		}
		return os.Rename(filepath.Join(src, distName), filepath.Join(tmp, "bin"))
	})
}

// goEnv is the installed go command and the environment builds run in.
type goEnv struct {
	gocmd   string // path of the go command
	version string // its version, "go1.26.8"
	base    string // <user cache dir>/offsetdb-test
}

// newGoEnv finds the installed go command and the cache directory.
func newGoEnv(tb testing.TB) goEnv {
	tb.Helper()
	base, err := os.UserCacheDir()
	if err != nil {
		tb.Fatalf("collectortest: %v", err)
	}
	g, err := installedGo()
	if err != nil {
		tb.Fatalf("collectortest: %v", err)
	}
	g.base = filepath.Join(base, "offsetdb-test")
	return g
}

// installedGo returns the path and version of the go command on PATH,
// asked once per process.
var installedGo = sync.OnceValues(func() (goEnv, error) {
	gocmd, err := exec.LookPath("go")
	if err != nil {
		return goEnv{}, fmt.Errorf("the go command is needed to build the test programs: %w", err)
	}
	cmd := exec.Command(gocmd, "env", "GOVERSION")
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	out, err := cmd.Output()
	if err != nil {
		return goEnv{}, fmt.Errorf("%s env GOVERSION: %w", gocmd, err)
	}
	return goEnv{gocmd: gocmd, version: strings.TrimSpace(string(out))}, nil
})

// environ is the environment of the go command: the machine's, with the
// module and build caches beside the test cache (shared with grpctest), the
// installed toolchain only, and goflags instead of the caller's GOFLAGS, so
// that builds are the same everywhere.
func (e goEnv) environ(home, goflags string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GOFLAGS", "GOTOOLCHAIN", "GOMODCACHE", "GOCACHE", "GOENV", "GOPATH", "GOROOT", "GOBIN", "GOOS", "GOARCH", "CGO_ENABLED", "GOWORK", "HOME", "PATH":
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"PATH="+filepath.Dir(e.gocmd)+":/usr/bin:/bin",
		"HOME="+home,
		"GOPATH="+filepath.Join(home, "gopath"),
		"GOMODCACHE="+filepath.Join(e.base, "gomodcache"),
		"GOCACHE="+filepath.Join(e.base, "gocache-"+e.version),
		"GOPROXY="+goproxy(),
		"GOFLAGS="+goflags,
		"GOTOOLCHAIN=local",
		"GOWORK=off",
		"GOENV=off",
		"CGO_ENABLED=0",
	)
}

// cacheEntry returns bin, running build first when bin does not exist yet.
// build writes the binary to tmp/bin, tmp being a new directory inside
// entry; cacheEntry then renames it to bin. A lock file beside entry makes
// other processes wait instead of building the same thing at once.
func cacheEntry(tb testing.TB, entry, bin string, build func(ctx context.Context, tmp string) error) string {
	tb.Helper()
	mu, _ := buildLocks.LoadOrStore(entry, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := os.MkdirAll(entry, 0o755); err != nil {
		tb.Fatalf("collectortest: %v", err)
	}
	lock, err := os.OpenFile(entry+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		tb.Fatalf("collectortest: %v", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		tb.Fatalf("collectortest: lock %s: %v", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(bin); err == nil {
		return bin // built by another process while this one waited
	}

	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	if d, ok := deadline(tb); ok {
		ctx, cancel = context.WithDeadline(ctx, d)
		defer cancel()
	}
	tmp, err := os.MkdirTemp(entry, ".tmp-")
	if err != nil {
		tb.Fatalf("collectortest: %v", err)
	}
	defer func() {
		// The module cache marks its files read-only.
		_ = filepath.WalkDir(tmp, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				_ = os.Chmod(p, 0o755)
			}
			return nil
		})
		_ = os.RemoveAll(tmp)
	}()
	start := time.Now()
	if err := build(ctx, tmp); err != nil {
		tb.Fatalf("collectortest: %v", err)
	}
	if err := os.Rename(filepath.Join(tmp, "bin"), bin); err != nil {
		tb.Fatalf("collectortest: %v", err)
	}
	tb.Logf("collectortest: built %s in %s", bin, time.Since(start).Round(time.Second))
	return bin
}

// deadline is the test's deadline less a minute to report in, if it has one.
func deadline(tb testing.TB) (time.Time, bool) {
	t, ok := tb.(interface{ Deadline() (time.Time, bool) })
	if !ok {
		return time.Time{}, false
	}
	d, ok := t.Deadline()
	return d.Add(-time.Minute), ok
}

// checkProxy skips the test when the module proxy cannot be reached for
// module@version, and fails it when the proxy does not serve that version.
func checkProxy(ctx context.Context, tb testing.TB, base, module, version string) {
	tb.Helper()
	proxy := &toolchain.Proxy{URL: toolchain.ProxyURLFromEnv(), ConfigDir: filepath.Join(base, "sumdb")}
	if _, err := proxy.ModuleFile(ctx, module, version, ".info"); err != nil {
		if errors.Is(err, toolchain.ErrUnreachable) {
			tb.Skipf("SKIPPED: module proxy unreachable, cannot fetch %s@%s: %v", module, version, err)
		}
		tb.Fatalf("collectortest: %s@%s: %v", module, version, err)
	}
}

// hashOf returns the first 12 hex digits of a SHA-256 over parts, each
// prefixed by its length.
func hashOf(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d\n", len(p))
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// goproxy is $GOPROXY, or the public proxy when it is unset.
func goproxy() string {
	if p := os.Getenv("GOPROXY"); p != "" {
		return p
	}
	return toolchain.DefaultProxyURL
}

// unreachable reports whether go command output blames the network.
func unreachable(out string) bool {
	for _, s := range []string{"no such host", "connection refused", "network is unreachable", "i/o timeout", "TLS handshake timeout"} {
		if strings.Contains(out, s) {
			return true
		}
	}
	return false
}
