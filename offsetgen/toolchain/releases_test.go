package toolchain

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/goversion"
)

// gappyProxy serves a list that misses most releases, withholds some
// releases below each line's newest, and has lines past the list.
func gappyProxy(t *testing.T) *fakeProxy {
	fp := newFakeProxy(t)
	fp.list = []string{
		"v0.0.1-go1.19.3.linux-amd64", // before since
		"v0.0.1-go1.20.1.linux-amd64",
		"v0.0.1-go1.20.4.linux-amd64",
		"v0.0.1-go1.20.1.darwin-arm64", // another platform
		"v0.0.1-go1.22rc1.linux-amd64",
		"v0.0.1-go1.22.0.linux-amd64",
		"v0.0.1-go1.22.1.linux-amd64",
		"v0.0.1-gonext.linux-amd64", // not a release name
	}
	for _, v := range []string{
		"go1.19.3",
		// go1.20.3 and go1.20.5-8 withheld; go1.20.16 lies past the
		// window of misses after go1.20.9, so it is never found.
		"go1.20", "go1.20.1", "go1.20.2", "go1.20.4", "go1.20.9", "go1.20.16",
		// Not listed at all, like go1.12 on proxy.golang.org.
		"go1.21.0", "go1.21.3",
		"go1.22rc1", "go1.22rc3", "go1.22.0", "go1.22.1",
		// Past the list.
		"go1.23rc1", "go1.23.0", "go1.23.2",
		// Past go1.24, which has no release: never probed.
		"go1.25.0",
	} {
		fp.available[v] = true
	}
	return fp
}

func TestReleasesProbesPastIncompleteList(t *testing.T) {
	tests := []struct {
		name            string
		since           string
		includePre      bool
		wantAvailable   []string
		wantUnavailable []string
	}{
		{
			name:  "final releases",
			since: "go1.20",
			wantAvailable: []string{
				"go1.20", "go1.20.1", "go1.20.2", "go1.20.4", "go1.20.9",
				"go1.21.0", "go1.21.3", "go1.22.0", "go1.22.1", "go1.23.0", "go1.23.2",
			},
			wantUnavailable: []string{
				"go1.20.3", "go1.20.5", "go1.20.6", "go1.20.7", "go1.20.8",
				"go1.21.1", "go1.21.2", "go1.23.1",
			},
		},
		{
			name:  "since a patch release",
			since: "go1.20.3",
			wantAvailable: []string{
				"go1.20.4", "go1.20.9",
				"go1.21.0", "go1.21.3", "go1.22.0", "go1.22.1", "go1.23.0", "go1.23.2",
			},
			wantUnavailable: []string{
				"go1.20.3", "go1.20.5", "go1.20.6", "go1.20.7", "go1.20.8",
				"go1.21.1", "go1.21.2", "go1.23.1",
			},
		},
		{
			name:       "with pre-releases",
			since:      "go1.21.1",
			includePre: true,
			wantAvailable: []string{
				"go1.21.3",
				"go1.22rc1", "go1.22rc3", "go1.22.0", "go1.22.1",
				"go1.23rc1", "go1.23.0", "go1.23.2",
			},
			wantUnavailable: []string{"go1.21.1", "go1.21.2", "go1.22rc2", "go1.23.1"},
		},
		{
			name:  "since past every line",
			since: "go1.24",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fp := gappyProxy(t)
			p := fp.proxy(t)
			p.ProbeWindow = 5
			p.IncludePre = tt.includePre

			rels, err := p.Releases(context.Background(), goversion.MustParse(tt.since))
			require.NoError(t, err)

			var available, unavailable []string
			for i, r := range rels {
				if i > 0 {
					assert.True(t, rels[i-1].Version.Less(r.Version), "sorted oldest first")
				}
				if r.Available {
					available = append(available, r.Version.String())
					assert.Empty(t, r.Reason)
				} else {
					unavailable = append(unavailable, r.Version.String())
					assert.Equal(t, "proxy answered 403: "+notAvailable, r.Reason)
				}
			}
			assert.ElementsMatch(t, tt.wantAvailable, available, "available")
			assert.ElementsMatch(t, tt.wantUnavailable, unavailable, "unavailable")
			assert.Zero(t, fp.count("/"+ModulePath+"/@v/v0.0.1-go1.25.0."+Platform+".info"),
				"lines past the first empty one must not be probed")
		})
	}
}

func TestReleasesRetriesServerErrors(t *testing.T) {
	fp := gappyProxy(t)
	fp.fail = 2 // the list request fails twice, then succeeds
	p := fp.proxy(t)
	p.ProbeWindow = 5

	rels, err := p.Releases(context.Background(), goversion.MustParse("go1.23"))
	require.NoError(t, err)
	assert.Equal(t, []Release{
		{Version: goversion.MustParse("go1.23.0"), Available: true},
		{Version: goversion.MustParse("go1.23.1"), Reason: "proxy answered 403: " + notAvailable},
		{Version: goversion.MustParse("go1.23.2"), Available: true},
	}, rels)
	assert.Equal(t, 3, fp.count("/"+ModulePath+"/@v/list"))
}

func TestReleasesFailsOnPersistentServerErrors(t *testing.T) {
	fp := gappyProxy(t)
	fp.fail = 1000
	p := fp.proxy(t)

	_, err := p.Releases(context.Background(), goversion.MustParse("go1.23"))
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrUnreachable)
	assert.ErrorContains(t, err, "503")
}

// TestReleasesSkipsSettledVersions: given what a first run established, a
// second run returns the same releases while asking far less, and nothing
// about lines older than the two newest.
func TestReleasesSkipsSettledVersions(t *testing.T) {
	fp := gappyProxy(t)
	p := fp.proxy(t)
	p.ProbeWindow = 5
	since := goversion.MustParse("go1.20")
	first, err := p.Releases(context.Background(), since)
	require.NoError(t, err)
	infos := func() int {
		fp.mu.Lock()
		defer fp.mu.Unlock()
		n := 0
		for path, c := range fp.requests {
			if strings.HasSuffix(path, ".info") {
				n += c
			}
		}
		return n
	}
	before := infos()

	settled := map[goversion.Version]Release{}
	for _, r := range first {
		settled[r.Version] = r
	}
	p.Settled = func(v goversion.Version) (bool, string, bool) {
		r, ok := settled[v]
		return r.Available, r.Reason, ok
	}
	second, err := p.Releases(context.Background(), since)
	require.NoError(t, err)
	assert.Equal(t, first, second)
	asked := infos() - before
	assert.Less(t, asked, before/2, "a settled run asks much less (%d vs %d)", asked, before)
	fp.mu.Lock()
	defer fp.mu.Unlock()
	for path := range fp.requests {
		// go1.22 is the newest listed line, so go1.20 is closed.
		if strings.Contains(path, "go1.20.") {
			assert.Equal(t, 1, fp.requests[path], "closed line probed again: %s", path)
		}
	}
}
