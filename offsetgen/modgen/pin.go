package modgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"github.com/offsetdb/offsetdb/fieldset"
	"github.com/offsetdb/offsetdb/offsetgen/probe"
	"github.com/offsetdb/offsetdb/offsetgen/toolchain"
)

// pinRounds is how many times pinDeps lists the probe's modules at most:
// each round pins the modules the previous pins brought in (a pinned
// dependency without requirements of its own leaves its dependencies to
// the go command too).
const pinRounds = 4

// pinDeps returns the dependencies to build module version t.version
// against when its go.mod requires nothing (it predates Go modules, so the
// go command would resolve every dependency to its newest version): each
// module the probe's packages come from, other than the module itself,
// pinned to the version `go get` would have picked on the day t.version
// was published (its .info Time; see versionDates.newestAt), as a
// Minimum requirement that minimal version selection may raise.
//
// The modules are those the go command lists for the probe (go list
// -deps, installed toolchain, one listing per GOARCH in arches). Pins bring
// in modules of their own, so it lists again with the pins, and pins what
// is new, until nothing new appears (at most pinRounds listings). A module
// with no version published by then (created later, when a package moved
// into a module of its own) is replaced by the nearest enclosing module
// path that had one, which may still provide the package; failing that,
// the go command's choice stays, with a warning. The pins are the same for
// every toolchain and GOARCH the version is built with, so that
// comparisons between them compare like with like. The listings hold the
// module at t.version (probe.Requirement.Hold), as the builds with pins
// do: a pin whose go.mod requires a newer version of the module (the
// proxy's date of an old tag is sometimes the day it was re-tagged,
// years later) must not change which of its packages are built.
//
// It costs one .info request per module version whose date is needed (a
// pseudo-version carries its own), each list and .info once per run, and
// the listings: the go command's downloads of the modules, no compiling.
func (g *generator) pinDeps(ctx context.Context, t *target, arches []string, set *fieldset.Set) ([]probe.Requirement, error) {
	mod := g.cfg.Set.Module
	released, ok, err := g.dates.time(ctx, mod, t.version)
	if err != nil {
		return nil, fmt.Errorf("release date of %s@%s: %w", mod, t.version, err)
	}
	if !ok {
		g.warn("%s@%s: the proxy gives no release date: dependencies left to the go command (their newest versions)", mod, t.version)
		return nil, nil
	}
	pins := map[string]string{}
	tried := map[string]bool{mod: true}
	var deps map[string]string
	for round := 1; ; round++ {
		deps, err = g.listDeps(ctx, t, pins, arches, set)
		if err != nil {
			return nil, err
		}
		var fresh []string
		for p := range deps {
			if !tried[p] {
				fresh = append(fresh, p)
			}
		}
		if len(fresh) == 0 {
			break
		}
		slices.Sort(fresh)
		if round == pinRounds {
			g.warn("%s@%s: dependencies still bring in new modules after %d rounds of pinning: %s left to the go command",
				mod, t.version, pinRounds, strings.Join(fresh, ", "))
			break
		}
		for _, p := range fresh {
			tried[p] = true
			v, err := g.dates.newestAt(ctx, p, released)
			if err != nil {
				return nil, err
			}
			if v != "" {
				pins[p] = v
				continue
			}
			for q := parentPath(p); q != "" && !tried[q]; q = parentPath(q) {
				tried[q] = true
				v, err := g.dates.newestAt(ctx, q, released)
				if err != nil {
					return nil, err
				}
				if v != "" {
					g.log.Info("dependency pinned through its enclosing module", "module", mod, "version", t.version, "dependency", p, "pinned", q+"@"+v)
					pins[q] = v
					break
				}
			}
		}
	}
	var reqs []probe.Requirement
	for _, p := range slices.Sorted(maps.Keys(pins)) {
		reqs = append(reqs, probe.Requirement{Path: p, Version: pins[p], Minimum: true})
	}
	date := released.UTC().Format(time.DateOnly)
	for _, p := range slices.Sorted(maps.Keys(deps)) {
		switch {
		case p == mod:
		case pins[p] == "":
			g.warn("%s@%s: %s has no version on the proxy published by %s, the version's date: built with %s@%s, the go command's choice",
				mod, t.version, p, date, p, deps[p])
		case pins[p] != deps[p]:
			g.log.Debug("pinned dependency raised by another requirement", "module", mod, "version", t.version, "dependency", p, "pinned", pins[p], "selected", deps[p])
		}
	}
	return reqs, nil
}

