// Package generate runs the std generator: it lists Go releases, fetches
// each toolchain, builds one probe per GOARCH, reads the probe's DWARF and
// writes the module's shard into the database, incrementally and resumably.
package generate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/offsetdb/offsetdb/fieldset"
	"github.com/offsetdb/offsetdb/gobinary"
	"github.com/offsetdb/offsetdb/goversion"
	"github.com/offsetdb/offsetdb/offsetgen/probe"
	"github.com/offsetdb/offsetdb/offsetgen/toolchain"
	"github.com/offsetdb/offsetdb/offsets"
)

// Config says what to generate and where.
type Config struct {
	Set    *fieldset.Set // fields to extract; Set.Module must be "std"
	Arches []string      // GOARCHes to build probes for
	Since  goversion.Version
	// Until, if not zero, is the newest release line to cover ("go1.22"
	// covers every go1.22.x): CI splits a full run into one job per line.
	Until    goversion.Version
	Workers  int    // parallel toolchains; each build already uses every core
	CacheDir string // toolchains, build caches and scratch space
	OutDir   string // database directory
	Proxy    *toolchain.Proxy
	// KeepToolchains leaves unpacked toolchains in CacheDir (about 230 MB
	// each) instead of removing them once their probes are read.
	KeepToolchains bool
	// RetryFailed rebuilds versions recorded as failed.
	RetryFailed bool
	// Recheck asks the proxy about every release again, including those
	// the database already records (ok, failed or unavailable). Without
	// it, recorded releases are taken as settled, which makes a no-op run
	// fast.
	Recheck bool
	// RecheckUnavailable asks the proxy again about the releases recorded
	// unavailable only (one request each, about 170 since go1.12), keeping
	// the other recorded answers: the proxy starts serving releases it
	// once withheld (go1.20.2), and those are then built. It costs far
	// less than Recheck, which probes every line in full; the scheduled
	// regeneration sets it once a week.
	RecheckUnavailable bool
	// Versions, if set, restricts the run to these releases.
	Versions []goversion.Version
	// Experiments, if set, builds the probes with these GOEXPERIMENTs
	// (boringcrypto with cgo: the host's gcc for amd64, the
	// aarch64-linux-gnu cross gcc for arm64) into a shard of its own,
	// offsets.ExperimentModule(Experiments), beside std's. A release
	// without such an experiment (or where it is the default, so the
	// build is a default build) is recorded failed with the reason.
	Experiments []string
	Log         *slog.Logger
	Progress    io.Writer // progress bar; nil for none
}

// ModuleName returns the module the run writes: std, or the
// offsets.ExperimentModule of Experiments (std when they do not name one).
func (c Config) ModuleName() string {
	if m, err := offsets.ExperimentModule(c.Experiments); err == nil {
		return m
	}
	return offsets.StdModule
}

// Cost is what one Go version cost, split by phase.
type Cost struct {
	Version  string
	Download time.Duration
	Verify   time.Duration
	Unpack   time.Duration
	Build    map[string]time.Duration // per GOARCH
	Extract  map[string]time.Duration // per GOARCH
}

// Report summarises a run.
type Report struct {
	Releases    int // releases the proxy knows since Config.Since
	Built       int // (version, arch) probes built and read this run
	UpToDate    int // (version, arch) already in the database for this field set
	Unavailable int // versions the proxy does not serve
	Failed      int // (version, arch) that did not build this run
	Costs       []Cost
	Warnings    []string
	// AgainstDefault says, for a run with Config.Experiments, how each ok
	// build compares with the default build of the same release and GOARCH
	// in std's shard of the same database: "go1.24.13/amd64: same offsets
	// as the default build", or which fields differ.
	AgainstDefault []string
	Wall           time.Duration
}

// job is one Go version and the GOARCHes it still needs.
type job struct {
	v      goversion.Version
	arches []string
}

