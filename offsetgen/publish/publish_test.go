package publish_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/offsetgen/publish"
	"github.com/offsetdb/offsetdb/offsetgen/publish/githubtest"
	"github.com/offsetdb/offsetdb/offsets"
)

const token = "test-token"

var (
	fCtx  = offsets.FieldID{Package: "net/http", Struct: "Request", Field: "ctx"}
	fGoid = offsets.FieldID{Package: "runtime", Struct: "g", Field: "goid"}
)

// build is one version's outcome for writeDB: goid's offset when ok, or a
// status.
type build struct {
	version string
	goid    uint64
	status  offsets.Status
}

// writeDB writes a std database of builds on amd64 into a new directory.
func writeDB(t *testing.T, builds ...build) string {
	t.Helper()
	tb := offsets.NewTable(offsets.StdModule, []offsets.FieldID{fCtx, fGoid})
	for _, b := range builds {
		switch b.status {
		case "", offsets.StatusOK:
			require.NoError(t, tb.Set("amd64", offsets.Build{
				Coverage: offsets.Coverage{Version: b.version, Status: offsets.StatusOK, Toolchain: b.version},
				Values: map[offsets.FieldID]offsets.Value{
					fCtx:  {Offset: 232, Size: 16, Type: "context.Context"},
					fGoid: {Offset: b.goid, Size: 8, Type: "uint64"},
				},
			}))
		default:
			require.NoError(t, tb.Set("amd64", offsets.Build{Coverage: offsets.Coverage{Version: b.version, Status: b.status, Reason: "proxy answered 404"}}))
		}
	}
	dir := t.TempDir()
	require.NoError(t, offsets.WriteShard(dir, tb.Shard()))
	return dir
}

func diffOf(t *testing.T, oldDir, newDir string) *offsets.Diff {
	t.Helper()
	o, err := offsets.OpenDir(oldDir)
	require.NoError(t, err)
	n, err := offsets.OpenDir(newDir)
	require.NoError(t, err)
	d, err := offsets.DiffDBs(o, n)
	require.NoError(t, err)
	return d
}

func newServer(t *testing.T) *githubtest.Server {
	t.Helper()
	srv := githubtest.New("offsetdb", "offsetdb", token)
	srv.Log = t.Logf
	t.Cleanup(srv.Close)
	return srv
}

func newPublisher(t *testing.T, srv *githubtest.Server, tok string) *publish.Publisher {
	t.Helper()
	p, err := publish.New(publish.Config{
		Owner: srv.Owner, Repo: srv.Repo, Token: tok, APIURL: srv.APIURL(),
		Retry: publish.Retry{Attempts: 4, Backoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, MaxWait: 5 * time.Second},
	})
	require.NoError(t, err)
	return p
}

// update is the usual case: a published go1.22.0 and a new go1.22.1.
func update(t *testing.T) publish.Update {
	oldDir := writeDB(t, build{version: "go1.22.0", goid: 152})
	newDir := writeDB(t, build{version: "go1.22.0", goid: 152}, build{version: "go1.22.1", goid: 152}, build{version: "go1.22.2", status: offsets.StatusUnavailable})
	return publish.Update{Dir: newDir, Old: oldDir, Diff: diffOf(t, oldDir, newDir)}
}

