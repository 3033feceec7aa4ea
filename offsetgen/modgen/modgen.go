// Package modgen generates the shard of a third-party module: it lists the
// module's versions on the proxy, builds one probe per version and GOARCH
// that requires module@version (the proxy resolves its dependencies), reads
// the probe's DWARF and writes the shard after every version, so an
// interrupted run keeps what it built. Like the std generator it builds
// Config.Workers versions at once, draws a progress bar and reports what
// each probe cost.
//
// Each version is built with the newest toolchain that honours its go
// directive, the one installed on this machine; when that build fails (old
// versions of golang.org/x/sys, say, do not link with newer Go releases),
// it is retried with the newest release of the go directive's line (at
// least go1.17), fetched from the proxy. The toolchain that built a probe
// is recorded with it; a version no toolchain builds is recorded failed
// with each compiler's words. With Config.CompareGo the older toolchain
// builds every version too, and where the two lay a field out differently
// the Go lines between them are bisected to find the release that changed
// it (see Config.CompareGo).
//
// A version whose go.mod requires nothing (one published before Go
// modules: grpc before v1.15, kafka-go v0.1 and v0.2) leaves its
// dependencies to the go command, which would take their newest
// versions: grpc v1.0.5 compiled against today's golang.org/x/net, which
// no real binary is and which older toolchains cannot build. Such a
// version is built instead against dependencies pinned to its release
// date (the proxy's .info Time): each module the probe's packages come
// from gets the version `go get` would have picked that day, listed again
// with the pins until no new module appears, the same for every toolchain
// (see pinDeps). A dependency with no version that old keeps the go
// command's choice, with a warning. Pins may not build together (the
// proxy's list of a module may lack the versions of the time): then every
// toolchain is tried again with the go command's choice, with a warning.
// Report.Pinned counts the versions built with pins.
package modgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/modfile"

	"github.com/offsetdb/offsetdb/fieldset"
	"github.com/offsetdb/offsetdb/goversion"
	"github.com/offsetdb/offsetdb/offsetgen/generate"
	"github.com/offsetdb/offsetdb/offsetgen/modversions"
	"github.com/offsetdb/offsetdb/offsetgen/probe"
	"github.com/offsetdb/offsetdb/offsetgen/toolchain"
	"github.com/offsetdb/offsetdb/offsets"
)

// Config says which module to generate and where.
type Config struct {
	Set    *fieldset.Set // fields to extract; Set.Module is the module
	Arches []string      // GOARCHes to build probes for
	// Constraint and IncludePre select among the proxy's versions.
	Constraint offsets.Constraint
	IncludePre bool
	// Versions, if set, are built instead of listing the proxy.
	Versions []string
	CacheDir string // fetched toolchains, build caches, scratch space
	OutDir   string // database directory
	Proxy    *toolchain.Proxy
	// Local is the installed toolchain, tried first; nil asks toolchain.Local.
	Local *toolchain.Installed
	// Fallback is the older toolchain to retry with (and to compare with,
	// CompareGo); nil picks the newest release of the go directive's line
	// from the proxy.
	Fallback *toolchain.Installed
	// ModuleEnv overrides the module settings of the probe builds after
	// Local's ("GOSUMDB=off" for a test proxy, say). GOPROXY is Proxy's URL.
	ModuleEnv []string
	// NoFallback skips the retry with an older toolchain.
	NoFallback bool
	// CompareGo builds every version that the newest toolchain builds with
	// the older one too (the fallback) and records the fields whose layout
	// differs as depending on the Go release of the target (offsets.Range.Go).
	//
	// Where the two disagree, the Go lines between them are bisected: the
	// newest release of the middle line is built, and each half whose ends
	// still disagree is split again, until every change sits between two
	// adjacent lines. A half whose ends agree is assumed to agree inside
	// too. That is an assumption (a layout that changed and changed back
	// is missed), and what keeps the cost at about log2(lines between)
	// extra builds per differing version and GOARCH instead of one per
	// line; each toolchain built with is fetched once (~75 MB) and kept
	// in CacheDir with a build cache of its own.
	//
	// A change located between lines go1.21 and go1.22 is recorded as
	// "<go1.22.0" for the older value and ">=go1.22.0" for the newer: every
	// release, patch releases included, gets exactly one value (patch
	// releases are taken to lay out as the newest of their line, which is
	// the one built). The oldest value also holds for releases older than
	// the oldest toolchain built, the newest for newer ones. Where the
	// bisection could not build a line, the change keeps the bounds of the
	// toolchains built around it ("<=go1.21.13", ">=go1.26.8"), with a
	// warning, and releases between them get no value: a lookup for them
	// fails with offsets.ErrGoDependent rather than guess.
	//
	// It doubles the build cost, plus the bisection builds
	// (Report.BisectBuilds).
	CompareGo   bool
	RetryFailed bool // rebuild versions recorded as failed
	// Workers is how many versions are built at once (fewer than 1 means
	// 1). Each go build already uses every core, so more workers mostly
	// overlap the builds' downloads and single-threaded links; recording
	// and shard writes stay one version at a time.
	Workers  int
	Log      *slog.Logger
	Progress io.Writer // progress bar with an ETA, one step per version; nil for none
}

