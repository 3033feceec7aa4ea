package offsets

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// Encode returns the canonical bytes of a shard: indented JSON with sorted
// keys and a trailing newline. Equal shards encode to equal bytes, which is
// what makes regeneration reproducible and diffs reviewable.
func (s *Shard) Encode() ([]byte, error) {
	return encode(s)
}

// DecodeShard parses a shard and checks its schema version.
func DecodeShard(data []byte) (*Shard, error) {
	var s Shard
	if err := strictUnmarshal(data, &s); err != nil {
		return nil, err
	}
	if s.Schema != SchemaVersion {
		return nil, fmt.Errorf("shard schema %d, this build reads schema %d: %w", s.Schema, SchemaVersion, ErrSchema)
	}
	return &s, nil
}

// DecodeIndex parses an index and checks its schema version.
func DecodeIndex(data []byte) (*Index, error) {
	var ix Index
	if err := strictUnmarshal(data, &ix); err != nil {
		return nil, err
	}
	if ix.Schema != SchemaVersion {
		return nil, fmt.Errorf("index schema %d, this build reads schema %d: %w", ix.Schema, SchemaVersion, ErrSchema)
	}
	return &ix, nil
}

// ReadIndex reads the index of the database in fsys.
func ReadIndex(fsys fs.FS) (*Index, error) {
	data, err := fs.ReadFile(fsys, IndexFile)
	if err != nil {
		return nil, err
	}
	ix, err := DecodeIndex(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", IndexFile, err)
	}
	return ix, nil
}

// WriteShard writes s into the database directory dir and updates the index,
// each file atomically (written to a temporary file, synced, renamed), so an
// interrupted run leaves either the old or the new file, never half of one.
// The index is written after the shard: a crash in between leaves a checksum
// mismatch that "offsetgen verify" reports and the next run repairs.
func WriteShard(dir string, s *Shard) error {
	data, err := s.Encode()
	if err != nil {
		return fmt.Errorf("encode shard %s: %w", s.Module, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	file := ShardFile(s.Module)
	if err := writeAtomic(filepath.Join(dir, file), data); err != nil {
		return err
	}
	ix, err := ReadIndex(os.DirFS(dir))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		ix = &Index{Schema: SchemaVersion, Shards: []IndexEntry{}}
	case err != nil:
		return fmt.Errorf("update index in %s: %w", dir, err)
	}
	sum := sha256.Sum256(data)
	entry := IndexEntry{Module: s.Module, File: file, SHA256: hex.EncodeToString(sum[:])}
	i := slices.IndexFunc(ix.Shards, func(e IndexEntry) bool { return e.Module == s.Module })
	if i >= 0 {
		ix.Shards[i] = entry
	} else {
		ix.Shards = append(ix.Shards, entry)
	}
	slices.SortFunc(ix.Shards, func(a, b IndexEntry) int { return cmp.Compare(a.Module, b.Module) })
	ix.Generated = GeneratedNotice
	idx, err := encode(ix)
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, IndexFile), idx)
}

func encode(v any) ([]byte, error) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}

func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}
