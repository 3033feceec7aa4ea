package toolchain

import (
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"

	"github.com/offsetdb/offsetdb/goversion"
)

func TestToolchainUnpacksVerifiedZip(t *testing.T) {
	fp := newFakeProxy(t)
	data := toolchainZip(t, testVersion, nil)
	fp.zips[testVersion] = data
	c := &Cache{Dir: t.TempDir(), Proxy: fp.proxy(t)}
	v := goversion.MustParse(testVersion)

	goroot, tm, err := c.Toolchain(context.Background(), v)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(c.Dir, testVersion), goroot)
	assert.Equal(t, int64(len(data)), tm.Bytes)
	assert.False(t, tm.Cached)
	assert.Positive(t, tm.Download)
	assert.Positive(t, tm.Verify)
	assert.Positive(t, tm.Unpack)

	out, err := exec.Command(filepath.Join(goroot, "bin", "go")).Output()
	require.NoError(t, err, "bin/go must be executable")
	assert.Equal(t, testGoVersion+"\n", string(out))

	for _, f := range []struct {
		name string
		exec bool
		body string
	}{
		{"bin/go", true, "#!/bin/sh\necho " + testGoVersion + "\n"},
		{"pkg/tool/linux_amd64/compile", true, "not a real compiler\n"},
		{"src/make.bash", true, "#!/usr/bin/env bash\nexit 0\n"},
		{"src/runtime/extern.go", false, "package runtime\n"},
	} {
		path := filepath.Join(goroot, filepath.FromSlash(f.name))
		fi, err := os.Stat(path)
		require.NoError(t, err, f.name)
		assert.Equal(t, f.exec, fi.Mode()&0o100 != 0, "exec bit of %s", f.name)
		body, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.Equal(t, f.body, string(body), f.name)
	}
	assert.Equal(t, []string{testVersion}, cacheEntries(t, c.Dir), "zip and temporaries removed")

	goroot2, tm2, err := c.Toolchain(context.Background(), v)
	require.NoError(t, err)
	assert.Equal(t, goroot, goroot2)
	assert.True(t, tm2.Cached)
	assert.Equal(t, 1, fp.count(zipPath(testVersion)), "second call must not download")
}

func TestToolchainKeepZipsUnpacksAgainWithoutDownload(t *testing.T) {
	fp := newFakeProxy(t)
	fp.zips[testVersion] = toolchainZip(t, testVersion, nil)
	c := &Cache{Dir: t.TempDir(), Proxy: fp.proxy(t), KeepZips: true}
	v := goversion.MustParse(testVersion)

	goroot, _, err := c.Toolchain(context.Background(), v)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{testVersion, testVersion + ".zip"}, cacheEntries(t, c.Dir))

	require.NoError(t, c.Remove(v))
	assert.NoDirExists(t, goroot)
	assert.Equal(t, []string{testVersion + ".zip"}, cacheEntries(t, c.Dir))
	require.NoError(t, c.Remove(v), "removing an absent tree is not an error")

	goroot, tm, err := c.Toolchain(context.Background(), v)
	require.NoError(t, err)
	assert.FileExists(t, filepath.Join(goroot, "bin", "go"))
	assert.Zero(t, tm.Download)
	assert.Equal(t, 1, fp.count(zipPath(testVersion)), "kept zip must be reused")
}