// Cost is the wall time of one probe: one module version built for one
// GOARCH with one toolchain, and read. A version has one Cost per
// toolchain tried, the comparison and bisection builds of CompareGo
// included.
type Cost struct {
	Version   string
	Arch      string
	Toolchain string        // "go1.26.8"
	Build     time.Duration // go build, resolving the module's dependencies included
	Read      time.Duration // reading the probe's DWARF; zero when the build failed
}

// Report summarises a run.
type Report struct {
	Versions int // versions selected
	Built    int // (version, arch) probes built and read
	UpToDate int // (version, arch) already in the database
	Failed   int // (version, arch) no toolchain built
	// Unavailable counts versions the proxy does not serve (it answered
	// 403, 404 or 410 for their go.mod): they are recorded unavailable,
	// and Warnings says what the proxy answered.
	Unavailable int
	// GoDependent counts (version, arch, field) whose layout differs
	// between the toolchains compared (CompareGo).
	GoDependent int
	// BisectBuilds counts the probes built with an intermediate Go line to
	// locate where a layout changes (CompareGo), failed ones included.
	BisectBuilds int
	// Pinned counts the versions built against dependencies pinned to
	// their release date: versions whose go.mod requires nothing (see
	// the package documentation).
	Pinned    int
	Retracted map[string]string // versions skipped as retracted, with rationale
	// Discovered counts the selected versions the proxy serves but left
	// off its list (found by modversions' probing).
	Discovered int
	Warnings   []string // sorted
	// Costs holds one entry per probe build this run, failed ones
	// included, sorted by version.
	Costs []Cost
	Wall  time.Duration
}

// Run generates the shard of cfg.Set.Module. Transient errors (network,
// cancellation) are not recorded; they are returned once the other
// versions are done.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	return run(ctx, cfg, nil)
}

// job is one module version and the GOARCHes it still needs.
type job struct {
	v      string
	arches []string
}

