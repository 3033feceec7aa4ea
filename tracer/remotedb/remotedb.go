// Package remotedb fetches a published offset database, verifies it and
// caches it on disk, so that a running tracer can use offsets for Go releases
// newer than the database it was built with.
//
// A published database is an archive offsets-<date>.tar.gz (a gzip'd tar of a
// database directory: index.json and its shards) with a sibling file
// URL+".sha256" in sha256sum format ("<hex>  <name>"). Fetch reads the
// checksum first; an archive whose sha256 is already in the cache is not
// downloaded again. A new archive is downloaded, checked against the
// checksum, extracted with every entry checked (no absolute paths, no "..",
// no links or devices, bounded sizes), its schema and contents checked with
// offsets.Verify, and only then moved into the cache, atomically.
//
// The cache holds one directory per archive sha256 and, per URL, a pointer to
// the last copy that passed verification. When the server cannot be reached,
// Fetch returns that copy (marked Stale). It never returns a copy that failed
// checksum or verification.
package remotedb

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/offsetdb/offsetdb/offsets"
)

var (
	// ErrUnreachable reports that the checksum or the archive could not be
	// downloaded: a network error, a timeout or an HTTP status other than 200.
	// It is the only failure after which Fetch falls back to a cached copy.
	ErrUnreachable = errors.New("published database unreachable")
	// ErrChecksum reports an archive whose sha256 differs from its .sha256
	// file, or a .sha256 file that cannot be read as one.
	ErrChecksum = errors.New("archive checksum mismatch")
	// ErrArchive reports an archive that cannot be extracted safely: corrupt or
	// truncated, too large, or with an entry that is not a plain file or
	// directory inside the archive's root.
	ErrArchive = errors.New("invalid database archive")
	// ErrVerify reports an extracted database that offsets.Verify rejects. A
	// database in another schema wraps offsets.ErrSchema as well.
	ErrVerify = errors.New("database failed verification")
)

// Defaults for Options left zero.
const (
	// DefaultTimeout bounds a whole Fetch: a tracer must not hang at start
	// because a server does not answer.
	DefaultTimeout = 2 * time.Minute
	// DefaultMaxArchiveBytes bounds the download (the committed database is
	// well under 1 MiB compressed).
	DefaultMaxArchiveBytes = 64 << 20
	// DefaultMaxDatabaseBytes bounds the extracted size, against gzip bombs.
	DefaultMaxDatabaseBytes = 512 << 20
	// maxEntries bounds the number of archive entries.
	maxEntries = 10000
)

// Options configure Fetch.
type Options struct {
	// CacheDir holds the verified databases; it is created if needed. Required.
	CacheDir string
	// Client makes the requests. Nil means a client with connect, TLS and
	// response-header timeouts; every request is bound to Fetch's context.
	Client *http.Client
	// MaxArchiveBytes and MaxDatabaseBytes bound the compressed download and
	// the extracted files. Zero means the defaults.
	MaxArchiveBytes  int64
	MaxDatabaseBytes int64
}

// Database is a published database ready for lookups.
type Database struct {
	*offsets.DB
	// Dir is the cache directory the database was opened from.
	Dir string
	// SHA256 is the hex sha256 of the archive it was extracted from.
	SHA256 string
	// Downloaded reports that the archive was downloaded by this Fetch; false
	// means the verified copy already in the cache was used.
	Downloaded bool
	// Stale is non-nil when the server could not be reached (it wraps
	// ErrUnreachable): the database is the last good copy of this URL, which
	// may be older than the one now published.
	Stale error
}

