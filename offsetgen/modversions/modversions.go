// Package modversions lists the versions of a third-party module that the
// generator builds offsets for, from a Go module proxy.
//
// A proxy's version list (@v/list) is not the set of versions it serves: a
// mirror of proxy.golang.org lists eleven of github.com/segmentio/kafka-go's
// releases yet serves dozens more, such as v0.3.0 and v0.4.46. So [List]
// probes for the release versions the list leaves out, patch by patch in
// each minor line of the module path's major version, and asks @latest for
// a version newer than the list. A version is served when the proxy answers
// its .info with 200; 403, 404 and 410 all mean it is not.
//
// Versions the module's author retracted (the retract directives of the
// go.mod of the module's latest version, as the go command reads them) are
// skipped, and so are pre-releases unless asked for, and "+incompatible"
// versions (another major version under the same path).
package modversions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"github.com/offsetdb/offsetdb/offsetgen/toolchain"
	"github.com/offsetdb/offsetdb/offsets"
)

// ErrUnknownModule reports a module the proxy does not serve (404 or 410,
// or 403 for a module it refuses).
var ErrUnknownModule = errors.New("module not found on the module proxy")

// Options selects among a module's versions.
type Options struct {
	// Constraint keeps only the versions it allows ("" in offsets terms:
	// the zero Constraint keeps all). List does not probe for versions it
	// excludes.
	Constraint offsets.Constraint
	// IncludePre keeps pre-releases (v1.60.0-rc.1) and pseudo-versions.
	// Only listed pre-releases are returned: they are never probed for.
	IncludePre bool
	// ListedOnly trusts the proxy's version list and skips probing for the
	// versions it omits, bringing List's cost down from one request per
	// release (plus about two per minor line) to two requests.
	ListedOnly bool
}

// Listing is the result of List.
type Listing struct {
	Module string
	// Versions are the versions to build, oldest first.
	Versions []string
	// Discovered are the Versions the proxy serves but leaves off its
	// version list, found by probing or through @latest, oldest first.
	Discovered []string
	// Latest is the version whose go.mod was read for retractions.
	Latest string
	// Retracted lists the proxy's versions that were skipped as retracted,
	// with the author's rationale when the go.mod gives one.
	Retracted map[string]string
}

// List returns the versions of module the proxy serves, filtered as
// described by the package documentation and opts.
//
// It reads the proxy's version list and @latest, then asks for the .info of
// every release the list omits in each minor line from 0 to one past the
// newest known (further while lines keep having releases), patch by patch
// until two consecutive misses past the line's highest listed or found
// patch. Release versions the constraint excludes, pre-releases,
// pseudo-versions and +incompatible versions are not probed. A module path
// without a /vN suffix is probed in major versions 0 and 1, one with a
// suffix in that major only. Probing costs about one request per release
// plus two per minor line (some 60 requests for kafka-go, a few hundred for
// grpc), run [toolchain.Proxy.Concurrency] at a time; the go.mod of the
// latest version costs one more. With [Options.ListedOnly] List costs two
// requests (the list and the go.mod), three when the list is empty.
//
// A probe failing with anything other than 403, 404 or 410 after the
// proxy's retries ends the listing with an error naming the version: a
// partial listing would look complete.
func List(ctx context.Context, proxy *toolchain.Proxy, modulePath string, opts Options) (*Listing, error) {
	if err := module.CheckPath(modulePath); err != nil {
		return nil, fmt.Errorf("module %q: %w", modulePath, err)
	}
	escaped, err := module.EscapePath(modulePath)
	if err != nil {
		return nil, err
	}
	data, err := proxy.ModuleFile(ctx, modulePath, "", "")
	if err != nil {
		return nil, notFound(modulePath, proxy, err)
	}
	var listed []string
	for _, v := range strings.Fields(string(data)) {
		// "+incompatible" versions are another major version under the same path.
		if semver.IsValid(v) && semver.Build(v) == "" {
			listed = append(listed, v)
		}
	}
	semver.Sort(listed)
	listed = slices.Compact(listed)

	served := slices.Clone(listed)
	unlisted := map[string]bool{}
	// The version @latest names when nothing else is known (a module with
	// only pseudo-versions), and why it could not be read.
	var latestAnswer string
	var latestErr error
	if !opts.ListedOnly || len(listed) == 0 {
		latestAnswer, latestErr = queryLatest(ctx, proxy, modulePath, escaped)
		if latestErr != nil && (len(listed) == 0 || !errors.Is(latestErr, toolchain.ErrUnavailable)) {
			// With a list, a proxy that does not answer @latest (a mirror
			// may not) is no error; probing still finds newer versions.
			return nil, notFound(modulePath, proxy, latestErr)
		}
		v := latestAnswer
		if v != "" && semver.Build(v) == "" && !module.IsPseudoVersion(v) && !slices.Contains(served, v) {
			served = append(served, v)
			unlisted[v] = true
		}
	}
	if !opts.ListedOnly {
		allows := opts.Constraint.Allows
		if opts.Constraint.IsZero() {
			allows = nil
		}
		found, err := probeUnlisted(ctx, proxy, modulePath, served, allows)
		if err != nil {
			return nil, fmt.Errorf("find the versions of %s that %s serves but does not list: %w", modulePath, proxy.BaseURL(), err)
		}
		for _, v := range found {
			served = append(served, v)
			unlisted[v] = true
		}
	}
	semver.Sort(served)

	latest := latestOf(served)
	if latest == "" {
		latest = latestAnswer
	}
	if latest == "" {
		return nil, fmt.Errorf("%s: %w: %s lists no version and names none as latest", modulePath, ErrUnknownModule, proxy.BaseURL())
	}
	l := &Listing{Module: modulePath, Latest: latest, Retracted: map[string]string{}}
	modData, err := proxy.ModuleFile(ctx, modulePath, latest, ".mod")
	if err != nil {
		return nil, fmt.Errorf("read go.mod of %s@%s for retractions: %w", modulePath, latest, err)
	}
	mf, err := modfile.ParseLax(modulePath+"@"+latest+"/go.mod", modData, nil)
	if err != nil {
		return nil, fmt.Errorf("go.mod of %s@%s: %w", modulePath, latest, err)
	}
	for _, v := range served {
		if r := retraction(mf, v); r != nil {
			l.Retracted[v] = r.Rationale
			continue
		}
		if !opts.IncludePre && semver.Prerelease(v) != "" {
			continue
		}
		if !opts.Constraint.Allows(v) {
			continue
		}
		l.Versions = append(l.Versions, v)
		if unlisted[v] {
			l.Discovered = append(l.Discovered, v)
		}
	}
	return l, nil
}