// Run generates the std shard. It writes the shard after every finished
// version, so an interrupted run keeps what it built and the next run
// continues where it stopped. Transient errors (network, cancellation) are
// not recorded in the database; they make Run return an error after the
// other versions are done.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	var err error
	start := time.Now()
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Workers < 1 {
		cfg.Workers = 1
	}
	module := cfg.Set.Module
	if module != offsets.StdModule {
		return nil, fmt.Errorf("generate: module %s: only std is supported by this generator", module)
	}
	if len(cfg.Experiments) > 0 {
		if module, err = offsets.ExperimentModule(cfg.Experiments); err != nil {
			return nil, fmt.Errorf("generate: %w", err)
		}
		set := *cfg.Set
		set.Module = module
		cfg.Set = &set
		cfg.Experiments = offsets.Experiments(module)
	}
	table, err := LoadTable(cfg.OutDir, cfg.Set, log)
	if err != nil {
		return nil, err
	}

	var releases []toolchain.Release
	if len(cfg.Versions) > 0 {
		for _, v := range cfg.Versions {
			releases = append(releases, toolchain.Release{Version: v, Available: true})
		}
	} else {
		if !cfg.Recheck {
			cfg.Proxy.Settled = settled(table, cfg.Arches, cfg.RecheckUnavailable)
		}
		log.Info("listing Go releases", "proxy", cfg.Proxy.URL, "since", cfg.Since.String())
		releases, err = cfg.Proxy.Releases(ctx, cfg.Since)
		if err != nil {
			return nil, fmt.Errorf("list Go releases: %w", err)
		}
		if cfg.Until != (goversion.Version{}) {
			releases = slices.DeleteFunc(releases, func(r toolchain.Release) bool {
				return r.Version.Minor > cfg.Until.Minor
			})
		}
	}
	rep := &Report{Releases: len(releases)}
	jobs, err := plan(table, releases, cfg, rep)
	if err != nil {
		return nil, err
	}
	log.Info("plan", "releases", len(releases), "to_build", len(jobs), "up_to_date_probes", rep.UpToDate, "unavailable", rep.Unavailable)

	g := &generator{cfg: cfg, log: log, table: table, rep: rep,
		cache: &toolchain.Cache{Dir: filepath.Join(cfg.CacheDir, "toolchains"), Proxy: cfg.Proxy}}
	// Write once even when there is nothing to build: coverage of newly
	// unavailable versions is news too.
	if err := g.write(); err != nil {
		return nil, err
	}
	transient := RunJobs(ctx, jobs, cfg.Workers, cfg.Progress, log, func(j job) string { return j.v.String() },
		func(ctx context.Context, j job) error {
			if err := g.runJob(ctx, j); err != nil {
				return fmt.Errorf("%s: %w", j.v, err)
			}
			return nil
		})
	rep.Warnings = suspiciousAbsences(table)
	for _, w := range rep.Warnings {
		log.Warn(w)
	}
	if len(cfg.Experiments) > 0 {
		std := *cfg.Set
		std.Module = offsets.StdModule
		def, err := LoadTable(cfg.OutDir, &std, log)
		if err != nil {
			return rep, err
		}
		rep.AgainstDefault = againstDefault(table, def)
		for _, line := range rep.AgainstDefault {
			log.Info(line)
		}
	}
	rep.Wall = time.Since(start)
	sort.Slice(rep.Costs, func(i, j int) bool {
		return goversion.MustParse(rep.Costs[i].Version).Less(goversion.MustParse(rep.Costs[j].Version))
	})
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("interrupted; finished versions are saved, run again to continue: %w", err)
	}
	if len(transient) > 0 {
		return rep, fmt.Errorf("%d versions not done (run again to retry): %w", len(transient), errors.Join(transient...))
	}
	return rep, nil
}

// plan returns the builds releases still need: every GOARCH of cfg not yet
// ok (nor failed, unless cfg.RetryFailed) for a release the proxy serves.
// A release it does not serve is recorded unavailable in table instead;
// one recorded unavailable that the proxy serves now is built.
func plan(table *offsets.Table, releases []toolchain.Release, cfg Config, rep *Report) ([]job, error) {
	var jobs []job
	for _, r := range releases {
		var need []string
		for _, arch := range cfg.Arches {
			b, ok := table.Builds[arch][r.Version.String()]
			switch {
			case ok && b.Status == offsets.StatusOK:
				rep.UpToDate++
			case ok && b.Status == offsets.StatusFailed && !cfg.RetryFailed:
				rep.UpToDate++
			case !r.Available:
				if err := table.Set(arch, offsets.Build{Coverage: offsets.Coverage{
					Version: r.Version.String(), Status: offsets.StatusUnavailable, Reason: r.Reason}}); err != nil {
					return nil, err
				}
			default:
				need = append(need, arch)
			}
		}
		if !r.Available {
			rep.Unavailable++
		}
		if len(need) > 0 {
			jobs = append(jobs, job{v: r.Version, arches: need})
		}
	}
	return jobs, nil
}

