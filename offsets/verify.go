package offsets

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"slices"
)

// Verify checks a database for every fault it can detect: schema versions,
// index checksums, shard encoding (canonical bytes), coverage ordering and
// statuses, field names, and ranges (bounds that are ok-covered versions,
// ordered, not overlapping, maximally compacted). It returns all faults
// found, joined; nil means the database is sound.
func Verify(fsys fs.FS) error {
	ix, err := ReadIndex(fsys)
	if err != nil {
		return err
	}
	var errs []error
	fault := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !slices.IsSortedFunc(ix.Shards, func(a, b IndexEntry) int { return cmp.Compare(a.Module, b.Module) }) {
		fault("%s: shards are not sorted by module", IndexFile)
	}
	seen := map[string]bool{}
	for _, e := range ix.Shards {
		if seen[e.Module] {
			fault("%s: module %s listed twice", IndexFile, e.Module)
		}
		seen[e.Module] = true
		if e.File != ShardFile(e.Module) {
			fault("%s: module %s has file %q, want %q", IndexFile, e.Module, e.File, ShardFile(e.Module))
		}
		data, err := fs.ReadFile(fsys, e.File)
		if err != nil {
			fault("shard %s: %w", e.File, err)
			continue
		}
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != e.SHA256 {
			fault("shard %s: sha256 %s, index says %s: %w", e.File, got, e.SHA256, ErrChecksum)
		}
		s, err := DecodeShard(data)
		if err != nil {
			fault("shard %s: %w", e.File, err)
			continue
		}
		if s.Module != e.Module {
			fault("shard %s: holds module %q, index says %q", e.File, s.Module, e.Module)
		}
		if canon, err := s.Encode(); err == nil && !bytes.Equal(canon, data) {
			fault("shard %s: not in canonical encoding (was it edited by hand?)", e.File)
		}
		if err := s.Check(); err != nil {
			fault("shard %s: %w", e.File, err)
		}
	}
	return errors.Join(errs...)
}

// Check verifies the internal consistency of a decoded shard.
func (s *Shard) Check() error {
	var errs []error
	fault := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	var ids []FieldID
	for name := range s.Fields {
		id, err := ParseFieldID(name)
		if err != nil {
			fault("%w", err)
			continue
		}
		if id.String() != name {
			fault("field %q is not in canonical form %q", name, id)
		}
		ids = append(ids, id)
	}
	if h := FieldSetHash(ids); h != s.FieldSet {
		fault("fieldset hash %s does not match its fields (%s)", s.FieldSet, h)
	}
	okAt := map[string]map[string]int{} // arch -> ok version -> its index among ok versions
	for arch, covs := range s.Coverage {
		okAt[arch] = map[string]int{}
		for i, c := range covs {
			canon, err := CanonicalVersion(s.Module, c.Version)
			switch {
			case err != nil:
				fault("coverage %s: %w", arch, err)
				continue
			case canon != c.Version:
				fault("coverage %s: version %q is not canonical (%q)", arch, c.Version, canon)
			}
			if i > 0 && CompareVersions(s.Module, covs[i-1].Version, c.Version) >= 0 {
				fault("coverage %s: %s listed after %s (must be strictly ascending)", arch, c.Version, covs[i-1].Version)
			}
			switch c.Status {
			case StatusOK:
				okAt[arch][c.Version] = len(okAt[arch])
			case StatusUnavailable, StatusFailed:
				if c.Reason == "" {
					fault("coverage %s: %s is %s without a reason", arch, c.Version, c.Status)
				}
			default:
				fault("coverage %s: %s has unknown status %q", arch, c.Version, c.Status)
			}
		}
	}
	for name, perArch := range s.Fields {
		for arch, ranges := range perArch {
			ok, known := okAt[arch]
			if !known {
				fault("%s: ranges for %s, which has no coverage", name, arch)
				continue
			}
			// Ranges with the same Go bound (a lane; most shards have only
			// the lane "") must be ordered, disjoint and compacted.
			lanes := map[string][]Range{}
			for i, r := range ranges {
				if i > 0 && CompareVersions(s.Module, ranges[i-1].From, r.From) > 0 {
					fault("%s/%s: range %s..%s listed after %s..%s (must be sorted by from)", name, arch, r.From, r.To, ranges[i-1].From, ranges[i-1].To)
				}
				if r.Go != "" {
					c, err := ParseConstraint(StdModule, r.Go)
					switch {
					case IsStd(s.Module):
						fault("%s/%s: range %s..%s has a Go bound %q; standard-library values cannot depend on the Go release", name, arch, r.From, r.To, r.Go)
					case err != nil || c.IsZero() || c.String() != r.Go:
						fault("%s/%s: range %s..%s has Go bound %q, not a canonical constraint on Go releases", name, arch, r.From, r.To, r.Go)
					}
				}
				lanes[r.Go] = append(lanes[r.Go], r)
			}
			for _, lane := range sortedKeys(lanes) {
				checkLane(fault, name, arch, lanes[lane], ok)
			}
			// A version has one value for every Go release, or one per bound.
			if len(lanes) == 0 || len(lanes) == 1 && lanes[""] != nil {
				continue
			}
			for v := range ok {
				var bounded, unbounded int
				for _, r := range ranges {
					if CompareVersions(s.Module, r.From, v) <= 0 && CompareVersions(s.Module, v, r.To) <= 0 {
						if r.Go == "" {
							unbounded++
						} else {
							bounded++
						}
					}
				}
				if unbounded > 1 || unbounded > 0 && bounded > 0 {
					fault("%s/%s: %s has %d values for every Go release and %d per Go bound (want one, or only values per bound)", name, arch, v, unbounded, bounded)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// checkLane checks the ranges of one field, GOARCH and Go bound.
func checkLane(fault func(string, ...any), name, arch string, ranges []Range, ok map[string]int) {
	for i, r := range ranges {
		from, okFrom := ok[r.From]
		to, okTo := ok[r.To]
		if !okFrom || !okTo {
			fault("%s/%s: range %s..%s is not bounded by ok-covered versions", name, arch, r.From, r.To)
			continue
		}
		if from > to {
			fault("%s/%s: range %s..%s is reversed", name, arch, r.From, r.To)
		}
		if r.Type == "" {
			fault("%s/%s: range %s..%s has no type", name, arch, r.From, r.To)
		}
		if i == 0 {
			continue
		}
		prev := ranges[i-1]
		if prevTo, ok := ok[prev.To]; ok {
			switch {
			case prevTo >= from:
				fault("%s/%s: ranges %s..%s and %s..%s overlap or are out of order", name, arch, prev.From, prev.To, r.From, r.To)
			case prevTo+1 == from && prev.Value == r.Value:
				fault("%s/%s: ranges %s..%s and %s..%s are adjacent with equal values (not compacted)", name, arch, prev.From, prev.To, r.From, r.To)
			}
		}
	}
}
