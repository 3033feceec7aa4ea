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

	"github.com/offsetdb/offsetdb/layout"
	"github.com/offsetdb/offsetdb/offsets"
)

// typesProgram prints the runtime address of main.main, then the type
// word of each value: what TypeName must name, in order.
const typesProgram = `package main

import (
	"fmt"
	"reflect"
	"unsafe"
)

type myErr struct{ s string }

func (e *myErr) Error() string { return e.s }

type plain string

func main() {
	fmt.Printf("%x\n", reflect.ValueOf(main).Pointer())
	for _, v := range []any{"s", &myErr{"x"}, plain("p"), myErr{}, 42, []byte(nil)} {
		fmt.Printf("%x\n", *(*uintptr)(unsafe.Pointer(&v)))
	}
}
`

// TypeName names the type descriptors an interface's type word points
// to, in position-dependent and PIE builds (less the load bias), with the
// layout from the binary's DWARF; a stripped build yields ErrNoTypes.
func TestTypeNameNamesTypeDescriptors(t *testing.T) {
	src := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(src, "main.go"), []byte(typesProgram), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(src, "go.mod"), []byte("module example.com/types\n\ngo 1.20\n"), 0o644))
	want := []string{"string", "*main.myErr", "main.plain", "main.myErr", "int", "[]uint8"}
	for _, v := range []struct {
		name  string
		flags []string
	}{
		{"exe", nil},
		{"pie", []string{"-buildmode=pie"}},
		{"stripped", []string{"-ldflags=-s -w"}},
	} {
		t.Run(v.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "types")
			cmd := exec.Command("go", append(append([]string{"build", "-o", out}, v.flags...), ".")...)
			cmd.Dir = src
			cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false", "GOTOOLCHAIN=local", "GOWORK=off", "GOPROXY=off", "CGO_ENABLED=0")
			b, err := cmd.CombinedOutput()
			require.NoError(t, err, "go build: %s", b)
			printed, err := exec.Command(out).Output()
			require.NoError(t, err)
			lines := strings.Fields(string(printed))
			require.Len(t, lines, 1+len(want))
			addrs := make([]uint64, len(lines))
			for i, l := range lines {
				addrs[i], err = strconv.ParseUint(l, 16, 64)
				require.NoError(t, err)
			}

			bin, err := Open(out)
			require.NoError(t, err)
			defer bin.Close()
			main, err := bin.Function("main.main")
			require.NoError(t, err)
			bias := addrs[0] - main.Entry
			if !bin.PIE {
				require.Zero(t, bias)
			}
			if v.name == "stripped" {
				_, err := bin.TypeName(addrs[1]-bias, TypeLayout{})
				assert.ErrorIs(t, err, ErrNoTypes)
				return
			}
			f, err := layout.Open(out)
			require.NoError(t, err)
			defer f.Close()
			str, tflag := offsets.MustParseFieldID("internal/abi.Type.Str"), offsets.MustParseFieldID("internal/abi.Type.TFlag")
			vs, err := f.Fields([]offsets.FieldID{str, tflag})
			require.NoError(t, err)
			l := TypeLayout{Str: vs[str].Offset, TFlag: vs[tflag].Offset}
			for i, w := range want {
				name, err := bin.TypeName(addrs[1+i]-bias, l)
				require.NoError(t, err, w)
				assert.Equal(t, w, name)
			}
		})
	}
}
