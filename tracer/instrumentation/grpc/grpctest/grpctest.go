// Package grpctest builds grpcsvc, a program serving and calling grpc-go's
// own example services (helloworld.Greeter and routeguide.RouteGuide),
// against a chosen grpc-go release and Go release, for end-to-end tests of
// the gRPC instrumentation.
//
// The Go toolchain comes from the module proxy (package offsetgen/toolchain),
// the modules too; nothing is taken from the machine but a cache directory.
// grpcsvc's source, testdata/grpcsvc/main.go, compiles against every grpc-go
// release Build accepts: see that file for what it avoids and why.
//
// Build accepts every grpc-go release from v1.0.0, the first, except
// v1.30.x and v1.31.x: their examples are a module of its own, and no
// version of that module the proxy serves builds with them (see
// examplesSnapshots). The proxy does not serve v1.0.1 and v1.1.0 either.
// Before v1.0.0 grpc-go has no releases, only commits.

package grpctest

import (
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/offsetdb/offsetdb/goversion"
	"github.com/offsetdb/offsetdb/offsetgen/toolchain"
)

//go:embed testdata/grpcsvc/main.go
var grpcsvcSource []byte

// Target is one build of grpcsvc: a grpc-go release, a Go release and
// whether the binary is stripped of symbols and DWARF (-ldflags=-s -w).
type Target struct {
	GRPC     string // grpc-go release, "v1.60.0"
	Go       string // Go release, "go1.21.13"
	Stripped bool
}

// String names the target for subtests: "grpc-v1.60.0/go1.21.13",
// with "-stripped" appended for a stripped build.
func (t Target) String() string {
	s := "grpc-" + t.GRPC + "/" + t.Go
	if t.Stripped {
		s += "-stripped"
	}
	return s
}

// Build builds Target t; see [Build].
func (t Target) Build(tb testing.TB) string {
	return Build(tb, t.GRPC, goversion.MustParse(t.Go), t.Stripped)
}

// Matrix is the set of builds the gRPC tests run against: grpc-go releases
// from the first to the newest, each with a Go release that its go.mod and
// its dependencies accept, two of them stripped. Every target serves and
// answers every RPC of grpcsvc (TestMatrixServesEveryRPC).
//
// v1.0.0 and v1.8.0 have no go.mod (their dependencies are pinned, see
// oldPins); v1.20.0 is the examples inside grpc-go with a go.mod; v1.54.0
// and v1.73.0 use the examples module, before and after the generic
// streams of v1.64; v1.85.0, whose go.mod says go 1.26.0, is the newest.
// Two builds use releases before the register calling convention (Go
// 1.13 and 1.14: arguments and results on the stack); grpcsvc needs Go
// 1.13 (http.NewRequestWithContext).
var Matrix = []Target{
	{GRPC: "v1.0.0", Go: "go1.17.13"},
	{GRPC: "v1.8.0", Go: "go1.13.15", Stripped: true},
	{GRPC: "v1.8.0", Go: "go1.17.13", Stripped: true},
	{GRPC: "v1.20.0", Go: "go1.14.15"},
	{GRPC: "v1.20.0", Go: "go1.18.10"},
	{GRPC: "v1.54.0", Go: "go1.21.13"},
	{GRPC: "v1.73.0", Go: "go1.24.13"},
	{GRPC: "v1.85.0", Go: "go1.27.4", Stripped: true},
}

// buildLocks serialises builds of one cache entry within this process;
// between processes the final rename keeps the entry whole.
var buildLocks sync.Map // cache key → *sync.Mutex

