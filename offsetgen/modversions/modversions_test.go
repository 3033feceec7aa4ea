package modversions

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/offsetgen/toolchain"
	"github.com/offsetdb/offsetdb/offsets"
)

// fakeProxy serves files (path -> body) and answers paths in status with
// that status; other paths get 404. It records the paths requested.
type fakeProxy struct {
	files  map[string]string
	status map[string]int

	mu        sync.Mutex
	requested []string
}

func (f *fakeProxy) start(t *testing.T) *toolchain.Proxy {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requested = append(f.requested, r.URL.Path)
		f.mu.Unlock()
		if code, ok := f.status[r.URL.Path]; ok {
			http.Error(w, http.StatusText(code), code)
			return
		}
		body, ok := f.files[r.URL.Path]
		if !ok {
			http.Error(w, "not found: "+r.URL.Path, http.StatusNotFound)
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return &toolchain.Proxy{URL: srv.URL}
}

// requests returns the paths requested so far, sorted.
func (f *fakeProxy) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(slices.Values(f.requested))
}

// moduleProxy is a fakeProxy for module example.com/lib (or modulePath)
// that lists listed and serves the .info and .mod of listed and served.
// Every go.mod carries gomod after its module line.
func moduleProxy(modulePath string, listed, served []string, gomod string) *fakeProxy {
	base := "/" + modulePath + "/@v/"
	f := &fakeProxy{files: map[string]string{base + "list": strings.Join(listed, "\n") + "\n"}, status: map[string]int{}}
	for _, v := range append(slices.Clone(listed), served...) {
		f.files[base+v+".info"] = `{"Version":"` + v + `","Time":"2024-01-01T00:00:00Z"}`
		f.files[base+v+".mod"] = "module " + modulePath + "\n\n" + gomod
	}
	return f
}

func TestListSkipsRetractedAndPreReleases(t *testing.T) {
	f := &fakeProxy{files: map[string]string{
		// Upper case is escaped in proxy paths.
		"/example.com/!big!corp/lib/@v/list": "v1.41.0\nv1.40.0\nv1.39.0\nv1.42.0-rc.1\nv1.43.0\nv1.44.0\nv2.0.0+incompatible\nv1.41.1\n",
		"/example.com/!big!corp/lib/@v/v1.44.0.mod": `module example.com/BigCorp/lib

go 1.21

retract (
	v1.41.0 // breaks streams
	[v1.43.0, v1.43.9]
)
`,
	}}
	p := f.start(t)
	c, err := offsets.ParseConstraint("example.com/BigCorp/lib", ">=v1.40.0")
	require.NoError(t, err)
	l, err := List(context.Background(), p, "example.com/BigCorp/lib", Options{Constraint: c})
	require.NoError(t, err)
	assert.Equal(t, []string{"v1.40.0", "v1.41.1", "v1.44.0"}, l.Versions)
	assert.Empty(t, l.Discovered)
	assert.Equal(t, "v1.44.0", l.Latest)
	assert.Equal(t, map[string]string{"v1.41.0": "breaks streams", "v1.43.0": ""}, l.Retracted)

	l, err = List(context.Background(), p, "example.com/BigCorp/lib", Options{Constraint: c, IncludePre: true})
	require.NoError(t, err)
	assert.Equal(t, []string{"v1.40.0", "v1.41.1", "v1.42.0-rc.1", "v1.44.0"}, l.Versions, "pre-releases are opt-in")
}

func TestListUsesLatestWhenListIsEmpty(t *testing.T) {
	f := &fakeProxy{files: map[string]string{
		"/example.com/new/@v/list":                                   "",
		"/example.com/new/@latest":                                   `{"Version":"v0.0.0-20240101000000-0123456789ab"}`,
		"/example.com/new/@v/v0.0.0-20240101000000-0123456789ab.mod": "module example.com/new\n",
	}}
	p := f.start(t)
	for _, listedOnly := range []bool{false, true} {
		l, err := List(context.Background(), p, "example.com/new", Options{ListedOnly: listedOnly})
		require.NoError(t, err)
		assert.Empty(t, l.Versions)
		assert.Equal(t, "v0.0.0-20240101000000-0123456789ab", l.Latest)
	}
}

func TestListUnknownModuleSaysWhatToDo(t *testing.T) {
	f := &fakeProxy{status: map[string]int{"/example.com/gone/@v/list": http.StatusGone}}
	p := f.start(t)
	for _, m := range []string{"example.com/nothere", "example.com/gone"} {
		_, err := List(context.Background(), p, m, Options{})
		require.ErrorIs(t, err, ErrUnknownModule, m)
		assert.Contains(t, err.Error(), m)
		assert.Contains(t, err.Error(), "check the module path")
	}
	_, err := List(context.Background(), p, "not a path", Options{})
	assert.Error(t, err)
}