// run is Run; setup, when not nil, adjusts the generator before anything is
// built (tests replace its probe builds).
func run(ctx context.Context, cfg Config, setup func(*generator)) (*Report, error) {
	start := time.Now()
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cfg.Workers = max(cfg.Workers, 1)
	mod := cfg.Set.Module
	if mod == offsets.StdModule {
		return nil, errors.New("modgen: std is generated by package generate")
	}
	table, err := generate.LoadTable(cfg.OutDir, cfg.Set, log)
	if err != nil {
		return nil, err
	}
	rep := &Report{Retracted: map[string]string{}}
	versions := cfg.Versions
	if len(versions) == 0 {
		l, err := modversions.List(ctx, cfg.Proxy, mod, modversions.Options{Constraint: cfg.Constraint, IncludePre: cfg.IncludePre})
		if err != nil {
			return nil, err
		}
		versions, rep.Retracted, rep.Discovered = l.Versions, l.Retracted, len(l.Discovered)
	}
	rep.Versions = len(versions)
	local := cfg.Local
	if local == nil {
		if local, err = toolchain.Local(ctx); err != nil {
			return nil, err
		}
	}
	g := &generator{cfg: cfg, log: log, table: table, rep: rep, local: local,
		cache: &toolchain.Cache{Dir: filepath.Join(cfg.CacheDir, "toolchains"), Proxy: cfg.Proxy},
		lines: map[string]goversion.Version{}, goroots: map[string]string{}, dates: newVersionDates(cfg.Proxy)}
	g.build = g.probe
	if setup != nil {
		setup(g)
	}

	var jobs []job
	for _, v := range versions {
		v, err := offsets.CanonicalVersion(mod, v)
		if err != nil {
			return rep, err
		}
		var need []string
		for _, arch := range cfg.Arches {
			b, ok := table.Builds[arch][v]
			if ok && (b.Status == offsets.StatusOK || b.Status == offsets.StatusFailed && !cfg.RetryFailed) {
				rep.UpToDate++
				continue
			}
			need = append(need, arch)
		}
		if len(need) > 0 {
			jobs = append(jobs, job{v: v, arches: need})
		}
	}
	log.Info("plan", "module", mod, "versions", len(versions), "to_build", len(jobs), "up_to_date_probes", rep.UpToDate, "workers", cfg.Workers)

	transient := generate.RunJobs(ctx, jobs, cfg.Workers, cfg.Progress, log.With("module", mod), func(j job) string { return j.v },
		func(ctx context.Context, j job) error {
			if err := g.version(ctx, j.v, j.arches); err != nil {
				return fmt.Errorf("%s@%s: %w", mod, j.v, err)
			}
			return nil
		})
	slices.Sort(rep.Warnings)
	slices.SortStableFunc(rep.Costs, func(a, b Cost) int { return offsets.CompareVersions(mod, a.Version, b.Version) })
	if err := offsets.WriteShard(cfg.OutDir, table.Shard()); err != nil {
		return rep, err
	}
	rep.Wall = time.Since(start)
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("interrupted; finished versions are saved, run again to continue: %w", err)
	}
	if len(transient) > 0 {
		slices.SortFunc(transient, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
		return rep, fmt.Errorf("%d versions not done (run again to retry): %w", len(transient), errors.Join(transient...))
	}
	return rep, nil
}

// target is the module version a probe describes and the dependencies it
// is built against. It is not changed once made, so workers may share it.
type target struct {
	version string
	goMod   string // go directive of the version's go.mod, "" for none
	// pins are the dependencies pinned to the version's release date
	// (Minimum requirements; see pinDeps), for every toolchain alike;
	// none when its go.mod has requirements of its own. With pins, the
	// module itself is held at version (probe.Requirement.Hold): a pin
	// whose go.mod requires a newer version of it must not change the
	// code the probe describes.
	pins []probe.Requirement
}

// buildFunc builds the probe of module version t for arch with toolchain
// c and reads it: the values of the fields of set the version has.
type buildFunc func(ctx context.Context, c *candidate, arch string, t *target, set *fieldset.Set) (map[offsets.FieldID]offsets.Value, error)

type generator struct {
	cfg   Config
	log   *slog.Logger
	local *toolchain.Installed
	cache *toolchain.Cache
	// build is g.probe, or a fake in tests.
	build buildFunc

	mu    sync.Mutex // guards table, rep and shard writes
	table *offsets.Table
	rep   *Report

	linesMu  sync.Mutex                   // guards lines and releases
	lines    map[string]goversion.Version // newest release per Go line
	releases []toolchain.Release

	gorootsMu sync.Mutex        // guards goroots
	goroots   map[string]string // GOROOT of each toolchain fetched, by name

	dates *versionDates // release dates of dependency versions, for pinDeps
}

// candidate is a toolchain to try. It is not changed once made, so
// workers may share it.
type candidate struct {
	name    string // "go1.26.8"
	goroot  string // "" for one fetched into the cache on first use (fetch)
	gocache string // "" for one of its own in CacheDir
	fetch   goversion.Version
}

// warn adds a warning to the report.
func (g *generator) warn(format string, args ...any) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.rep.Warnings = append(g.rep.Warnings, fmt.Sprintf(format, args...))
}

