package gobinary

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/goversion"
)

// argsOf are functions whose argument sizes follow from their
// signatures, the same in every release and on both architectures (8-byte
// words): the size of their arguments and results in the stack-based
// calling convention (all), which _func.args records before Go 1.17 on
// amd64 (1.18 on arm64), and of the arguments alone (in), which later
// releases record.
var argsOf = map[string]struct{ all, in int64 }{
	"net/http.(*Transport).roundTrip":   {40, 16}, // receiver, (req *Request) (*Response, error)
	"net/http.serverHandler.ServeHTTP":  {32, 32}, // receiver, (rw ResponseWriter, req *Request)
	"net/http.(*persistConn).roundTrip": {40, 16}, // receiver, (req *transportRequest) (*Response, error)
	"net/http.persistConnWriter.Write":  {56, 32}, // receiver, (p []byte) (n int, err error)
	"net/http.(*Server).logf":           {48, 48}, // receiver, (format string, args ...interface{})
	"net/http.(*Request).write":         {64, 48}, // receiver, (w io.Writer, usingProxy bool, extraHeaders Header, waitForContinue func() bool) (err error)
	"net/http.(*conn).serve":            {24, 24}, // receiver, (ctx context.Context)
	"runtime.mallocgc":                  {32, 24}, // (size uintptr, typ *_type, needzero bool) unsafe.Pointer
}

func checkArgs(t *testing.T, b *Binary, stack bool) {
	t.Helper()
	for name, want := range argsOf {
		fn, err := b.Function(name)
		require.NoError(t, err, name)
		if stack {
			assert.Equal(t, want.all, fn.Args, "%s: _func.args", name)
		} else {
			assert.Equal(t, want.in, fn.Args, "%s: _func.args", name)
		}
	}
}

// TestFunctionArgs checks Function.Args, which locates the results of
// functions compiled for the stack-based calling convention, against the
// sizes their signatures give, in every build variant of the local
// (register-ABI) toolchain; TestOldReleasesABI0 checks old releases.
func TestFunctionArgs(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			checkArgs(t, open(t, build(t, v.name)), false)
		})
	}
}

// TestGoTLSOffsetNeedsTheStackABI: a register-ABI binary keeps g in R14;
// its prologues do not load g from thread-local storage, and GoTLSOffset
// says so instead of guessing.
func TestGoTLSOffsetNeedsTheStackABI(t *testing.T) {
	_, err := open(t, build(t, "normal")).GoTLSOffset()
	assert.ErrorContains(t, err, "starts by loading g from thread-local storage")
	_, err = open(t, build(t, "arm64")).GoTLSOffset()
	assert.ErrorIs(t, err, ErrUnsupportedArch)
}

// TestOldReleasesABI0 builds the tracee with the old releases named in
// OFFSETDB_TEST_GO_RELEASES (see TestOldReleases), internally linked,
// with cgo (external linker) and as a PIE, and checks where each keeps g
// against the offset `go tool objdump` shows in the prologue of
// net/http.serverHandler.ServeHTTP, and the argument sizes.
func TestOldReleasesABI0(t *testing.T) {
	list := os.Getenv("OFFSETDB_TEST_GO_RELEASES")
	if list == "" || testing.Short() {
		t.Skip("set OFFSETDB_TEST_GO_RELEASES=go1.12.17,go1.16.15 to test binaries of old Go releases (downloads ~130 MB each)")
	}
	for _, version := range strings.Split(list, ",") {
		if !goversion.MustParse(version).Less(goversion.MustParse("go1.17")) {
			continue
		}
		t.Run(version, func(t *testing.T) {
			goroot := toolchain(t, version)
			src, err := writeTracee(filepath.Join(t.TempDir(), "src"), "1.12")
			require.NoError(t, err)
			var internal int64 // where the internally linked build keeps g
			for _, mode := range []struct {
				name  string
				cgo   string
				flags []string
			}{
				{"internal", "0", nil},
				{"cgo-external", "1", []string{"-ldflags=-linkmode=external"}},
				{"cgo-pie", "1", []string{"-buildmode=pie"}},
				{"stripped", "0", []string{"-ldflags=-s -w"}},
			} {
				t.Run(mode.name, func(t *testing.T) {
					out := filepath.Join(t.TempDir(), "tracee")
					tmp := t.TempDir()
					cmd := exec.Command(filepath.Join(goroot, "bin", "go"), append(append([]string{"build", "-o", out}, mode.flags...), ".")...)
					cmd.Dir = src
					cmd.Env = append(os.Environ(), "GOROOT="+goroot, "GOENV=off", "GOTOOLCHAIN=local", "GOFLAGS=", "GO111MODULE=on",
						"GOPATH="+tmp, "GOCACHE="+filepath.Join(tmp, "cache"), "GOPROXY=off", "CGO_ENABLED="+mode.cgo, "GOWORK=off")
					b, err := cmd.CombinedOutput()
					require.NoError(t, err, "%s", b)
					bin := open(t, out)
					off, err := bin.GoTLSOffset()
					require.NoError(t, err)
					if !bin.Stripped {
						assert.Equal(t, objdumpTLS(t, goroot, out), off)
					} else {
						assert.Equal(t, internal, off, "stripped: the offset of the same build with symbols")
					}
					if mode.name == "internal" {
						internal = off
					}
					checkArgs(t, bin, true)
					// Where goroutine context reads the new goroutine before Go 1.15.
					calls, err := bin.CallSites("runtime.newproc1", "runtime.runqput")
					require.NoError(t, err)
					if goversion.MustParse(version).Less(goversion.MustParse("go1.15")) {
						assert.Len(t, calls, 1, "newproc1 calls runqput once")
					} else {
						assert.Empty(t, calls, "runqput moved to newproc in Go 1.15")
					}
				})
			}
		})
	}
}

