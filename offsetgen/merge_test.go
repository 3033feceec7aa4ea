package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/offsets"
)

var (
	fieldCtx  = offsets.FieldID{Package: "net/http", Struct: "Request", Field: "ctx"}
	fieldGoid = offsets.FieldID{Package: "runtime", Struct: "g", Field: "goid"}
)

// partial describes one build for partialDB: the goid offset of an ok
// build, or a non-ok status.
type partial struct {
	arch, version string
	goid          uint64
	status        offsets.Status
}

// partialDB writes a std database holding builds into a new directory.
func partialDB(t *testing.T, builds ...partial) string {
	t.Helper()
	tb := offsets.NewTable(offsets.StdModule, []offsets.FieldID{fieldCtx, fieldGoid})
	for _, b := range builds {
		build := offsets.Build{Coverage: offsets.Coverage{Version: b.version, Status: b.status, Reason: "proxy answered 404"}}
		if b.status == "" || b.status == offsets.StatusOK {
			build = offsets.Build{Coverage: offsets.Coverage{Version: b.version, Status: offsets.StatusOK, Toolchain: b.version},
				Values: map[offsets.FieldID]offsets.Value{
					fieldCtx:  {Offset: 232, Size: 16, Type: "context.Context"},
					fieldGoid: {Offset: b.goid, Size: 8, Type: "uint64"},
				}}
		}
		require.NoError(t, tb.Set(b.arch, build))
	}
	dir := t.TempDir()
	require.NoError(t, offsets.WriteShard(dir, tb.Shard()))
	return dir
}

func TestMergeOutputDoesNotDependOnInputOrder(t *testing.T) {
	s1 := partialDB(t, partial{arch: "amd64", version: "go1.21.0", goid: 152}, partial{arch: "amd64", version: "go1.22.0", status: offsets.StatusUnavailable})
	s2 := partialDB(t, partial{arch: "amd64", version: "go1.22.0", goid: 152}, partial{arch: "arm64", version: "go1.22.0", goid: 152})
	s3 := partialDB(t, partial{arch: "amd64", version: "go1.23.0", goid: 160}, partial{arch: "arm64", version: "go1.23.0", status: offsets.StatusFailed})

	var outputs [][]byte
	for _, order := range [][]string{{s1, s2, s3}, {s3, s1, s2}, {s2, s3, s1}} {
		out := filepath.Join(t.TempDir(), "merged")
		code, stdout, stderr := runCLI(append([]string{"merge", "--out", out}, order...)...)
		require.Equal(t, 0, code, stderr)
		assert.Contains(t, stdout, "std/amd64: 3 ok, 0 unavailable, 0 failed (from 3 inputs)")
		assert.Contains(t, stdout, "std/arm64: 1 ok, 0 unavailable, 1 failed")
		require.NoError(t, offsets.Verify(os.DirFS(out)))
		data, err := os.ReadFile(filepath.Join(out, "std.json"))
		require.NoError(t, err)
		outputs = append(outputs, data)
	}
	assert.Equal(t, string(outputs[0]), string(outputs[1]))
	assert.Equal(t, string(outputs[0]), string(outputs[2]))
}

func TestMergeConflictNamesBothSources(t *testing.T) {
	a := partialDB(t, partial{arch: "amd64", version: "go1.22.0", goid: 152})
	b := partialDB(t, partial{arch: "amd64", version: "go1.22.0", goid: 160})
	out := filepath.Join(t.TempDir(), "merged")
	code, _, stderr := runCLI("merge", "--out", out, a, b)
	require.Equal(t, 1, code)
	for _, want := range []string{"std@go1.22.0 (amd64) runtime.g.goid", "152 (8 bytes, uint64) in " + a, "160 (8 bytes, uint64) in " + b} {
		assert.Contains(t, stderr, want)
	}
	_, err := os.Stat(out)
	assert.True(t, os.IsNotExist(err), "nothing written on conflict")
}

func TestMergeRefusesToOverwriteAnotherDatabase(t *testing.T) {
	a := partialDB(t, partial{arch: "amd64", version: "go1.22.0", goid: 152})
	existing := partialDB(t, partial{arch: "amd64", version: "go1.21.0", goid: 152})
	code, _, stderr := runCLI("merge", "--out", existing, a)
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "already holds a database that is not an input")

	// Listed as an input, it is merged into.
	code, _, stderr = runCLI("merge", a, "--out", existing, existing)
	require.Equal(t, 0, code, stderr)
	code, out, stderr := runCLI("versions", "--data", existing, "std")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "go1.21.0\ngo1.22.0\n", out)
}