// settled answers, from the database, for releases already recorded for
// every GOARCH of the run; with recheckUnavailable, not for those recorded
// unavailable for some GOARCH, so that the proxy is asked about them again.
func settled(t *offsets.Table, arches []string, recheckUnavailable bool) func(goversion.Version) (bool, string, bool) {
	return func(v goversion.Version) (bool, string, bool) {
		available, reason := true, ""
		for _, arch := range arches {
			b, ok := t.Builds[arch][v.String()]
			if !ok {
				return false, "", false
			}
			if b.Status == offsets.StatusUnavailable {
				if recheckUnavailable {
					return false, "", false
				}
				available, reason = false, b.Reason
			}
		}
		return available, reason, true
	}
}

// LoadTable reads the module's shard from dir. A shard built for another
// field set is discarded: its absences cannot be trusted for the new set,
// so every version is rebuilt — unless the new set only adds fields bound
// to some versions (see boundedAddition): then only the builds of those
// versions are dropped, to be built again.
func LoadTable(dir string, set *fieldset.Set, log *slog.Logger) (*offsets.Table, error) {
	fresh := offsets.NewTable(set.Module, set.Fields)
	db, err := offsets.OpenDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return fresh, nil
	}
	if err != nil {
		return nil, err
	}
	s, err := db.Shard(set.Module)
	if errors.Is(err, offsets.ErrUnknownModule) {
		return fresh, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read existing database: %w (fix or remove %s, or run offsetgen verify)", err, dir)
	}
	if s.FieldSet == offsets.FieldSetHash(set.Fields) {
		return s.Expand()
	}
	added, ok := boundedAddition(set, s)
	if !ok {
		log.Warn("field set changed since the database was written: rebuilding every version", "module", set.Module)
		return fresh, nil
	}
	t, err := s.Expand()
	if err != nil {
		return nil, err
	}
	t.Fields = fresh.Fields
	rebuild := 0
	for _, builds := range t.Builds {
		for v, b := range builds {
			if b.Status == offsets.StatusOK && slices.ContainsFunc(added, func(id offsets.FieldID) bool { return set.Bounds[id].Allows(v) }) {
				delete(builds, v)
				rebuild++
			}
		}
	}
	var bounds []string
	for _, id := range added {
		bounds = append(bounds, id.String()+" "+set.Bounds[id].String())
	}
	log.Warn("field set gained fields that exist only in some versions: rebuilding the versions they apply to",
		"module", set.Module, "fields", strings.Join(bounds, ", "), "builds", rebuild)
	return t, nil
}

// boundedAddition returns the fields set adds to those the shard s was
// written for, when it removes none and every one it adds carries a bound.
// Such an addition cannot change what a version outside the bounds
// records, so only the versions a bound allows need a new probe: the
// common case of fields of a new Go release's types.
func boundedAddition(set *fieldset.Set, s *offsets.Shard) ([]offsets.FieldID, bool) {
	var tracked []offsets.FieldID
	for name := range s.Fields {
		id, err := offsets.ParseFieldID(name)
		if err != nil {
			return nil, false
		}
		tracked = append(tracked, id)
	}
	if offsets.FieldSetHash(tracked) != s.FieldSet {
		return nil, false // a shard whose field list is not the one it was built for
	}
	var added []offsets.FieldID
	for _, id := range set.Fields {
		if slices.Contains(tracked, id) {
			continue
		}
		if set.Bounds[id].IsZero() {
			return nil, false
		}
		added = append(added, id)
	}
	return added, len(added) > 0 && len(tracked)+len(added) == len(set.Fields)
}

