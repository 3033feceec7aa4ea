package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/offsetgen/publish/githubtest"
	"github.com/offsetdb/offsetdb/offsets"
)

func fakeGitHub(t *testing.T) *githubtest.Server {
	t.Helper()
	srv := githubtest.New("offsetdb", "offsetdb", "secret")
	srv.Log = t.Logf
	t.Cleanup(srv.Close)
	t.Setenv("GITHUB_TOKEN", "secret")
	t.Setenv("GITHUB_REPOSITORY", "offsetdb/offsetdb")
	t.Setenv("GITHUB_API_URL", srv.APIURL())
	t.Setenv("GITHUB_BASE_REF", "")
	t.Setenv("GITHUB_RUN_ID", "")
	return srv
}

func TestPublishPullRequestAndRelease(t *testing.T) {
	srv := fakeGitHub(t)
	old := partialDB(t, partial{arch: "amd64", version: "go1.22.0", goid: 152})
	cur := partialDB(t, partial{arch: "amd64", version: "go1.22.0", goid: 152}, partial{arch: "amd64", version: "go1.22.1", goid: 152})

	code, out, stderr := runCLI("publish", "--mode", "pr", "--old", old, "--data", cur)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "opened pull request #1")
	code, out, stderr = runCLI("publish", "--mode", "pr", "--old", old, "--data", cur)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "updated pull request #1")
	require.Len(t, srv.PullRequests(), 1)
	assert.Equal(t, "offsets: add go1.22.1", srv.PullRequests()[0].Title)

	code, out, stderr = runCLI("publish", "--mode", "release", "--old", old, "--data", cur, "--date", "2026-03-04")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "released offsets-2026-03-04.tar.gz, offsets-2026-03-04.tar.gz.sha256 to offsets-2026-03-04, offsets")
	_, ok := srv.Release("offsets-2026-03-04")
	assert.True(t, ok)
}

func TestPublishNoChangeCallsNothing(t *testing.T) {
	srv := fakeGitHub(t)
	db := partialDB(t, partial{arch: "amd64", version: "go1.22.0", goid: 152})
	for _, mode := range []string{"pr", "release"} {
		code, out, stderr := runCLI("publish", "--mode", mode, "--old", db, "--data", db)
		require.Equal(t, 0, code, stderr)
		assert.Contains(t, out, "no change")
	}
	assert.Empty(t, srv.Calls())
}

func TestPublishSafetyGate(t *testing.T) {
	srv := fakeGitHub(t)
	old := partialDB(t, partial{arch: "amd64", version: "go1.22.0", goid: 152})
	cur := partialDB(t, partial{arch: "amd64", version: "go1.22.0", goid: 160})
	for _, mode := range []string{"pr", "release"} {
		code, _, stderr := runCLI("publish", "--mode", mode, "--old", old, "--data", cur)
		assert.Equal(t, 1, code)
		assert.Contains(t, stderr, "refusing to publish")
		assert.Contains(t, stderr, "std@go1.22.0 (amd64) runtime.g.goid: 152 (8 bytes, uint64) -> 160 (8 bytes, uint64)")
	}
	assert.Empty(t, srv.Calls())

	code, _, stderr := runCLI("publish", "--mode", "pr", "--old", old, "--data", cur, "--allow-changes", "toolchain bug fixed")
	require.Equal(t, 0, code, stderr)
	require.Len(t, srv.PullRequests(), 1)
	assert.Contains(t, srv.PullRequests()[0].Body, "toolchain bug fixed")
}

func TestPublishUsageErrors(t *testing.T) {
	fakeGitHub(t)
	db := partialDB(t, partial{arch: "amd64", version: "go1.22.0", goid: 152, status: offsets.StatusOK})
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no mode", []string{"--old", db, "--data", db}, "--mode must be pr or release"},
		{"no old", []string{"--mode", "pr", "--data", db}, "--old DIR"},
		{"bad repo", []string{"--mode", "pr", "--old", db, "--data", db, "--repo", "nope"}, "want owner/name"},
		{"bad date", []string{"--mode", "release", "--old", db, "--data", db, "--date", "yesterday"}, "--date"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(append([]string{"publish"}, tt.args...)...)
			assert.Equal(t, 2, code)
			assert.Contains(t, stderr, tt.want)
		})
	}
}
