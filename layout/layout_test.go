package layout

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/offsets"
)

var (
	probeAMD64 = program{Source: probeSource, GOARCH: "amd64"}
	probeARM64 = program{Source: probeSource, GOARCH: "arm64"}
	probe386   = program{Source: probeSource, GOARCH: "386"}
)

func fieldIDs(t testing.TB, ss ...string) []offsets.FieldID {
	t.Helper()
	ids := make([]offsets.FieldID, len(ss))
	for i, s := range ss {
		id, err := offsets.ParseFieldID(s)
		require.NoError(t, err)
		ids[i] = id
	}
	return ids
}

func fieldID(t testing.TB, s string) offsets.FieldID { return fieldIDs(t, s)[0] }

// readFields opens path and resolves ids, which must all be found.
func readFields(t *testing.T, path string, ids []offsets.FieldID) map[offsets.FieldID]offsets.Value {
	t.Helper()
	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()
	got, err := f.Fields(ids)
	require.NoError(t, err)
	return got
}

func keys(m map[offsets.FieldID]offsets.Value) []offsets.FieldID {
	ids := make([]offsets.FieldID, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	return ids
}

func TestFieldsMatchRuntimeLayout(t *testing.T) {
	path := probeAMD64.build(t)
	want := runOracle(t, path)

	got := readFields(t, path, keys(want.unsafe))
	for id, w := range want.unsafe {
		g := got[id]
		assert.Equal(t, w.Offset, g.Offset, "offset of %s", id)
		assert.Equal(t, w.Size, g.Size, "size of %s", id)
	}

	// The names DWARF gives field types.
	for _, tt := range []struct{ field, typ string }{
		{"main.Outer.Flag", "bool"},
		{"main.Outer.Ptr", "*main.Inner"},
		{"main.Outer.Embedded", "main.Embedded"},
		{"main.Outer.Mutex", "sync.Mutex"},
		{"main.Outer.In", "main.Inner"},
		{"main.Outer.In.B", "int64"},
		{"main.Outer.In.C", "string"},
		{"main.Outer.Named", "main.InnerPtr"},
		{"main.Outer.Tail", "[]uint8"},
		{"main.Outer.Any", "interface {}"},
		{"main.Outer.M", "map[string]int"},
		{"main.Outer.Arr", "[3]uint16"},
	} {
		assert.Equal(t, tt.typ, got[fieldID(t, tt.field)].Type, "type of %s", tt.field)
	}
}

// TestFieldsMatchRuntimeLayoutOfOtherReleases checks the go commands listed
// in OFFSETDB_TEST_GO (space-separated paths, say of go1.12 and go1.20
// toolchains the generator downloaded): their DWARF differs in compression,
// version and type names.
func TestFieldsMatchRuntimeLayoutOfOtherReleases(t *testing.T) {
	goCmds := strings.Fields(os.Getenv("OFFSETDB_TEST_GO"))
	if len(goCmds) == 0 {
		t.Skip("set OFFSETDB_TEST_GO to the go commands of other Go releases to check them")
	}
	for _, goCmd := range goCmds {
		t.Run(goCmd, func(t *testing.T) {
			path := program{Source: probeSource, GOARCH: "amd64", GoCmd: goCmd}.build(t)
			want := runOracle(t, path)
			ids := append(keys(want.unsafe), keys(want.reflect)...)
			got := readFields(t, path, ids)
			for _, w := range []map[offsets.FieldID]offsets.Value{want.unsafe, want.reflect} {
				for id, v := range w {
					assert.Equal(t, v.Offset, got[id].Offset, "offset of %s", id)
					assert.Equal(t, v.Size, got[id].Size, "size of %s", id)
				}
			}
		})
	}
}

func TestFieldsOfStdMatchReflect(t *testing.T) {
	path := probeAMD64.build(t)
	want := runOracle(t, path)
	if _, ok := want.reflect[fieldID(t, "net/http.response.req")]; !ok {
		t.Log("probe could not serve on loopback: net/http.response.req checked without oracle")
	}

	ids := append(keys(want.reflect), fieldIDs(t, "net/http.response.req", "runtime.g.goid", "runtime.g.sched.sp")...)
	got := readFields(t, path, ids)
	for id, w := range want.reflect {
		g := got[id]
		assert.Equal(t, w.Offset, g.Offset, "offset of %s", id)
		assert.Equal(t, w.Size, g.Size, "size of %s", id)
	}

	for _, tt := range []struct {
		field string
		want  offsets.Value // Offset is not checked.
	}{
		{"net/http.Request.ctx", offsets.Value{Size: 16, Type: "context.Context"}},
		{"net/http.Request.URL", offsets.Value{Size: 8, Type: "*net/url.URL"}},
		{"context.valueCtx.Context", offsets.Value{Size: 16, Type: "context.Context"}},
		{"net/http.response.req", offsets.Value{Size: 8, Type: "*net/http.Request"}},
		{"runtime.g.goid", offsets.Value{Size: 8, Type: "uint64"}},
		{"runtime.g.sched.sp", offsets.Value{Size: 8, Type: "uintptr"}},
	} {
		g := got[fieldID(t, tt.field)]
		assert.Equal(t, tt.want.Size, g.Size, "size of %s", tt.field)
		assert.Equal(t, tt.want.Type, g.Type, "type of %s", tt.field)
	}
	assert.NotZero(t, got[fieldID(t, "runtime.g.goid")].Offset)
}

func TestFieldsReportsWhatIsMissing(t *testing.T) {
	f, err := Open(probeAMD64.build(t))
	require.NoError(t, err)
	defer f.Close()

	tests := []struct {
		field  string
		is     error
		errMsg string
	}{
		{"main.Outer.Nope", ErrFieldNotFound, `main.Outer has no field "Nope"`},
		{"main.Outer.In.Nope", ErrFieldNotFound, `main.Outer.In (main.Inner) has no field "Nope"`},
		{"main.Outer.X", ErrFieldNotFound, `main.Outer has no field "X"`}, // Promoted fields are not in DWARF.
		{"main.Outer.Ptr.A", ErrFieldNotFound, `main.Outer.Ptr (*main.Inner) has no field "A": path crosses a pointer, offsets are not additive through pointers`},
		{"main.Outer.Named.A", ErrFieldNotFound, `main.Outer.Named (main.InnerPtr) has no field "A": path crosses a pointer, offsets are not additive through pointers`},
		{"main.Outer.M.count", ErrFieldNotFound, `main.Outer.M (map[string]int) has no field "count": path crosses a map or channel, which is a pointer`},
		{"main.Outer.Flag.x", ErrFieldNotFound, `main.Outer.Flag (bool) has no field "x": not a struct`},
		{"main.Missing.X", ErrTypeNotFound, `type main.Missing not found in DWARF`},
		{"net/http.notAType.str", ErrTypeNotFound, `type net/http.notAType not found in DWARF`},
	}
	ids := fieldIDs(t, "main.Outer.In.B", "main.Inner.A")
	for _, tt := range tests {
		ids = append(ids, fieldID(t, tt.field))
	}

	got, err := f.Fields(ids)
	var missing *MissingError
	require.ErrorAs(t, err, &missing)
	assert.Len(t, got, 2, "the fields that exist are returned")
	assert.Len(t, missing.Missing, len(tests))
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			err := missing.Missing[fieldID(t, tt.field)]
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.is)
			assert.EqualError(t, err, tt.errMsg)
		})
	}
}

