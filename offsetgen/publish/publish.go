// Package publish puts a freshly generated offset database on GitHub: as a
// pull request that updates the repository's data/ directory, and as
// release assets (a deterministic tar.gz and its sha256) on a dated release
// and on a rolling one.
//
// Every operation is idempotent: running it again with the same database
// updates the same branch, pull request and releases instead of creating new
// ones. Calls that GitHub rate-limits (403 or 429 with rate-limit headers) or
// that fail with a 5xx are retried with exponential backoff, waiting for the
// rate-limit reset or Retry-After when GitHub gives one, up to a bound.
// Nothing is published when it would change a value already published,
// unless the caller gives a reason (see Gate).
package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-github/v57/github"

	"github.com/offsetdb/offsetdb/offsets"
)

var (
	// ErrUnauthorized reports a token GitHub does not accept (401).
	ErrUnauthorized = errors.New("GITHUB_TOKEN rejected")
	// ErrForbidden reports a token that may not do what was asked (403).
	ErrForbidden = errors.New("GITHUB_TOKEN lacks permission")
	// ErrNotFound reports a repository, branch or object GitHub does not
	// show to this token (404): it does not exist or the token cannot see it.
	ErrNotFound = errors.New("not found")
	// ErrRateLimited reports a rate limit that did not lift within the
	// time Retry.MaxWait allows.
	ErrRateLimited = errors.New("rate limited by GitHub")
)

// Config says where to publish and how patiently.
type Config struct {
	Owner, Repo string
	// Base is the branch pull requests target and releases are tagged on.
	Base string
	// Branch is the branch the pull request is made from; it is
	// force-updated on every run.
	Branch string
	// Path is the database's directory inside the repository ("data").
	Path string
	// Token authenticates every call (GITHUB_TOKEN).
	Token string
	// APIURL is the REST API's base URL ("https://api.github.com/").
	APIURL string
	// HTTPClient carries the calls; nil means one with a 2-minute timeout.
	HTTPClient *http.Client
	// RunURL, when set, is linked from pull request bodies and release notes
	// (the workflow run that produced them).
	RunURL string
	Log    *slog.Logger
	Retry  Retry
}

// Retry bounds how calls are retried.
type Retry struct {
	// Attempts is the most tries of one call (default 6).
	Attempts int
	// Backoff is the first wait after a 5xx or network error (default 1s);
	// it doubles on each retry up to MaxBackoff (default 30s).
	Backoff, MaxBackoff time.Duration
	// MaxWait is the longest rate-limit wait honoured (default 5m). A limit
	// that resets later fails the call with ErrRateLimited: run again later.
	MaxWait time.Duration
}

// Publisher publishes databases to one GitHub repository.
type Publisher struct {
	cfg    Config
	client *github.Client
	log    *slog.Logger
}

// New returns a Publisher for cfg, filling in defaults.
func New(cfg Config) (*Publisher, error) {
	if cfg.Owner == "" || cfg.Repo == "" {
		return nil, errors.New("publish: repository not set (owner/name)")
	}
	if cfg.Token == "" {
		return nil, errors.New("publish: no token: set GITHUB_TOKEN")
	}
	if cfg.Base == "" {
		cfg.Base = "main"
	}
	if cfg.Branch == "" {
		cfg.Branch = "offsetdb/update-offsets"
	}
	if cfg.Path == "" {
		cfg.Path = "data"
	}
	if cfg.APIURL == "" {
		cfg.APIURL = "https://api.github.com/"
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 2 * time.Minute}
	}
	r := &cfg.Retry
	if r.Attempts <= 0 {
		r.Attempts = 6
	}
	if r.Backoff <= 0 {
		r.Backoff = time.Second
	}
	if r.MaxBackoff <= 0 {
		r.MaxBackoff = 30 * time.Second
	}
	if r.MaxWait <= 0 {
		r.MaxWait = 5 * time.Minute
	}
	base, err := url.Parse(cfg.APIURL)
	if err != nil {
		return nil, fmt.Errorf("publish: API URL %q: %w", cfg.APIURL, err)
	}
	if !strings.HasSuffix(base.Path, "/") {
		base.Path += "/"
	}
	c := github.NewClient(cfg.HTTPClient).WithAuthToken(cfg.Token)
	c.BaseURL = base
	c.UserAgent = "offsetdb-publish"
	return &Publisher{cfg: cfg, client: c, log: cfg.Log}, nil
}

// Update is a new database to publish and how it differs from the one
// already published.
type Update struct {
	// Dir holds the new database.
	Dir string
	// Old holds the published database (the base branch's data/), used to
	// find files to delete; it may be empty or absent on the first run.
	Old string
	// Diff is offsets.DiffDBs(old, new).
	Diff *offsets.Diff
	// AllowChanges, when not empty, is the reason published values may
	// change; it goes into the pull request body and the release notes.
	AllowChanges string
}

// file is one file of a database, by its path in the repository.
type file struct {
	path string
	data []byte
}

