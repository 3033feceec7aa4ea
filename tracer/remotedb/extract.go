package remotedb

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/offsetdb/offsetdb/offsets"
)

// extract unpacks the gzip'd tar archive into dir, which it creates, and
// returns the database's root: dir when index.json is at the top of the
// archive, or the archive's single top-level directory.
//
// The archive is untrusted even after its checksum matched (the publisher
// may be compromised): only regular files and directories are extracted, at
// most two levels deep, with relative names without "..", no entry twice, and
// at most limit bytes in all.
func extract(archive, dir string, limit int64) (string, error) {
	f, err := os.Open(archive)
	if err != nil {
		return "", err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return "", fmt.Errorf("%w: gzip: %w", ErrArchive, err)
	}
	defer gz.Close()
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", err
	}
	tr := tar.NewReader(gz)
	remaining := limit
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("%w: tar: %w", ErrArchive, err)
		}
		if n >= maxEntries {
			return "", fmt.Errorf("%w: more than %d entries", ErrArchive, maxEntries)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue // pax metadata (git archive writes one), not a file
		}
		name, err := entryName(hdr.Name)
		if err != nil {
			return "", err
		}
		if name == "" {
			continue // the archive's root, "./"
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return "", fmt.Errorf("%w: %s: %w", ErrArchive, hdr.Name, err)
			}
		case tar.TypeReg:
			if hdr.Size > remaining {
				return "", fmt.Errorf("%w: larger than %d bytes extracted (at %s)", ErrArchive, limit, hdr.Name)
			}
			if err := writeEntry(target, tr, hdr); err != nil {
				return "", err
			}
			remaining -= hdr.Size
		default:
			return "", fmt.Errorf("%w: %s is not a regular file or directory (tar type %q)", ErrArchive, hdr.Name, hdr.Typeflag)
		}
	}
	// Read the gzip stream to its end, so its checksum and length are checked.
	if _, err := io.Copy(io.Discard, io.LimitReader(gz, limit)); err != nil {
		return "", fmt.Errorf("%w: gzip: %w", ErrArchive, err)
	}
	return databaseRoot(dir)
}

// entryName returns the slash-separated relative name of an entry, "" for
// the root itself, or an error for a name that could leave the directory.
func entryName(raw string) (string, error) {
	name := strings.TrimSuffix(raw, "/")
	for strings.HasPrefix(name, "./") {
		name = name[2:]
	}
	if name == "." {
		return "", nil
	}
	bad := name == "" || strings.HasPrefix(name, "/") || strings.ContainsAny(name, "\\\x00") ||
		!filepath.IsLocal(filepath.FromSlash(name))
	parts := strings.Split(name, "/")
	for _, p := range parts {
		if p == "" || p == "." || p == ".." {
			bad = true
		}
	}
	if bad {
		return "", fmt.Errorf("%w: entry %q: absolute or outside the archive", ErrArchive, raw)
	}
	if len(parts) > 2 {
		return "", fmt.Errorf("%w: entry %q: nested deeper than a database directory", ErrArchive, raw)
	}
	return name, nil
}

// writeEntry writes one regular file, refusing to replace an earlier entry.
func writeEntry(target string, r io.Reader, hdr *tar.Header) error {
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%w: entry %s appears twice", ErrArchive, hdr.Name)
	}
	if err != nil {
		return err
	}
	n, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrArchive, hdr.Name, err)
	}
	if n != hdr.Size {
		return fmt.Errorf("%w: %s: %d bytes, header says %d", ErrArchive, hdr.Name, n, hdr.Size)
	}
	return nil
}

// databaseRoot finds index.json at the top of dir or in its only
// subdirectory.
func databaseRoot(dir string) (string, error) {
	if fi, err := os.Stat(filepath.Join(dir, offsets.IndexFile)); err == nil && fi.Mode().IsRegular() {
		return dir, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	if len(entries) == 1 && entries[0].IsDir() {
		sub := filepath.Join(dir, entries[0].Name())
		if fi, err := os.Stat(filepath.Join(sub, offsets.IndexFile)); err == nil && fi.Mode().IsRegular() {
			return sub, nil
		}
	}
	return "", fmt.Errorf("%w: no %s at its top or in its only directory", ErrArchive, offsets.IndexFile)
}
