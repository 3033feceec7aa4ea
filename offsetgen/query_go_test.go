package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/offsets"
)

func TestQueryGoSelectsTheValueForTheTargetsGoRelease(t *testing.T) {
	id := offsets.FieldID{Package: "example.com/rpc", Struct: "Conn", Field: "mu"}
	tb := offsets.NewTable("example.com/rpc", []offsets.FieldID{id})
	require.NoError(t, tb.Set("amd64", offsets.Build{Coverage: offsets.Coverage{Version: "v1.0.0", Status: offsets.StatusOK, Toolchain: "go1.26.8"},
		GoValues: map[offsets.FieldID][]offsets.GoValue{id: {
			{Go: "<=go1.21.13", Value: offsets.Value{Offset: 8, Size: 8, Type: "sync.Mutex"}},
			{Go: ">=go1.26.8", Value: offsets.Value{Offset: 16, Size: 8, Type: "sync.Mutex"}},
		}}}))
	dir := t.TempDir()
	require.NoError(t, offsets.WriteShard(dir, tb.Shard()))

	code, out, stderr := runCLI("query", "--data", dir, "--arch", "amd64", "--go", "1.26.9", "example.com/rpc@v1.0.0", id.String())
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, []string{id.String(), "16", "8", "sync.Mutex"}, strings.Fields(out)[:4])
	assert.Contains(t, out, "targets built with >=go1.26.8")

	code, _, stderr = runCLI("query", "--data", dir, "--arch", "amd64", "example.com/rpc@v1.0.0", id.String())
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "depends on the Go release of the target")

	code, _, _ = runCLI("query", "--data", dir, "--go", "banana", "example.com/rpc@v1.0.0", id.String())
	assert.Equal(t, 2, code)
}