// databaseFiles reads the database in dir: the index and every shard it
// lists, sorted by path. The database must verify.
func databaseFiles(dir string) ([]file, error) {
	fsys := os.DirFS(dir)
	if err := offsets.Verify(fsys); err != nil {
		return nil, fmt.Errorf("database %s is not sound:\n%w", dir, err)
	}
	ix, err := offsets.ReadIndex(fsys)
	if err != nil {
		return nil, err
	}
	names := []string{offsets.IndexFile}
	for _, e := range ix.Shards {
		names = append(names, e.File)
	}
	var files []file
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		files = append(files, file{path: n, data: data})
	}
	sortFiles(files)
	return files, nil
}

// call runs one API call, retrying it as Retry allows, and turns the final
// error into one that says what to do.
func call[T any](ctx context.Context, p *Publisher, what string, fn func() (T, *github.Response, error)) (T, error) {
	backoff := p.cfg.Retry.Backoff
	for attempt := 1; ; attempt++ {
		v, resp, err := fn()
		if err == nil {
			return v, nil
		}
		wait, retryable := retryWait(resp, err, backoff)
		if !retryable || ctx.Err() != nil {
			return v, fmt.Errorf("%s: %w", what, p.explain(resp, err))
		}
		if attempt >= p.cfg.Retry.Attempts {
			return v, fmt.Errorf("%s: giving up after %d attempts: %w", what, attempt, p.explain(resp, err))
		}
		if wait > p.cfg.Retry.MaxWait {
			return v, fmt.Errorf("%s: %w for %s more (this command waits at most %s); run it again later: %w",
				what, ErrRateLimited, wait.Round(time.Second), p.cfg.Retry.MaxWait, err)
		}
		p.log.Warn("GitHub call failed; retrying", "call", what, "attempt", attempt, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, fmt.Errorf("%s: %w", what, ctx.Err())
		case <-t.C:
		}
		backoff = min(2*backoff, p.cfg.Retry.MaxBackoff)
	}
}

// retryWait says whether a failed call is worth retrying and after how long:
// rate limits until their reset or Retry-After, 5xx and network errors after
// the current backoff.
func retryWait(resp *github.Response, err error, backoff time.Duration) (time.Duration, bool) {
	var rl *github.RateLimitError
	var abuse *github.AbuseRateLimitError
	switch {
	case errors.As(err, &rl):
		return max(time.Until(rl.Rate.Reset.Time), backoff), true
	case errors.As(err, &abuse):
		if abuse.RetryAfter != nil {
			return max(*abuse.RetryAfter, 0), true
		}
		return max(backoff, time.Minute), true // GitHub: wait at least a minute
	}
	if resp == nil || resp.Response == nil {
		// No answer at all: a network error, unless the context ended.
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return 0, false
		}
		var uerr *url.Error
		return backoff, errors.As(err, &uerr)
	}
	code := resp.StatusCode
	retryAfter, hasRetryAfter := headerWait(resp.Header)
	switch {
	case code == http.StatusTooManyRequests, code == http.StatusForbidden && hasRetryAfter:
		if hasRetryAfter {
			return retryAfter, true
		}
		return backoff, true
	case code >= 500:
		if hasRetryAfter {
			return max(retryAfter, backoff), true
		}
		return backoff, true
	}
	return 0, false
}

// headerWait reads Retry-After (seconds) or, failing that, an exhausted
// X-RateLimit-Reset (Unix seconds).
func headerWait(h http.Header) (time.Duration, bool) {
	if v := h.Get("Retry-After"); v != "" {
		var s int64
		if _, err := fmt.Sscan(v, &s); err == nil {
			return time.Duration(max(s, 0)) * time.Second, true
		}
	}
	if h.Get("X-RateLimit-Remaining") == "0" {
		var reset int64
		if _, err := fmt.Sscan(h.Get("X-RateLimit-Reset"), &reset); err == nil {
			return max(time.Until(time.Unix(reset, 0)), 0), true
		}
	}
	return 0, false
}

// explain wraps the errors a user can act on in a sentinel and advice.
func (p *Publisher) explain(resp *github.Response, err error) error {
	if resp == nil || resp.Response == nil {
		return err
	}
	repo := p.cfg.Owner + "/" + p.cfg.Repo
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return fmt.Errorf("%w (401): the token is invalid or expired: %w", ErrUnauthorized, err)
	case http.StatusForbidden:
		var rl *github.RateLimitError
		var abuse *github.AbuseRateLimitError
		if errors.As(err, &rl) || errors.As(err, &abuse) {
			return fmt.Errorf("%w: %w", ErrRateLimited, err)
		}
		return fmt.Errorf("%w (403) on %s: it needs contents: write and pull-requests: write: %w", ErrForbidden, repo, err)
	case http.StatusNotFound:
		return fmt.Errorf("%w (404): repository %s or branch %s does not exist, or the token cannot see it: %w", ErrNotFound, repo, p.cfg.Base, err)
	}
	return err
}

// isNotFound reports a 404, which some calls expect (a branch or release
// not created yet).
func isNotFound(err error) bool {
	var er *github.ErrorResponse
	return errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusNotFound
}
