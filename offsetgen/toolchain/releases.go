package toolchain

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/offsetdb/offsetdb/goversion"
)

// Release is a Go release and whether the module proxy serves its toolchain.
type Release struct {
	Version goversion.Version
	// Available reports whether the proxy serves the toolchain.
	Available bool
	// Reason says why an unavailable release is missing, in the proxy's
	// words: "proxy answered 403: This module version is not available."
	Reason string
}

const (
	defaultProbeWindow = 20
	defaultConcurrency = 8
	// preWindow bounds the probing of beta and rc numbers, which are few
	// and rarely withheld.
	preWindow = 3
)

// Releases lists the Go releases from since on, oldest first.
//
// The proxy's version list is incomplete (it names go1.13.1 but not
// go1.12.17), so Releases asks the proxy about every patch number of every
// minor line from since's, through the .info endpoint. A line ends after
// ProbeWindow consecutive misses past its highest available patch; lines end
// at the first minor past the newest listed one with no release at all.
// A release that misses below its line's highest available patch is real but
// withheld by the proxy: it is returned with Available false and the proxy's
// answer as Reason, because the database must record such gaps rather than
// skip them silently. Misses above the highest available patch are versions
// that do not exist (yet) and are not returned.
//
// Only final releases are returned unless IncludePre is set. Going back to
// go1.12 costs several hundred small requests, run Concurrency at a time
// (about 10 s against proxy.golang.org). Errors other than 403/404/410 (after
// retries) end the listing: a partial list would look complete.
func (p *Proxy) Releases(ctx context.Context, since goversion.Version) ([]Release, error) {
	listed, err := p.list(ctx)
	if err != nil {
		return nil, fmt.Errorf("list Go releases from %s: %w", p.url(), err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr := &prober{p: p, ctx: ctx, cancel: cancel, sem: make(chan struct{}, p.Parallel())}

	newest := since.Minor - 1
	listedNums := map[series][]int{}
	for _, v := range listed {
		if v.Major != 1 {
			continue
		}
		newest = max(newest, v.Minor)
		s, n := seriesOf(v)
		listedNums[s] = append(listedNums[s], n)
	}

	var results []seriesResult
	probeLine := func(minor int) []seriesResult {
		var (
			wg  sync.WaitGroup
			mu  sync.Mutex
			out []seriesResult
		)
		for _, s := range p.seriesOf(minor, since) {
			// Go patches only its two newest lines; with settled answers
			// from an earlier run, older lines need no probing past them.
			closed := p.Settled != nil && minor < newest-1
			wg.Go(func() {
				r := pr.probeSeries(s, s.start(since), listedNums[s], closed)
				mu.Lock()
				out = append(out, r)
				mu.Unlock()
			})
		}
		wg.Wait()
		return out
	}

	// Lines the list knows about: all at once.
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	for minor := since.Minor; minor <= newest; minor++ {
		wg.Go(func() {
			r := probeLine(minor)
			mu.Lock()
			results = append(results, r...)
			mu.Unlock()
		})
	}
	wg.Wait()
	// Lines past the list: one at a time, until one has no release at all.
	for minor := max(since.Minor, newest+1); pr.err() == nil; minor++ {
		r := probeLine(minor)
		results = append(results, r...)
		if !slices.ContainsFunc(r, func(r seriesResult) bool { return r.highest >= r.start }) {
			break
		}
	}
	if err := pr.err(); err != nil {
		return nil, fmt.Errorf("probe Go releases on %s: %w", p.url(), err)
	}

	var out []Release
	for _, r := range results {
		for n := r.start; n <= r.highest; n++ {
			rel := Release{Version: r.series.version(n), Available: r.probes[n] == ""}
			if !rel.Available {
				rel.Reason = r.probes[n]
			}
			if rel.Version.Compare(since) >= 0 && (p.IncludePre || rel.Version.IsRelease()) {
				out = append(out, rel)
			}
		}
	}
	slices.SortFunc(out, func(a, b Release) int { return a.Version.Compare(b.Version) })
	return out, nil
}

// list returns the Platform toolchain versions on the proxy's version list.
// A proxy without the module (403/404/410) yields an empty list: probing may
// still find versions.
func (p *Proxy) list(ctx context.Context) ([]goversion.Version, error) {
	data, err := p.get(ctx, p.url()+"/"+ModulePath+"/@v/list")
	if err != nil {
		if se := (*statusError)(nil); errors.As(err, &se) && isMiss(se.code) {
			return nil, nil
		}
		return nil, err
	}
	var out []goversion.Version
	for _, line := range strings.Fields(string(data)) {
		s, ok := strings.CutPrefix(line, "v0.0.1-")
		if !ok {
			continue
		}
		if s, ok = strings.CutSuffix(s, "."+Platform); !ok {
			continue
		}
		v, err := goversion.Parse(s)
		if err != nil {
			continue // not a Go release name we understand; probing covers it
		}
		out = append(out, v)
	}
	return out, nil
}

// Parallel returns how many requests to this proxy may run at once:
// Concurrency, or 8 when it is 0.
func (p *Proxy) Parallel() int {
	if p != nil && p.Concurrency > 0 {
		return p.Concurrency
	}
	return defaultConcurrency
}

func (p *Proxy) probeWindow() int {
	if p.ProbeWindow > 0 {
		return p.ProbeWindow
	}
	return defaultProbeWindow
}

// series is a numbered sequence of versions within a minor line: its patch
// releases (kind "") or its betas or release candidates.
type series struct {
	minor int
	kind  string // "", "beta" or "rc"
}

func seriesOf(v goversion.Version) (series, int) {
	for _, kind := range []string{"beta", "rc"} {
		if n, ok := strings.CutPrefix(v.Pre, kind); ok {
			var k int
			fmt.Sscanf(n, "%d", &k)
			return series{v.Minor, kind}, k
		}
	}
	if v.Pre != "" {
		return series{v.Minor, v.Pre}, 0 // never probed, never matched
	}
	return series{v.Minor, ""}, v.Patch
}

// seriesOf returns the series of a minor line to probe.
func (p *Proxy) seriesOf(minor int, since goversion.Version) []series {
	out := []series{{minor, ""}}
	// Pre-releases of since's own line precede it unless since is one.
	if p.IncludePre && (minor > since.Minor || !since.IsRelease()) {
		out = append(out, series{minor, "beta"}, series{minor, "rc"})
	}
	return out
}

func (s series) version(n int) goversion.Version {
	if s.kind == "" {
		return goversion.Version{Major: 1, Minor: s.minor, Patch: n}
	}
	return goversion.Version{Major: 1, Minor: s.minor, Pre: fmt.Sprintf("%s%d", s.kind, n)}
}

// start is the first number of s worth probing.
func (s series) start(since goversion.Version) int {
	switch {
	case s.kind != "":
		return 1
	case s.minor == since.Minor && since.IsRelease():
		return since.Patch
	}
	return 0
}

func (s series) window(p *Proxy) int {
	if s.kind != "" {
		return preWindow
	}
	return p.probeWindow()
}

// seriesResult is what probing found: probes maps each probed number to ""
// when available or to the proxy's answer when not.
type seriesResult struct {
	series
	start, highest int // highest < start: nothing available
	probes         map[int]string
}

type prober struct {
	p      *Proxy
	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{}

	mu       sync.Mutex
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

// probeSeries probes s from start in waves: each wave covers the numbers up to
// the highest hit (or listed number) plus the window, in parallel.
//
// Numbers the Proxy's Settled function answers for are not asked again. A
// closed series is probed only up to its highest listed or settled number.
func (pr *prober) probeSeries(s series, start int, listed []int, closed bool) seriesResult {
	r := seriesResult{series: s, start: start, highest: start - 1, probes: map[int]string{}}
	window := s.window(pr.p)
	if closed {
		window = 0
		for n := start; n < start+100; n++ {
			if avail, _, ok := pr.p.Settled(s.version(n)); ok && avail {
				listed = append(listed, n)
			}
		}
	}
	limit := start - 1 + window
	for _, n := range listed {
		limit = max(limit, n+window)
	}
	next := start
	var mu sync.Mutex
	for next <= limit && pr.err() == nil {
		var wg sync.WaitGroup
		for n := next; n <= limit; n++ {
			wg.Go(func() {
				reason, err := pr.probe(s.version(n))
				if err != nil {
					pr.fail(fmt.Errorf("%s: %w", s.version(n), err))
					return
				}
				mu.Lock()
				r.probes[n] = reason
				if reason == "" {
					r.highest = max(r.highest, n)
				}
				mu.Unlock()
			})
		}
		wg.Wait()
		next = limit + 1
		limit = r.highest + window
	}
	return r
}

// probe asks the proxy for v's .info: "" when available, the proxy's answer
// when it does not serve v.
func (pr *prober) probe(v goversion.Version) (string, error) {
	if pr.p.Settled != nil {
		if avail, reason, ok := pr.p.Settled(v); ok {
			if avail {
				return "", nil
			}
			return reason, nil
		}
	}
	select {
	case pr.sem <- struct{}{}:
	case <-pr.ctx.Done():
		return "", pr.ctx.Err()
	}
	defer func() { <-pr.sem }()
	url, err := pr.p.moduleURL(v, ".info")
	if err != nil {
		return "", err
	}
	_, err = pr.p.get(pr.ctx, url)
	if se := (*statusError)(nil); errors.As(err, &se) && isMiss(se.code) {
		return se.Error(), nil
	}
	return "", err
}
