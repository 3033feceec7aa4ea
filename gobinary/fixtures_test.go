package gobinary

import (
	"archive/zip"
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// fixtureDir holds the test binaries; TestMain creates and removes it so
// that every variant is built once per test run, whatever the tests share.
var fixtureDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gobinary-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fixtureDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// The tracee: an HTTP server and client in module example.com/tracee, which
// requires example.com/greet at a pseudo-version replaced by a local
// directory. With cgo enabled it also calls a C function.
const (
	greetVersion = "v0.0.0-20240102030405-abcdefabcdef"

	traceeMain = `package main

import (
	"fmt"
	"net/http"
	"os"

	"example.com/greet"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, greet.Hello(r.URL.Path), cAnswer())
	})
	if len(os.Args) > 1 {
		resp, err := http.Get(os.Args[1])
		if err == nil {
			resp.Body.Close()
		}
		return
	}
	_ = http.ListenAndServe("127.0.0.1:0", nil)
}
`
	traceeCgo = `//go:build cgo
// +build cgo

package main

// static int answer(void) { return 42; }
import "C"

func cAnswer() int { return int(C.answer()) }
`
	traceeNoCgo = `//go:build !cgo
// +build !cgo

package main

func cAnswer() int { return 42 }
`
	greetSource = `package greet

// Hello greets name.
func Hello(name string) string { return "hello " + name }
`
)

// writeTracee writes the tracee sources under dir and returns the main
// module's directory. goDirective is the go.mod language version, which old
// toolchains need to be old too.
func writeTracee(dir, goDirective string) (string, error) {
	files := map[string]string{
		"tracee/go.mod": fmt.Sprintf("module example.com/tracee\n\ngo %s\n\nrequire example.com/greet %s\n\nreplace example.com/greet => ../greet\n",
			goDirective, greetVersion),
		"tracee/main.go":  traceeMain,
		"tracee/cgo.go":   traceeCgo,
		"tracee/nocgo.go": traceeNoCgo,
		"greet/go.mod":    fmt.Sprintf("module example.com/greet\n\ngo %s\n", goDirective),
		"greet/greet.go":  greetSource,
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	return filepath.Join(dir, "tracee"), nil
}

// variant is one way of building the tracee.
type variant struct {
	name  string
	env   []string // added to the environment
	flags []string // go build flags
	arch  string
	// stripped, pie and cgo are what Open must report.
	stripped, pie, cgo bool
	experiment         string // GOEXPERIMENT
	// symbols names the variant with the same code and a .symtab, for
	// comparing a stripped build with its unstripped twin.
	symbols string
}

var variants = []variant{
	{name: "normal", env: []string{"CGO_ENABLED=0"}, arch: "amd64", symbols: "normal"},
	{name: "stripped", env: []string{"CGO_ENABLED=0"}, flags: []string{"-ldflags=-s -w"}, arch: "amd64", stripped: true, symbols: "normal"},
	{name: "pie", env: []string{"CGO_ENABLED=0"}, flags: []string{"-buildmode=pie"}, arch: "amd64", pie: true, symbols: "pie"},
	{name: "pie-stripped", env: []string{"CGO_ENABLED=0"}, flags: []string{"-buildmode=pie", "-ldflags=-s -w"}, arch: "amd64", pie: true, stripped: true, symbols: "pie"},
	{name: "cgo", env: []string{"CGO_ENABLED=1"}, arch: "amd64", cgo: true, symbols: "cgo"},
	// External linking puts C start-up code before runtime.text, so a
	// stripped build is only readable through runtime.firstmoduledata.
	{name: "cgo-pie-external", env: []string{"CGO_ENABLED=1"}, flags: []string{"-buildmode=pie", "-ldflags=-linkmode=external"}, arch: "amd64", pie: true, cgo: true, symbols: "cgo-pie-external"},
	{name: "cgo-pie-external-stripped", env: []string{"CGO_ENABLED=1"}, flags: []string{"-buildmode=pie", "-ldflags=-linkmode=external -s -w"}, arch: "amd64", pie: true, cgo: true, stripped: true, symbols: "cgo-pie-external"},
	{name: "boringcrypto", env: []string{"CGO_ENABLED=0", "GOEXPERIMENT=boringcrypto"}, arch: "amd64", experiment: "boringcrypto", symbols: "boringcrypto"},
	{name: "arm64", env: []string{"CGO_ENABLED=0", "GOARCH=arm64"}, arch: "arm64", symbols: "arm64"},
	{name: "arm64-stripped", env: []string{"CGO_ENABLED=0", "GOARCH=arm64"}, flags: []string{"-ldflags=-s -w"}, arch: "arm64", stripped: true, symbols: "arm64"},
}

func variantNamed(t testing.TB, name string) variant {
	for _, v := range variants {
		if v.name == name {
			return v
		}
	}
	t.Fatalf("no variant %q", name)
	return variant{}
}

type buildResult struct {
	once sync.Once
	path string
	err  error
}

var builds sync.Map // key -> *buildResult

// once runs build at most once per test run for key and returns its result.
func once(key string, build func() (string, error)) (string, error) {
	r, _ := builds.LoadOrStore(key, &buildResult{})
	br := r.(*buildResult)
	br.once.Do(func() { br.path, br.err = build() })
	return br.path, br.err
}

var traceeOnce = sync.OnceValues(func() (string, error) {
	return writeTracee(filepath.Join(fixtureDir, "src-local"), "1.20")
})

// build returns the path of the tracee built as variant name with the local
// toolchain, building it on first use.
func build(t testing.TB, name string) string {
	t.Helper()
	v := variantNamed(t, name)
	path, err := once("local/"+name, func() (string, error) {
		src, err := traceeOnce()
		if err != nil {
			return "", err
		}
		out := filepath.Join(fixtureDir, name)
		args := append([]string{"build", "-o", out}, v.flags...)
		cmd := exec.Command("go", append(args, ".")...)
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false", "GOTOOLCHAIN=local", "GOWORK=off", "GOPROXY=off")
		cmd.Env = append(cmd.Env, v.env...)
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build %s: %v\n%s", name, err, b)
		}
		return out, nil
	})
	require.NoError(t, err)
	return path
}

// nm returns the text symbols of a binary according to `go tool nm` of the
// toolchain at goroot (the local one if empty), an oracle independent of
// this package.
func nm(t testing.TB, goroot, path string) map[string]uint64 {
	t.Helper()
	cmd := exec.Command("go", "tool", "nm", path)
	if goroot != "" {
		cmd = exec.Command(filepath.Join(goroot, "bin", "go"), "tool", "nm", path)
		cmd.Env = append(os.Environ(), "GOROOT="+goroot, "GOENV=off", "GOFLAGS=", "GOTOOLCHAIN=local")
	}
	out, err := cmd.Output()
	require.NoError(t, err, "go tool nm %s", path)
	syms := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || (f[1] != "T" && f[1] != "t") {
			continue
		}
		addr, err := strconv.ParseUint(f[0], 16, 64)
		require.NoError(t, err)
		syms[strings.Join(f[2:], " ")] = addr
	}
	return syms
}