// queryLatest returns the version the proxy's @latest names; the error
// matches toolchain.ErrUnavailable when the proxy has no answer.
func queryLatest(ctx context.Context, proxy *toolchain.Proxy, modulePath, escaped string) (string, error) {
	info, err := proxy.GetFile(ctx, "/"+escaped+"/@latest")
	if err != nil {
		return "", err
	}
	var rev struct{ Version string }
	if err := json.Unmarshal(info, &rev); err != nil || !semver.IsValid(rev.Version) {
		return "", fmt.Errorf("%s: proxy's @latest is unreadable: %q", modulePath, info)
	}
	return rev.Version, nil
}

// latestOf returns the version the go command calls latest: the highest
// release, else the highest pre-release; "" for an empty list.
func latestOf(sorted []string) string {
	for i := len(sorted) - 1; i >= 0; i-- {
		if semver.Prerelease(sorted[i]) == "" {
			return sorted[i]
		}
	}
	if len(sorted) > 0 {
		return sorted[len(sorted)-1]
	}
	return ""
}

func retraction(mf *modfile.File, v string) *modfile.Retract {
	for _, r := range mf.Retract {
		if semver.Compare(r.Low, v) <= 0 && semver.Compare(v, r.High) <= 0 {
			return r
		}
	}
	return nil
}

func notFound(modulePath string, proxy *toolchain.Proxy, err error) error {
	if errors.Is(err, toolchain.ErrUnavailable) {
		return fmt.Errorf("%s: %w (%s: %v); check the module path, or set GOPROXY / --proxy to a proxy that serves it",
			modulePath, ErrUnknownModule, proxy.BaseURL(), err)
	}
	return fmt.Errorf("list versions of %s: %w", modulePath, err)
}

const (
	// missWindow is how many consecutive unserved patches past a line's
	// highest known one end the probing of that line.
	missWindow = 2
	// maxFirstPatch bounds the search for a line's first patch the
	// constraint allows: no module has that many patches in a minor line.
	maxFirstPatch = 1000
)

// line is a minor line of a module, such as v1.2.x.
type line struct{ major, minor int }

func (l line) version(patch int) string {
	return fmt.Sprintf("v%d.%d.%d", l.major, l.minor, patch)
}

// numbers returns the major, minor and patch numbers of a valid version,
// ignoring any pre-release or build suffix.
func numbers(v string) (major, minor, patch int) {
	core, _, _ := strings.Cut(strings.TrimPrefix(semver.Canonical(v), "v"), "-")
	core, _, _ = strings.Cut(core, "+")
	parts := strings.SplitN(core, ".", 3)
	major, _ = strconv.Atoi(parts[0])
	minor, _ = strconv.Atoi(parts[1])
	patch, _ = strconv.Atoi(parts[2])
	return major, minor, patch
}

// majorsOf returns the major versions a module path holds releases of:
// 0 and 1 without a major suffix, N with a /vN or gopkg.in .vN suffix.
func majorsOf(modulePath string) []int {
	_, pathMajor, _ := module.SplitPathVersion(modulePath)
	if pathMajor == "" {
		return []int{0, 1}
	}
	n, err := strconv.Atoi(strings.TrimSuffix(pathMajor[2:], "-unstable"))
	if err != nil {
		return nil
	}
	return []int{n}
}

