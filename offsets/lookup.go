package offsets

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
)

var (
	// ErrSchema reports a database written in a schema this build cannot read.
	ErrSchema = errors.New("unsupported database schema")
	// ErrUnknownModule reports a module the database has no shard for.
	ErrUnknownModule = errors.New("module not in database")
	// ErrUnknownVersion reports a version the database has no build for. The
	// database never extrapolates: a version newer than the newest covered
	// one is unknown, not "probably the same".
	ErrUnknownVersion = errors.New("version not in database")
	// ErrUnknownArch reports a GOARCH the database has no builds for.
	ErrUnknownArch = errors.New("architecture not in database")
	// ErrUnknownField reports a field the database does not track.
	ErrUnknownField = errors.New("field not tracked by database")
	// ErrFieldAbsent reports a tracked field that does not exist in the
	// struct in that version (for example a field added in a later release).
	ErrFieldAbsent = errors.New("field does not exist in this version")
	// ErrChecksum reports a shard whose bytes do not match the index.
	ErrChecksum = errors.New("shard checksum mismatch")
	// ErrGoDependent reports a field whose value in that module version
	// depends on the Go release the target was built with, when that
	// release was not given (WithGoVersion) or no recorded bound allows it.
	ErrGoDependent = errors.New("value depends on the Go release of the target")
)

// DB is a read-only offset database. Shards are decoded on first use and
// checked against the index's sha256.
type DB struct {
	fsys  fs.FS
	index *Index

	mu     sync.Mutex
	shards map[string]*Shard
}

// Open opens the database in fsys (for example the embedded data/ directory
// or os.DirFS of a directory written by offsetgen). Only the index is read.
func Open(fsys fs.FS) (*DB, error) {
	ix, err := ReadIndex(fsys)
	if err != nil {
		return nil, fmt.Errorf("open offset database: %w", err)
	}
	return &DB{fsys: fsys, index: ix, shards: map[string]*Shard{}}, nil
}

// OpenDir opens the database in directory dir.
func OpenDir(dir string) (*DB, error) {
	db, err := Open(os.DirFS(dir))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return db, nil
}

// Index returns the database's index.
func (db *DB) Index() *Index { return db.index }

// Modules returns the modules the database has shards for, sorted.
func (db *DB) Modules() []string {
	var ms []string
	for _, e := range db.index.Shards {
		ms = append(ms, e.Module)
	}
	slices.Sort(ms)
	return ms
}

