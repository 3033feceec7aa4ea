package gobinary

import (
	"debug/elf"
	"encoding/binary"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/goversion"
)

// probed are the functions the tests locate: the net/http server and
// client entry points the tracer instruments.
var probed = []string{
	"net/http.serverHandler.ServeHTTP",
	"net/http.(*Transport).roundTrip",
}

func open(t testing.TB, path string) *Binary {
	t.Helper()
	b, err := Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b
}

func TestOpenReportsBuildInfo(t *testing.T) {
	want, err := goversion.Parse(runtime.Version())
	require.NoError(t, err)
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			b := open(t, build(t, v.name))

			assert.NoError(t, b.GoVersionErr)
			assert.Equal(t, want, b.GoVersion)
			assert.True(t, strings.HasPrefix(b.GoVersionRaw, runtime.Version()), b.GoVersionRaw)
			assert.Equal(t, v.arch, b.Arch)
			assert.Equal(t, v.arch, b.BuildSettings["GOARCH"])
			assert.Equal(t, v.pie, b.PIE, "PIE")
			assert.Equal(t, v.stripped, b.Stripped, "Stripped")
			assert.Equal(t, !v.stripped, b.HasDWARF, "HasDWARF")
			assert.Equal(t, v.cgo, b.CGO, "CGO")
			assert.Equal(t, Module{Path: "example.com/tracee", Version: "(devel)"}, b.Main)

			m, ok := b.Module("example.com/greet")
			require.True(t, ok)
			assert.Equal(t, Module{Path: "example.com/greet", Version: greetVersion, Replace: &Module{Path: "../greet", Version: "(devel)"}}, m)
			assert.Equal(t, "../greet", m.EffectivePath())
			assert.Equal(t, "(devel)", m.EffectiveVersion())

			if v.experiment != "" {
				assert.Contains(t, b.Experiments, v.experiment)
				assert.Contains(t, b.GoVersionRaw, "X:"+v.experiment)
			} else {
				assert.Empty(t, b.Experiments)
			}
		})
	}
}

func TestFunctionEntryMatchesNmAndUnstrippedTwin(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			syms := nm(t, "", build(t, v.symbols))
			b := open(t, build(t, v.name))
			twin := open(t, build(t, v.symbols))
			for _, name := range probed {
				fn, err := b.Function(name)
				require.NoError(t, err)
				assert.Equal(t, name, fn.Name)
				require.Contains(t, syms, name)
				assert.Equal(t, syms[name], fn.Entry, "%s entry", name)
				assert.Less(t, fn.Entry, fn.End)

				want, err := twin.Function(name)
				require.NoError(t, err)
				assert.Equal(t, want.Entry, fn.Entry)
				assert.Equal(t, want.EntryOffset, fn.EntryOffset)
				assert.Equal(t, want.Returns, fn.Returns)
			}
		})
	}
}

func TestFunctionReturnsPointAtRETInstructions(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			path := build(t, v.name)
			b := open(t, path)
			file, err := os.ReadFile(path)
			require.NoError(t, err)
			ef, err := elf.Open(build(t, v.symbols))
			require.NoError(t, err)
			defer ef.Close()
			text := ef.Section(".text")
			textData, err := text.Data()
			require.NoError(t, err)

			for _, name := range probed {
				fn, err := b.Function(name)
				require.NoError(t, err)

				// The entry offset holds the function's first instruction
				// as the section table of the unstripped twin places it.
				assert.Equal(t, textData[fn.Entry-text.Addr:][:16], file[fn.EntryOffset:][:16], "%s: bytes at entry offset", name)

				require.NotEmpty(t, fn.Returns)
				var addrs []uint64
				for _, off := range fn.Returns {
					switch v.arch {
					case "amd64":
						assert.Equal(t, byte(0xc3), file[off], "%s: byte at %#x", name, off)
					case "arm64":
						assert.Equal(t, uint32(0xd65f03c0), binary.LittleEndian.Uint32(file[off:]), "%s: word at %#x", name, off)
					}
					addrs = append(addrs, fn.Entry+off-fn.EntryOffset)
				}
				assert.Equal(t, objdumpReturns(t, build(t, v.symbols), name), addrs, "%s: RET addresses", name)
			}
		})
	}
}

