package toolchain

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/dirhash"

	"github.com/offsetdb/offsetdb/goversion"
)

// Cache keeps unpacked toolchains in Dir, one GOROOT per release, fetched
// from Proxy on first use.
//
// Layout: Dir/go1.22.5 is a GOROOT, Dir/go1.22.5.zip a kept zip
// (KeepZips), Dir/.tmp-go1.22.5-* work in progress, Dir/.locks the lock
// files, and Dir/sumdb the checksum database state when Proxy.ConfigDir is
// empty. A GOROOT appears by an atomic rename once complete and disappears
// by a rename before deletion, so Dir never holds a half tree under a
// release's name, whatever interrupts the process.
type Cache struct {
	Dir string
	// Proxy to fetch from; nil means the zero Proxy (proxy.golang.org).
	Proxy *Proxy
	// KeepZips keeps verified zips after unpacking (~75 MB each), so that a
	// tree deleted by Remove unpacks again without a download.
	KeepZips bool
}

// Timings says where Toolchain spent its time, so that the generator can
// report download against unpack cost.
type Timings struct {
	// Download is the time spent fetching the zip; Bytes its size.
	Download time.Duration
	Bytes    int64
	// Verify is the checksum database lookup plus hashing the zip.
	Verify time.Duration
	// Unpack is unzipping into the cache.
	Unpack time.Duration
	// Cached reports that the tree was already unpacked: nothing was done.
	Cached bool
}

// maxUnpacked bounds the unpacked size of one toolchain (about 230 MB in
// practice) so a hostile zip cannot fill the disk.
const maxUnpacked = 4 << 30

// Toolchain returns the GOROOT of the toolchain of v, downloading, verifying
// and unpacking it first unless the cache has it.
//
// The zip is checked against the checksum database before anything is
// unpacked: a zip that does not match is deleted and ErrChecksum returned.
// A release the proxy does not serve yields an error wrapping ErrUnavailable
// with the proxy's status and answer. Unpacking rejects entries that would
// land outside the tree, and marks bin/, pkg/tool/ and other executables
// (scripts, ELF files) executable, since module zips carry no modes.
//
// Calls are safe from many goroutines and processes sharing Dir: calls for
// one version wait for each other (honouring ctx), calls for different
// versions run in parallel. A first call costs a ~75 MB download and
// ~230 MB of disk.
func (c *Cache) Toolchain(ctx context.Context, v goversion.Version) (goroot string, t Timings, err error) {
	if c.Dir == "" {
		return "", t, errors.New("toolchain cache: no directory set")
	}
	goroot = c.goroot(v)
	if isDir(goroot) {
		t.Cached = true
		return goroot, t, nil
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return "", t, fmt.Errorf("toolchain cache: %w", err)
	}
	unlock, err := c.lock(ctx, v)
	if err != nil {
		return "", t, fmt.Errorf("toolchain %s: wait for lock: %w", v, err)
	}
	defer unlock()
	if isDir(goroot) { // unpacked while we waited
		t.Cached = true
		return goroot, t, nil
	}
	c.removeTemps(v) // left by an interrupted run; we hold the lock

	zipPath, err := c.zip(ctx, v, &t)
	if err != nil {
		return "", t, err
	}
	if !c.KeepZips {
		defer os.Remove(zipPath)
	}

	start := time.Now()
	err = c.unpack(zipPath, goroot, v)
	t.Unpack = time.Since(start)
	if err != nil {
		return "", t, fmt.Errorf("unpack toolchain %s: %w", v, err)
	}
	return goroot, t, nil
}