func TestPullRequestIsOpenedOnceAndUpdatedOnRerun(t *testing.T) {
	srv := newServer(t)
	p := newPublisher(t, srv, token)
	u := update(t)
	ctx := context.Background()
	base, _ := srv.Head("main")

	res, err := p.PullRequest(ctx, u)
	require.NoError(t, err)
	assert.True(t, res.Created)
	assert.True(t, res.BranchUpdated)
	assert.Equal(t, 1, res.Number)
	branch := "offsetdb/update-offsets"
	assert.Equal(t, []string{
		"GET /repos/offsetdb/offsetdb/git/ref/heads/main",
		"GET /repos/offsetdb/offsetdb/git/commits/" + base,
		"POST /repos/offsetdb/offsetdb/git/blobs",
		"POST /repos/offsetdb/offsetdb/git/blobs",
		"POST /repos/offsetdb/offsetdb/git/trees",
		"GET /repos/offsetdb/offsetdb/git/ref/heads/" + branch,
		"POST /repos/offsetdb/offsetdb/git/commits",
		"POST /repos/offsetdb/offsetdb/git/refs",
		"GET /repos/offsetdb/offsetdb/pulls",
		"POST /repos/offsetdb/offsetdb/pulls",
	}, srv.Calls())
	for _, name := range []string{"index.json", "std.json"} {
		want, err := os.ReadFile(filepath.Join(u.Dir, name))
		require.NoError(t, err)
		got, ok := srv.File(branch, "data/"+name)
		require.True(t, ok, name)
		assert.Equal(t, string(want), string(got), name)
	}
	_, ok := srv.File(branch, "README.md")
	assert.True(t, ok, "the commit builds on the base tree")
	prs := srv.PullRequests()
	require.Len(t, prs, 1)
	assert.Equal(t, "offsets: add go1.22.1, go1.22.2", prs[0].Title)
	assert.Contains(t, prs[0].Body, "| go1.22.1 | ok |")
	assert.Contains(t, prs[0].Body, "| go1.22.2 | unavailable: proxy answered 404 |")

	t.Run("rerun with the same data edits the pull request", func(t *testing.T) {
		srv.ResetCalls()
		res, err := p.PullRequest(ctx, u)
		require.NoError(t, err)
		assert.False(t, res.Created)
		assert.False(t, res.BranchUpdated, "the branch already holds this tree on this base")
		assert.Equal(t, 1, res.Number)
		calls := srv.Calls()
		assert.Contains(t, calls, "PATCH /repos/offsetdb/offsetdb/pulls/1")
		assert.NotContains(t, calls, "POST /repos/offsetdb/offsetdb/pulls")
		assert.NotContains(t, calls, "POST /repos/offsetdb/offsetdb/git/commits")
		assert.Len(t, srv.PullRequests(), 1)
	})

	t.Run("rerun after the base moved force-updates the branch", func(t *testing.T) {
		newBase := srv.Commit("main", "README.md", []byte("changed\n"))
		srv.ResetCalls()
		res, err := p.PullRequest(ctx, u)
		require.NoError(t, err)
		assert.False(t, res.Created)
		assert.True(t, res.BranchUpdated)
		assert.Contains(t, srv.Calls(), "PATCH /repos/offsetdb/offsetdb/git/refs/heads/"+branch)
		head, parents := srv.Head(branch)
		assert.Equal(t, res.Commit, head)
		assert.Equal(t, []string{newBase}, parents)
		readme, _ := srv.File(branch, "README.md")
		assert.Equal(t, "changed\n", string(readme))
		assert.Len(t, srv.PullRequests(), 1)
	})
}

func TestNothingIsCalledWithoutChange(t *testing.T) {
	srv := newServer(t)
	p := newPublisher(t, srv, token)
	dir := writeDB(t, build{version: "go1.22.0", goid: 152})
	u := publish.Update{Dir: dir, Old: dir, Diff: diffOf(t, dir, dir)}

	pr, err := p.PullRequest(context.Background(), u)
	require.NoError(t, err)
	assert.True(t, pr.NoChange)
	rel, err := p.Release(context.Background(), u, time.Now(), false)
	require.NoError(t, err)
	assert.True(t, rel.NoChange)
	assert.Empty(t, srv.Calls())
}

func TestGateRefusesChangedPublishedValues(t *testing.T) {
	srv := newServer(t)
	p := newPublisher(t, srv, token)
	oldDir := writeDB(t, build{version: "go1.22.0", goid: 152}, build{version: "go1.22.1", goid: 152})
	newDir := writeDB(t, build{version: "go1.22.0", goid: 160}, build{version: "go1.22.1", status: offsets.StatusFailed}, build{version: "go1.22.2", goid: 160})
	u := publish.Update{Dir: newDir, Old: oldDir, Diff: diffOf(t, oldDir, newDir)}
	ctx := context.Background()

	_, err := p.PullRequest(ctx, u)
	require.ErrorIs(t, err, publish.ErrPublishedChanged)
	assert.Contains(t, err.Error(), "std@go1.22.0 (amd64) runtime.g.goid: 152 (8 bytes, uint64) -> 160 (8 bytes, uint64)")
	assert.Contains(t, err.Error(), "std@go1.22.1 (amd64): was ok, now failed")
	assert.Contains(t, err.Error(), "--allow-changes")
	_, err = p.Release(ctx, u, time.Now(), false)
	require.ErrorIs(t, err, publish.ErrPublishedChanged)
	assert.Empty(t, srv.Calls(), "refused before calling GitHub")

	u.AllowChanges = "go1.22.0 was built with a broken toolchain"
	_, err = p.PullRequest(ctx, u)
	require.NoError(t, err)
	prs := srv.PullRequests()
	require.Len(t, prs, 1)
	assert.Contains(t, prs[0].Body, "Allowed with the reason: go1.22.0 was built with a broken toolchain")
	assert.Contains(t, prs[0].Body, "| go1.22.0 | amd64 | `runtime.g.goid` | 152 (8 bytes, uint64) | 160 (8 bytes, uint64) |")
}

