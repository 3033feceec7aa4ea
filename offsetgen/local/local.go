// Package local builds offsets for a module on disk: a user's own library,
// checked out in a directory, that the proxy does not (or not yet) serve.
//
// It builds one probe per GOARCH with the local Go toolchain, requiring the
// module through a replace directive, reads the fields from the probe's
// DWARF and records the result in the module's shard, in the same format as
// the published database, so "offsetgen query" and the tracer's
// --offsets-dir read it as they read data/.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"github.com/offsetdb/offsetdb/fieldset"
	"github.com/offsetdb/offsetdb/layout"
	"github.com/offsetdb/offsetdb/offsetgen/probe"
	"github.com/offsetdb/offsetdb/offsetgen/toolchain"
	"github.com/offsetdb/offsetdb/offsets"
)

var (
	// ErrNotModule reports a directory without a go.mod.
	ErrNotModule = errors.New("not a Go module")
	// ErrMissingFields reports fields the probe's DWARF does not have.
	ErrMissingFields = errors.New("fields not found")
	// ErrFieldSetChanged reports a database that already holds the module
	// for another set of fields: writing would drop its other versions.
	ErrFieldSetChanged = errors.New("database holds the module for another field set")
)

// Config says which module to build, with which fields, and where to write.
type Config struct {
	Dir string // module directory (holds go.mod)
	// Set lists the fields; their packages must be in the module. Set.Module
	// is ignored: the module path is read from go.mod.
	Set *fieldset.Set
	// Version names the build in the database; "" takes the pseudo-version
	// of the directory's git commit, or offsets.DevelVersion without git.
	Version    string
	Arches     []string // GOARCHes to build for
	OutDir     string   // database directory
	ScratchDir string   // parent of the build directory; "" for the system's
	// Replace starts the module's shard afresh when the database holds it
	// for another field set, dropping its other versions. Without it such
	// a database is refused (ErrFieldSetChanged).
	Replace bool
	Log     *slog.Logger
}

// Result says what was written.
type Result struct {
	Module    string
	Version   string
	Toolchain string // the local toolchain that built the probes, "go1.26.8"
	// Values holds, per GOARCH, the value of every field.
	Values map[string]map[offsets.FieldID]offsets.Value
}

