package remotedb

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/offsets"
)

const archiveName = "offsets-2026-01-15.tar.gz"

var reqCtx = offsets.FieldID{Package: "net/http", Struct: "Request", Field: "ctx"}

// writeDB writes a database in a new directory that knows the given Go
// releases, all with the same offset of Request.ctx.
func writeDB(t *testing.T, versions ...string) string {
	t.Helper()
	tb := offsets.NewTable(offsets.StdModule, []offsets.FieldID{reqCtx})
	for _, v := range versions {
		require.NoError(t, tb.Set("amd64", offsets.Build{
			Coverage: offsets.Coverage{Version: v, Status: offsets.StatusOK, Toolchain: v},
			Values:   map[offsets.FieldID]offsets.Value{reqCtx: {Offset: 232, Size: 16, Type: "context.Context"}},
		}))
	}
	dir := t.TempDir()
	require.NoError(t, offsets.WriteShard(dir, tb.Shard()))
	return dir
}

// entry is one tar entry; Body is used for regular files.
type entry struct {
	Name     string
	Type     byte
	Body     []byte
	Linkname string
}

// entriesOf returns the files of a database directory as tar entries, under
// prefix ("" or "offsets-2026-01-15/").
func entriesOf(t *testing.T, dir, prefix string) []entry {
	t.Helper()
	des, err := os.ReadDir(dir)
	require.NoError(t, err)
	var es []entry
	for _, de := range des {
		data, err := os.ReadFile(filepath.Join(dir, de.Name()))
		require.NoError(t, err)
		es = append(es, entry{Name: prefix + de.Name(), Type: tar.TypeReg, Body: data})
	}
	return es
}

func tarGz(t *testing.T, es []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range es {
		hdr := &tar.Header{Name: e.Name, Typeflag: e.Type, Mode: 0o644, Linkname: e.Linkname}
		if e.Type == tar.TypeReg {
			hdr.Size = int64(len(e.Body))
		}
		if e.Type == tar.TypeDir {
			hdr.Mode = 0o755
		}
		require.NoError(t, tw.WriteHeader(hdr))
		if e.Type == tar.TypeReg {
			_, err := tw.Write(e.Body)
			require.NoError(t, err)
		}
	}
	require.NoError(t, tw.Close())
	require.NoError(t, gz.Close())
	return buf.Bytes()
}

func sumLine(data []byte) []byte {
	return fmt.Appendf(nil, "%x  %s\n", sha256.Sum256(data), archiveName)
}

// server publishes an archive and its checksum and counts the requests.
type server struct {
	*httptest.Server
	mu       sync.Mutex
	archive  []byte
	checksum []byte
	failing  bool // the archive is answered with 500
	hits     map[string]int
}

func newServer(t *testing.T, archive, checksum []byte) *server {
	s := &server{archive: archive, checksum: checksum, hits: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.hits[r.URL.Path]++
		switch r.URL.Path {
		case "/" + archiveName:
			if s.failing {
				http.Error(w, "overloaded", http.StatusInternalServerError)
				return
			}
			w.Write(s.archive)
		case "/" + archiveName + ".sha256":
			w.Write(s.checksum)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) url() string { return s.URL + "/" + archiveName }

func (s *server) archiveHits() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits["/"+archiveName]
}

func (s *server) publish(archive []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.archive, s.checksum = archive, sumLine(archive)
}

// lookup asks the databases in order, as the tracer's resolver does: the
// first that knows the version answers.
func lookup(dbs []*offsets.DB, version string) (offsets.Result, error) {
	var errs []error
	for _, db := range dbs {
		res, err := db.Lookup(offsets.StdModule, version, "amd64", reqCtx)
		if err == nil || !errors.Is(err, offsets.ErrUnknownVersion) {
			return res, err
		}
		errs = append(errs, err)
	}
	return offsets.Result{}, errors.Join(errs...)
}

func fetchInto(t *testing.T, url, cacheDir string) (*Database, error) {
	t.Helper()
	return Fetch(context.Background(), url, Options{CacheDir: cacheDir})
}

// cached lists the databases in the cache.
func cached(t *testing.T, cacheDir string) []string {
	t.Helper()
	des, err := os.ReadDir(cacheDir)
	require.NoError(t, err)
	var dirs []string
	for _, de := range des {
		if de.IsDir() {
			dirs = append(dirs, de.Name())
		}
	}
	return dirs
}

func TestFetchServesVersionsTheEmbeddedDatabaseLacks(t *testing.T) {
	embedded, err := offsets.OpenDir(writeDB(t, "go1.22.5"))
	require.NoError(t, err)
	_, err = lookup([]*offsets.DB{embedded}, "go1.26.1")
	require.ErrorIs(t, err, offsets.ErrUnknownVersion, "precondition: the embedded database lacks the new release")

	for _, prefix := range []string{"", "offsets-2026-01-15/", "./"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			archive := tarGz(t, entriesOf(t, writeDB(t, "go1.22.5", "go1.26.1"), prefix))
			srv := newServer(t, archive, sumLine(archive))
			db, err := fetchInto(t, srv.url(), t.TempDir())
			require.NoError(t, err)
			assert.True(t, db.Downloaded)
			assert.NoError(t, db.Stale)
			assert.Equal(t, fmt.Sprintf("%x", sha256.Sum256(archive)), db.SHA256)

			dbs := []*offsets.DB{db.DB, embedded} // the tracer's order
			res, err := lookup(dbs, "go1.26.1")
			require.NoError(t, err)
			assert.Equal(t, uint64(232), res.Offset)
			both, err := lookup(dbs, "go1.22.5")
			require.NoError(t, err)
			alone, err := embedded.Lookup(offsets.StdModule, "go1.22.5", "amd64", reqCtx)
			require.NoError(t, err)
			assert.Equal(t, alone.Value, both.Value, "databases agree on releases both know")
		})
	}
}