type generator struct {
	cfg   Config
	log   *slog.Logger
	mu    sync.Mutex // guards table, rep and shard writes
	table *offsets.Table
	rep   *Report
	cache *toolchain.Cache
}

func (g *generator) write() error {
	return offsets.WriteShard(g.cfg.OutDir, g.table.Shard())
}

// runJob builds and reads the probes of one Go version and records them.
func (g *generator) runJob(ctx context.Context, j job) error {
	v := j.v.String()
	goroot, t, err := g.cache.Toolchain(ctx, j.v)
	cost := Cost{Version: v, Download: t.Download, Verify: t.Verify, Unpack: t.Unpack,
		Build: map[string]time.Duration{}, Extract: map[string]time.Duration{}}
	if errors.Is(err, toolchain.ErrUnavailable) {
		return g.record(j, cost, func(arch string) offsets.Build {
			return offsets.Build{Coverage: offsets.Coverage{Version: v, Status: offsets.StatusUnavailable, Reason: err.Error()}}
		})
	}
	if err != nil {
		return fmt.Errorf("fetch toolchain: %w", err)
	}
	if !g.cfg.KeepToolchains {
		defer func() {
			if err := g.cache.Remove(j.v); err != nil {
				g.log.Warn("remove toolchain", "version", v, "err", err)
			}
		}()
	}
	scratch, err := os.MkdirTemp(g.cfg.CacheDir, "probe-"+v+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)

	builds := map[string]offsets.Build{}
	for _, arch := range j.arches {
		b, buildTime, extractTime, err := g.probe(ctx, goroot, arch, scratch, v)
		if err != nil {
			return err
		}
		cost.Build[arch], cost.Extract[arch] = buildTime, extractTime
		builds[arch] = b
	}
	return g.record(j, cost, func(arch string) offsets.Build { return builds[arch] })
}

// probe builds and reads one probe. Only transient failures are returned as
// errors; a probe that does not build or has no DWARF is a failed Build.
func (g *generator) probe(ctx context.Context, goroot, arch, scratch, v string) (offsets.Build, time.Duration, time.Duration, error) {
	failed := func(reason string) offsets.Build {
		return offsets.Build{Coverage: offsets.Coverage{Version: v, Status: offsets.StatusFailed, Toolchain: v, Reason: reason}}
	}
	t0 := time.Now()
	pb := probe.Build{GOROOT: goroot, Arch: arch, Dir: scratch, GOCACHE: filepath.Join(scratch, "gocache"),
		GOEXPERIMENT: strings.Join(g.cfg.Experiments, ",")}
	if slices.Contains(g.cfg.Experiments, "boringcrypto") {
		cc, err := probe.CrossCC(arch)
		if err != nil {
			// The host lacks a compiler, not the release a feature:
			// nothing to record, the run fails for this version.
			return offsets.Build{}, 0, 0, err
		}
		pb.CC = cc
	}
	bin, err := pb.Run(ctx, g.cfg.Set)
	buildTime := time.Since(t0)
	if ctx.Err() != nil {
		return offsets.Build{}, 0, 0, ctx.Err()
	}
	if errors.Is(err, probe.ErrBuild) {
		g.log.Warn("probe did not build", "version", v, "arch", arch, "err", err)
		return failed(truncate(err.Error(), 2000)), buildTime, 0, nil
	}
	if err != nil {
		return offsets.Build{}, 0, 0, err
	}
	if len(g.cfg.Experiments) > 0 {
		if reason := experimentsDiffer(bin, g.cfg.Experiments); reason != "" {
			g.log.Warn("probe is not an experiment build", "version", v, "arch", arch, "reason", reason)
			return failed(reason), buildTime, 0, nil
		}
	}
	t1 := time.Now()
	values, err := probe.Read(bin, g.cfg.Set.Fields)
	extractTime := time.Since(t1)
	if err != nil {
		g.log.Warn("probe unreadable", "version", v, "arch", arch, "err", err)
		return failed(truncate(err.Error(), 2000)), buildTime, extractTime, nil
	}
	g.log.Debug("probe read", "version", v, "arch", arch, "fields", len(values), "build", buildTime, "extract", extractTime)
	return offsets.Build{Coverage: offsets.Coverage{Version: v, Status: offsets.StatusOK, Toolchain: v}, Values: values},
		buildTime, extractTime, nil
}