// Run builds the probes and writes the module's shard into cfg.OutDir.
//
// Any failure (no go.mod, a field outside the module or missing from its
// DWARF, a probe that does not build) is returned before the database is
// touched: the database changes only when every GOARCH built and every
// field was found, and then atomically (offsets.WriteShard). A version
// already recorded is replaced; other versions of the module are kept.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	mod, goVersion, err := readGoMod(dir)
	if err != nil {
		return nil, err
	}
	if len(cfg.Set.Fields) == 0 {
		return nil, errors.New("no fields given: name at least one field, e.g. " + mod + ".Client.conn")
	}
	var outside []string
	for _, f := range cfg.Set.Fields {
		p := strings.ReplaceAll(f.Package, "%2e", ".")
		if p != mod && !strings.HasPrefix(p, mod+"/") {
			outside = append(outside, f.String())
		}
	}
	if len(outside) > 0 {
		return nil, fmt.Errorf("fields %s are not in module %s (from %s): name fields of the module's own packages, e.g. %s.Client.conn",
			strings.Join(outside, ", "), mod, filepath.Join(dir, "go.mod"), mod)
	}
	set := *cfg.Set
	set.Module = mod
	var noDir []string
	for _, p := range (&fieldset.Set{Fields: set.Fields}).Packages() {
		rel := strings.TrimPrefix(strings.TrimPrefix(strings.ReplaceAll(p, "%2e", "."), mod), "/")
		if st, err := os.Stat(filepath.Join(dir, filepath.FromSlash(rel))); err != nil || !st.IsDir() {
			noDir = append(noDir, fmt.Sprintf("%s (no directory %s)", p, filepath.Join(dir, filepath.FromSlash(rel))))
		}
	}
	if len(noDir) > 0 {
		return nil, fmt.Errorf("packages not in module %s: %s; check the fields' import paths", mod, strings.Join(noDir, ", "))
	}

	version := cfg.Version
	if version == "" {
		version = VCSVersion(ctx, dir, mod, log)
	}
	version, err = offsets.CanonicalVersion(mod, version)
	if err != nil {
		return nil, fmt.Errorf("--version: %w", err)
	}

	table, err := loadTable(cfg.OutDir, &set, cfg.Replace)
	if err != nil {
		return nil, err
	}
	tc, err := toolchain.Local(ctx)
	if err != nil {
		return nil, err
	}
	scratch, err := os.MkdirTemp(cfg.ScratchDir, "offsetgen-local-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)

	// The table tracks every field; the probe asks for those whose bounds
	// (if the field file gives any) allow this version.
	probeSet := set.At(version)
	res := &Result{Module: mod, Version: version, Toolchain: tc.Version, Values: map[string]map[offsets.FieldID]offsets.Value{}}
	for _, arch := range cfg.Arches {
		log.Info("building probe", "module", mod, "dir", dir, "version", version, "toolchain", tc.Version, "arch", arch)
		b := probe.Build{
			GOROOT:    tc.GOROOT,
			Arch:      arch,
			Dir:       scratch,
			GOCACHE:   tc.GOCACHE,
			Require:   []probe.Requirement{{Path: mod, Dir: dir}},
			ModuleEnv: tc.ModuleEnv,
			GoVersion: goVersion,
		}
		bin, err := b.Run(ctx, probeSet)
		if err != nil {
			if errors.Is(err, probe.ErrBuild) {
				if undefined := undefinedStructs(probeSet, err.Error()); len(undefined) > 0 {
					return nil, fmt.Errorf("%w: no struct %s in %s (the probe names them: %v); check the struct names; nothing was written",
						ErrMissingFields, strings.Join(undefined, ", "), dir, err)
				}
				return nil, fmt.Errorf("build probe against %s in %s with %s for %s: %w\n"+
					"check that the module builds ('go build ./...' in %s) and that every package named by the fields exists; nothing was written",
					mod, dir, tc.Version, arch, err, dir)
			}
			return nil, fmt.Errorf("build probe against %s for %s: %w", mod, arch, err)
		}
		values, err := readFields(bin, probeSet.Fields)
		if err != nil {
			return nil, fmt.Errorf("%s@%s (%s): %w; nothing was written", mod, version, arch, err)
		}
		res.Values[arch] = values
	}
	for _, arch := range cfg.Arches {
		if err := table.Set(arch, offsets.Build{
			Coverage: offsets.Coverage{Version: version, Status: offsets.StatusOK, Toolchain: tc.Version},
			Values:   res.Values[arch],
		}); err != nil {
			return nil, err
		}
	}
	if err := offsets.WriteShard(cfg.OutDir, table.Shard()); err != nil {
		return nil, fmt.Errorf("write %s into %s: %w", mod, cfg.OutDir, err)
	}
	return res, nil
}

// readGoMod returns the module path and go directive of dir/go.mod.
func readGoMod(dir string) (path, goVersion string, err error) {
	file := filepath.Join(dir, "go.mod")
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		if st, serr := os.Stat(dir); serr != nil || !st.IsDir() {
			return "", "", fmt.Errorf("%s: no such directory: pass the directory that holds the library's go.mod", dir)
		}
		return "", "", fmt.Errorf("%s has no go.mod: %w; pass the directory that holds the library's go.mod (or run 'go mod init MODULE' there)", dir, ErrNotModule)
	}
	if err != nil {
		return "", "", err
	}
	f, err := modfile.ParseLax(file, data, nil)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", file, err)
	}
	if f.Module == nil || f.Module.Mod.Path == "" {
		return "", "", fmt.Errorf("%s has no module directive: %w", file, ErrNotModule)
	}
	if f.Go != nil {
		goVersion = f.Go.Version
	}
	return f.Module.Mod.Path, goVersion, nil
}