func TestFetchReusesCachedCopyWithoutDownloadingTheArchive(t *testing.T) {
	archive := tarGz(t, entriesOf(t, writeDB(t, "go1.26.1"), ""))
	srv := newServer(t, archive, sumLine(archive))
	cache := t.TempDir()
	first, err := fetchInto(t, srv.url(), cache)
	require.NoError(t, err)
	require.True(t, first.Downloaded)

	second, err := fetchInto(t, srv.url(), cache)
	require.NoError(t, err)
	assert.False(t, second.Downloaded)
	assert.NoError(t, second.Stale)
	assert.Equal(t, first.Dir, second.Dir)
	assert.Equal(t, 1, srv.archiveHits(), "the archive is downloaded once")

	// A newer publication is downloaded and becomes the current copy.
	srv.publish(tarGz(t, entriesOf(t, writeDB(t, "go1.26.1", "go1.26.2"), "")))
	third, err := fetchInto(t, srv.url(), cache)
	require.NoError(t, err)
	assert.True(t, third.Downloaded)
	assert.NotEqual(t, first.SHA256, third.SHA256)
	_, err = lookup([]*offsets.DB{third.DB}, "go1.26.2")
	assert.NoError(t, err)
}

func TestFetchServerDown(t *testing.T) {
	archive := tarGz(t, entriesOf(t, writeDB(t, "go1.26.1"), ""))

	t.Run("without cached copy", func(t *testing.T) {
		srv := newServer(t, archive, sumLine(archive))
		srv.Close()
		_, err := fetchInto(t, srv.url(), t.TempDir())
		require.ErrorIs(t, err, ErrUnreachable)
		assert.Contains(t, err.Error(), "no cached copy")
	})
	t.Run("with cached copy", func(t *testing.T) {
		srv := newServer(t, archive, sumLine(archive))
		cache := t.TempDir()
		good, err := fetchInto(t, srv.url(), cache)
		require.NoError(t, err)
		srv.Close()

		db, err := fetchInto(t, srv.url(), cache)
		require.NoError(t, err)
		require.ErrorIs(t, db.Stale, ErrUnreachable)
		assert.Equal(t, good.SHA256, db.SHA256)
		_, err = lookup([]*offsets.DB{db.DB}, "go1.26.1")
		assert.NoError(t, err)
	})
	t.Run("archive gone after checksum", func(t *testing.T) {
		srv := newServer(t, archive, sumLine(archive))
		cache := t.TempDir()
		good, err := fetchInto(t, srv.url(), cache)
		require.NoError(t, err)
		// A new checksum is published but its archive is not served (500).
		srv.mu.Lock()
		srv.checksum, srv.failing = sumLine([]byte("another archive")), true
		srv.mu.Unlock()
		db, err := fetchInto(t, srv.url(), cache)
		require.NoError(t, err)
		require.ErrorIs(t, db.Stale, ErrUnreachable)
		assert.Contains(t, db.Stale.Error(), "500")
		assert.Equal(t, good.SHA256, db.SHA256)
	})
}