// Fetch returns the database published at rawURL, from the cache when the
// published checksum names a copy already there, else downloaded, checked
// and cached. When the server is unreachable it returns the last good copy
// of rawURL, with Stale set; when there is none, or the failure is anything
// else (checksum, archive, verification), it returns an error wrapping
// ErrUnreachable, ErrChecksum, ErrArchive or ErrVerify.
//
// Fetch costs one small request when the database is unchanged, and a full
// offsets.Verify of the database it returns.
func Fetch(ctx context.Context, rawURL string, opts Options) (*Database, error) {
	if opts.CacheDir == "" {
		return nil, errors.New("remote offset database: no cache directory")
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("remote offset database %q: want an http or https URL", rawURL)
	}
	if opts.Client == nil {
		opts.Client = defaultClient()
	}
	if opts.MaxArchiveBytes <= 0 {
		opts.MaxArchiveBytes = DefaultMaxArchiveBytes
	}
	if opts.MaxDatabaseBytes <= 0 {
		opts.MaxDatabaseBytes = DefaultMaxDatabaseBytes
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	if err := os.MkdirAll(opts.CacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("remote offset database cache: %w", err)
	}
	c := cache{dir: opts.CacheDir}
	c.removeStaleTemps()

	db, err := fetch(ctx, u, opts, c)
	if err == nil || !errors.Is(err, ErrUnreachable) {
		return db, err
	}
	// The server could not be asked: the last good copy is better than none.
	sum, perr := c.current(rawURL)
	if perr != nil {
		return nil, fmt.Errorf("%w (and no cached copy: %v)", err, perr)
	}
	db, verr := c.open(sum)
	if verr != nil {
		return nil, fmt.Errorf("%w (and the cached copy %s is unusable: %v)", err, sum, verr)
	}
	db.Stale = err
	return db, nil
}

// fetch asks the server for the checksum, then uses the cached copy or
// downloads the archive.
func fetch(ctx context.Context, u *url.URL, opts Options, c cache) (*Database, error) {
	rawURL := u.String()
	sum, err := fetchChecksum(ctx, opts.Client, rawURL+".sha256", path.Base(u.Path))
	if err != nil {
		return nil, err
	}
	if c.has(sum) {
		db, err := c.open(sum)
		if err == nil {
			if err := c.setCurrent(rawURL, sum); err != nil {
				return nil, err
			}
			return db, nil
		}
		// A cached copy that no longer verifies is replaced by a fresh download.
		if err := c.remove(sum); err != nil {
			return nil, err
		}
	}
	tmp, err := c.tempDir()
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	archive := filepath.Join(tmp, "archive.tar.gz")
	if err := download(ctx, opts.Client, rawURL, archive, sum, opts.MaxArchiveBytes); err != nil {
		return nil, err
	}
	root, err := extract(archive, filepath.Join(tmp, "db"), opts.MaxDatabaseBytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rawURL, err)
	}
	if err := check(root); err != nil {
		return nil, fmt.Errorf("%s: %w", rawURL, err)
	}
	if err := c.add(sum, root); err != nil {
		return nil, err
	}
	db, err := c.open(sum)
	if err != nil {
		return nil, err
	}
	db.Downloaded = true
	if err := c.setCurrent(rawURL, sum); err != nil {
		return nil, err
	}
	return db, nil
}

// check refuses a database in another schema or one that fails
// offsets.Verify.
func check(dir string) error {
	fsys := os.DirFS(dir)
	if _, err := offsets.ReadIndex(fsys); err != nil {
		return fmt.Errorf("%w: %w", ErrVerify, err)
	}
	if err := offsets.Verify(fsys); err != nil {
		return fmt.Errorf("%w: %w", ErrVerify, err)
	}
	return nil
}

func defaultClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ResponseHeaderTimeout = 20 * time.Second
	return &http.Client{Transport: t}
}

// get returns the body of a 200 answer to a GET of rawURL; any other outcome
// wraps ErrUnreachable.
func get(ctx context.Context, client *http.Client, rawURL string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", rawURL, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("%w: GET %s: %s", ErrUnreachable, rawURL, resp.Status)
	}
	return resp.Body, nil
}

// fetchChecksum reads a sha256sum file and returns the digest of name, or
// the only digest in the file (the archive may be served under an alias such
// as offsets-latest.tar.gz).
func fetchChecksum(ctx context.Context, client *http.Client, rawURL, name string) (string, error) {
	body, err := get(ctx, client, rawURL)
	if err != nil {
		return "", err
	}
	defer body.Close()
	data, err := io.ReadAll(io.LimitReader(body, 64<<10))
	if err != nil {
		return "", fmt.Errorf("%w: read %s: %w", ErrUnreachable, rawURL, err)
	}
	sum, err := parseChecksum(data, name)
	if err != nil {
		return "", fmt.Errorf("%s: %w", rawURL, err)
	}
	return sum, nil
}

// parseChecksum parses sha256sum output ("<hex>  <name>" or "<hex> *<name>"
// per line).
func parseChecksum(data []byte, name string) (string, error) {
	type line struct{ sum, name string }
	var lines []line
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		sum, file, _ := strings.Cut(text, " ")
		file = strings.TrimPrefix(strings.TrimLeft(file, " "), "*")
		sum = strings.ToLower(sum)
		if b, err := hex.DecodeString(sum); err != nil || len(b) != sha256.Size {
			return "", fmt.Errorf("%w: %q is not a sha256sum line", ErrChecksum, text)
		}
		lines = append(lines, line{sum, file})
	}
	switch {
	case len(lines) == 0:
		return "", fmt.Errorf("%w: empty checksum file", ErrChecksum)
	case len(lines) == 1:
		return lines[0].sum, nil
	}
	for _, l := range lines {
		if l.name == name {
			return l.sum, nil
		}
	}
	return "", fmt.Errorf("%w: no checksum for %s in the checksum file", ErrChecksum, name)
}

// download writes the archive at rawURL to file and checks its sha256
// against want.
func download(ctx context.Context, client *http.Client, rawURL, file, want string, limit int64) error {
	body, err := get(ctx, client, rawURL)
	if err != nil {
		return err
	}
	defer body.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(body, limit+1))
	if err != nil {
		return fmt.Errorf("%w: GET %s: %w", ErrUnreachable, rawURL, err)
	}
	if n > limit {
		return fmt.Errorf("%s: %w: larger than %d bytes", rawURL, ErrArchive, limit)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("%s: %w: sha256 %s, %s.sha256 says %s", rawURL, ErrChecksum, got, path.Base(rawURL), want)
	}
	return f.Close()
}