// TestFunctionTableAgreesWithSymtab reads every function of each unstripped
// build through the Go function table alone, as for a stripped binary, and
// compares it with .symtab.
func TestFunctionTableAgreesWithSymtab(t *testing.T) {
	for _, v := range variants {
		if v.stripped {
			continue
		}
		t.Run(v.name, func(t *testing.T) {
			path := build(t, v.name)
			b := open(t, path)
			syms, err := b.symbols()
			require.NoError(t, err)
			pt, err := b.pclntab()
			require.NoError(t, err)
			text, _, ok := b.moduledataText(pt.addr)
			require.True(t, ok, "runtime.firstmoduledata not found")
			assert.Equal(t, syms["runtime.text"].Value, text, "runtime.text")

			asStripped := open(t, path)
			asStripped.Stripped = true // ignore .symtab
			funcs, err := asStripped.funcTable()
			require.NoError(t, err)
			matched := 0
			var mismatched []string
			for name := range syms {
				r, ok := funcs[name]
				if !ok || strings.HasSuffix(name, ".abi0") {
					continue
				}
				want, err := b.lookup(name)
				require.NoError(t, err)
				matched++
				if r.entry != want.entry || r.end < want.end {
					mismatched = append(mismatched, name)
				}
			}
			assert.Greater(t, matched, 5000)
			assert.Empty(t, mismatched)
		})
	}
}

// TestOpenWithoutSectionHeaders removes the section header table, as
// sstrip-like tools do; everything must then come from the segments.
func TestOpenWithoutSectionHeaders(t *testing.T) {
	for _, name := range []string{"stripped", "pie-stripped", "cgo-pie-external-stripped", "arm64-stripped"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(build(t, name))
			require.NoError(t, err)
			clear(data[0x28:0x30]) // e_shoff
			clear(data[0x3c:0x40]) // e_shnum, e_shstrndx
			path := filepath.Join(t.TempDir(), name)
			require.NoError(t, os.WriteFile(path, data, 0o755))

			b := open(t, path)
			twin := open(t, build(t, variantNamed(t, name).symbols))
			assert.Equal(t, twin.GoVersion, b.GoVersion)
			assert.Equal(t, twin.Main, b.Main)
			assert.Equal(t, twin.Modules, b.Modules)
			for _, fname := range probed {
				fn, err := b.Function(fname)
				require.NoError(t, err)
				want, err := twin.Function(fname)
				require.NoError(t, err)
				assert.Equal(t, want.Entry, fn.Entry)
				assert.Equal(t, want.EntryOffset, fn.EntryOffset)
				assert.Equal(t, want.Returns, fn.Returns)
			}
		})
	}
}

func TestFunctionReportsMissingSymbol(t *testing.T) {
	for _, name := range []string{"normal", "stripped"} {
		t.Run(name, func(t *testing.T) {
			b := open(t, build(t, name))
			_, err := b.Function("example.com/tracee.noSuchFunction")
			assert.ErrorIs(t, err, ErrSymbolNotFound)
			assert.ErrorContains(t, err, "example.com/tracee.noSuchFunction")
		})
	}
}

func TestOpenRejectsFilesThatAreNotGoELF(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, data, 0o755))
		return p
	}
	goBinary, err := os.ReadFile(build(t, "normal"))
	require.NoError(t, err)

	tests := []struct {
		name string
		path func(t *testing.T) string
		want error
	}{
		{"text file", func(*testing.T) string { return write("text", []byte("#!/bin/sh\necho hello\n")) }, ErrNotELF},
		{"empty file", func(*testing.T) string { return write("empty", nil) }, ErrNotELF},
		{"missing file", func(*testing.T) string { return filepath.Join(dir, "missing") }, fs.ErrNotExist},
		{"ELF magic only", func(*testing.T) string { return write("magic", []byte("\x7fELF")) }, ErrMalformed},
		{"truncated in the ELF header", func(*testing.T) string { return write("trunc-header", goBinary[:40]) }, ErrMalformed},
		{"truncated Go binary", func(*testing.T) string { return write("trunc", goBinary[:len(goBinary)/2]) }, ErrMalformed},
		{"system binary", func(t *testing.T) string {
			p, err := exec.LookPath("true")
			if err != nil {
				t.Skip("no true(1) on PATH")
			}
			return p
		}, ErrNotGo},
		{"C program", func(t *testing.T) string {
			gcc, err := exec.LookPath("gcc")
			if err != nil {
				t.Skip("gcc not installed")
			}
			src := write("hello.c", []byte("int main(void) { return 0; }\n"))
			out := filepath.Join(dir, "hello")
			b, err := exec.Command(gcc, "-o", out, src).CombinedOutput()
			require.NoError(t, err, "%s", b)
			return out
		}, ErrNotGo},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Open(tt.path(t))
			assert.ErrorIs(t, err, tt.want)
			assert.Nil(t, b)
		})
	}
}