func TestFetchRefusesBadArchives(t *testing.T) {
	dbDir := writeDB(t, "go1.26.1")
	good := tarGz(t, entriesOf(t, dbDir, ""))
	withEntries := func(extra ...entry) []byte { return tarGz(t, append(entriesOf(t, dbDir, ""), extra...)) }

	ix, err := offsets.ReadIndex(os.DirFS(dbDir))
	require.NoError(t, err)
	ix.Schema = offsets.SchemaVersion + 1
	newSchema, err := json.MarshalIndent(ix, "", "  ")
	require.NoError(t, err)
	var withIndex, tamperedShard []entry
	for _, e := range entriesOf(t, dbDir, "") {
		if e.Name == offsets.IndexFile {
			withIndex = append(withIndex, entry{Name: e.Name, Type: tar.TypeReg, Body: newSchema})
			tamperedShard = append(tamperedShard, e)
			continue
		}
		withIndex = append(withIndex, e)
		tamperedShard = append(tamperedShard, entry{Name: e.Name, Type: tar.TypeReg, Body: bytes.Replace(e.Body, []byte("232"), []byte("240"), 1)})
	}

	for _, tc := range []struct {
		name     string
		archive  []byte
		checksum []byte // nil: the archive's
		want     []error
		says     string
	}{
		{name: "bad checksum", archive: good, checksum: sumLine([]byte("something else")), want: []error{ErrChecksum}, says: "checksum"},
		{name: "malformed checksum file", archive: good, checksum: []byte("<html>not found</html>\n"), want: []error{ErrChecksum}, says: "sha256sum"},
		{name: "wrong schema", archive: tarGz(t, withIndex), want: []error{ErrVerify, offsets.ErrSchema}, says: "schema"},
		{name: "shard does not match index", archive: tarGz(t, tamperedShard), want: []error{ErrVerify, offsets.ErrChecksum}},
		{name: "truncated", archive: good[:len(good)/2], want: []error{ErrArchive}},
		{name: "not gzip", archive: []byte("this is not an archive"), want: []error{ErrArchive}, says: "gzip"},
		{name: "no index", archive: tarGz(t, []entry{{Name: "std.json", Type: tar.TypeReg, Body: []byte("{}")}}), want: []error{ErrArchive}, says: "index.json"},
		{name: "parent traversal", archive: withEntries(entry{Name: "../evil.json", Type: tar.TypeReg, Body: []byte("x")}), want: []error{ErrArchive}, says: "outside"},
		{name: "nested traversal", archive: withEntries(entry{Name: "a/../../evil.json", Type: tar.TypeReg, Body: []byte("x")}), want: []error{ErrArchive}, says: "outside"},
		{name: "absolute path", archive: withEntries(entry{Name: "/tmp/evil.json", Type: tar.TypeReg, Body: []byte("x")}), want: []error{ErrArchive}, says: "outside"},
		{name: "symlink", archive: withEntries(entry{Name: "link.json", Type: tar.TypeSymlink, Linkname: "/etc/passwd"}), want: []error{ErrArchive}, says: "not a regular file"},
		{name: "hard link", archive: withEntries(entry{Name: "link.json", Type: tar.TypeLink, Linkname: "index.json"}), want: []error{ErrArchive}, says: "not a regular file"},
		{name: "fifo", archive: withEntries(entry{Name: "fifo", Type: tar.TypeFifo}), want: []error{ErrArchive}, says: "not a regular file"},
		{name: "duplicate entry", archive: withEntries(entry{Name: "index.json", Type: tar.TypeReg, Body: []byte("{}")}), want: []error{ErrArchive}, says: "twice"},
		{name: "too deep", archive: withEntries(entry{Name: "a/b/c.json", Type: tar.TypeReg, Body: []byte("x")}), want: []error{ErrArchive}, says: "deeper"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checksum := tc.checksum
			if checksum == nil {
				checksum = sumLine(tc.archive)
			}
			srv := newServer(t, tc.archive, checksum)
			parent := t.TempDir()
			cache := filepath.Join(parent, "cache")
			_, err := fetchInto(t, srv.url(), cache)
			require.Error(t, err)
			for _, w := range tc.want {
				assert.ErrorIs(t, err, w)
			}
			assert.NotErrorIs(t, err, ErrUnreachable)
			if tc.says != "" {
				assert.Contains(t, err.Error(), tc.says)
			}
			assert.Empty(t, cached(t, cache), "nothing refused is cached")
			assert.NoFileExists(t, filepath.Join(parent, "evil.json"))
			assert.NoFileExists(t, "/tmp/evil.json")
		})
	}
}