// version builds, reads and records one module version.
func (g *generator) version(ctx context.Context, v string, arches []string) error {
	mod := g.cfg.Set.Module
	f, err := g.goModFile(ctx, v)
	if errors.Is(err, toolchain.ErrUnavailable) {
		g.log.Warn("version unavailable", "module", mod, "version", v, "err", err)
		g.mu.Lock()
		g.rep.Unavailable++
		g.rep.Warnings = append(g.rep.Warnings, fmt.Sprintf("%s@%s: recorded unavailable: %v", mod, v, err))
		g.mu.Unlock()
		return g.record(v, arches, func(string) offsets.Build {
			return offsets.Build{Coverage: offsets.Coverage{Version: v, Status: offsets.StatusUnavailable, Reason: err.Error()}}
		})
	}
	if err != nil {
		return err
	}
	goMod, goLine, err := goDirective(f)
	if err != nil {
		return fmt.Errorf("go.mod of %s@%s: %w", mod, v, err)
	}
	cands, err := g.candidates(ctx, goLine)
	if err != nil {
		return err
	}
	set := g.cfg.Set.At(v)
	t := &target{version: v, goMod: goMod}
	if len(f.Require) == 0 {
		pins, err := g.pinDeps(ctx, t, arches, set)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, toolchain.ErrUnreachable):
			return err
		case err != nil:
			g.warn("%s@%s: dependencies not pinned to the version's date, left to the go command (their newest versions): %s", mod, v, truncate(err.Error(), 300))
		case len(pins) > 0:
			t.pins = pins
			var names []string
			for _, p := range pins {
				names = append(names, p.Path+"@"+p.Version)
			}
			g.log.Info("dependencies pinned to the version's date", "module", mod, "version", v, "pins", strings.Join(names, " "))
		}
	}
	// Dependencies pinned by date may not build together (the proxy's
	// list of a module may miss the versions of the time): then the go
	// command's choice is tried as before pinning.
	targets := []*target{t}
	if len(t.pins) > 0 {
		targets = append(targets, &target{version: v, goMod: goMod})
	}
	pinned := false
	builds := map[string]offsets.Build{}
	for _, arch := range arches {
		var reasons []string
	targets:
		for _, tg := range targets {
			for _, c := range cands {
				values, err := g.build(ctx, c, arch, tg, set)
				if ctx.Err() != nil {
					return ctx.Err()
				}
				name := c.name
				if len(tg.pins) > 0 {
					name += " with dependencies of the version's date"
				}
				if errors.Is(err, probe.ErrHost) {
					return err // not the version's failure: not recorded, built by the next run
				}
				if err != nil {
					g.log.Warn("probe did not build", "module", mod, "version", v, "arch", arch, "toolchain", name, "err", err)
					reasons = append(reasons, fmt.Sprintf("%s: %s", name, truncate(err.Error(), 1500)))
					continue
				}
				b := g.built(ctx, values, cands, c, arch, tg, set)
				if ctx.Err() != nil {
					return ctx.Err()
				}
				switch {
				case len(tg.pins) > 0:
					pinned = true
				case tg != targets[0]:
					g.warn("%s@%s/%s: does not build with dependencies of the version's date, built with their newest versions: %s",
						mod, v, arch, truncate(strings.Join(reasons, "; "), 300))
				}
				builds[arch] = b
				break targets
			}
		}
		if _, ok := builds[arch]; !ok {
			// The proxy may serve a version's .info and .mod but not its
			// zip (403 "not available"): no toolchain can build it, and
			// that is the proxy's answer, not the compiler's.
			if zerr := g.zipAvailable(ctx, v); zerr != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				g.mu.Lock()
				g.rep.Unavailable++
				g.mu.Unlock()
				g.warn("%s@%s: recorded unavailable: %v", mod, v, zerr)
				return g.record(v, arches, func(string) offsets.Build {
					return offsets.Build{Coverage: offsets.Coverage{Version: v, Status: offsets.StatusUnavailable, Reason: zerr.Error()}}
				})
			}
			builds[arch] = offsets.Build{Coverage: offsets.Coverage{Version: v, Status: offsets.StatusFailed, Toolchain: cands[len(cands)-1].name,
				Reason: strings.Join(reasons, "\n")}}
		}
	}
	if pinned {
		g.mu.Lock()
		g.rep.Pinned++
		g.mu.Unlock()
	}
	return g.record(v, arches, func(arch string) offsets.Build { return builds[arch] })
}

