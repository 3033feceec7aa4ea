package toolchain

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/note"

	"github.com/offsetdb/offsetdb/goversion"
)

// DefaultSumDBKey is the verifier key of sum.golang.org, as built into the go
// command.
const DefaultSumDBKey = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"

// Checksum returns the "h1:" hash that the checksum database records for the
// toolchain zip of v, without downloading the zip.
//
// The database is reached through the proxy (<URL>/sumdb/<name>/), so a
// machine that sees only the proxy can still verify. Every answer is checked
// against the database's signed tree: the record's inclusion proof and the
// consistency of the tree with the one recorded in ConfigDir by earlier
// calls. A database that fails those checks is reported as an error naming
// the security failure, never trusted.
func (p *Proxy) Checksum(ctx context.Context, v goversion.Version) (string, error) {
	dir := p.ConfigDir
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("checksum database state: no ConfigDir and %w", err)
		}
		dir = filepath.Join(cache, "offsetdb", "sumdb")
	}
	return p.checksum(ctx, v, dir)
}

func (p *Proxy) checksum(ctx context.Context, v goversion.Version, dir string) (string, error) {
	name, key, err := p.sumDB()
	if err != nil {
		return "", err
	}
	ops := &sumdbOps{ctx: ctx, p: p, key: key, base: p.url() + "/sumdb/" + name, dir: dir}
	vers := ModuleVersion(v)
	lines, err := sumdb.NewClient(ops).Lookup(ModulePath, vers)
	if err != nil {
		if msgs := ops.securityErrors(); msgs != "" {
			return "", fmt.Errorf("look up %s@%s in checksum database %s: %w: %s", ModulePath, vers, name, sumdb.ErrSecurity, msgs)
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("look up %s@%s in checksum database %s: %w", ModulePath, vers, name, err)
	}
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == ModulePath && f[1] == vers && strings.HasPrefix(f[2], "h1:") {
			return f[2], nil
		}
	}
	return "", fmt.Errorf("checksum database %s has no h1 hash for %s@%s (lines: %q)", name, ModulePath, vers, lines)
}

// sumDB returns the checksum database name and verifier key.
func (p *Proxy) sumDB() (name, key string, err error) {
	name, key = p.SumDB, p.SumDBKey
	if key == "" {
		if name != "" && name != "sum.golang.org" {
			return "", "", fmt.Errorf("checksum database %q: no verifier key (set SumDBKey)", name)
		}
		key = DefaultSumDBKey
	}
	verifier, err := note.NewVerifier(key)
	if err != nil {
		return "", "", fmt.Errorf("checksum database verifier key %q: %w", key, err)
	}
	if name == "" {
		name = verifier.Name()
	}
	if verifier.Name() != name {
		return "", "", fmt.Errorf("checksum database %q: verifier key is for %q", name, verifier.Name())
	}
	return name, key, nil
}

// sumdbOps implements sumdb.ClientOps over HTTP to the proxy, with the
// configuration (the latest signed tree head) and the tile cache in dir.
type sumdbOps struct {
	ctx  context.Context
	p    *Proxy
	key  string
	base string // <proxy>/sumdb/<name>
	dir  string

	mu       sync.Mutex
	security []string
}

// configMu serializes compare-and-swap of configuration files within the
// process; a file lock does the same across processes.
var configMu sync.Mutex

func (o *sumdbOps) ReadRemote(path string) ([]byte, error) {
	return o.p.get(o.ctx, o.base+path)
}

func (o *sumdbOps) ReadConfig(file string) ([]byte, error) {
	if file == "key" {
		return []byte(o.key), nil
	}
	path, err := o.path(file)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return []byte{}, nil // start from the empty tree
	}
	return data, err
}

func (o *sumdbOps) WriteConfig(file string, old, new []byte) error {
	path, err := o.path(file)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	configMu.Lock()
	defer configMu.Unlock()
	unlock, err := lockFile(o.ctx, path+".lock")
	if err != nil {
		return err
	}
	defer unlock()
	cur, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if !bytes.Equal(cur, old) {
		return sumdb.ErrWriteConflict
	}
	return writeFileAtomic(path, new)
}

func (o *sumdbOps) ReadCache(file string) ([]byte, error) {
	path, err := o.path(filepath.Join("cache", file))
	if err != nil {
		return nil, err
	}
	return os.ReadFile(path)
}

func (o *sumdbOps) WriteCache(file string, data []byte) {
	path, err := o.path(filepath.Join("cache", file))
	if err != nil {
		return
	}
	if os.MkdirAll(filepath.Dir(path), 0o755) == nil {
		_ = writeFileAtomic(path, data) // a cache: a failed write costs a refetch
	}
}

func (o *sumdbOps) Log(string) {}

func (o *sumdbOps) SecurityError(msg string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.security = append(o.security, strings.TrimSpace(msg))
}

func (o *sumdbOps) securityErrors() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.security, "; ")
}

// path maps a client file name into dir, refusing names that escape it.
func (o *sumdbOps) path(file string) (string, error) {
	rel := filepath.FromSlash(file)
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("checksum database file name %q escapes %s", file, o.dir)
	}
	return filepath.Join(o.dir, rel), nil
}

// writeFileAtomic replaces path with data so readers see the old or the new
// content, never a mix.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