func TestDiffReportsChanges(t *testing.T) {
	old := partialDB(t,
		partial{arch: "amd64", version: "go1.22.0", goid: 152},
		partial{arch: "amd64", version: "go1.22.1", status: offsets.StatusFailed},
		partial{arch: "amd64", version: "go1.22.2", goid: 152})
	cur := partialDB(t,
		partial{arch: "amd64", version: "go1.22.0", goid: 160},
		partial{arch: "amd64", version: "go1.22.1", goid: 160},
		partial{arch: "amd64", version: "go1.22.3", goid: 160},
		partial{arch: "arm64", version: "go1.22.3", status: offsets.StatusUnavailable})

	code, out, stderr := runCLI("diff", old, cur)
	require.Equal(t, 0, code, stderr)
	for _, want := range []string{
		"std: 2 added, 1 removed, 1 status changes, 1 changed values",
		"added    amd64 go1.22.3 ok",
		"added    arm64 go1.22.3 unavailable: proxy answered 404",
		"removed  amd64 go1.22.2 (was ok)",
		"status   amd64 go1.22.1 failed -> ok",
		"changed  amd64 go1.22.0 runtime.g.goid 152 (8 bytes, uint64) -> 160 (8 bytes, uint64)",
	} {
		assert.Contains(t, out, want)
	}

	code, out, stderr = runCLI("diff", "--json", old, cur)
	require.Equal(t, 0, code, stderr)
	var d offsets.Diff
	require.NoError(t, json.Unmarshal([]byte(out), &d))
	require.Len(t, d.Modules, 1)
	assert.Len(t, d.Modules[0].ValueChanges, 1)

	code, _, stderr = runCLI("diff", old, cur, "--fail-on-changed-values")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "values changed")
}

func TestDiffAgainstAnEmptyDirectory(t *testing.T) {
	cur := partialDB(t, partial{arch: "amd64", version: "go1.22.0", goid: 152})
	code, out, stderr := runCLI("diff", "--fail-on-changed-values", t.TempDir(), cur)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "std (new module): 1 added")

	code, _, _ = runCLI("diff", filepath.Join(t.TempDir(), "missing"), cur)
	assert.Equal(t, 1, code, "a mistyped OLD is an error, not an empty database")

	code, out, _ = runCLI("diff", cur, cur)
	assert.Equal(t, 0, code)
	assert.Equal(t, "no changes\n", out)
}

// TestMergeTakesAModuleFromOneInput: --take std=DIR installs DIR's std shard
// (here one built for another field set, which a merge refuses) and keeps
// the other modules of every input.
func TestMergeTakesAModuleFromOneInput(t *testing.T) {
	published := partialDB(t, partial{arch: "amd64", version: "go1.22.0", goid: 152})
	exp := offsets.NewTable("std+boringcrypto", []offsets.FieldID{fieldGoid})
	require.NoError(t, exp.Set("amd64", offsets.Build{Coverage: offsets.Coverage{Version: "go1.22.0", Status: offsets.StatusOK, Toolchain: "go1.22.0"},
		Values: map[offsets.FieldID]offsets.Value{fieldGoid: {Offset: 152, Size: 8, Type: "uint64"}}}))
	require.NoError(t, offsets.WriteShard(published, exp.Shard()))

	regenerated := t.TempDir()
	std := offsets.NewTable(offsets.StdModule, []offsets.FieldID{fieldGoid}) // another field set
	for _, v := range []string{"go1.22.0", "go1.22.1"} {
		require.NoError(t, std.Set("amd64", offsets.Build{Coverage: offsets.Coverage{Version: v, Status: offsets.StatusOK, Toolchain: v},
			Values: map[offsets.FieldID]offsets.Value{fieldGoid: {Offset: 160, Size: 8, Type: "uint64"}}}))
	}
	require.NoError(t, offsets.WriteShard(regenerated, std.Shard()))

	code, _, stderr := runCLI("merge", "--out", published, published, regenerated)
	require.Equal(t, 1, code, "two field sets of std do not merge")
	assert.Contains(t, stderr, "field set")

	code, _, stderr = runCLI("merge", "--take", "std="+t.TempDir(), "--out", published, published, regenerated)
	assert.Equal(t, 2, code, "--take names an input")
	assert.Contains(t, stderr, "is not one of the inputs")

	code, _, stderr = runCLI("merge", "--take", "std="+regenerated, "--out", published, published, regenerated)
	require.Equal(t, 0, code, stderr)
	db, err := offsets.OpenDir(published)
	require.NoError(t, err)
	assert.Equal(t, []string{offsets.StdModule, "std+boringcrypto"}, db.Modules())
	r, err := db.Lookup(offsets.StdModule, "go1.22.1", "amd64", fieldGoid)
	require.NoError(t, err)
	assert.Equal(t, uint64(160), r.Offset, "std comes from the regenerated input only")
	_, err = db.Lookup(offsets.StdModule, "go1.22.0", "amd64", fieldCtx)
	assert.ErrorIs(t, err, offsets.ErrUnknownField, "with its field set")
	_, err = db.Lookup("std+boringcrypto", "go1.22.0", "amd64", fieldGoid)
	assert.NoError(t, err, "the other input's modules are kept")
}