// listDeps returns the modules (path → version selected) the probe of t
// is built from with the pins as Minimum requirements, over arches.
func (g *generator) listDeps(ctx context.Context, t *target, pins map[string]string, arches []string, set *fieldset.Set) (map[string]string, error) {
	scratch, err := os.MkdirTemp(g.cfg.CacheDir, "deps-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	reqs := []probe.Requirement{{Path: g.cfg.Set.Module, Version: t.version, Hold: true}}
	for _, p := range slices.Sorted(maps.Keys(pins)) {
		reqs = append(reqs, probe.Requirement{Path: p, Version: pins[p], Minimum: true})
	}
	out := map[string]string{}
	for _, arch := range arches {
		mods, err := probe.Build{GOROOT: g.local.GOROOT, Arch: arch, Dir: scratch, GOCACHE: g.local.GOCACHE,
			Require: reqs, ModuleEnv: g.moduleEnv(), GoVersion: t.goMod}.Modules(ctx, set)
		if err != nil {
			return nil, err
		}
		for _, m := range mods {
			out[m.Path] = m.Version
		}
	}
	return out, nil
}

// parentPath is the module path enclosing p ("google.golang.org/genproto"
// for "google.golang.org/genproto/googleapis"), or "" when p's parent is
// only a host name.
func parentPath(p string) string {
	d := path.Dir(p)
	if !strings.Contains(d, "/") {
		return ""
	}
	return d
}

// versionDates tells which version of a module was current at a time,
// from the proxy's version lists and .info files. Each is fetched once per
// run; workers share the answers.
type versionDates struct {
	proxy *toolchain.Proxy

	mu    sync.Mutex
	lists map[string][]string     // versions listed, by module path
	known map[string]versionTimes // dates fetched, by module path
}

// versionTimes holds the .info Time of a module's versions; the zero Time
// for a version the proxy lists but does not serve.
type versionTimes map[string]time.Time

func newVersionDates(p *toolchain.Proxy) *versionDates {
	return &versionDates{proxy: p, lists: map[string][]string{}, known: map[string]versionTimes{}}
}

// newestAt returns the version of module p that `go get p@latest` would
// have picked at t: the highest release published at or before t, or,
// with none, the highest pre-release or pseudo-version (a module without
// tags, such as golang.org/x/net before 2022, is listed with
// pseudo-versions, whose time is their commit's). It returns "" when no
// version the proxy lists is that old, or the proxy does not know p. The
// proxy's list may be partial (a mirror lists what it has fetched): the
// answer is the newest listed.
func (d *versionDates) newestAt(ctx context.Context, p string, t time.Time) (string, error) {
	list, err := d.list(ctx, p)
	if err != nil {
		return "", err
	}
	var releases, others []string
	for _, v := range list {
		switch {
		case !semver.IsValid(v):
		case semver.Prerelease(v) == "":
			releases = append(releases, v)
		default:
			others = append(others, v)
		}
	}
	for _, vs := range [][]string{releases, others} {
		slices.SortFunc(vs, func(a, b string) int { return semver.Compare(b, a) })
		// Highest first, in chunks whose dates are fetched together (as
		// many as the proxy takes at once).
		n := d.proxy.Parallel()
		for i := 0; i < len(vs); i += n {
			chunk := vs[i:min(i+n, len(vs))]
			times, err := d.times(ctx, p, chunk)
			if err != nil {
				return "", err
			}
			for j, v := range chunk {
				if !times[j].IsZero() && !times[j].After(t) {
					return v, nil
				}
			}
		}
	}
	return "", nil
}

// time returns the .info Time of p@v; false when the proxy does not
// serve it.
func (d *versionDates) time(ctx context.Context, p, v string) (time.Time, bool, error) {
	ts, err := d.times(ctx, p, []string{v})
	if err != nil {
		return time.Time{}, false, err
	}
	return ts[0], !ts[0].IsZero(), nil
}

// times returns the dates of versions of p, fetching the .info of those
// not known yet at the same time; a pseudo-version's is read from it.
func (d *versionDates) times(ctx context.Context, p string, versions []string) ([]time.Time, error) {
	out := make([]time.Time, len(versions))
	errs := make([]error, len(versions))
	var wg sync.WaitGroup
	for i, v := range versions {
		if t, err := module.PseudoVersionTime(v); err == nil {
			out[i] = t
			continue
		}
		d.mu.Lock()
		t, ok := d.known[p][v]
		d.mu.Unlock()
		if ok {
			out[i] = t
			continue
		}
		wg.Go(func() {
			t, err := d.info(ctx, p, v)
			if err != nil {
				errs[i] = err
				return
			}
			out[i] = t
			d.mu.Lock()
			if d.known[p] == nil {
				d.known[p] = versionTimes{}
			}
			d.known[p][v] = t
			d.mu.Unlock()
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// info fetches the .info Time of p@v; the zero Time when the proxy does
// not serve it.
func (d *versionDates) info(ctx context.Context, p, v string) (time.Time, error) {
	data, err := d.proxy.ModuleFile(ctx, p, v, ".info")
	if errors.Is(err, toolchain.ErrUnavailable) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("date of %s@%s: %w", p, v, err)
	}
	var info struct{ Time time.Time }
	if err := json.Unmarshal(data, &info); err != nil {
		return time.Time{}, fmt.Errorf("date of %s@%s: %w", p, v, err)
	}
	return info.Time, nil
}

// list returns the versions the proxy lists for p, none when it does not
// know p.
func (d *versionDates) list(ctx context.Context, p string) ([]string, error) {
	d.mu.Lock()
	l, ok := d.lists[p]
	d.mu.Unlock()
	if ok {
		return l, nil
	}
	if module.CheckPath(p) != nil {
		// Not a module path (a bare host name, say): nothing listed.
		return nil, nil
	}
	data, err := d.proxy.ModuleFile(ctx, p, "", "")
	if err != nil && !errors.Is(err, toolchain.ErrUnavailable) {
		return nil, fmt.Errorf("versions of %s: %w", p, err)
	}
	l = strings.Fields(string(data))
	d.mu.Lock()
	d.lists[p] = l
	d.mu.Unlock()
	return l, nil
}