func TestErrorsSayWhatToDo(t *testing.T) {
	tests := []struct {
		name   string
		token  string
		repo   string
		fault  func(srv *githubtest.Server)
		target error
		want   string
	}{
		{name: "wrong token", token: "nope", target: publish.ErrUnauthorized, want: "GITHUB_TOKEN rejected (401)"},
		{name: "missing permission", fault: func(srv *githubtest.Server) {
			srv.FailNext("POST", "/git/blobs", http.StatusForbidden, nil, `{"message": "Resource not accessible by integration"}`)
		}, target: publish.ErrForbidden, want: "needs contents: write and pull-requests: write"},
		{name: "unknown repository", repo: "elsewhere", target: publish.ErrNotFound, want: "repository offsetdb/elsewhere or branch main does not exist, or the token cannot see it"},
		{name: "rate limit resets too late", fault: func(srv *githubtest.Server) {
			srv.FailNext("GET", "/git/ref/heads/main", http.StatusForbidden, rateLimited(time.Hour), `{"message": "API rate limit exceeded"}`)
		}, target: publish.ErrRateLimited, want: "run it again later"},
		{name: "5xx that does not go away", fault: func(srv *githubtest.Server) {
			for range 4 {
				srv.FailNext("POST", "/git/trees", http.StatusBadGateway, nil, "")
			}
		}, want: "giving up after 4 attempts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			tok := token
			if tt.token != "" {
				tok = tt.token
			}
			cfg := publish.Config{Owner: srv.Owner, Repo: srv.Repo, Token: tok, APIURL: srv.APIURL(),
				Retry: publish.Retry{Attempts: 4, Backoff: time.Millisecond, MaxWait: 5 * time.Second}}
			if tt.repo != "" {
				cfg.Repo = tt.repo
			}
			p, err := publish.New(cfg)
			require.NoError(t, err)
			if tt.fault != nil {
				tt.fault(srv)
			}
			_, err = p.PullRequest(context.Background(), update(t))
			require.Error(t, err)
			if tt.target != nil {
				assert.ErrorIs(t, err, tt.target)
			}
			assert.Contains(t, err.Error(), tt.want)
			assert.Empty(t, srv.PullRequests())
		})
	}
}

func rateLimited(reset time.Duration) http.Header {
	h := http.Header{}
	h.Set("X-RateLimit-Limit", "5000")
	h.Set("X-RateLimit-Remaining", "0")
	h.Set("X-RateLimit-Reset", fmt.Sprint(time.Now().Add(reset).Unix()))
	return h
}

