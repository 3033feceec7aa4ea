package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/goversion"
	"github.com/offsetdb/offsetdb/layout"
	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/instrumentation"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
)

// TestInspectUsesPublishedDatabase: with the embedded database withheld, a
// stripped binary gets its offsets from the archive at --offsets-url, and a
// bad checksum makes the tracer say so and fall back.
func TestInspectUsesPublishedDatabase(t *testing.T) {
	svc := buildLocalService(t)
	stripped := strippedServiceBuild.get(t)

	// A database for this toolchain's release, read from the unstripped twin.
	ids := uprobe.Fields(instrumentation.All()...)
	f, err := layout.Open(svc)
	require.NoError(t, err)
	values, err := f.Fields(ids)
	f.Close()
	var missing *layout.MissingError
	if err != nil {
		require.ErrorAs(t, err, &missing)
	}
	v := goversion.MustParse(runtime.Version()).String()
	tb := offsets.NewTable(offsets.StdModule, ids)
	require.NoError(t, tb.Set(runtime.GOARCH, offsets.Build{Coverage: offsets.Coverage{Version: v, Status: offsets.StatusOK, Toolchain: v}, Values: values}))
	dbDir := t.TempDir()
	require.NoError(t, offsets.WriteShard(dbDir, tb.Shard()))
	archive := tarGz(t, dbDir)
	sum := sha256.Sum256(archive)
	goodSum := hex.EncodeToString(sum[:]) + "  offsets.tar.gz\n"
	badSum := "0000000000000000000000000000000000000000000000000000000000000000  offsets.tar.gz\n"
	checksum := goodSum
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/offsets.tar.gz":
			w.Write(archive)
		case "/offsets.tar.gz.sha256":
			fmt.Fprint(w, checksum)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	inspectJSON := func(cache string) (inspection, string) {
		cmd := exec.Command(tracerBinary(t), "inspect", "--json", "--no-embedded-offsets",
			"--offsets-url", srv.URL+"/offsets.tar.gz", "--offsets-cache", cache, stripped)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(t, err, stderr.String())
		var in inspection
		require.NoError(t, json.Unmarshal(out, &in))
		return in, stderr.String()
	}

	in, _ := inspectJSON(t.TempDir())
	for _, ii := range in.Instrumentations {
		if ii.NotUsed {
			continue // gRPC: the service does not link grpc-go
		}
		assert.True(t, ii.Enabled, "%s: %s", ii.Name, ii.Reason)
		for _, fld := range ii.Fields {
			if fld.Status == "resolved" {
				assert.Contains(t, fld.Provenance, "database std", fld.Field)
			}
		}
	}

	checksum = badSum
	in, stderr := inspectJSON(t.TempDir())
	assert.Contains(t, stderr, "not using the published offset database")
	assert.Contains(t, stderr, "checksum")
	for _, ii := range in.Instrumentations {
		assert.False(t, ii.Enabled, "a stripped binary without a database cannot be traced: %s", ii.Name)
	}
}

// tarGz packs a database directory the way offsetgen publish does: a gzip'd
// tar of its files.
func tarGz(t *testing.T, dir string) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: e.Name(), Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}))
		_, err = tw.Write(data)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, gz.Close())
	return buf.Bytes()
}
