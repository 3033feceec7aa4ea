package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLocalWritesShardThatQueryReads(t *testing.T) {
	mod := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module example.com/shop\n\ngo 1.21\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(mod, "cart.go"), []byte("package shop\n\ntype Cart struct {\n\tOwner string\n\titems []int\n}\n"), 0o644))
	fieldsFile := filepath.Join(t.TempDir(), "shop.fields")
	require.NoError(t, os.WriteFile(fieldsFile, []byte("# shop fields\nexample.com/shop.Cart.items\n"), 0o644))
	out := testDB(t) // a database with std in it already
	std, err := os.ReadFile(filepath.Join(out, "std.json"))
	require.NoError(t, err)

	code, stdout, stderr := runCLI("local", "--module", mod, "--fields", fieldsFile, "--version", "v0.3.0", "--arch", "amd64", "--out", out, "example.com/shop.Cart.Owner")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "example.com/shop@v0.3.0: 2 fields for amd64")

	code, stdout, stderr = runCLI("query", "--data", out, "--arch", "amd64", "example.com/shop@v0.3.0", "example.com/shop.Cart.items", "example.com/shop.Cart.Owner")
	require.Equal(t, 0, code, stderr)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	require.Len(t, lines, 2, stdout)
	assert.Equal(t, []string{"example.com/shop.Cart.items", "16", "24", "[]int"}, strings.Fields(lines[0])[:4])
	assert.Equal(t, []string{"example.com/shop.Cart.Owner", "0", "16", "string"}, strings.Fields(lines[1])[:4])

	after, err := os.ReadFile(filepath.Join(out, "std.json"))
	require.NoError(t, err)
	assert.Equal(t, string(std), string(after), "other shards are kept as they were")
	code, _, stderr = runCLI("verify", "--data", out)
	assert.Equal(t, 0, code, stderr)
}

func TestLocalBadInputExitsNonZero(t *testing.T) {
	notModule := t.TempDir()
	code, _, stderr := runCLI("local", "--module", notModule, "--arch", "amd64", "--out", t.TempDir(), "example.com/shop.Cart.items")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "has no go.mod")

	code, _, stderr = runCLI("local", "--module", notModule, "--out", t.TempDir())
	assert.Equal(t, 2, code, "no fields is a usage error")
	assert.Contains(t, stderr, "no fields")

	code, _, _ = runCLI("local", "example.com/shop.Cart.items")
	assert.Equal(t, 2, code, "--module is required")
}