// objdumpReturns returns the addresses of the RET instructions that
// `go tool objdump` shows in the named function.
func objdumpReturns(t testing.TB, path, name string) []uint64 {
	t.Helper()
	out, err := exec.Command("go", "tool", "objdump", "-s", "^"+regexp.QuoteMeta(name)+"$", path).Output()
	require.NoError(t, err, "go tool objdump %s", path)
	var rets []uint64
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[3] == "RET" {
			addr, err := strconv.ParseUint(strings.TrimPrefix(f[1], "0x"), 16, 64)
			require.NoError(t, err)
			rets = append(rets, addr)
		}
	}
	require.NotEmpty(t, rets, "objdump found no RET in %s of %s", name, path)
	return rets
}

// toolchain returns the GOROOT of an official Go release, downloaded from
// the Go module proxy once and cached under the user cache directory
// (about 120 MB per release zip plus the unpacked tree).
func toolchain(t testing.TB, version string) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	require.NoError(t, err)
	cache = filepath.Join(cache, "offsetdb-test")
	root := filepath.Join(cache, version)
	if _, err := os.Stat(filepath.Join(root, ".complete")); err == nil {
		return root
	}
	require.NoError(t, os.MkdirAll(cache, 0o755))
	zipPath := filepath.Join(cache, version+".linux-amd64.zip")
	if _, err := os.Stat(zipPath); err != nil {
		url := "https://proxy.golang.org/golang.org/toolchain/@v/v0.0.1-" + version + ".linux-amd64.zip"
		t.Logf("downloading %s", url)
		resp, err := http.Get(url)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s", url)
		tmp, err := os.CreateTemp(cache, version+".zip.*")
		require.NoError(t, err)
		_, err = io.Copy(tmp, resp.Body)
		require.NoError(t, tmp.Close())
		require.NoError(t, err)
		require.NoError(t, os.Rename(tmp.Name(), zipPath))
	}
	tmpRoot, err := os.MkdirTemp(cache, version+".tmp.*")
	require.NoError(t, err)
	defer os.RemoveAll(tmpRoot)
	zr, err := zip.OpenReader(zipPath)
	require.NoError(t, err)
	defer zr.Close()
	prefix := "golang.org/toolchain@v0.0.1-" + version + ".linux-amd64/"
	for _, zf := range zr.File {
		name, ok := strings.CutPrefix(zf.Name, prefix)
		require.True(t, ok, "unexpected zip entry %s", zf.Name)
		if name == "" || strings.HasSuffix(name, "/") {
			continue
		}
		dst := filepath.Join(tmpRoot, filepath.FromSlash(name))
		mode := os.FileMode(0o644)
		if dir, _, _ := strings.Cut(name, "/"); dir == "bin" || strings.HasPrefix(name, "pkg/tool/") {
			mode = 0o755
		}
		require.NoError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
		src, err := zf.Open()
		require.NoError(t, err)
		b, err := io.ReadAll(src)
		src.Close()
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(dst, b, mode))
	}
	require.NoError(t, os.WriteFile(filepath.Join(tmpRoot, ".complete"), nil, 0o644))
	require.NoError(t, os.Rename(tmpRoot, root))
	return root
}

