package generate

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/goversion"
	"github.com/offsetdb/offsetdb/offsetgen/toolchain"
	"github.com/offsetdb/offsetdb/offsets"
)

// releaseProxy answers golang.org/toolchain's version list and .info
// requests as the module proxy does (403 for a release it withholds), and
// counts the .info requests per Go release.
type releaseProxy struct {
	mu     sync.Mutex
	served map[string]bool // Go release -> .info answers 200
	listed []string
	asked  map[string]int
}

func newReleaseProxy(t *testing.T, listed []string, served ...string) (*releaseProxy, *toolchain.Proxy) {
	rp := &releaseProxy{served: map[string]bool{}, listed: listed, asked: map[string]int{}}
	for _, v := range served {
		rp.served[v] = true
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, "/"+toolchain.ModulePath+"/@v/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		rp.mu.Lock()
		defer rp.mu.Unlock()
		if rest == "list" {
			for _, v := range rp.listed {
				fmt.Fprintf(w, "v0.0.1-%s.%s\n", v, toolchain.Platform)
			}
			return
		}
		v := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSuffix(rest, ".info"), "v0.0.1-"), "."+toolchain.Platform)
		rp.asked[v]++
		if !rp.served[v] {
			http.Error(w, "This module version is not available.", http.StatusForbidden)
			return
		}
		fmt.Fprintf(w, `{"Version":%q,"Time":"2023-05-21T18:14:17Z"}`, strings.TrimSuffix(rest, ".info"))
	}))
	t.Cleanup(srv.Close)
	return rp, &toolchain.Proxy{URL: srv.URL, ProbeWindow: 3}
}

// serve makes the proxy serve v from now on, and forgets what was asked.
func (rp *releaseProxy) serve(v string) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	rp.served[v] = true
	rp.asked = map[string]int{}
}

func (rp *releaseProxy) requests() map[string]int {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	out := map[string]int{}
	for v, n := range rp.asked {
		out[v] = n
	}
	return out
}

