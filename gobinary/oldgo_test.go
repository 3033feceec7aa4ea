package gobinary

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/goversion"
)

// TestOldReleases builds the tracee with official Go releases named in
// OFFSETDB_TEST_GO_RELEASES (e.g. "go1.12,go1.16.15,go1.18.10"), one per
// function table format, and checks them like the local builds. Each release
// is a ~130 MB download, cached under os.UserCacheDir()/offsetdb-test, so
// the test is opt-in. go1.12 also exercises the path for binaries without
// build info (before Go 1.13).
func TestOldReleases(t *testing.T) {
	list := os.Getenv("OFFSETDB_TEST_GO_RELEASES")
	if list == "" || testing.Short() {
		t.Skip("set OFFSETDB_TEST_GO_RELEASES=go1.12,go1.16.15,go1.18.10 to test binaries of old Go releases (downloads ~130 MB each)")
	}
	for _, version := range strings.Split(list, ",") {
		t.Run(version, func(t *testing.T) {
			goroot := toolchain(t, version)
			normal := buildWith(t, goroot, version, false)
			syms := nm(t, goroot, normal)
			twin := open(t, normal)
			for _, stripped := range []bool{false, true} {
				path := normal
				if stripped {
					path = buildWith(t, goroot, version, true)
				}
				b := open(t, path)
				assert.Equal(t, version, b.GoVersionRaw)
				assert.NoError(t, b.GoVersionErr)
				assert.Equal(t, goversion.MustParse(version), b.GoVersion)
				assert.Equal(t, "amd64", b.Arch)
				assert.Equal(t, stripped, b.Stripped)
				assert.Equal(t, "example.com/tracee", b.Main.Path)
				m, ok := b.Module("example.com/greet")
				require.True(t, ok, "modules: %+v", b.Modules)
				assert.Equal(t, greetVersion, m.Version)
				assert.Equal(t, "../greet", m.EffectivePath())

				file, err := os.ReadFile(path)
				require.NoError(t, err)
				for _, name := range probed {
					fn, err := b.Function(name)
					require.NoError(t, err)
					assert.Equal(t, syms[name], fn.Entry, "%s entry", name)
					var addrs []uint64
					for _, off := range fn.Returns {
						assert.Equal(t, byte(0xc3), file[off], "%s: byte at %#x", name, off)
						addrs = append(addrs, fn.Entry+off-fn.EntryOffset)
					}
					assert.Equal(t, objdumpReturns(t, normal, name), addrs, "%s: RET addresses", name)
					want, err := twin.Function(name)
					require.NoError(t, err)
					assert.Equal(t, want.Returns, fn.Returns)
				}
			}
		})
	}
}