func TestToolchainRefusesBadDownloads(t *testing.T) {
	good := toolchainZip(t, testVersion, nil)
	_, otherKey, err := note.GenerateKey(rand.Reader, testSumDB)
	require.NoError(t, err)

	tests := []struct {
		name    string
		setup   func(fp *fakeProxy, p *Proxy)
		wantIs  error
		wantMsg []string
	}{
		{
			name:    "proxy withholds the version",
			setup:   func(fp *fakeProxy, p *Proxy) {},
			wantIs:  ErrUnavailable,
			wantMsg: []string{"403", notAvailable, testVersion},
		},
		{
			name: "zip differs from the checksum database",
			setup: func(fp *fakeProxy, p *Proxy) {
				fp.zips[testVersion] = toolchainZip(t, testVersion, map[string]string{"src/runtime/extern.go": "package evil\n"})
				fp.sums[testVersion] = good
			},
			wantIs:  ErrChecksum,
			wantMsg: []string{"checksum database records h1:", "refused"},
		},
		{
			name: "truncated zip",
			setup: func(fp *fakeProxy, p *Proxy) {
				fp.zips[testVersion] = good[:len(good)/2]
				fp.sums[testVersion] = good
			},
			wantMsg: []string{"truncated or corrupt download", testVersion},
		},
		{
			name: "zip slip",
			setup: func(fp *fakeProxy, p *Proxy) {
				fp.zips[testVersion] = toolchainZip(t, testVersion, map[string]string{"../../evil": "boom"})
			},
			wantMsg: []string{"unsafe path", "evil"},
		},
		{
			name: "entry outside the module",
			setup: func(fp *fakeProxy, p *Proxy) {
				fp.zips[testVersion] = toolchainZip(t, testVersion, map[string]string{"raw:evil": "boom"})
			},
			wantMsg: []string{`"evil" is not under`},
		},
		{
			name: "checksum database signed by another key",
			setup: func(fp *fakeProxy, p *Proxy) {
				fp.zips[testVersion] = good
				p.SumDBKey = otherKey
			},
			wantMsg: []string{"checksum database " + testSumDB},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fp := newFakeProxy(t)
			p := fp.proxy(t)
			tt.setup(fp, p)
			root := t.TempDir()
			c := &Cache{Dir: filepath.Join(root, "a", "cache"), Proxy: p}

			goroot, _, err := c.Toolchain(context.Background(), goversion.MustParse(testVersion))
			require.Error(t, err)
			t.Logf("error: %v", err)
			assert.Empty(t, goroot)
			if tt.wantIs != nil {
				assert.ErrorIs(t, err, tt.wantIs)
			}
			for _, m := range tt.wantMsg {
				assert.ErrorContains(t, err, m)
			}
			assert.Empty(t, cacheEntries(t, c.Dir), "nothing may be left in the cache")
			assert.NoFileExists(t, filepath.Join(root, "evil"))
			assert.NoFileExists(t, filepath.Join(root, "a", "evil"))
		})
	}
}

func TestToolchainConcurrentCallsShareOneDownload(t *testing.T) {
	fp := newFakeProxy(t)
	versions := []string{"go1.99.1", "go1.99.2"}
	for _, v := range versions {
		fp.zips[v] = toolchainZip(t, v, nil)
	}
	c := &Cache{Dir: t.TempDir(), Proxy: fp.proxy(t)}

	var wg sync.WaitGroup
	roots := make([]string, 8)
	errs := make([]error, 8)
	for i := range roots {
		wg.Go(func() {
			roots[i], _, errs[i] = c.Toolchain(context.Background(), goversion.MustParse(versions[i%2]))
		})
	}
	wg.Wait()
	for i := range roots {
		require.NoError(t, errs[i])
		assert.Equal(t, filepath.Join(c.Dir, versions[i%2]), roots[i])
	}
	for _, v := range versions {
		assert.Equal(t, 1, fp.count(zipPath(v)), v)
		out, err := exec.Command(filepath.Join(c.Dir, v, "bin", "go")).Output()
		require.NoError(t, err)
		assert.Equal(t, "go version "+v+" linux/amd64\n", string(out))
	}
	assert.ElementsMatch(t, versions, cacheEntries(t, c.Dir))
}

func TestToolchainReportsUnreachableProxy(t *testing.T) {
	fp := newFakeProxy(t)
	p := fp.proxy(t)
	fp.srv.Close()

	_, err := p.Releases(context.Background(), goversion.MustParse("go1.12"))
	require.ErrorIs(t, err, ErrUnreachable)
	assert.ErrorContains(t, err, fp.srv.URL)
	assert.ErrorContains(t, err, "GOPROXY")

	c := &Cache{Dir: t.TempDir(), Proxy: p}
	_, _, err = c.Toolchain(context.Background(), goversion.MustParse(testVersion))
	require.ErrorIs(t, err, ErrUnreachable)
	assert.ErrorContains(t, err, "--proxy")
	assert.Empty(t, cacheEntries(t, c.Dir))
}

func TestToolchainHonoursCanceledContext(t *testing.T) {
	fp := newFakeProxy(t)
	fp.zips[testVersion] = toolchainZip(t, testVersion, nil)
	c := &Cache{Dir: t.TempDir(), Proxy: fp.proxy(t)}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	_, _, err := c.Toolchain(ctx, goversion.MustParse(testVersion))
	require.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, cacheEntries(t, c.Dir))
}
