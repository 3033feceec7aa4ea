package modversions

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/offsetgen/toolchain"
	"github.com/offsetdb/offsetdb/offsets"
)

// fakeProxy serves the files in files (path -> body); other paths get 404,
// paths in gone get 410.
func fakeProxy(t *testing.T, files map[string]string, gone ...string) *toolchain.Proxy {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, g := range gone {
			if r.URL.Path == g {
				http.Error(w, "gone", http.StatusGone)
				return
			}
		}
		body, ok := files[r.URL.Path]
		if !ok {
			http.Error(w, "not found: "+r.URL.Path, http.StatusNotFound)
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return &toolchain.Proxy{URL: srv.URL}
}

func TestListSkipsRetractedAndPreReleases(t *testing.T) {
	p := fakeProxy(t, map[string]string{
		// Upper case is escaped in proxy paths.
		"/example.com/!big!corp/lib/@v/list": "v1.41.0\nv1.40.0\nv1.39.0\nv1.42.0-rc.1\nv1.43.0\nv1.44.0\nv2.0.0+incompatible\nv1.41.1\n",
		"/example.com/!big!corp/lib/@v/v1.44.0.mod": `module example.com/BigCorp/lib

go 1.21

retract (
	v1.41.0 // breaks streams
	[v1.43.0, v1.43.9]
)
`,
	})
	c, err := offsets.ParseConstraint("example.com/BigCorp/lib", ">=v1.40.0")
	require.NoError(t, err)
	l, err := List(context.Background(), p, "example.com/BigCorp/lib", Options{Constraint: c})
	require.NoError(t, err)
	assert.Equal(t, []string{"v1.40.0", "v1.41.1", "v1.44.0"}, l.Versions)
	assert.Equal(t, "v1.44.0", l.Latest)
	assert.Equal(t, map[string]string{"v1.41.0": "breaks streams", "v1.43.0": ""}, l.Retracted)

	l, err = List(context.Background(), p, "example.com/BigCorp/lib", Options{Constraint: c, IncludePre: true})
	require.NoError(t, err)
	assert.Equal(t, []string{"v1.40.0", "v1.41.1", "v1.42.0-rc.1", "v1.44.0"}, l.Versions, "pre-releases are opt-in")
}

func TestListUsesLatestWhenListIsEmpty(t *testing.T) {
	p := fakeProxy(t, map[string]string{
		"/example.com/new/@v/list":                                   "",
		"/example.com/new/@latest":                                   `{"Version":"v0.0.0-20240101000000-0123456789ab"}`,
		"/example.com/new/@v/v0.0.0-20240101000000-0123456789ab.mod": "module example.com/new\n",
	})
	l, err := List(context.Background(), p, "example.com/new", Options{})
	require.NoError(t, err)
	assert.Empty(t, l.Versions)
	assert.Equal(t, "v0.0.0-20240101000000-0123456789ab", l.Latest)
}

func TestListUnknownModuleSaysWhatToDo(t *testing.T) {
	p := fakeProxy(t, map[string]string{}, "/example.com/gone/@v/list")
	for _, m := range []string{"example.com/nothere", "example.com/gone"} {
		_, err := List(context.Background(), p, m, Options{})
		require.ErrorIs(t, err, ErrUnknownModule, m)
		assert.Contains(t, err.Error(), m)
		assert.Contains(t, err.Error(), "check the module path")
	}
	_, err := List(context.Background(), p, "not a path", Options{})
	assert.Error(t, err)
}
