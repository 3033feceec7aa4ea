package remotedb

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/offsetdb/offsetdb/offsets"
)

// cache is the on-disk layout:
//
//	DIR/<sha256>/          a verified database, named by its archive's sha256
//	DIR/current-<key>      "<sha256> <URL>": the last good copy of a URL
//	DIR/.tmp-*             downloads and extractions in progress
//
// Databases are never modified in place: a new one is extracted into a
// temporary directory and renamed into place, so a reader sees a whole
// database or none.
type cache struct{ dir string }

// tempDir returns a new temporary directory inside the cache, on the same
// file system so that the final rename is atomic.
func (c cache) tempDir() (string, error) {
	d, err := os.MkdirTemp(c.dir, ".tmp-")
	if err != nil {
		return "", fmt.Errorf("remote offset database cache: %w", err)
	}
	return d, nil
}

// removeStaleTemps removes what interrupted runs left behind. Anything newer
// than a day may belong to a tracer starting right now and is kept.
func (c cache) removeStaleTemps() {
	matches, _ := filepath.Glob(filepath.Join(c.dir, ".tmp-*"))
	for _, m := range matches {
		if fi, err := os.Lstat(m); err == nil && time.Since(fi.ModTime()) > 24*time.Hour {
			os.RemoveAll(m)
		}
	}
}

func (c cache) path(sum string) string { return filepath.Join(c.dir, sum) }

func (c cache) has(sum string) bool {
	fi, err := os.Stat(c.path(sum))
	return err == nil && fi.IsDir()
}

// open verifies the cached copy sum and opens it. A copy is checked each
// time it is opened, so a file damaged on disk is never used.
func (c cache) open(sum string) (*Database, error) {
	dir := c.path(sum)
	if err := check(dir); err != nil {
		return nil, fmt.Errorf("cached copy %s: %w", dir, err)
	}
	db, err := offsets.OpenDir(dir)
	if err != nil {
		return nil, fmt.Errorf("cached copy: %w", err)
	}
	return &Database{DB: db, Dir: dir, SHA256: sum}, nil
}

// add moves the verified database in dir into the cache as sum. Another
// process may have added the same archive meanwhile: its copy is kept.
func (c cache) add(sum, dir string) error {
	err := os.Rename(dir, c.path(sum))
	if err != nil && !c.has(sum) {
		return fmt.Errorf("remote offset database cache: %w", err)
	}
	return nil
}

// remove deletes a cached copy that failed verification.
func (c cache) remove(sum string) error {
	if err := os.RemoveAll(c.path(sum)); err != nil {
		return fmt.Errorf("remote offset database cache: remove bad copy: %w", err)
	}
	return nil
}

func (c cache) pointer(rawURL string) string {
	k := sha256.Sum256([]byte(rawURL))
	return filepath.Join(c.dir, "current-"+hex.EncodeToString(k[:8]))
}

// current returns the sha256 of the last good copy of rawURL.
func (c cache) current(rawURL string) (string, error) {
	data, err := os.ReadFile(c.pointer(rawURL))
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("none for %s in %s", rawURL, c.dir)
	}
	if err != nil {
		return "", err
	}
	sum, u, _ := strings.Cut(strings.TrimSpace(string(data)), " ")
	if b, err := hex.DecodeString(sum); err != nil || len(b) != sha256.Size || u != rawURL {
		return "", fmt.Errorf("%s: not a cache pointer for %s", c.pointer(rawURL), rawURL)
	}
	return sum, nil
}

// setCurrent records sum as the last good copy of rawURL, atomically.
func (c cache) setCurrent(rawURL, sum string) error {
	f, err := os.CreateTemp(c.dir, ".tmp-current-")
	if err != nil {
		return fmt.Errorf("remote offset database cache: %w", err)
	}
	defer os.Remove(f.Name()) // no-op after the rename
	if _, err := fmt.Fprintf(f, "%s %s\n", sum, rawURL); err != nil {
		f.Close()
		return fmt.Errorf("remote offset database cache: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("remote offset database cache: %w", err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return fmt.Errorf("remote offset database cache: %w", err)
	}
	if err := os.Rename(f.Name(), c.pointer(rawURL)); err != nil {
		return fmt.Errorf("remote offset database cache: %w", err)
	}
	return nil
}
