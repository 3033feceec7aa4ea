package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/offsets"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// testDB writes a small database: go1.22.0 and go1.22.1 built, go1.22.2
// unavailable, on amd64 only.
func testDB(t *testing.T) string {
	t.Helper()
	ctx := offsets.FieldID{Package: "net/http", Struct: "Request", Field: "ctx"}
	pat := offsets.FieldID{Package: "net/http", Struct: "Request", Field: "Pattern"}
	tb := offsets.NewTable(offsets.StdModule, []offsets.FieldID{ctx, pat})
	v := offsets.Value{Offset: 232, Size: 16, Type: "context.Context"}
	for _, ver := range []string{"go1.22.0", "go1.22.1"} {
		require.NoError(t, tb.Set("amd64", offsets.Build{Coverage: offsets.Coverage{Version: ver, Status: offsets.StatusOK, Toolchain: ver},
			Values: map[offsets.FieldID]offsets.Value{ctx: v}}))
	}
	require.NoError(t, tb.Set("amd64", offsets.Build{Coverage: offsets.Coverage{Version: "go1.22.2", Status: offsets.StatusUnavailable, Reason: "proxy answered 403"}}))
	dir := t.TempDir()
	require.NoError(t, offsets.WriteShard(dir, tb.Shard()))
	return dir
}

func TestQueryPrintsOneLinePerField(t *testing.T) {
	dir := testDB(t)
	code, out, errOut := runCLI("query", "--data", dir, "--arch", "amd64", "std@1.22.1", "net/http.Request.ctx")
	require.Equal(t, 0, code, errOut)
	fields := strings.Fields(out)
	require.GreaterOrEqual(t, len(fields), 5, out)
	assert.Equal(t, []string{"net/http.Request.ctx", "232", "16", "context.Context", "database"}, fields[:5])
	assert.Contains(t, out, "go1.22.0..go1.22.1")
}

func TestQueryFlagsAfterArguments(t *testing.T) {
	dir := testDB(t)
	code, out, errOut := runCLI("query", "std@go1.22.0", "net/http.Request.ctx", "--data", dir, "--json", "--arch=amd64")
	require.Equal(t, 0, code, errOut)
	var res []fieldResult
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Len(t, res, 1)
	assert.Equal(t, uint64(232), res[0].Offset)
}

func TestQueryFailsClearly(t *testing.T) {
	dir := testDB(t)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"newer version", []string{"std@1.22.9", "net/http.Request.ctx"}, 1, "offsetgen generate"},
		{"unavailable version", []string{"std@1.22.2", "net/http.Request.ctx"}, 1, "proxy answered 403"},
		{"absent field", []string{"std@1.22.1", "net/http.Request.Pattern"}, 1, "does not exist in this version"},
		{"untracked field", []string{"std@1.22.1", "net/http.Request.Nope"}, 1, "not tracked"},
		{"unknown module", []string{"example.com/x@v1.0.0", "a.B.c"}, 1, "not in database"},
		{"no version", []string{"std", "net/http.Request.ctx"}, 2, "MODULE@VERSION"},
		{"bad field", []string{"std@1.22.1", "nonsense"}, 2, "invalid field"},
		{"bad version", []string{"std@banana", "net/http.Request.ctx"}, 1, "invalid Go version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCLI(append([]string{"query", "--data", dir, "--arch", "amd64"}, tt.args...)...)
			assert.Equal(t, tt.code, code)
			assert.Contains(t, errOut, tt.want)
		})
	}
}

func TestQueryInterpolatesOnlyWhenAsked(t *testing.T) {
	// go1.22.2 is unavailable and nothing newer is built: no interpolation.
	dir := testDB(t)
	code, _, _ := runCLI("query", "--data", dir, "--arch", "amd64", "--interpolate", "std@1.22.2", "net/http.Request.ctx")
	assert.Equal(t, 1, code)
}

func TestVersionsMarksUnavailable(t *testing.T) {
	code, out, errOut := runCLI("versions", "--data", testDB(t), "std")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "go1.22.0\ngo1.22.1\ngo1.22.2\tunavailable: proxy answered 403\n", out)
}

func TestVerifyReportsFaultsWithExitCode(t *testing.T) {
	dir := testDB(t)
	code, out, _ := runCLI("verify", "--data", dir)
	require.Equal(t, 0, code)
	assert.Contains(t, out, "std/amd64: 2 ok, 1 unavailable, 0 failed")

	p := filepath.Join(dir, "std.json")
	data, err := os.ReadFile(p)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p, bytes.Replace(data, []byte(`"offset": 232`), []byte(`"offset": 240`), 1), 0o644))
	code, _, errOut := runCLI("verify", "--data", dir)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "sha256")
}

// TestCommittedDatabaseVerifies is the CI gate on data/: the embedded copy
// is what users get.
func TestCommittedDatabaseVerifies(t *testing.T) {
	code, out, errOut := runCLI("verify")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "std/amd64:")
	assert.Contains(t, out, "std/arm64:")
}