// Build returns the path of grpcsvc built against grpc-go release grpc
// ("v1.60.0") with Go release v, stripped with -ldflags=-s -w if stripped.
//
// Builds are cached in <user cache dir>/offsetdb-test/grpcsvc, keyed by the
// grpc-go and Go releases, stripping and a hash of the source and go.mod, so
// a later run costs nothing; the toolchain (~75 MB download) and the
// module and build caches live beside it. A first build of a grpc-go release
// downloads its modules from GOPROXY (default https://proxy.golang.org,
// checked against the checksum database) and takes 20 s to a minute.
//
// Build skips the test ("SKIPPED: ...") only when the module proxy is
// unreachable. Any other failure, such as a grpc-go release whose go.mod
// needs a newer Go than v, fails the test with the compiler's output.
func Build(tb testing.TB, grpc string, v goversion.Version, stripped bool) string {
	tb.Helper()
	base, err := os.UserCacheDir()
	if err != nil {
		tb.Fatalf("grpctest: %v", err)
	}
	base = filepath.Join(base, "offsetdb-test")
	gomod, err := wrapperGoMod(grpc, v)
	if err != nil {
		tb.Fatalf("grpctest: %v", err)
	}
	ldflags := ""
	name := grpc + "-" + v.String()
	if stripped {
		ldflags = "-s -w"
		name += "-stripped"
	}
	h := sha256.New()
	for _, part := range [][]byte{grpcsvcSource, []byte(gomod), []byte(ldflags)} {
		fmt.Fprintf(h, "%d\n", len(part))
		h.Write(part)
	}
	entry := filepath.Join(base, "grpcsvc", name+"-"+hex.EncodeToString(h.Sum(nil))[:12])
	bin := filepath.Join(entry, "grpcsvc")

	mu, _ := buildLocks.LoadOrStore(entry, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	proxy := &toolchain.Proxy{URL: toolchain.ProxyURLFromEnv(), ConfigDir: filepath.Join(base, "sumdb")}
	if _, err := proxy.ModuleFile(ctx, "google.golang.org/grpc", grpc, ".info"); err != nil {
		if errors.Is(err, toolchain.ErrUnreachable) {
			tb.Skipf("SKIPPED: module proxy unreachable, cannot build grpcsvc for grpc-go %s: %v", grpc, err)
		}
		tb.Fatalf("grpctest: grpc-go %s: %v", grpc, err)
	}
	cache := &toolchain.Cache{Dir: filepath.Join(base, "toolchains"), Proxy: proxy}
	goroot, _, err := cache.Toolchain(ctx, v)
	if errors.Is(err, toolchain.ErrUnreachable) {
		tb.Skipf("SKIPPED: module proxy unreachable, cannot fetch %s: %v", v, err)
	}
	if err != nil {
		tb.Fatalf("grpctest: %v", err)
	}

	src := tb.TempDir()
	if err := os.WriteFile(filepath.Join(src, "main.go"), grpcsvcSource, 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte(gomod), 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.MkdirAll(entry, 0o755); err != nil {
		tb.Fatal(err)
	}
	tmp, err := os.CreateTemp(entry, ".tmp-grpcsvc-*")
	if err != nil {
		tb.Fatal(err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())

	cmd := exec.CommandContext(ctx, filepath.Join(goroot, "bin", "go"), "build", "-ldflags="+ldflags, "-o", tmp.Name(), ".")
	cmd.Dir = src
	cmd.Env = buildEnv(goroot, base, src, v)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if unreachable(string(out)) {
			tb.Skipf("SKIPPED: module proxy unreachable while building grpcsvc for grpc-go %s with %s: %s", grpc, v, out)
		}
		tb.Fatalf("grpctest: build grpcsvc for grpc-go %s with %s: %v\ngo.mod:\n%s\n%s", grpc, v, err, gomod, out)
	}
	if err := checkGRPCVersion(tmp.Name(), grpc); err != nil {
		tb.Fatalf("grpctest: build grpcsvc with %s: %v\ngo.mod:\n%s", v, err, gomod)
	}
	if err := os.Rename(tmp.Name(), bin); err != nil {
		tb.Fatal(err)
	}
	return bin
}

// checkGRPCVersion makes sure that the module graph, which the examples
// module's requirements join, selected grpc-go release grpc itself.
func checkGRPCVersion(bin, grpc string) error {
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return err
	}
	for _, m := range info.Deps {
		if m.Path != "google.golang.org/grpc" {
			continue
		}
		if m.Replace != nil || m.Version != grpc {
			return fmt.Errorf("the build selected grpc-go %s (replaced by %v), not %s", m.Version, m.Replace, grpc)
		}
		return nil
	}
	return errors.New("grpcsvc does not depend on google.golang.org/grpc")
}

// buildEnv is the environment of the go command: nothing from the machine
// but the proxy settings, so that builds are the same everywhere.
func buildEnv(goroot, base, src string, v goversion.Version) []string {
	env := []string{
		"PATH=" + filepath.Join(goroot, "bin") + ":/usr/bin:/bin",
		"HOME=" + src,
		"GOROOT=" + goroot,
		"GOPATH=" + filepath.Join(src, "gopath"),
		"GOMODCACHE=" + filepath.Join(base, "gomodcache"),
		"GOCACHE=" + filepath.Join(base, "gocache-"+v.String()),
		"GOPROXY=" + goproxy(),
		"GOTOOLCHAIN=local",
		"GO111MODULE=on",
		"CGO_ENABLED=0",
		"GOENV=off",
	}
	// -mod=mod from Go 1.14; before, the go command updated go.mod
	// without being asked (and rejects the flag).
	if !v.Less(goversion.MustParse("go1.14")) {
		env = append(env, "GOFLAGS=-mod=mod")
	} else {
		env = append(env, "GOFLAGS=")
	}
	for _, k := range []string{"GOSUMDB", "GONOSUMDB", "GOPRIVATE", "GONOPROXY", "GOINSECURE",
		"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR"} {
		if val, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+val)
		}
	}
	return env
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
