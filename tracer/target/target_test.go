package target

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/gobinary"
	"github.com/offsetdb/offsetdb/goversion"
	"github.com/offsetdb/offsetdb/offsets"
	nethttpclient "github.com/offsetdb/offsetdb/tracer/instrumentation/nethttp/client"
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

// TestLinksTellsAnUnusedStdFunctionFromAMissingOne builds two programs with
// the installed Go: a server that makes no HTTP calls (the linker drops
// (*http.Transport).roundTrip) does not link the net/http client
// instrumentation; one that calls http.Get does.
func TestLinksTellsAnUnusedStdFunctionFromAMissingOne(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: builds two programs")
	}
	build := func(name, src string) *gobinary.Binary {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/"+name+"\n\ngo 1.21\n"), 0o644))
		out := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-o", out, ".")
		cmd.Dir = dir
		msg, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", msg)
		bin, err := gobinary.Open(out)
		require.NoError(t, err)
		t.Cleanup(func() { bin.Close() })
		return bin
	}
	server := build("server", `package main

import "net/http"

func main() { http.ListenAndServe("127.0.0.1:0", http.NotFoundHandler()) }
`)
	caller := build("caller", `package main

import "net/http"

func main() { http.Get("http://127.0.0.1:1/") }
`)
	client := nethttpclient.Instrumentation()
	require.True(t, server.HasPackage("net/http"), "the server links net/http")
	assert.False(t, Links(server, client), "a server without HTTP calls does not use the client instrumentation")
	assert.True(t, Links(caller, client), "a program that calls http.Get does")
}