func TestListFindsServedVersionsTheListOmits(t *testing.T) {
	tests := []struct {
		name       string
		module     string // "" means example.com/lib
		listed     []string
		served     []string // besides the listed versions
		refused    []string // answered 403, like versions a mirror withholds
		latest     string   // what @latest names; "" means 404
		gomod      string
		constraint string
		want       []string
		discovered []string
		retracted  map[string]string
		notProbed  []string // versions whose .info must not be requested
	}{
		{
			name:   "patches and lines the list omits",
			listed: []string{"v0.1.0", "v0.4.2", "v0.4.5"},
			// v0.4.9 lies past two misses after v0.4.6; v0.6.0 past a
			// line with no release: neither is found.
			served:     []string{"v0.0.1", "v0.1.1", "v0.2.0", "v0.4.0", "v0.4.3", "v0.4.6", "v0.4.9", "v0.5.0", "v0.5.1", "v0.7.0", "v1.0.0"},
			want:       []string{"v0.0.1", "v0.1.0", "v0.1.1", "v0.2.0", "v0.4.0", "v0.4.2", "v0.4.3", "v0.4.5", "v0.4.6", "v0.5.0", "v0.5.1", "v1.0.0"},
			discovered: []string{"v0.0.1", "v0.1.1", "v0.2.0", "v0.4.0", "v0.4.3", "v0.4.6", "v0.5.0", "v0.5.1", "v1.0.0"},
			notProbed:  []string{"v0.1.0", "v0.4.2", "v0.4.5", "v0.4.9", "v0.7.0"},
		},
		{
			name:       "versions the proxy refuses with 403 are not served",
			listed:     []string{"v1.2.0"},
			refused:    []string{"v1.0.0", "v1.1.0", "v1.2.1"},
			served:     []string{"v1.1.1"},
			want:       []string{"v1.1.1", "v1.2.0"},
			discovered: []string{"v1.1.1"},
		},
		{
			name:       "@latest newer than the list",
			listed:     []string{"v1.0.0"},
			served:     []string{"v1.3.0", "v1.3.1"},
			latest:     "v1.3.1",
			want:       []string{"v1.0.0", "v1.3.0", "v1.3.1"},
			discovered: []string{"v1.3.0", "v1.3.1"},
			notProbed:  []string{"v1.3.1"},
		},
		{
			name:       "retractions apply to found versions",
			listed:     []string{"v1.0.0", "v1.2.0"},
			served:     []string{"v1.1.0", "v1.1.1"},
			gomod:      "retract v1.1.0 // deadlocks\n",
			want:       []string{"v1.0.0", "v1.1.1", "v1.2.0"},
			discovered: []string{"v1.1.1"},
			retracted:  map[string]string{"v1.1.0": "deadlocks"},
		},
		{
			name:       "constraint applies and excluded versions are not probed",
			listed:     []string{"v1.0.0", "v1.3.0", "v1.5.2"},
			served:     []string{"v1.1.0", "v1.3.1", "v1.3.2", "v1.5.3", "v1.6.0"},
			constraint: ">=v1.3.1, <v1.5.3",
			want:       []string{"v1.3.1", "v1.3.2", "v1.5.2"},
			discovered: []string{"v1.3.1", "v1.3.2"},
			notProbed:  []string{"v1.0.1", "v1.1.0", "v1.2.0", "v1.3.0", "v1.5.3", "v1.5.4"},
		},
		{
			name:       "a /vN path is probed in its major only",
			module:     "example.com/lib/v3",
			listed:     []string{"v3.1.0"},
			served:     []string{"v3.0.0", "v3.1.1"},
			want:       []string{"v3.0.0", "v3.1.0", "v3.1.1"},
			discovered: []string{"v3.0.0", "v3.1.1"},
			notProbed:  []string{"v0.0.0", "v1.0.0", "v2.0.0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mod := tt.module
			if mod == "" {
				mod = "example.com/lib"
			}
			f := moduleProxy(mod, tt.listed, tt.served, tt.gomod)
			for _, v := range tt.refused {
				f.status["/"+mod+"/@v/"+v+".info"] = http.StatusForbidden
			}
			if tt.latest != "" {
				f.files["/"+mod+"/@latest"] = `{"Version":"` + tt.latest + `"}`
			}
			c, err := offsets.ParseConstraint(mod, tt.constraint)
			require.NoError(t, err)

			l, err := List(context.Background(), f.start(t), mod, Options{Constraint: c})
			require.NoError(t, err)
			assert.Equal(t, tt.want, l.Versions)
			assert.Equal(t, tt.discovered, l.Discovered)
			if tt.retracted == nil {
				tt.retracted = map[string]string{}
			}
			assert.Equal(t, tt.retracted, l.Retracted)
			requests := f.requests()
			for _, v := range tt.notProbed {
				assert.NotContains(t, requests, "/"+mod+"/@v/"+v+".info")
			}
		})
	}
}

func TestListReturnsProbeErrorNamingTheVersion(t *testing.T) {
	f := moduleProxy("example.com/lib", []string{"v1.0.0", "v1.2.0"}, nil, "")
	f.status["/example.com/lib/@v/v1.1.0.info"] = http.StatusInternalServerError

	_, err := List(context.Background(), f.start(t), "example.com/lib", Options{})
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrUnknownModule)
	assert.Contains(t, err.Error(), "example.com/lib")
	assert.Contains(t, err.Error(), "v1.1.0")
	assert.Contains(t, err.Error(), "500")
}

func TestListListedOnlyMakesNoProbes(t *testing.T) {
	f := moduleProxy("example.com/lib", []string{"v1.0.0", "v1.2.0"}, []string{"v1.1.0"}, "")
	l, err := List(context.Background(), f.start(t), "example.com/lib", Options{ListedOnly: true})
	require.NoError(t, err)
	assert.Equal(t, []string{"v1.0.0", "v1.2.0"}, l.Versions)
	assert.Empty(t, l.Discovered)
	assert.Equal(t, []string{"/example.com/lib/@v/list", "/example.com/lib/@v/v1.2.0.mod"}, f.requests())
}