// againstDefault compares every ok build of an experiment table with the
// default build of the same release and GOARCH.
func againstDefault(exp, def *offsets.Table) []string {
	var out []string
	for _, arch := range slices.Sorted(maps.Keys(exp.Builds)) {
		for _, v := range exp.Versions(arch) {
			if exp.Builds[arch][v].Status != offsets.StatusOK {
				continue
			}
			differ, compared := offsets.DifferingFields(exp, def, arch, v)
			switch {
			case !compared:
				out = append(out, fmt.Sprintf("%s %s/%s: no default build in this database to compare with", exp.Module, v, arch))
			case len(differ) == 0:
				out = append(out, fmt.Sprintf("%s %s/%s: same offsets as the default build", exp.Module, v, arch))
			default:
				names := make([]string, len(differ))
				for i, id := range differ {
					names[i] = id.String()
				}
				out = append(out, fmt.Sprintf("%s %s/%s: %d fields differ from the default build: %s", exp.Module, v, arch, len(differ), strings.Join(names, ", ")))
			}
		}
	}
	return out
}

// experimentsDiffer checks that the probe bin records exactly the
// GOEXPERIMENTs want, as a target built with them would; it says why not,
// or returns "". The go command records only experiments that differ from
// the release's defaults, so asking for a default one ("swissmap" in
// go1.24) gives a default build, which belongs in std's shard.
func experimentsDiffer(bin string, want []string) string {
	b, err := gobinary.Open(bin)
	if err != nil {
		return fmt.Sprintf("read the probe's build information: %v", err)
	}
	defer b.Close()
	if slices.Equal(b.Experiments, want) {
		return ""
	}
	got := strings.Join(b.Experiments, ",")
	if got == "" {
		got = "none"
	}
	return fmt.Sprintf("GOEXPERIMENT=%s built a binary that records experiments %s (%s): an experiment that is this release's default is no experiment here",
		strings.Join(want, ","), got, b.GoVersionRaw)
}

func (g *generator) record(j job, cost Cost, build func(arch string) offsets.Build) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(cost.Build) > 0 {
		g.rep.Costs = append(g.rep.Costs, cost)
	}
	built, failed, err := Record(g.table, g.cfg.OutDir, j.arches, build)
	g.rep.Built += built
	g.rep.Failed += failed
	return err
}

// Record puts one version's builds, one per GOARCH, into table and writes
// the table's shard into the database directory dir, so that a run keeps
// every version it finished. It returns how many builds were ok and how
// many failed. The std and module generators both record through it.
func Record(table *offsets.Table, dir string, arches []string, build func(arch string) offsets.Build) (built, failed int, err error) {
	for _, arch := range arches {
		b := build(arch)
		if err := table.Set(arch, b); err != nil {
			return built, failed, err
		}
		switch b.Status {
		case offsets.StatusOK:
			built++
		case offsets.StatusFailed:
			failed++
		}
	}
	return built, failed, offsets.WriteShard(dir, table.Shard())
}

// suspiciousAbsences warns about a struct type missing in a version while
// present in versions before and after it: more likely the probe lost it to
// dead-code elimination than the standard library removed and re-added it.
func suspiciousAbsences(t *offsets.Table) []string {
	var out []string
	for arch := range t.Builds {
		var ok []string
		for _, v := range t.Versions(arch) {
			if t.Builds[arch][v].Status == offsets.StatusOK {
				ok = append(ok, v)
			}
		}
		for _, id := range t.Fields {
			var present []bool
			for _, v := range ok {
				_, p := t.Builds[arch][v].Values[id]
				present = append(present, p)
			}
			first := slices.Index(present, true)
			last := len(present) - 1 - slices.Index(reversed(present), true)
			if first < 0 {
				continue
			}
			for i := first; i <= last; i++ {
				if !present[i] {
					out = append(out, fmt.Sprintf("%s/%s: %s absent in %s but present before and after", t.Module, arch, id, ok[i]))
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

func reversed(b []bool) []bool {
	r := slices.Clone(b)
	slices.Reverse(r)
	return r
}

func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