func TestBinaryReadsDWARF(t *testing.T) {
	dir := t.TempDir()
	src := "package main\n\ntype T struct {\n\tA int8\n\tB int64\n}\n\nvar V T\n\nfunc main() { println(V.B) }\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/bin\n\ngo 1.22\n"), 0o644))
	cmd := exec.Command("go", "build", "-o", "prog", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))

	code, stdout, errOut := runCLI("binary", "--json", filepath.Join(dir, "prog"), "main.T.B", "main.T.C")
	assert.Equal(t, 1, code, "one field is missing")
	assert.Contains(t, errOut, "C")
	var res []fieldResult
	require.NoError(t, json.Unmarshal([]byte(stdout), &res))
	require.Len(t, res, 2)
	assert.Equal(t, uint64(8), res[0].Offset)
	assert.Equal(t, "int64", res[0].Type)
	assert.NotEmpty(t, res[1].Error)

	code, _, errOut = runCLI("binary", filepath.Join(dir, "main.go"), "main.T.B")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "ELF")
}

func TestUsageErrors(t *testing.T) {
	code, _, errOut := runCLI("frobnicate")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "unknown command")
	code, _, errOut = runCLI("generate", "--arch", "mips")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "supported are amd64 and arm64")
	code, _, _ = runCLI()
	assert.Equal(t, 2, code)
}

// TestReadmeCoverageTableIsFresh: the README's compatibility table is the
// one the embedded database yields (make offsets rewrites it).
func TestReadmeCoverageTableIsFresh(t *testing.T) {
	code, want, errOut := runCLI("coverage")
	require.Equal(t, 0, code, errOut)
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	assert.Contains(t, string(readme), coverageBegin+"\n"+want+coverageEnd, "README coverage table is stale: run make offsets")
}

func TestCoverageTableCountsModulesAndOlderGoBuilds(t *testing.T) {
	dir := testDB(t)
	id := offsets.FieldID{Package: "example.com/lib", Struct: "Conn", Field: "id"}
	tb := offsets.NewTable("example.com/lib", []offsets.FieldID{id})
	v := offsets.Value{Offset: 8, Size: 4, Type: "uint32"}
	for _, arch := range []string{"amd64", "arm64"} {
		require.NoError(t, tb.Set(arch, offsets.Build{Coverage: offsets.Coverage{Version: "v1.0.0", Status: offsets.StatusOK, Toolchain: "go1.17.13"},
			Values: map[offsets.FieldID]offsets.Value{id: v}}))
		require.NoError(t, tb.Set(arch, offsets.Build{Coverage: offsets.Coverage{Version: "v1.1.0", Status: offsets.StatusOK, Toolchain: "go1.26.8"},
			GoValues: map[offsets.FieldID][]offsets.GoValue{id: {{Go: "<=go1.21.13", Value: v}, {Go: ">=go1.26.8", Value: offsets.Value{Offset: 16, Size: 4, Type: "uint32"}}}}}))
	}
	require.NoError(t, tb.Set("amd64", offsets.Build{Coverage: offsets.Coverage{Version: "v1.2.0", Status: offsets.StatusFailed, Toolchain: "go1.17.13", Reason: "syntax error"}}))
	require.NoError(t, offsets.WriteShard(dir, tb.Shard()))

	code, out, errOut := runCLI("coverage", "--data", dir)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "| 1.22 | 1.22.0, 1.22.1 |", "the std table comes first")
	assert.Contains(t, out, "| example.com/lib | v1.0.0 … v1.1.0 | 2 | 2 | 1 | 0 | 1 | 1 |")
}

func TestCoverageTableCountsPerLine(t *testing.T) {
	code, out, errOut := runCLI("coverage", "--data", testDB(t))
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "| 1.22 | 1.22.0, 1.22.1 | 2 | 1 | 0 |")
	assert.Contains(t, out, "| **all** | | **2** |")
}

// TestCoverageTableComparesExperimentsWithTheDefaultBuild: the
// GOEXPERIMENT table says which builds differ from the default build of
// the same release, and which fields.
func TestCoverageTableComparesExperimentsWithTheDefaultBuild(t *testing.T) {
	dir := testDB(t)
	ctx := offsets.FieldID{Package: "net/http", Struct: "Request", Field: "ctx"}
	pat := offsets.FieldID{Package: "net/http", Struct: "Request", Field: "Pattern"}
	write := func(module string, values map[string]offsets.Value) {
		tb := offsets.NewTable(module, []offsets.FieldID{ctx, pat})
		for ver, v := range values {
			require.NoError(t, tb.Set("amd64", offsets.Build{Coverage: offsets.Coverage{Version: ver, Status: offsets.StatusOK, Toolchain: ver},
				Values: map[offsets.FieldID]offsets.Value{ctx: v}}))
		}
		require.NoError(t, tb.Set("amd64", offsets.Build{Coverage: offsets.Coverage{Version: "go1.21.0", Status: offsets.StatusFailed, Reason: "go: unknown GOEXPERIMENT"}}))
		require.NoError(t, offsets.WriteShard(dir, tb.Shard()))
	}
	same := offsets.Value{Offset: 232, Size: 16, Type: "context.Context"} // testDB's
	write("std+boringcrypto", map[string]offsets.Value{"go1.22.0": same, "go1.22.1": same})
	write("std+noswissmap", map[string]offsets.Value{"go1.22.0": same, "go1.22.1": {Offset: 240, Size: 16, Type: "context.Context"}})
	code, out, errOut := runCLI("coverage", "--data", dir)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "| boringcrypto | 1.22.0, 1.22.1 | 2 | 0 | none: same offsets in all 2 builds compared | 1.21.0 |")
	assert.Contains(t, out, "| noswissmap | 1.22.0, 1.22.1 | 2 | 0 | 1 of 2 builds differ: 1.22.1/amd64: net/http.Request.ctx | 1.21.0 |")
	assert.NotContains(t, out, "| std+", "experiment shards are not listed as modules")
}