func TestModuleFollowsReplace(t *testing.T) {
	b := &Binary{
		Main: Module{Path: "example.com/app", Version: "(devel)"},
		Modules: []Module{
			{Path: "golang.org/x/net", Version: "v0.20.0", Sum: "h1:a"},
			{Path: "google.golang.org/grpc", Version: "v1.60.0", Replace: &Module{Path: "example.com/grpc-fork", Version: "v1.60.1-0.20240101000000-abcdefabcdef", Sum: "h1:b"}},
			{Path: "example.com/local", Version: "v0.0.0-00010101000000-000000000000", Replace: &Module{Path: "./local", Version: "(devel)"}},
		},
	}
	tests := []struct {
		path              string
		found             bool
		effPath, effVersn string
	}{
		{"example.com/app", true, "example.com/app", "(devel)"},
		{"golang.org/x/net", true, "golang.org/x/net", "v0.20.0"},
		{"google.golang.org/grpc", true, "example.com/grpc-fork", "v1.60.1-0.20240101000000-abcdefabcdef"},
		{"example.com/local", true, "./local", "(devel)"},
		{"example.com/grpc-fork", false, "", ""},
		{"", false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			m, ok := b.Module(tt.path)
			require.Equal(t, tt.found, ok)
			assert.Equal(t, tt.effPath, m.EffectivePath())
			assert.Equal(t, tt.effVersn, m.EffectiveVersion())
		})
	}
}

func TestExperimentsMergesSettingAndVersion(t *testing.T) {
	tests := []struct {
		version, setting string
		want             []string
	}{
		{"go1.22.5", "", nil},
		{"go1.21.0 X:boringcrypto", "", []string{"boringcrypto"}},
		{"go1.26.8-X:boringcrypto", "", []string{"boringcrypto"}},
		{"go1.26.8-custom X:arenas,boringcrypto", "boringcrypto", []string{"arenas", "boringcrypto"}},
		{"go1.22.5", "nocoverageredesign,arenas", []string{"arenas", "nocoverageredesign"}},
		{"devel go1.23-abc", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.version+"/"+tt.setting, func(t *testing.T) {
			assert.Equal(t, tt.want, experiments(tt.version, tt.setting))
		})
	}
}

// DataSymbol finds data symbols (an itab, runtime.firstmoduledata) where
// `go tool nm` does, and no function nor anything in a stripped binary.
func TestDataSymbolMatchesNm(t *testing.T) {
	const itab = "go:itab.*crypto/tls.Conn,net.Conn"
	for _, name := range []string{"normal", "pie", "stripped"} {
		t.Run(name, func(t *testing.T) {
			v := variantNamed(t, name)
			out, err := exec.Command("go", "tool", "nm", build(t, v.symbols)).Output()
			require.NoError(t, err)
			want := map[string]uint64{}
			for _, line := range strings.Split(string(out), "\n") {
				f := strings.Fields(line)
				if len(f) == 3 && (f[2] == itab || f[2] == "runtime.firstmoduledata") {
					addr, err := strconv.ParseUint(f[0], 16, 64)
					require.NoError(t, err)
					want[f[2]] = addr
				}
			}
			require.Len(t, want, 2, "nm lists both")
			b := open(t, build(t, name))
			for sym, addr := range want {
				got, ok := b.DataSymbol(sym)
				assert.Equal(t, !v.stripped, ok, sym)
				if !v.stripped {
					assert.Equal(t, addr, got, sym)
				}
			}
			_, ok := b.DataSymbol(probed[0])
			assert.False(t, ok, "a function is no data symbol")
		})
	}
}