func TestTransientFailuresAreRetried(t *testing.T) {
	retryAfter := func() http.Header { return http.Header{"Retry-After": {"1"}} }
	none := func() http.Header { return nil }
	// Headers are made when each case starts: a rate-limit reset computed
	// when the table is built would have run down during earlier cases.
	tests := []struct {
		name     string
		method   string
		path     string
		status   int
		header   func() http.Header
		body     string
		minDelay time.Duration
	}{
		{name: "502 then success", method: "POST", path: "/git/trees", status: http.StatusBadGateway, header: none},
		{name: "503 then success", method: "POST", path: "/pulls", status: http.StatusServiceUnavailable, header: none},
		{name: "primary rate limit then success", method: "GET", path: "/git/ref/heads/main", status: http.StatusForbidden,
			header: func() http.Header { return rateLimited(2 * time.Second) }, body: `{"message": "API rate limit exceeded"}`, minDelay: time.Second},
		{name: "secondary rate limit honours Retry-After", method: "POST", path: "/git/blobs", status: http.StatusForbidden, header: retryAfter,
			body:     `{"message": "You have exceeded a secondary rate limit", "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"}`,
			minDelay: time.Second},
		{name: "429 honours Retry-After", method: "POST", path: "/git/commits", status: http.StatusTooManyRequests, header: retryAfter, minDelay: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			p := newPublisher(t, srv, token)
			start := time.Now()
			srv.FailNext(tt.method, tt.path, tt.status, tt.header(), tt.body)
			res, err := p.PullRequest(context.Background(), update(t))
			require.NoError(t, err)
			assert.True(t, res.Created)
			assert.GreaterOrEqual(t, time.Since(start), tt.minDelay)
			n := 0
			for _, c := range srv.Calls() {
				if strings.HasPrefix(c, tt.method+" ") && strings.Contains(c, tt.path) {
					n++
				}
			}
			assert.GreaterOrEqual(t, n, 2, "the failed call was made again: %v", srv.Calls())
			assert.Len(t, srv.PullRequests(), 1)
		})
	}
}

func TestReleaseUploadsToDatedAndRollingReleases(t *testing.T) {
	srv := newServer(t)
	p := newPublisher(t, srv, token)
	u := update(t)
	ctx := context.Background()
	day := time.Date(2026, 3, 4, 23, 30, 0, 0, time.UTC)

	res, err := p.Release(ctx, u, day, false)
	require.NoError(t, err)
	assert.Equal(t, []string{"offsets-2026-03-04", "offsets"}, res.Tags)
	assert.Equal(t, []string{"offsets-2026-03-04.tar.gz", "offsets-2026-03-04.tar.gz.sha256"}, res.Assets)
	firstIDs := map[string][]int64{}
	for _, tag := range res.Tags {
		rel, ok := srv.Release(tag)
		require.True(t, ok, tag)
		assert.Equal(t, "main", rel.Target)
		assets := map[string]*githubtest.Asset{}
		for _, a := range rel.Assets {
			assets[a.Name] = a
			firstIDs[tag] = append(firstIDs[tag], a.ID)
		}
		names := []string{"offsets-2026-03-04.tar.gz", "offsets-2026-03-04.tar.gz.sha256"}
		if tag == "offsets" {
			names = append(names, "offsets-latest.tar.gz", "offsets-latest.tar.gz.sha256")
		}
		require.Len(t, assets, len(names), tag)
		for _, n := range names {
			require.Contains(t, assets, n, tag)
		}
		archive := assets["offsets-2026-03-04.tar.gz"]
		assert.Equal(t, "application/gzip", archive.ContentType)
		digest := sha256.Sum256(archive.Data)
		sumLine := hex.EncodeToString(digest[:]) + "  offsets-2026-03-04.tar.gz\n"
		assert.Equal(t, sumLine, string(assets["offsets-2026-03-04.tar.gz.sha256"].Data))
		assert.Equal(t, res.SHA256, hex.EncodeToString(digest[:]))
		if tag == "offsets" {
			assert.Equal(t, archive.Data, assets["offsets-latest.tar.gz"].Data)
			assert.Equal(t, sumLine, string(assets["offsets-latest.tar.gz.sha256"].Data), "the alias's checksum names the dated archive")
		}
		assert.Contains(t, rel.Body, "| go1.22.1 | ok |")
		files := untar(t, archive.Data)
		want, err := os.ReadFile(filepath.Join(u.Dir, "std.json"))
		require.NoError(t, err)
		assert.Equal(t, string(want), files["data/std.json"])
		assert.Contains(t, files, "data/index.json")
	}

	t.Run("rerun replaces the assets", func(t *testing.T) {
		srv.ResetCalls()
		_, err := p.Release(ctx, u, day, false)
		require.NoError(t, err)
		assert.NotContains(t, srv.Calls(), "POST /repos/offsetdb/offsetdb/releases", "no second release")
		for _, tag := range res.Tags {
			rel, _ := srv.Release(tag)
			require.Len(t, rel.Assets, len(firstIDs[tag]), tag)
			for _, a := range rel.Assets {
				assert.NotContains(t, firstIDs[tag], a.ID, "%s on %s was replaced", a.Name, tag)
			}
		}
	})

	t.Run("the next day gets its own release; the rolling one only the newest", func(t *testing.T) {
		_, err := p.Release(ctx, u, day.AddDate(0, 0, 1), false)
		require.NoError(t, err)
		old, ok := srv.Release("offsets-2026-03-04")
		require.True(t, ok)
		assert.Len(t, old.Assets, 2)
		rolling, _ := srv.Release("offsets")
		var names []string
		for _, a := range rolling.Assets {
			names = append(names, a.Name)
		}
		assert.Equal(t, []string{"offsets-2026-03-05.tar.gz", "offsets-2026-03-05.tar.gz.sha256", "offsets-latest.tar.gz", "offsets-latest.tar.gz.sha256"}, names)
		assert.Contains(t, rolling.Body, "offsets-2026-03-05")
	})
}

