package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/goversion"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// TestIncomingTraceContextOverHTTP2: a net/http server answering HTTP/2
// over TLS (its bundled HTTP/2, negotiated by ALPN) continues the caller's
// traceparent as it does for HTTP/1.x, and ignores an invalid one — on a
// release with the runtime's hmap (go1.22) and one with swiss tables
// (go1.24), both stripped, so the header map's layout comes from the offset
// database.
func TestIncomingTraceContextOverHTTP2(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: downloads Go toolchains and builds a collector")
	}
	var bins []string
	for _, release := range []string{"go1.22.12", "go1.24.13"} {
		_, stripped := buildProgram(t, "h2server", goversion.MustParse(release))
		named := filepath.Join(t.TempDir(), "h2srv-"+strings.ReplaceAll(release, ".", "-"))
		require.NoError(t, os.Link(stripped, named))
		bins = append(bins, named)
	}
	w := startWatch(t, "h2srv-*")
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}}
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	type sent struct{ service, path, parent string }
	var want []sent
	for _, bin := range bins {
		addr, pid := runService(t, bin, nil)
		w.waitLog(t, fmt.Sprintf("msg=attached pid=%d", pid))
		for i, parent := range []string{"00f067aa0ba902b7", "1111111111111111", ""} {
			path := fmt.Sprintf("/h2/%d", i)
			req, err := http.NewRequest(http.MethodGet, "https://"+addr+path, nil)
			require.NoError(t, err)
			switch parent {
			case "":
				req.Header.Set("traceparent", "00-"+trace+"-0000000000000000-01") // zero parent: invalid
			default:
				req.Header.Set("traceparent", "00-"+trace+"-"+parent+"-01")
			}
			req.Header.Set("x-filler", strings.Repeat("f", 40)) // more than one header in the map
			resp, err := client.Do(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, 2, resp.ProtoMajor, "served over HTTP/2")
			require.Equal(t, "HTTP/2.0\n", string(body))
			want = append(want, sent{filepath.Base(bin), path, parent})
		}
	}
	w.stop(t)
	spans := w.recv.WaitForSpans(t, len(want), eventTimeout)
	for _, s := range want {
		var got []string
		for _, sp := range spans {
			if service(sp) == s.service && sp.Attributes["url.path"] == s.path {
				got = append(got, sp.TraceID+"/"+sp.ParentSpanID)
				if s.parent == "" {
					assert.NotEqual(t, trace, sp.TraceID, "%s %s: an invalid traceparent starts a new trace", s.service, s.path)
					assert.Empty(t, sp.ParentSpanID, "%s %s", s.service, s.path)
				} else {
					assert.Equal(t, trace, sp.TraceID, "%s %s: the caller's trace", s.service, s.path)
					assert.Equal(t, s.parent, sp.ParentSpanID, "%s %s: the caller's span is the parent", s.service, s.path)
				}
			}
		}
		assert.Len(t, got, 1, "%s %s: one server span", s.service, s.path)
	}
}