// built makes the Build of a probe of t that toolchain c built (one of
// cands, newest first), with the values read from it: it warns of fields
// missing inside their bound and, with CompareGo, compares the newest
// toolchain's values with the older one's.
func (g *generator) built(ctx context.Context, values map[offsets.FieldID]offsets.Value, cands []*candidate, c *candidate, arch string, t *target, set *fieldset.Set) offsets.Build {
	mod, v := g.cfg.Set.Module, t.version
	for _, id := range set.Fields {
		if _, ok := values[id]; !ok {
			if _, bounded := set.Bounds[id]; bounded {
				g.warn("%s@%s/%s: %s absent although its bound includes this version", mod, v, arch, id)
			}
		}
	}
	b := offsets.Build{Coverage: offsets.Coverage{Version: v, Status: offsets.StatusOK, Toolchain: c.name}, Values: values}
	if g.cfg.CompareGo && c == cands[0] && len(cands) > 1 {
		b = g.compareGo(ctx, b, c, cands[1], arch, t, set)
	}
	return b
}

// goPoint is the probe of one module version and GOARCH built with the
// toolchain of one Go release.
type goPoint struct {
	toolchain goversion.Version
	values    map[offsets.FieldID]offsets.Value
}

// compareGo builds version v with the older toolchain old as well as with
// newest (which built b), bisects the Go lines between them where the two
// disagree, and splits b's values with splitByGo: those every toolchain
// agrees on stay, the others get one value per span of Go releases. When
// old cannot build or read the probe, b is returned as is, with a warning;
// when a bisection build fails, the change it was to locate keeps the
// coarser bounds of the builds around it, with a warning.
func (g *generator) compareGo(ctx context.Context, b offsets.Build, newest, old *candidate, arch string, t *target, set *fieldset.Set) offsets.Build {
	mod, v := g.cfg.Set.Module, t.version
	newV, err := goversion.Parse(newest.name)
	if err != nil {
		g.warn("%s@%s/%s: Go-release dependence not checked: %v", mod, v, arch, err)
		return b
	}
	oldV, err := goversion.Parse(old.name)
	if err != nil {
		g.warn("%s@%s/%s: Go-release dependence not checked: %v", mod, v, arch, err)
		return b
	}
	if oldV.Major != newV.Major || oldV.Minor >= newV.Minor {
		// Patch releases of a line are taken to lay out alike.
		g.log.Debug("no older Go line to compare with", "module", mod, "version", v, "arch", arch, "newest", newest.name, "old", old.name)
		return b
	}
	oldValues, err := g.build(ctx, old, arch, t, set)
	if err != nil {
		g.warn("%s@%s/%s: Go-release dependence not checked: %s: %s", mod, v, arch, old.name, truncate(err.Error(), 300))
		return b
	}
	lo, hi := goPoint{oldV, oldValues}, goPoint{newV, b.Values}
	points := append(append([]goPoint{lo}, g.bisect(ctx, lo, hi, arch, t, set)...), hi)
	values, byGo, err := splitByGo(set.Fields, points)
	if err != nil {
		g.warn("%s@%s/%s: Go-release dependence not checked: %v", mod, v, arch, err)
		return b
	}
	for _, id := range set.Fields {
		if _, ok := byGo[id]; !ok {
			continue
		}
		g.mu.Lock()
		g.rep.GoDependent++
		g.mu.Unlock()
		g.log.Info("layout depends on the Go release", "module", mod, "version", v, "arch", arch, "field", id.String(),
			"values", offsets.FormatValues(nil, byGo[id]))
	}
	b.Values = values
	if len(byGo) > 0 {
		b.GoValues = byGo
	}
	return b
}