// TestRecheckUnavailableAsksOnlyAboutUnavailableReleases: a database made
// when the proxy withheld go1.20.2 and go1.21.1. Later the proxy serves
// go1.20.2. A settled run asks nothing about go1.20 and keeps it
// unavailable; a run with RecheckUnavailable asks about the two unavailable
// releases only (once each, nothing about the ok ones), finds go1.20.2
// served and plans its build for both GOARCHes; a full Recheck finds the
// same but asks about every release.
func TestRecheckUnavailableAsksOnlyAboutUnavailableReleases(t *testing.T) {
	arches := []string{"amd64", "arm64"}
	ok := []string{"go1.20", "go1.20.1", "go1.20.3", "go1.21.0", "go1.21.2", "go1.22.0", "go1.22.1"}
	withheld := []string{"go1.20.2", "go1.21.1"}
	rp, proxy := newReleaseProxy(t, []string{"go1.21.0", "go1.22.0"}, ok...)
	table := offsets.NewTable(offsets.StdModule, []offsets.FieldID{{Package: "net/http", Struct: "Request", Field: "Method"}})
	since := goversion.MustParse("go1.20")

	// The first run records what the proxy served then.
	releases, err := proxy.Releases(context.Background(), since)
	require.NoError(t, err)
	cfg := Config{Arches: arches}
	_, err = plan(table, releases, cfg, &Report{})
	require.NoError(t, err)
	for _, v := range ok {
		for _, arch := range arches {
			require.NoError(t, table.Set(arch, offsets.Build{Coverage: offsets.Coverage{Version: v, Status: offsets.StatusOK, Toolchain: v}}))
		}
	}
	for _, v := range withheld {
		require.Equal(t, offsets.StatusUnavailable, table.Builds["amd64"][v].Status, v)
	}

	rp.serve("go1.20.2")
	run := func(p *toolchain.Proxy) ([]job, map[string]int, *Report) {
		releases, err := p.Releases(context.Background(), since)
		require.NoError(t, err)
		rep := &Report{Releases: len(releases)}
		jobs, err := plan(table, releases, cfg, rep)
		require.NoError(t, err)
		asked := rp.requests()
		rp.serve("go1.20.2") // reset the counts
		return jobs, asked, rep
	}

	settledProxy := *proxy
	settledProxy.Settled = settled(table, arches, false)
	jobs, asked, rep := run(&settledProxy)
	assert.Empty(t, jobs, "a settled run builds nothing")
	assert.Equal(t, 2, rep.Unavailable, "and keeps both releases unavailable")
	for v := range asked {
		assert.False(t, strings.HasPrefix(v, "go1.20"), "go1.20 is closed and settled, yet %s was asked", v)
	}
	settledRequests := total(asked)

	recheckProxy := *proxy
	recheckProxy.Settled = settled(table, arches, true)
	jobs, asked, rep = run(&recheckProxy)
	require.Len(t, jobs, 1)
	assert.Equal(t, "go1.20.2", jobs[0].v.String())
	assert.Equal(t, arches, jobs[0].arches)
	assert.Equal(t, 1, rep.Unavailable, "go1.21.1 is still withheld")
	for _, v := range withheld {
		assert.Equal(t, 1, asked[v], "%s asked once", v)
	}
	for _, v := range ok {
		assert.Zero(t, asked[v], "%s is recorded ok, yet was asked", v)
	}
	recheckRequests := total(asked)

	fullProxy := *proxy
	jobs, asked, _ = run(&fullProxy)
	require.Len(t, jobs, 1)
	for _, v := range append(ok, withheld...) {
		assert.Equal(t, 1, asked[v], "a full recheck asks about %s", v)
	}
	fullRequests := total(asked)
	t.Logf(".info requests: settled %d, recheck unavailable %d, full recheck %d", settledRequests, recheckRequests, fullRequests)
	assert.Equal(t, settledRequests+len(withheld), recheckRequests,
		"rechecking adds one request per unavailable release to a settled run")
	assert.Less(t, recheckRequests, fullRequests)
}

func total(m map[string]int) int {
	n := 0
	for _, c := range m {
		n += c
	}
	return n
}

// TestSettledLeavesUnavailableReleasesOpenWhenRechecking: the answers a
// run takes from the database, per status and flag.
func TestSettledLeavesUnavailableReleasesOpenWhenRechecking(t *testing.T) {
	table := offsets.NewTable(offsets.StdModule, []offsets.FieldID{{Package: "net/http", Struct: "Request", Field: "Method"}})
	set := func(arch, v string, st offsets.Status) {
		require.NoError(t, table.Set(arch, offsets.Build{Coverage: offsets.Coverage{Version: v, Status: st, Reason: map[bool]string{true: "proxy answered 403"}[st == offsets.StatusUnavailable]}}))
	}
	for _, arch := range []string{"amd64", "arm64"} {
		set(arch, "go1.20.1", offsets.StatusOK)
		set(arch, "go1.20.2", offsets.StatusUnavailable)
		set(arch, "go1.20.3", offsets.StatusFailed)
	}
	set("amd64", "go1.20.4", offsets.StatusOK) // arm64 not built yet

	tests := []struct {
		version            string
		recheck            bool
		available, settled bool
	}{
		{"go1.20.1", false, true, true},
		{"go1.20.1", true, true, true},
		{"go1.20.2", false, false, true},
		{"go1.20.2", true, false, false},
		{"go1.20.3", true, true, true},
		{"go1.20.4", false, false, false},
		{"go1.20.5", false, false, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s recheck=%v", tt.version, tt.recheck), func(t *testing.T) {
			available, reason, ok := settled(table, []string{"amd64", "arm64"}, tt.recheck)(goversion.MustParse(tt.version))
			assert.Equal(t, tt.settled, ok)
			if ok {
				assert.Equal(t, tt.available, available)
				assert.Equal(t, !available, reason != "", "a settled unavailable release keeps its reason")
			}
		})
	}
}