// buildWith builds the tracee with the toolchain at goroot, in module mode
// with a go.mod that old toolchains accept, with or without symbols.
func buildWith(t testing.TB, goroot, version string, stripped bool) string {
	t.Helper()
	name := version + "-normal"
	if stripped {
		name = version + "-stripped"
	}
	path, err := once(name, func() (string, error) {
		src, err := writeTracee(filepath.Join(fixtureDir, "src-"+version), "1.12")
		if err != nil {
			return "", err
		}
		out := filepath.Join(fixtureDir, name)
		args := []string{"build", "-o", out}
		if stripped {
			args = append(args, "-ldflags=-s -w")
		}
		tmp := filepath.Join(fixtureDir, "gopath-"+version)
		cmd := exec.Command(filepath.Join(goroot, "bin", "go"), append(args, ".")...)
		cmd.Dir = src
		// GOENV=off: the user's go env file may set flags old releases reject.
		cmd.Env = append(os.Environ(), "GOROOT="+goroot, "GOENV=off", "GOTOOLCHAIN=local", "GOFLAGS=", "GO111MODULE=on",
			"GOPATH="+tmp, "GOCACHE="+filepath.Join(tmp, "cache"), "GOPROXY=off", "CGO_ENABLED=0", "GOWORK=off")
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("%s build: %v\n%s", version, err, b)
		}
		return out, nil
	})
	require.NoError(t, err)
	return path
}