// bisect returns probes built with the newest releases of Go lines
// strictly between a's and b's, oldest first, enough to put every layout
// change between a and b between two adjacent lines: when a and b
// disagree on some field and lines lie between them, it builds the middle
// line m and recurses on (a, m) and (m, b). Ends that agree end the
// recursion: the lines between them are assumed to agree too (see
// Config.CompareGo). A middle line that cannot be fetched or built ends
// it as well, with a warning; splitByGo then bounds that span by the
// toolchains a and b.
func (g *generator) bisect(ctx context.Context, a, b goPoint, arch string, t *target, set *fieldset.Set) []goPoint {
	if b.toolchain.Minor-a.toolchain.Minor < 2 || sameValues(set.Fields, a.values, b.values) || ctx.Err() != nil {
		return nil
	}
	mod, v := g.cfg.Set.Module, t.version
	line := goversion.Version{Major: a.toolchain.Major, Minor: (a.toolchain.Minor + b.toolchain.Minor) / 2}
	rel, err := g.newestOf(ctx, line)
	if err != nil {
		g.warn("%s@%s/%s: Go release of the layout change between %s and %s not located: %v", mod, v, arch, a.toolchain, b.toolchain, err)
		return nil
	}
	g.mu.Lock()
	g.rep.BisectBuilds++
	g.mu.Unlock()
	values, err := g.build(ctx, &candidate{name: rel.String(), fetch: rel}, arch, t, set)
	if err != nil {
		if ctx.Err() == nil {
			g.warn("%s@%s/%s: Go release of the layout change between %s and %s not located: %s: %s", mod, v, arch, a.toolchain, b.toolchain, rel, truncate(err.Error(), 300))
		}
		return nil
	}
	m := goPoint{rel, values}
	out := g.bisect(ctx, a, m, arch, t, set)
	out = append(out, m)
	return append(out, g.bisect(ctx, m, b, arch, t, set)...)
}

// sameValues reports whether two probes agree on every field: the same
// value, or both without it.
func sameValues(fields []offsets.FieldID, a, b map[offsets.FieldID]offsets.Value) bool {
	for _, id := range fields {
		va, inA := a[id]
		vb, inB := b[id]
		if inA != inB || va != vb {
			return false
		}
	}
	return true
}

// splitByGo compares the values probes of one module version got with the
// toolchains of ascending Go releases (points, oldest first, at most one
// per Go line). Fields all agree on (or all lack) are returned in values.
// Each other field gets in byGo one value per run of consecutive points
// that agree on it, in Go order, bounded to the Go releases the run
// stands for:
//
//   - between points of adjacent lines L1 and L2 (a change located by
//     bisection), the bound is the first release of L2: the older run gets
//     "<go1.L2", the newer ">=go1.L2" (canonically "<go1.22.0" and
//     ">=go1.22.0", "<go1.20" before go1.21). Every release of either line
//     gets exactly one value; patch releases are taken to lay out as the
//     newest of their line, which was built, and pre-releases of L2 sort
//     before go1.L2 and get the older value.
//   - between points of lines further apart (the bisection could not
//     build in between), the bounds are the toolchains built: "<=go1.21.13"
//     and ">=go1.26.8". Releases between them get no value, so a lookup
//     for them fails with offsets.ErrGoDependent instead of guessing.
//   - the oldest run has no lower bound and the newest no upper one:
//     releases older than the oldest toolchain built (older patch
//     releases of its line, say) get the oldest value, newer ones the
//     newest. Runs in between have both: ">=go1.20,<go1.25.0".
//
// A run in which the field is absent gets no value: a lookup for those
// releases finds no bound that allows them.
func splitByGo(fields []offsets.FieldID, points []goPoint) (map[offsets.FieldID]offsets.Value, map[offsets.FieldID][]offsets.GoValue, error) {
	values := map[offsets.FieldID]offsets.Value{}
	byGo := map[offsets.FieldID][]offsets.GoValue{}
	if len(points) == 0 {
		return values, byGo, nil
	}
	same := func(i, j int, id offsets.FieldID) bool {
		vi, inI := points[i].values[id]
		vj, inJ := points[j].values[id]
		return inI == inJ && vi == vj
	}
	for _, id := range fields {
		start := 0
		for i := 1; i <= len(points); i++ {
			if i < len(points) && same(start, i, id) {
				continue
			}
			// points[start:i] agree on id.
			val, present := points[start].values[id]
			switch {
			case !present:
			case start == 0 && i == len(points):
				values[id] = val
			default:
				var terms []string
				if start > 0 {
					_, lower := goBounds(points[start-1].toolchain, points[start].toolchain)
					terms = append(terms, lower)
				}
				if i < len(points) {
					upper, _ := goBounds(points[i-1].toolchain, points[i].toolchain)
					terms = append(terms, upper)
				}
				c, err := offsets.ParseConstraint(offsets.StdModule, strings.Join(terms, ","))
				if err != nil {
					return nil, nil, fmt.Errorf("bound %s on the Go release: %w", id, err)
				}
				byGo[id] = append(byGo[id], offsets.GoValue{Go: c.String(), Value: val})
			}
			start = i
		}
	}
	return values, byGo, nil
}