func TestMissingErrorListsFieldsInOrder(t *testing.T) {
	err := &MissingError{Missing: map[offsets.FieldID]error{
		fieldID(t, "net/http.Request.pat"): &fieldError{`net/http.Request has no field "pat"`, ErrFieldNotFound},
		fieldID(t, "a.T.x"):                &fieldError{`type a.T not found in DWARF`, ErrTypeNotFound},
	}}
	want := `2 fields not found: a.T.x: type a.T not found in DWARF; net/http.Request.pat: net/http.Request has no field "pat"`
	for range 10 { // Map order varies between runs.
		assert.Equal(t, want, err.Error())
	}
}

// TestFieldsOfCrossBuiltBinaries reads binaries built for other
// architectures: the reader must not care about the host's.
func TestFieldsOfCrossBuiltBinaries(t *testing.T) {
	amd64Path := probeAMD64.build(t)
	amd64 := runOracle(t, amd64Path)
	ids := keys(amd64.unsafe)
	ids = append(ids, keys(amd64.reflect)...)
	amd64Got := readFields(t, amd64Path, ids)

	t.Run("arm64", func(t *testing.T) {
		got := readFields(t, probeARM64.build(t), ids)
		// Both are 64-bit: same offsets, sizes and types.
		assert.Equal(t, amd64Got, got)
	})

	t.Run("386", func(t *testing.T) {
		path := probe386.build(t)
		got := readFields(t, path, ids)
		// Ptr precedes In: 4-byte pointers move it.
		in := fieldID(t, "main.Outer.In")
		assert.Less(t, got[in].Offset, amd64Got[in].Offset)
		assert.Equal(t, uint64(4), got[fieldID(t, "main.Outer.Ptr")].Size)
		assert.Equal(t, uint64(8), got[fieldID(t, "net/http.Request.ctx")].Size)

		// Linux amd64 usually runs 386 binaries; then the program is its own oracle.
		if _, err := exec.Command(path).Output(); err != nil {
			t.Skipf("cannot run the 386 program here (%v): checked against amd64 only", err)
		}
		want := runOracle(t, path)
		for id, w := range want.unsafe {
			assert.Equal(t, w.Offset, got[id].Offset, "offset of %s", id)
			assert.Equal(t, w.Size, got[id].Size, "size of %s", id)
		}
	})
}

