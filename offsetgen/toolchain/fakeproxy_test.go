package toolchain

import (
	"archive/zip"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/dirhash"
	"golang.org/x/mod/sumdb/note"
)

const (
	testSumDB     = "sum.example.test"
	notAvailable  = "This module version is not available."
	testVersion   = "go1.99.1"
	testGoVersion = "go version go1.99.1 linux/amd64"
)

// fakeProxy plays the module proxy for golang.org/toolchain and, under
// /sumdb/sum.example.test/, a checksum database signed with a test key.
type fakeProxy struct {
	srv  *httptest.Server
	vkey string // checksum database verifier key

	mu sync.Mutex
	// list is the body of @v/list.
	list []string
	// available holds the Go versions ("go1.20.1") whose .info answers 200.
	available map[string]bool
	// zips holds the zips served by Go version; a version with a zip is
	// also available.
	zips map[string][]byte
	// sums holds the zips the checksum database knows, when they differ
	// from the served ones.
	sums map[string][]byte
	// fail answers this many requests with 503 first.
	fail     int
	requests map[string]int // by URL path
}

func newFakeProxy(t *testing.T) *fakeProxy {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, testSumDB)
	require.NoError(t, err)
	fp := &fakeProxy{
		vkey:      vkey,
		available: map[string]bool{},
		zips:      map[string][]byte{},
		sums:      map[string][]byte{},
		requests:  map[string]int{},
	}
	db := sumdb.NewServer(sumdb.NewTestServer(skey, fp.gosum))
	fp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fp.serve(w, r, db)
	}))
	t.Cleanup(fp.srv.Close)
	return fp
}

// proxy returns a Proxy for fp with its own checksum database state.
func (fp *fakeProxy) proxy(t *testing.T) *Proxy {
	return &Proxy{
		URL:       fp.srv.URL,
		SumDB:     testSumDB,
		SumDBKey:  fp.vkey,
		ConfigDir: t.TempDir(),
		retryBase: time.Millisecond,
	}
}

func (fp *fakeProxy) serve(w http.ResponseWriter, r *http.Request, db http.Handler) {
	fp.mu.Lock()
	fp.requests[r.URL.Path]++
	fail := fp.fail > 0
	if fail {
		fp.fail--
	}
	fp.mu.Unlock()
	if fail {
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	}

	if rest, ok := strings.CutPrefix(r.URL.Path, "/sumdb/"+testSumDB); ok {
		if rest == "/supported" {
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = rest
		db.ServeHTTP(w, r2)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/"+ModulePath+"/@v/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	if rest == "list" {
		fp.mu.Lock()
		defer fp.mu.Unlock()
		for _, l := range fp.list {
			fmt.Fprintln(w, l)
		}
		return
	}
	ext := filepath.Ext(rest)
	goVersion := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSuffix(rest, ext), "v0.0.1-"), "."+Platform)
	fp.mu.Lock()
	zipData, hasZip := fp.zips[goVersion]
	available := fp.available[goVersion] || hasZip
	fp.mu.Unlock()
	switch {
	case !available:
		http.Error(w, notAvailable, http.StatusForbidden)
	case ext == ".info":
		fmt.Fprintf(w, `{"Version":%q,"Time":"2023-05-21T18:14:17Z"}`, strings.TrimSuffix(rest, ext))
	case ext == ".zip" && hasZip:
		w.Write(zipData)
	default:
		http.Error(w, notAvailable, http.StatusForbidden)
	}
}

// gosum answers the checksum database's lookups from the known zips.
func (fp *fakeProxy) gosum(path, vers string) ([]byte, error) {
	goVersion := strings.TrimSuffix(strings.TrimPrefix(vers, "v0.0.1-"), "."+Platform)
	fp.mu.Lock()
	data, ok := fp.sums[goVersion]
	if !ok {
		data, ok = fp.zips[goVersion]
	}
	fp.mu.Unlock()
	if path != ModulePath || !ok {
		return nil, os.ErrNotExist
	}
	h, err := hashZipBytes(data)
	if err != nil {
		return nil, err
	}
	return fmt.Appendf(nil, "%s %s %s\n", path, vers, h), nil
}

func (fp *fakeProxy) count(path string) int {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	return fp.requests[path]
}

func zipPath(goVersion string) string {
	return "/" + ModulePath + "/@v/v0.0.1-" + goVersion + "." + Platform + ".zip"
}

func hashZipBytes(data []byte) (string, error) {
	z, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return "", err
	}
	files := map[string]*zip.File{}
	var names []string
	for _, f := range z.File {
		files[f.Name] = f
		names = append(names, f.Name)
	}
	return dirhash.Hash1(names, func(name string) (io.ReadCloser, error) { return files[name].Open() })
}

// toolchainZip builds a small module zip of a Go toolchain for goVersion,
// plus extra entries (names relative to the module root, or whole names
// after "raw:").
func toolchainZip(t *testing.T, goVersion string, extra map[string]string) []byte {
	t.Helper()
	prefix := ModulePath + "@v0.0.1-" + goVersion + "." + Platform + "/"
	files := map[string]string{
		"bin/go":                       "#!/bin/sh\necho go version " + goVersion + " linux/amd64\n",
		"pkg/tool/linux_amd64/compile": "not a real compiler\n",
		"src/runtime/extern.go":        "package runtime\n",
		"src/make.bash":                "#!/usr/bin/env bash\nexit 0\n",
	}
	for name, body := range extra {
		files[name] = body
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range files {
		full := prefix + name
		if raw, ok := strings.CutPrefix(name, "raw:"); ok {
			full = raw
		}
		w, err := zw.Create(full)
		require.NoError(t, err)
		_, err = io.WriteString(w, body)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// cacheEntries lists what a cache directory holds besides its lock files.
func cacheEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		if e.Name() != ".locks" {
			names = append(names, e.Name())
		}
	}
	return names
}