// Shard decodes (once) and returns the shard of module.
func (db *DB) Shard(module string) (*Shard, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if s, ok := db.shards[module]; ok {
		return s, nil
	}
	i := slices.IndexFunc(db.index.Shards, func(e IndexEntry) bool { return e.Module == module })
	if i < 0 {
		return nil, fmt.Errorf("%s: %w (modules: %v)", module, ErrUnknownModule, db.Modules())
	}
	e := db.index.Shards[i]
	data, err := fs.ReadFile(db.fsys, e.File)
	if err != nil {
		return nil, fmt.Errorf("read shard of %s: %w", module, err)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != e.SHA256 {
		return nil, fmt.Errorf("shard %s: sha256 %s, index says %s: %w", e.File, got, e.SHA256, ErrChecksum)
	}
	s, err := DecodeShard(data)
	if err != nil {
		return nil, fmt.Errorf("shard %s: %w", e.File, err)
	}
	if s.Module != module {
		return nil, fmt.Errorf("shard %s holds module %q, index says %q", e.File, s.Module, module)
	}
	db.shards[module] = s
	return s, nil
}

// Provenance says where a value came from, so a user can judge and
// reproduce it.
type Provenance struct {
	Source  string // "database"
	Module  string
	Version string // the version asked for, canonical
	Arch    string
	// From and To bound the range of covered versions the value holds for.
	From, To string
	// Interpolated is set when Version itself was never built and the value
	// was taken from the covered versions around it (see WithInterpolation).
	Interpolated bool
	// Go is the bound on the target's Go release the value holds for, when
	// the value depends on it (see Range.Go); "" otherwise.
	Go string
}

func (p Provenance) String() string {
	s := fmt.Sprintf("%s %s %s..%s", p.Source, p.Module, p.From, p.To)
	if p.Go != "" {
		s += " (targets built with " + p.Go + ")"
	}
	if p.Interpolated {
		s += " (interpolated: " + p.Version + " was not built)"
	}
	return s
}

// Result is a field's value and where it came from.
type Result struct {
	Value
	Provenance Provenance
}

// LookupOption changes how Lookup treats versions it has not built.
type LookupOption func(*lookupConfig)

type lookupConfig struct {
	interpolate bool
	goVersion   string // canonical Go release of the target, or ""
}

// WithGoVersion gives the Go release the target was built with ("go1.24.3",
// "1.24.3"), which Lookup needs for a module field whose layout depends on
// it (Range.Go). Without it such a lookup fails with ErrGoDependent; other
// lookups ignore it.
func WithGoVersion(v string) LookupOption {
	return func(c *lookupConfig) {
		if canon, err := CanonicalVersion(StdModule, v); err == nil {
			c.goVersion = canon
		}
	}
}

// WithInterpolation lets Lookup answer for a version that was never built
// (its toolchain unavailable, say go1.12.5) when the nearest built versions
// below and above it are in the same release line and agree on the value.
// The Provenance is marked Interpolated. Off by default: it is an inference,
// and patch releases have changed layouts before.
//
// Only versions the database records (the module proxy listed or served
// them, but they were not built: unavailable or failed) are interpolated. A
// version with no record at all is refused with an error that says so: it
// may never have been published (or was retracted, like kafka-go v0.4.36),
// and a layout read off its neighbours would be made up.
func WithInterpolation() LookupOption {
	return func(c *lookupConfig) { c.interpolate = true }
}

// VersionError explains why a version cannot be answered for.
type VersionError struct {
	Module, Version, Arch string
	Status                Status // zero if the version was never seen
	Reason                string
	Newest                string // newest ok version for Arch
}

func (e *VersionError) Error() string {
	switch e.Status {
	case StatusUnavailable, StatusFailed:
		return fmt.Sprintf("%s@%s (%s): %s in database: %s", e.Module, e.Version, e.Arch, e.Status, e.Reason)
	}
	return fmt.Sprintf("%s@%s (%s) is not in the database (newest covered: %s); run: %s",
		e.Module, e.Version, e.Arch, e.Newest, GenerateCommand(e.Module, e.Version, e.Arch))
}

// GenerateCommand returns the offsetgen command that builds version of
// module for arch into a database directory DIR, which the tracer then
// loads with --offsets-dir: "offsetgen generate --versions 1.22.5 --arch
// amd64 --out DIR" for std, with --goexperiment for an ExperimentModule,
// with --modules for a third-party module.
func GenerateCommand(module, version, arch string) string {
	var b strings.Builder
	b.WriteString("offsetgen generate")
	switch {
	case module == StdModule:
	case IsStd(module):
		b.WriteString(" --goexperiment " + strings.Join(Experiments(module), ","))
	default:
		b.WriteString(" --modules " + module)
	}
	if IsStd(module) {
		version = strings.TrimPrefix(version, "go")
	}
	b.WriteString(" --versions " + version)
	if arch != "" {
		b.WriteString(" --arch " + arch)
	}
	b.WriteString(" --out DIR")
	return b.String()
}

func (e *VersionError) Unwrap() error { return ErrUnknownVersion }

// notRecordedError refuses to interpolate a version the database has no
// coverage entry for.
type notRecordedError struct{ *VersionError }

func (e *notRecordedError) Error() string {
	cmd := GenerateCommand(e.Module, e.Version, e.Arch)
	return fmt.Sprintf("%s@%s (%s) is not interpolated: the database has no record of this version, which the generator "+
		"never saw listed or served by the module proxy (never published, retracted, or published after the database); "+
		"only recorded versions that did not build are interpolated. If the proxy serves it, run: %s", e.Module, e.Version, e.Arch, cmd)
}

func (e *notRecordedError) Unwrap() error { return e.VersionError }

// Lookup returns the value of field in module at version for GOARCH arch.
//
// It answers only for versions the database built (or, with
// WithInterpolation, versions enclosed by agreeing builds of the same line).
// Errors wrap ErrUnknownModule, ErrUnknownVersion (as a *VersionError),
// ErrUnknownArch, ErrUnknownField or ErrFieldAbsent.
func (db *DB) Lookup(module, version, arch string, field FieldID, opts ...LookupOption) (Result, error) {
	s, err := db.Shard(module)
	if err != nil {
		return Result{}, err
	}
	return s.Lookup(version, arch, field, opts...)
}

// Lookup is DB.Lookup on one shard.
func (s *Shard) Lookup(version, arch string, field FieldID, opts ...LookupOption) (Result, error) {
	var cfg lookupConfig
	for _, o := range opts {
		o(&cfg)
	}
	v, err := CanonicalVersion(s.Module, version)
	if err != nil {
		return Result{}, fmt.Errorf("%s@%s: %w", s.Module, version, err)
	}
	covs, ok := s.Coverage[arch]
	if !ok {
		return Result{}, fmt.Errorf("%s for %s: %w", arch, s.Module, ErrUnknownArch)
	}
	if _, ok := s.Fields[field.String()]; !ok {
		if exp, ok := strings.CutPrefix(s.Module, StdModule+"+"); ok {
			// An experiment shard keeps the field set it was generated with.
			return Result{}, fmt.Errorf("%s in %s: %w: the shard was generated before the field was tracked; run offsetgen generate --goexperiment %s --versions %s --arch %s --out DIR (all of them: make offsets-experiments)",
				field, s.Module, ErrUnknownField, exp, strings.TrimPrefix(version, "go"), arch)
		}
		return Result{}, fmt.Errorf("%s in %s: %w; add it to the field set and run offsetgen generate", field, s.Module, ErrUnknownField)
	}
	prov := Provenance{Source: "database", Module: s.Module, Version: v, Arch: arch}

	i, found := slices.BinarySearchFunc(covs, v, func(c Coverage, v string) int { return CompareVersions(s.Module, c.Version, v) })
	if found && covs[i].Status == StatusOK {
		r, err := s.pick(field, arch, v, cfg.goVersion)
		if err != nil {
			return Result{}, err
		}
		prov.From, prov.To, prov.Go = r.From, r.To, r.Go
		return Result{Value: r.Value, Provenance: prov}, nil
	}
	verr := &VersionError{Module: s.Module, Version: v, Arch: arch, Newest: newestOK(covs)}
	if found {
		verr.Status, verr.Reason = covs[i].Status, covs[i].Reason
	}
	if !cfg.interpolate {
		return Result{}, verr
	}
	if !found {
		// Only a version the generator saw can be interpolated: one the
		// proxy listed or served but that did not build (unavailable,
		// failed). A version it never saw may not exist at all (kafka-go
		// v0.4.36 is retracted, go1.22.13 was never released), and its
		// neighbours say nothing about a layout that may not exist.
		return Result{}, &notRecordedError{verr}
	}
	// Nearest ok builds below and above v.
	lo, hi := -1, -1
	for j := i - 1; j >= 0; j-- {
		if covs[j].Status == StatusOK {
			lo = j
			break
		}
	}
	for j := i; j < len(covs); j++ {
		if covs[j].Status == StatusOK && CompareVersions(s.Module, covs[j].Version, v) > 0 {
			hi = j
			break
		}
	}
	if lo < 0 || hi < 0 || !sameLine(s.Module, covs[lo].Version, v) || !sameLine(s.Module, v, covs[hi].Version) {
		return Result{}, verr
	}
	for _, around := range []string{covs[lo].Version, covs[hi].Version} {
		if slices.ContainsFunc(s.findAll(field.String(), arch, around), func(r Range) bool { return r.Go != "" }) {
			return Result{}, fmt.Errorf("%w; the value at %s depends on the Go release, so it cannot be interpolated", verr, around)
		}
	}
	rlo, okLo := s.find(field.String(), arch, covs[lo].Version)
	rhi, okHi := s.find(field.String(), arch, covs[hi].Version)
	if okLo != okHi || (okLo && rlo != rhi) {
		return Result{}, fmt.Errorf("%w; the builds around it (%s, %s) disagree, so it cannot be interpolated", verr, covs[lo].Version, covs[hi].Version)
	}
	if !okLo {
		return Result{}, fmt.Errorf("%s at %s@%s (%s, interpolated): %w", field, s.Module, v, arch, ErrFieldAbsent)
	}
	prov.From, prov.To, prov.Interpolated = rlo.From, rlo.To, true
	return Result{Value: rlo.Value, Provenance: prov}, nil
}

// pick returns the range of field holding at the ok version v for a target
// built with Go release goVersion ("" when unknown).
func (s *Shard) pick(field FieldID, arch, v, goVersion string) (Range, error) {
	rs := s.findAll(field.String(), arch, v)
	switch {
	case len(rs) == 0:
		return Range{}, fmt.Errorf("%s at %s@%s (%s): %w", field, s.Module, v, arch, ErrFieldAbsent)
	case len(rs) == 1 && rs[0].Go == "":
		return rs[0], nil
	}
	var bounds []string
	for _, r := range rs {
		bounds = append(bounds, r.Go)
		if goVersion == "" {
			continue
		}
		if c, err := ParseConstraint(StdModule, r.Go); err == nil && c.Allows(goVersion) {
			return r, nil
		}
	}
	if goVersion == "" {
		return Range{}, fmt.Errorf("%s at %s@%s (%s): %w (recorded for %s); give the target's Go release",
			field, s.Module, v, arch, ErrGoDependent, strings.Join(bounds, "; "))
	}
	return Range{}, fmt.Errorf("%s at %s@%s (%s) for a target built with %s: %w, and the database has values only for %s; read the binary's DWARF",
		field, s.Module, v, arch, goVersion, ErrGoDependent, strings.Join(bounds, "; "))
}

func newestOK(covs []Coverage) string {
	for i := len(covs) - 1; i >= 0; i-- {
		if covs[i].Status == StatusOK {
			return covs[i].Version
		}
	}
	return "none"
}