// goBounds returns the terms that separate the Go releases of the older
// toolchain a from those of the newer b: upper ends a's span, lower starts
// b's (see splitByGo).
func goBounds(a, b goversion.Version) (upper, lower string) {
	if a.Major == b.Major && b.Minor == a.Minor+1 {
		first := goversion.Version{Major: b.Major, Minor: b.Minor}.String()
		return "<" + first, ">=" + first
	}
	return "<=" + a.String(), ">=" + b.String()
}

// probe builds one probe with toolchain c, fetching c first unless it is
// in the cache, and reads it; its Cost goes into the report. Fields the
// version does not have are left out (recorded absent). It is g.build
// outside tests.
func (g *generator) probe(ctx context.Context, c *candidate, arch string, t *target, set *fieldset.Set) (map[offsets.FieldID]offsets.Value, error) {
	goroot, err := g.goroot(ctx, c)
	if err != nil {
		return nil, err
	}
	scratch, err := os.MkdirTemp(g.cfg.CacheDir, "probe-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	gocache := c.gocache
	if gocache == "" {
		gocache = filepath.Join(g.cfg.CacheDir, "gocache-"+c.name)
	}
	t0 := time.Now()
	bin, err := probe.Build{GOROOT: goroot, Arch: arch, Dir: scratch, GOCACHE: gocache,
		Require:   append([]probe.Requirement{{Path: g.cfg.Set.Module, Version: t.version, Hold: len(t.pins) > 0}}, t.pins...),
		ModuleEnv: g.moduleEnv(), GoVersion: t.goMod}.Run(ctx, set)
	cost := Cost{Version: t.version, Arch: arch, Toolchain: c.name, Build: time.Since(t0)}
	if err != nil {
		if ctx.Err() == nil {
			g.addCost(cost)
		}
		return nil, err
	}
	t1 := time.Now()
	values, err := probe.Read(bin, set.Fields)
	cost.Read = time.Since(t1)
	g.addCost(cost)
	return values, err
}

// moduleEnv is the module settings of the go command runs: the installed
// toolchain's, the proxy's URL, then Config.ModuleEnv.
func (g *generator) moduleEnv() []string {
	env := slices.Clone(g.local.ModuleEnv)
	env = append(env, "GOPROXY="+g.cfg.Proxy.BaseURL())
	return append(env, g.cfg.ModuleEnv...)
}

func (g *generator) addCost(c Cost) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.rep.Costs = append(g.rep.Costs, c)
}

// goroot returns the GOROOT of c, fetching its toolchain into the cache
// on first use. Workers share what was fetched through g.goroots, by
// toolchain name; workers that want a toolchain at the same time wait for
// each other in the cache (it locks per release), so it is fetched once.
func (g *generator) goroot(ctx context.Context, c *candidate) (string, error) {
	if c.goroot != "" {
		return c.goroot, nil
	}
	g.gorootsMu.Lock()
	goroot, ok := g.goroots[c.name]
	g.gorootsMu.Unlock()
	if ok {
		return goroot, nil
	}
	goroot, t, err := g.cache.Toolchain(ctx, c.fetch)
	if err != nil {
		return "", fmt.Errorf("fetch toolchain: %w", err)
	}
	if !t.Cached {
		g.log.Info("toolchain fetched", "toolchain", c.name, "download", t.Download, "verify", t.Verify, "unpack", t.Unpack)
	}
	g.gorootsMu.Lock()
	g.goroots[c.name] = goroot
	g.gorootsMu.Unlock()
	return goroot, nil
}

// goModFile reads module@v's go.mod as the proxy serves it (for a version
// without one, the proxy makes one with only the module line).
func (g *generator) goModFile(ctx context.Context, v string) (*modfile.File, error) {
	mod := g.cfg.Set.Module
	data, err := g.cfg.Proxy.ModuleFile(ctx, mod, v, ".mod")
	if err != nil {
		return nil, fmt.Errorf("go.mod of %s@%s: %w", mod, v, err)
	}
	f, err := modfile.ParseLax("go.mod", data, nil)
	if err != nil {
		return nil, fmt.Errorf("go.mod of %s@%s: %w", mod, v, err)
	}
	return f, nil
}