func TestFetchNeverFallsBackToCacheOnBadPublication(t *testing.T) {
	archive := tarGz(t, entriesOf(t, writeDB(t, "go1.26.1"), ""))
	srv := newServer(t, archive, sumLine(archive))
	cache := t.TempDir()
	_, err := fetchInto(t, srv.url(), cache)
	require.NoError(t, err)

	srv.publish(tarGz(t, entriesOf(t, writeDB(t, "go1.26.2"), "")))
	srv.mu.Lock()
	srv.checksum = sumLine([]byte("tampered"))
	srv.mu.Unlock()
	db, err := fetchInto(t, srv.url(), cache)
	require.ErrorIs(t, err, ErrChecksum)
	assert.Nil(t, db)
}

func TestFetchReplacesCachedCopyDamagedOnDisk(t *testing.T) {
	archive := tarGz(t, entriesOf(t, writeDB(t, "go1.26.1"), ""))
	srv := newServer(t, archive, sumLine(archive))
	cache := t.TempDir()
	first, err := fetchInto(t, srv.url(), cache)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(first.Dir, offsets.ShardFile(offsets.StdModule)), []byte("{}\n"), 0o644))

	second, err := fetchInto(t, srv.url(), cache)
	require.NoError(t, err)
	assert.True(t, second.Downloaded)
	assert.Equal(t, 2, srv.archiveHits())
	assert.NoError(t, offsets.Verify(os.DirFS(second.Dir)))

	// Offline, a damaged copy is refused rather than used.
	require.NoError(t, os.WriteFile(filepath.Join(second.Dir, offsets.ShardFile(offsets.StdModule)), []byte("{}\n"), 0o644))
	srv.Close()
	_, err = fetchInto(t, srv.url(), cache)
	require.ErrorIs(t, err, ErrUnreachable)
	assert.Contains(t, err.Error(), "unusable")
}

func TestFetchLimitsSizes(t *testing.T) {
	archive := tarGz(t, entriesOf(t, writeDB(t, "go1.26.1"), ""))
	srv := newServer(t, archive, sumLine(archive))

	_, err := Fetch(context.Background(), srv.url(), Options{CacheDir: t.TempDir(), MaxArchiveBytes: int64(len(archive) - 1)})
	require.ErrorIs(t, err, ErrArchive)
	assert.Contains(t, err.Error(), "larger than")

	_, err = Fetch(context.Background(), srv.url(), Options{CacheDir: t.TempDir(), MaxDatabaseBytes: 100})
	require.ErrorIs(t, err, ErrArchive)
	assert.Contains(t, err.Error(), "larger than")
}

func TestFetchRejectsNonHTTPURL(t *testing.T) {
	for _, u := range []string{"file:///etc/passwd", "offsets.tar.gz", "http://"} {
		_, err := fetchInto(t, u, t.TempDir())
		assert.ErrorContains(t, err, "want an http or https URL", u)
	}
}

func TestParseChecksum(t *testing.T) {
	sum := fmt.Sprintf("%x", sha256.Sum256([]byte("a")))
	other := fmt.Sprintf("%x", sha256.Sum256([]byte("b")))
	for _, tc := range []struct {
		name, file, want, err string
	}{
		{name: "sha256sum text mode", file: sum + "  " + archiveName + "\n", want: sum},
		{name: "binary mode, upper case", file: fmt.Sprintf("%X *%s\n", sha256.Sum256([]byte("a")), archiveName), want: sum},
		{name: "alias: one line names another file", file: sum + "  offsets-2025-12-01.tar.gz\n", want: sum},
		{name: "several lines", file: other + "  x.tar.gz\n" + sum + "  " + archiveName + "\n", want: sum},
		{name: "several lines, none ours", file: other + "  x.tar.gz\n" + sum + "  y.tar.gz\n", err: "no checksum for"},
		{name: "empty", file: "\n", err: "empty"},
		{name: "short digest", file: "abcd  " + archiveName + "\n", err: "not a sha256sum line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseChecksum([]byte(tc.file), archiveName)
			if tc.err != "" {
				require.ErrorIs(t, err, ErrChecksum)
				assert.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