// VCSVersion returns the version the go command gives the module in dir
// at its current git commit when another module requires it: the
// commit's own semantic version tag, else a pseudo-version
// (module.PseudoVersion) based on the highest tag among its ancestors
// ("v1.2.4-0.20261121071500-0123456789ab") or on none
// ("v0.0.0-20261121071500-0123456789ab"), with the major version of the
// module path. Tags of a module in a subdirectory carry the directory as
// prefix ("sub/v1.2.3"). Without git, or outside a repository, it returns
// offsets.DevelVersion. Uncommitted changes are not part of the name: it
// warns about them.
func VCSVersion(ctx context.Context, dir, modulePath string, log *slog.Logger) string {
	if _, err := exec.LookPath("git"); err != nil {
		return offsets.DevelVersion
	}
	git := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...).Output()
		return strings.TrimSpace(string(out)), err
	}
	out, err := git("log", "-1", "--format=%H %ct")
	if err != nil {
		return offsets.DevelVersion
	}
	hash, ct, ok := strings.Cut(out, " ")
	sec, perr := strconv.ParseInt(ct, 10, 64)
	if !ok || perr != nil || len(hash) < 12 {
		return offsets.DevelVersion
	}
	_, pathMajor, _ := module.SplitPathVersion(modulePath)
	major := module.PathMajorPrefix(pathMajor)
	prefix, _ := git("rev-parse", "--show-prefix")
	// tagged returns the highest semantic version among tags (one per
	// line) that belongs to this module's major version.
	tagged := func(tags string) string {
		best := ""
		for _, tag := range strings.Fields(tags) {
			v, ok := strings.CutPrefix(tag, prefix)
			if !ok || !semver.IsValid(v) || semver.Build(v) != "" || semver.Compare(v, best) <= 0 {
				continue
			}
			if m := semver.Major(v); (major == "" && (m == "v0" || m == "v1")) || m == major {
				best = v
			}
		}
		return best
	}
	if status, err := git("status", "--porcelain", "--", "."); err == nil && status != "" && log != nil {
		log.Warn("uncommitted changes: the offsets are recorded under the last commit's version; pass --version to name them otherwise", "dir", dir)
	}
	if tags, err := git("tag", "--points-at", "HEAD"); err == nil {
		if v := tagged(tags); v != "" {
			return v
		}
	}
	older := ""
	if tags, err := git("tag", "--merged", "HEAD"); err == nil {
		older = tagged(tags)
	}
	return module.PseudoVersion(major, older, time.Unix(sec, 0).UTC(), hash[:12])
}

// loadTable reads the module's table from the database in dir, or returns
// an empty one. A shard recorded for another field set is refused, not
// replaced, unless replace: it would lose the module's other versions.
func loadTable(dir string, set *fieldset.Set, replace bool) (*offsets.Table, error) {
	fresh := offsets.NewTable(set.Module, set.Fields)
	db, err := offsets.OpenDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return fresh, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read existing database: %w (fix it, run offsetgen verify, or choose another --out)", err)
	}
	s, err := db.Shard(set.Module)
	if errors.Is(err, offsets.ErrUnknownModule) {
		return fresh, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read existing database: %w (fix it, run offsetgen verify, or choose another --out)", err)
	}
	if s.FieldSet != offsets.FieldSetHash(set.Fields) && replace {
		return fresh, nil
	}
	if s.FieldSet != offsets.FieldSetHash(set.Fields) {
		have := slices.Sorted(maps.Keys(s.Fields))
		return nil, fmt.Errorf("%s in %s: %w (%s); give the same fields, choose another --out, or pass --replace to drop its other versions", set.Module, dir, ErrFieldSetChanged, strings.Join(have, ", "))
	}
	return s.Expand()
}

// readFields reads every field from a probe. Unlike the std generator,
// which records a field missing in some release as absent, a field the
// user named must exist: a missing one is an error naming it.
func readFields(bin string, ids []offsets.FieldID) (map[offsets.FieldID]offsets.Value, error) {
	f, err := layout.Open(bin)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	values, err := f.Fields(ids)
	var missing *layout.MissingError
	if errors.As(err, &missing) {
		var lines []string
		for _, id := range ids {
			e, ok := missing.Missing[id]
			if !ok {
				continue
			}
			hint := "check the field's name and path"
			if errors.Is(e, layout.ErrTypeNotFound) {
				hint = "check the package and struct name; an unexported struct, or one in an internal package, needs a \"keep EXPR\" line in the field file that references code using it"
			}
			lines = append(lines, fmt.Sprintf("  %s: %v (%s)", id, e, hint))
		}
		return nil, fmt.Errorf("%w in the probe's DWARF:\n%s", ErrMissingFields, strings.Join(lines, "\n"))
	}
	return values, err
}

// undefinedStructs returns the exported structs of set the compiler says
// are undefined: a field naming a struct the package does not declare.
func undefinedStructs(set *fieldset.Set, output string) []string {
	alias := probe.ImportAliases(set.Packages())
	lines := strings.Split(output, "\n")
	var out []string
	for _, f := range set.Fields {
		name := f.TypeName()
		if slices.Contains(out, name) {
			continue
		}
		for _, l := range lines {
			if strings.HasSuffix(strings.TrimSpace(l), "undefined: "+alias[f.Package]+"."+f.Struct) {
				out = append(out, name)
				break
			}
		}
	}
	return out
}