// probeUnlisted returns the release versions of modulePath the proxy
// serves that are not in known, as found by probing .info files (see List).
// allows, when not nil, excludes versions from probing.
func probeUnlisted(ctx context.Context, proxy *toolchain.Proxy, modulePath string, known []string, allows func(string) bool) ([]string, error) {
	_, pathMajor, _ := module.SplitPathVersion(modulePath)
	highestMinor := map[int]int{}    // by major; -1 when none is known
	knownPatches := map[line][]int{} // releases only
	for _, v := range known {
		if semver.Build(v) != "" || module.CheckPathMajor(v, pathMajor) != nil {
			continue
		}
		major, minor, patch := numbers(v)
		highestMinor[major] = max(highestMinor[major], minor)
		if semver.Prerelease(v) == "" {
			knownPatches[line{major, minor}] = append(knownPatches[line{major, minor}], patch)
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr := &prober{ctx: ctx, cancel: cancel, proxy: proxy, modulePath: modulePath, pathMajor: pathMajor,
		allows: allows, sem: make(chan struct{}, proxy.Parallel())}

	var wg sync.WaitGroup
	for _, major := range majorsOf(modulePath) {
		newest := -1
		if m, ok := highestMinor[major]; ok {
			newest = m
		}
		wg.Go(func() {
			// Lines up to one past the newest known: all at once.
			var lines sync.WaitGroup
			for minor := 0; minor <= newest; minor++ {
				l := line{major, minor}
				lines.Go(func() { pr.probeLine(l, knownPatches[l], true) })
			}
			lines.Go(func() {
				// Lines past the newest known: one at a time, until one
				// has no release. These are probed whatever the
				// constraint, which may allow only a later line.
				for minor := newest + 1; pr.err() == nil; minor++ {
					if !pr.probeLine(line{major, minor}, nil, false) {
						break
					}
				}
			})
			lines.Wait()
		})
	}
	wg.Wait()
	if err := pr.err(); err != nil {
		return nil, err
	}
	semver.Sort(pr.found)
	return pr.found, nil
}

// prober asks the proxy about versions, concurrency-bounded by sem, and
// cancels ctx on the first error.
type prober struct {
	ctx        context.Context
	cancel     context.CancelFunc
	proxy      *toolchain.Proxy
	modulePath string
	pathMajor  string
	allows     func(string) bool
	sem        chan struct{}

	mu       sync.Mutex
	found    []string
	firstErr error
}

func (pr *prober) err() error {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.firstErr
}

func (pr *prober) fail(err error) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.firstErr == nil {
		pr.firstErr = err
		pr.cancel()
	}
}

// allowed reports whether v is worth probing: of the path's major version
// and, if constrained, allowed by the constraint.
func (pr *prober) allowed(v string, constrained bool) bool {
	return module.CheckPathMajor(v, pr.pathMajor) == nil && (!constrained || pr.allows == nil || pr.allows(v))
}

// firstPatch returns the lowest patch of l worth probing, or -1 when there
// is none.
func (pr *prober) firstPatch(l line, constrained bool) int {
	for p := 0; p < maxFirstPatch; p++ {
		if pr.allowed(l.version(p), constrained) {
			return p
		}
	}
	return -1
}

// probeLine probes the patches of l missing from listed, in waves: each
// wave covers, in parallel, the patches up to the highest listed or found
// one plus missWindow, and always at least the first two allowed patches.
// When constrained, patches the constraint excludes count as misses without
// a request: the constraint allows an interval of versions, so past the
// first allowed patch they lie above it. probeLine reports whether l has
// any release, listed or found.
func (pr *prober) probeLine(l line, listed []int, constrained bool) bool {
	first := pr.firstPatch(l, constrained)
	if first < 0 {
		return len(listed) > 0
	}
	top := first - 1 // highest patch known to be served, or below first
	for _, p := range listed {
		top = max(top, p)
	}
	var mu sync.Mutex
	hit := len(listed) > 0
	next := first
	for limit := top + missWindow; next <= limit && pr.err() == nil; limit = top + missWindow {
		var wg sync.WaitGroup
		for p := next; p <= limit; p++ {
			v := l.version(p)
			if slices.Contains(listed, p) || !pr.allowed(v, constrained) {
				continue
			}
			wg.Go(func() {
				ok, err := pr.served(v)
				if err != nil {
					pr.fail(fmt.Errorf("probe %s: %w", v, err))
					return
				}
				if ok {
					mu.Lock()
					top, hit = max(top, p), true
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		next = limit + 1
	}
	return hit
}

// served asks the proxy for v's .info and records v when it answers 200.
// A 403, 404 or 410 means the proxy does not serve v; any other failure
// (after the proxy's retries) is returned.
func (pr *prober) served(v string) (bool, error) {
	select {
	case pr.sem <- struct{}{}:
	case <-pr.ctx.Done():
		return false, pr.ctx.Err()
	}
	defer func() { <-pr.sem }()
	_, err := pr.proxy.ModuleFile(pr.ctx, pr.modulePath, v, ".info")
	if errors.Is(err, toolchain.ErrUnavailable) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	pr.mu.Lock()
	pr.found = append(pr.found, v)
	pr.mu.Unlock()
	return true, nil
}