func TestUploadRetriedAfterBadGateway(t *testing.T) {
	srv := newServer(t)
	p := newPublisher(t, srv, token)
	srv.FailNext("POST", "/uploads/", http.StatusBadGateway, nil, "")
	_, err := p.Release(context.Background(), update(t), time.Now(), false)
	require.NoError(t, err)
	rel, ok := srv.Release("offsets")
	require.True(t, ok)
	assert.Len(t, rel.Assets, 4)
}

func TestPackArchiveIsDeterministic(t *testing.T) {
	u := update(t)
	day := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)
	a, err := publish.PackArchive(u.Dir, day)
	require.NoError(t, err)
	// A copy of the database written later, elsewhere, packs to the same bytes.
	time.Sleep(10 * time.Millisecond)
	copyDir := t.TempDir()
	for _, n := range []string{"index.json", "std.json"} {
		data, err := os.ReadFile(filepath.Join(u.Dir, n))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(copyDir, n), data, 0o600))
	}
	b, err := publish.PackArchive(copyDir, day)
	require.NoError(t, err)
	assert.Equal(t, a.Data, b.Data)

	zr, err := gzip.NewReader(bytes.NewReader(a.Data))
	require.NoError(t, err)
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		names = append(names, h.Name)
		assert.Equal(t, int64(0), h.ModTime.Unix(), h.Name)
		assert.Equal(t, 0, h.Uid)
		assert.Equal(t, 0, h.Gid)
	}
	assert.Equal(t, []string{"data/", "data/index.json", "data/std.json"}, names)
	assert.True(t, slices.IsSorted(names))
}

func untar(t *testing.T, data []byte) map[string]string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	require.NoError(t, err)
	tr := tar.NewReader(zr)
	files := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		require.NoError(t, err)
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		files[h.Name] = string(b)
	}
}

func TestPullRequestDeletesShardsOfRemovedModules(t *testing.T) {
	srv := newServer(t)
	p := newPublisher(t, srv, token)
	oldDir := writeDB(t, build{version: "go1.22.0", goid: 152})
	other := offsets.NewTable("example.com/lib", []offsets.FieldID{fCtx})
	require.NoError(t, other.Set("amd64", offsets.Build{Coverage: offsets.Coverage{Version: "v1.0.0", Status: offsets.StatusUnavailable, Reason: "gone"}}))
	require.NoError(t, offsets.WriteShard(oldDir, other.Shard()))
	for _, name := range []string{"index.json", "std.json", "example.com_lib.json"} {
		data, err := os.ReadFile(filepath.Join(oldDir, name))
		require.NoError(t, err)
		srv.Commit("main", "data/"+name, data)
	}
	newDir := writeDB(t, build{version: "go1.22.0", goid: 152}, build{version: "go1.22.1", goid: 152})

	_, err := p.PullRequest(context.Background(), publish.Update{Dir: newDir, Old: oldDir, Diff: diffOf(t, oldDir, newDir)})
	require.NoError(t, err)
	assert.Equal(t, []string{"README.md", "data/index.json", "data/std.json"}, srv.Files("offsetdb/update-offsets"))
	assert.Contains(t, srv.PullRequests()[0].Body, "(module removed)")
}