func TestOpenRejectsFilesWithoutGoDWARF(t *testing.T) {
	goBinary := probeAMD64.build(t)
	stripped := program{Source: probeSource, GOARCH: "amd64", LDFlags: "-s -w"}.build(t)
	dir := t.TempDir()

	writeFile := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, data, 0o755))
		return p
	}
	whole, err := os.ReadFile(goBinary)
	require.NoError(t, err)

	tests := []struct {
		name   string
		path   string
		is     error  // Wrapped by the error of Open, when not nil.
		errMsg string // In the error of Open, when not empty.
	}{
		{"stripped Go binary", stripped, ErrNoDWARF, "no DWARF"},
		{"text file", writeFile("notes.txt", []byte("#!/bin/sh\necho hello\n")), ErrNotELF, "not an ELF file"},
		{"empty file", writeFile("empty", nil), ErrNotELF, "not an ELF file"},
		{"Mach-O header", writeFile("macho", []byte{0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1}), ErrNotELF, "not an ELF file"},
		{"first 4 KiB of a Go binary", writeFile("head4k", whole[:4096]), nil, ""},
		{"first half of a Go binary", writeFile("half", whole[:len(whole)/2]), nil, ""},
		{"missing file", filepath.Join(dir, "nonexistent"), os.ErrNotExist, "nonexistent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Open(tt.path)
			if err == nil {
				// A truncation may leave the headers whole; then reading must fail.
				_, err = f.Fields(fieldIDs(t, "main.Outer.In"))
				f.Close()
				require.Error(t, err)
				return
			}
			assert.Contains(t, err.Error(), tt.path, "Open's error names the path")
			if tt.is != nil {
				assert.ErrorIs(t, err, tt.is)
			}
			if tt.errMsg != "" {
				assert.Contains(t, err.Error(), tt.errMsg)
			}
		})
	}
}

func TestFieldsOfCProgram(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skipf("no gcc to build a non-Go ELF: %v", err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "main.c")
	require.NoError(t, os.WriteFile(src, []byte("struct point { int x, y; };\nstruct point p;\nint main(void) { return p.x; }\n"), 0o644))

	build := func(name string, flags ...string) string {
		out := filepath.Join(dir, name)
		cmd := exec.Command(gcc, append(flags, "-o", out, src)...)
		b, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", b)
		return out
	}

	t.Run("without -g", func(t *testing.T) {
		_, err := Open(build("plain", "-g0", "-s"))
		assert.ErrorIs(t, err, ErrNoDWARF)
	})
	t.Run("with -g", func(t *testing.T) {
		f, err := Open(build("debug", "-g"))
		require.NoError(t, err)
		defer f.Close()
		got, err := f.Fields(fieldIDs(t, "main.point.x"))
		assert.Empty(t, got)
		var missing *MissingError
		require.ErrorAs(t, err, &missing)
		assert.ErrorIs(t, missing.Missing[fieldID(t, "main.point.x")], ErrTypeNotFound)
		assert.False(t, errors.Is(err, ErrNoDWARF))
	})
}