// objdumpTLS returns the FS offset that the first instructions of
// net/http.serverHandler.ServeHTTP load g from, as the toolchain's own
// disassembler prints them: "MOVQ FS:0xfffffff8, CX", or "MOVQ $-0x8, CX"
// then "MOVQ FS:0(CX), CX".
func objdumpTLS(t *testing.T, goroot, path string) int64 {
	cmd := exec.Command(filepath.Join(goroot, "bin", "go"), "tool", "objdump", "-s", `^net/http\.serverHandler\.ServeHTTP$`, path)
	cmd.Env = append(os.Environ(), "GOROOT="+goroot, "GOENV=off", "GOFLAGS=")
	out, err := cmd.Output()
	require.NoError(t, err)
	var imm int64
	for _, line := range strings.Split(string(out), "\n")[1:4] {
		f := strings.Fields(line)
		if len(f) < 5 || f[3] != "MOVQ" {
			continue
		}
		src := strings.TrimSuffix(f[4], ",")
		switch {
		case strings.HasPrefix(src, "$"):
			imm = parseInt(t, strings.TrimPrefix(src, "$"))
		case src == "FS:0(CX)":
			return imm
		case strings.HasPrefix(src, "FS:"):
			return int64(int32(parseInt(t, strings.TrimPrefix(src, "FS:"))))
		}
	}
	t.Fatalf("no load of g from FS in:\n%s", out)
	return 0
}

func parseInt(t *testing.T, s string) int64 {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var v int64
	u, err := strconv.ParseUint(s, 0, 64)
	require.NoError(t, err, s)
	v = int64(u)
	if neg {
		v = -v
	}
	return v
}

// TestCallSites finds runtime.newobject's direct call of runtime.mallocgc
// in every build variant: each offset holds a call instruction (amd64
// CALL rel32, opcode 0xe8; arm64 BL, top six bits 100101) whose target is
// mallocgc's entry; a function that does not call it gives none.
func TestCallSites(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			path := build(t, v.name)
			b := open(t, path)
			sites, err := b.CallSites("runtime.newobject", "runtime.mallocgc")
			require.NoError(t, err)
			require.NotEmpty(t, sites)
			file, err := os.ReadFile(path)
			require.NoError(t, err)
			from, err := b.Function("runtime.newobject")
			require.NoError(t, err)
			to, err := b.Function("runtime.mallocgc")
			require.NoError(t, err)
			for _, off := range sites {
				pc := from.Entry + off - from.EntryOffset
				switch b.Arch {
				case "amd64":
					require.Equal(t, byte(0xe8), file[off], "CALL at %#x", off)
					rel := int32(uint32(file[off+1]) | uint32(file[off+2])<<8 | uint32(file[off+3])<<16 | uint32(file[off+4])<<24)
					assert.Equal(t, to.Entry, pc+5+uint64(int64(rel)))
				case "arm64":
					w := uint32(file[off]) | uint32(file[off+1])<<8 | uint32(file[off+2])<<16 | uint32(file[off+3])<<24
					require.Equal(t, uint32(0b100101), w>>26, "BL at %#x", off)
					imm := int64(int32(w<<6) >> 6) // sign-extended imm26
					assert.Equal(t, to.Entry, pc+uint64(imm*4))
				}
			}
			none, err := b.CallSites("runtime.mallocgc", "runtime.newobject")
			require.NoError(t, err)
			assert.Empty(t, none)
		})
	}
}

// TestTLSLoad decodes the prologues Go writes to load g on amd64 before
// the register ABI, as `go tool objdump` shows them in go1.12.17 and
// go1.15.15 builds, and rejects others.
func TestTLSLoad(t *testing.T) {
	for _, tc := range []struct {
		name string
		code []byte
		off  int64
		ok   bool
	}{
		// MOVQ FS:0xfffffff8, CX; CMPQ 0x10(CX), SP
		{"internal or external link", []byte{0x64, 0x48, 0x8b, 0x0c, 0x25, 0xf8, 0xff, 0xff, 0xff, 0x48, 0x3b, 0x61, 0x10}, -8, true},
		// MOVQ $-0x8, CX; MOVQ FS:0(CX), CX; CMPQ 0x10(CX), SP
		{"PIE", []byte{0x48, 0xc7, 0xc1, 0xf8, 0xff, 0xff, 0xff, 0x64, 0x48, 0x8b, 0x09, 0x48, 0x3b, 0x61, 0x10}, -8, true},
		// MOVQ FS:0xfffffff0, CX: another offset is read as it is
		{"other offset", []byte{0x64, 0x48, 0x8b, 0x0c, 0x25, 0xf0, 0xff, 0xff, 0xff}, -16, true},
		// CMPQ SP, 0x10(R14): the register ABI's prologue
		{"register ABI", []byte{0x49, 0x3b, 0x66, 0x10, 0x76, 0x2a}, 0, false},
		// MOVQ 0x8(SP), AX: no FS
		{"no TLS", []byte{0x48, 0x8b, 0x44, 0x24, 0x08}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			off, ok := tlsLoad(tc.code)
			assert.Equal(t, tc.ok, ok)
			assert.Equal(t, tc.off, off)
		})
	}
}