// zipAvailable asks the proxy for module@v's zip, after every build
// failed: an error matching toolchain.ErrUnavailable when the proxy does not
// serve it, nil when it does (or cannot say).
func (g *generator) zipAvailable(ctx context.Context, v string) error {
	mod := g.cfg.Set.Module
	if _, err := g.cfg.Proxy.ModuleFile(ctx, mod, v, ".zip"); errors.Is(err, toolchain.ErrUnavailable) {
		return fmt.Errorf("zip of %s@%s: %w", mod, v, err)
	}
	return nil
}

// goDirective returns the go directive of a go.mod as written ("1.21") and
// parsed; "" and the zero Version when it has none.
func goDirective(f *modfile.File) (string, goversion.Version, error) {
	if f.Go == nil {
		return "", goversion.Version{}, nil
	}
	gv, err := goversion.Parse(f.Go.Version)
	if err != nil {
		return "", goversion.Version{}, err
	}
	return f.Go.Version, gv, nil
}

// oldestFallback is the oldest Go line used as fallback: the first with
// GOFLAGS=-mod=mod, module graph pruning and the build behaviour the probe
// relies on.
var oldestFallback = goversion.Version{Major: 1, Minor: 17}

// candidates returns the toolchains to try for a version whose go.mod says
// goLine: the local one when it is new enough, then (unless NoFallback)
// the newest release of the line, at least go1.17.
func (g *generator) candidates(ctx context.Context, goLine goversion.Version) ([]*candidate, error) {
	var out []*candidate
	lv, err := goversion.Parse(g.local.Version)
	if err == nil && goLine.Compare(lv) <= 0 {
		out = append(out, &candidate{name: g.local.Version, goroot: g.local.GOROOT, gocache: g.local.GOCACHE})
	}
	if f := g.cfg.Fallback; f != nil && !g.cfg.NoFallback {
		return append(out, &candidate{name: f.Version, goroot: f.GOROOT, gocache: f.GOCACHE}), nil
	}
	if g.cfg.NoFallback {
		if len(out) == 0 {
			return nil, fmt.Errorf("go.mod wants %s, newer than the local toolchain %s: upgrade Go, or allow fetching one", goLine, g.local.Version)
		}
		return out, nil
	}
	line := goversion.Version{Major: 1, Minor: max(goLine.Minor, oldestFallback.Minor)}
	newest, err := g.newestOf(ctx, line)
	if err != nil {
		if len(out) > 0 {
			g.log.Warn("no fallback toolchain", "line", line.Line(), "err", err)
			return out, nil
		}
		return nil, err
	}
	if len(out) == 0 || newest.String() != out[0].name {
		out = append(out, &candidate{name: newest.String(), fetch: newest})
	}
	return out, nil
}

// newestOf returns the newest available release of line from the proxy,
// listing releases once per run.
func (g *generator) newestOf(ctx context.Context, line goversion.Version) (goversion.Version, error) {
	g.linesMu.Lock()
	defer g.linesMu.Unlock()
	if v, ok := g.lines[line.Line()]; ok {
		return v, nil
	}
	if g.releases == nil {
		rs, err := g.cfg.Proxy.Releases(ctx, oldestFallback)
		if err != nil {
			return goversion.Version{}, fmt.Errorf("list Go releases for older toolchains: %w", err)
		}
		g.releases = rs
	}
	var best goversion.Version
	for _, r := range g.releases {
		if r.Available && r.Version.Line() == line.Line() && best.Less(r.Version) {
			best = r.Version
		}
	}
	if best == (goversion.Version{}) {
		return best, fmt.Errorf("no %s release on the proxy", line.Line())
	}
	g.lines[line.Line()] = best
	return best, nil
}

// record puts one version's builds into the table and writes the shard,
// one version at a time.
func (g *generator) record(v string, arches []string, build func(arch string) offsets.Build) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	built, failed, err := generate.Record(g.table, g.cfg.OutDir, arches, build)
	g.rep.Built += built
	g.rep.Failed += failed
	return err
}

func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
