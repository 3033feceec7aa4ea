package target

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/gobinary"
	"github.com/offsetdb/offsetdb/goversion"
	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/resolve"
)

func TestUnsupportedNamesTheReason(t *testing.T) {
	tests := []struct {
		name string
		bin  *gobinary.Binary
		want string
	}{
		{"before the database", &gobinary.Binary{Arch: "amd64", GoVersion: goversion.MustParse("go1.11.13")}, "releases before go1.12 are not traced"},
		{"stack ABI on arm64", &gobinary.Binary{Arch: "arm64", GoVersion: goversion.MustParse("go1.17.13")}, ""},
		{"other GOARCH", &gobinary.Binary{Arch: "riscv64", GoVersion: goversion.MustParse("go1.22.0")}, "riscv64 is not supported"},
		{"supported", &gobinary.Binary{Arch: "amd64", GoVersion: goversion.MustParse("go1.17")}, ""},
		{"devel build", &gobinary.Binary{Arch: "amd64", GoVersionErr: goversion.ErrDevel}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := unsupported(tt.bin)
			if tt.want == "" {
				assert.Empty(t, got)
				return
			}
			assert.Contains(t, got, tt.want)
		})
	}
}

func TestDisabledStringNamesFieldsAndReasons(t *testing.T) {
	d := Disabled{
		Name:   "net/http server",
		Reason: "1 field(s) unknown for go1.99.1 amd64; to fix: run offsetgen generate --versions 1.99.1",
		Missing: []resolve.Field{{
			ID:     offsets.FieldID{Package: "net/http", Struct: "Request", Field: "Method"},
			Status: resolve.Unresolved,
			Err:    errors.New("database: not in database; binary: no DWARF"),
		}},
	}
	s := d.String()
	assert.Contains(t, s, "net/http server disabled")
	assert.Contains(t, s, "net/http.Request.Method (unresolved: database: not in database; binary: no DWARF)")
	assert.Contains(t, s, "offsetgen generate --versions 1.99.1")
}

func TestNewPlanRejectsNonGoFiles(t *testing.T) {
	p := filepath.Join(t.TempDir(), "script.sh")
	require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\necho hi\n"), 0o755))
	_, err := NewPlan(p, &resolve.Resolver{}, nil)
	require.Error(t, err)
	assert.ErrorIs(t, err, gobinary.ErrNotELF)
}