// Remove deletes the unpacked tree of v, keeping a kept zip. Removing a tree
// that is not there is not an error. It waits for a Toolchain call for v in
// progress.
func (c *Cache) Remove(v goversion.Version) error {
	goroot := c.goroot(v)
	if !isDir(goroot) {
		return nil
	}
	unlock, err := c.lock(context.Background(), v)
	if err != nil {
		return fmt.Errorf("remove toolchain %s: %w", v, err)
	}
	defer unlock()
	// Rename first: a deletion cut short must not leave a partial tree
	// under the release's name.
	trash := filepath.Join(c.Dir, fmt.Sprintf(".tmp-%s-remove-%d", v, time.Now().UnixNano()))
	if err := os.Rename(goroot, trash); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove toolchain %s: %w", v, err)
	}
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("remove toolchain %s: %w", v, err)
	}
	return nil
}

func (c *Cache) goroot(v goversion.Version) string { return filepath.Join(c.Dir, v.String()) }

func (c *Cache) proxy() *Proxy {
	if c.Proxy == nil {
		return &Proxy{}
	}
	return c.Proxy
}

// zip returns the path of a verified zip of v: the kept one, or a fresh
// download.
func (c *Cache) zip(ctx context.Context, v goversion.Version, t *Timings) (string, error) {
	kept := filepath.Join(c.Dir, v.String()+".zip")
	if c.KeepZips {
		if fi, err := os.Stat(kept); err == nil {
			start := time.Now()
			err := c.verify(ctx, v, kept)
			t.Verify = time.Since(start)
			if err == nil {
				t.Bytes = fi.Size()
				return kept, nil
			}
			if ctx.Err() != nil {
				return "", err
			}
			os.Remove(kept) // damaged or stale: fetch afresh
		}
	}

	p := c.proxy()
	url, err := p.moduleURL(v, ".zip")
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(c.Dir, ".tmp-"+v.String()+"-*.zip")
	if err != nil {
		return "", fmt.Errorf("toolchain cache: %w", err)
	}
	tmp := f.Name()
	start := time.Now()
	err = p.fetch(ctx, url, func(r io.Reader) error {
		if err := f.Truncate(0); err != nil {
			return err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		n, err := io.Copy(f, r)
		t.Bytes = n
		return err
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	t.Download = time.Since(start)
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("download toolchain %s from %s: %w", v, url, err)
	}

	start = time.Now()
	err = c.verify(ctx, v, tmp)
	t.Verify = time.Since(start)
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	if !c.KeepZips {
		return tmp, nil
	}
	if err := os.Rename(tmp, kept); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("toolchain cache: %w", err)
	}
	return kept, nil
}

// verify checks the zip at path against the checksum database.
func (c *Cache) verify(ctx context.Context, v goversion.Version, path string) error {
	got, err := dirhash.HashZip(path, dirhash.Hash1)
	if err != nil {
		size := int64(-1)
		if fi, err := os.Stat(path); err == nil {
			size = fi.Size()
		}
		return fmt.Errorf("toolchain zip for %s (%d bytes) is unreadable, likely a truncated or corrupt download: %w", v, size, err)
	}
	p := c.proxy()
	dir := p.ConfigDir
	if dir == "" {
		dir = filepath.Join(c.Dir, "sumdb")
	}
	want, err := p.checksum(ctx, v, dir)
	if err != nil {
		return fmt.Errorf("verify toolchain zip for %s: %w", v, err)
	}
	if got != want {
		return fmt.Errorf("%w: toolchain zip for %s from %s hashes to %s but the checksum database records %s; refused and deleted",
			ErrChecksum, v, p.url(), got, want)
	}
	return nil
}

// unpack unzips the toolchain into a temporary directory in the cache and
// renames it to goroot once complete.
func (c *Cache) unpack(zipPath, goroot string, v goversion.Version) (err error) {
	tmp, err := os.MkdirTemp(c.Dir, ".tmp-"+v.String()+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := unzip(zipPath, tmp, ModulePath+"@"+ModuleVersion(v)+"/"); err != nil {
		return err
	}
	if fi, err := os.Stat(filepath.Join(tmp, "bin", "go")); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("zip has no bin/go: not a Go toolchain")
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, goroot); err != nil {
		if isDir(goroot) { // another process sharing Dir finished first
			os.RemoveAll(tmp)
			return nil
		}
		return err
	}
	return nil
}

// unzip extracts the entries of a module zip, all under prefix, into dst.
func unzip(zipPath, dst, prefix string) error {
	z, err := zip.OpenReader(zipPath)
	if err != nil {
		return err
	}
	defer z.Close()
	var total uint64
	for _, f := range z.File {
		name, ok := strings.CutPrefix(f.Name, prefix)
		if !ok {
			return fmt.Errorf("zip entry %q is not under %s", f.Name, prefix)
		}
		isDirEntry := strings.HasSuffix(name, "/")
		name = strings.TrimSuffix(name, "/")
		rel := filepath.FromSlash(name)
		if !filepath.IsLocal(rel) || strings.Contains(name, `\`) {
			return fmt.Errorf("zip entry %q: unsafe path", f.Name)
		}
		path := filepath.Join(dst, rel)
		if isDirEntry {
			if err := os.MkdirAll(path, 0o755); err != nil {
				return err
			}
			continue
		}
		if !f.Mode().IsRegular() {
			return fmt.Errorf("zip entry %q: not a regular file (%v)", f.Name, f.Mode())
		}
		if total += f.UncompressedSize64; total > maxUnpacked {
			return fmt.Errorf("zip unpacks to more than %d bytes", maxUnpacked)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := extract(f, name, path); err != nil {
			return fmt.Errorf("zip entry %q: %w", f.Name, err)
		}
	}
	return nil
}

func extract(f *zip.File, name, path string) error {
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	r := bufio.NewReader(rc)
	head, _ := r.Peek(4)
	mode := os.FileMode(0o644)
	if executable(name, head) {
		mode = 0o755
	}
	// O_EXCL: a duplicate entry fails instead of overwriting.
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, r)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// executable reports whether a GOROOT file needs the exec bits the module
// zip dropped: the commands in bin/ and pkg/tool/, and scripts and ELF
// binaries elsewhere (src/make.bash, misc/wasm/go_js_wasm_exec).
func executable(name string, head []byte) bool {
	return strings.HasPrefix(name, "bin/") || strings.HasPrefix(name, "pkg/tool/") ||
		bytes.HasPrefix(head, []byte("#!")) || bytes.HasPrefix(head, []byte("\x7fELF"))
}

// lock orders Toolchain and Remove calls for v: goroutines through
// versionLocks, processes through a lock file.
func (c *Cache) lock(ctx context.Context, v goversion.Version) (unlock func(), err error) {
	key, err := filepath.Abs(c.goroot(v))
	if err != nil {
		return nil, err
	}
	unlockMem, err := versionLocks.lock(ctx, key)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(c.Dir, ".locks")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		unlockMem()
		return nil, err
	}
	unlockFile, err := lockFile(ctx, filepath.Join(dir, v.String()+".lock"))
	if err != nil {
		unlockMem()
		return nil, err
	}
	return func() { unlockFile(); unlockMem() }, nil
}

func (c *Cache) removeTemps(v goversion.Version) {
	old, _ := filepath.Glob(filepath.Join(c.Dir, ".tmp-"+v.String()+"-*"))
	for _, p := range old {
		os.RemoveAll(p)
	}
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// keyedMutex is a set of mutexes by name whose Lock honours a context.
type keyedMutex struct {
	mu   sync.Mutex
	held map[string]chan struct{}
}

var versionLocks keyedMutex

func (k *keyedMutex) lock(ctx context.Context, key string) (unlock func(), err error) {
	for {
		k.mu.Lock()
		ch, busy := k.held[key]
		if !busy {
			if k.held == nil {
				k.held = map[string]chan struct{}{}
			}
			ch = make(chan struct{})
			k.held[key] = ch
			k.mu.Unlock()
			return func() {
				k.mu.Lock()
				delete(k.held, key)
				k.mu.Unlock()
				close(ch)
			}, nil
		}
		k.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
