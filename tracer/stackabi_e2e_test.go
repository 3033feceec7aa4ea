package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/fieldset"
	"github.com/offsetdb/offsetdb/goversion"
	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/otlptest"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// stackABIReleases are the newest patch releases of every Go minor release
// the database covers before the register calling convention (Go 1.17 on
// amd64): their functions take arguments and return results on the stack,
// and keep the current goroutine in thread-local storage.
var stackABIReleases = []string{"go1.12.17", "go1.13.15", "go1.14.15", "go1.15.15", "go1.16.15"}

// headerFieldsPending reports whether the fields an incoming traceparent
// is read through (net/http.Request.Header and the map header's) are still
// only in fieldset/std.pending, so that a stripped binary cannot read it.
func headerFieldsPending() bool {
	return fieldset.IsPending(offsets.StdModule, offsets.MustParseFieldID("runtime.hmap.B"))
}

// TestTraceHTTPOnStackABIReleases is TestTraceHTTPAcrossGoReleases for the
// releases before the register calling convention, each normal and
// stripped (offsets from the database); go1.12.17 (no build info: version
// from runtime.buildVersion) also with the database withheld (offsets from
// DWARF), and go1.15.15 also built with cgo by the external linker, which
// chooses where thread-local storage keeps g. Each traced run also sends a
// request with a traceparent: a server that can read the header map
// continues that trace.
func TestTraceHTTPOnStackABIReleases(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: downloads five toolchains")
	}
	for _, vs := range stackABIReleases {
		v := goversion.MustParse(vs)
		t.Run(vs, func(t *testing.T) {
			normal, stripped := buildService(t, v)
			type variant struct {
				name  string
				bin   string
				flags []string
				dwarf bool // offsets must come from DWARF rather than the database
			}
			variants := []variant{{"normal", normal, nil, false}, {"stripped", stripped, nil, false}}
			if vs == "go1.12.17" {
				variants = append(variants, variant{"unknown-version", normal, []string{"--no-embedded-offsets"}, true})
			}
			if vs == "go1.15.15" {
				cgo, cgoStripped := buildProgramCgo(t, "service", v, true)
				variants = append(variants, variant{"cgo", cgo, nil, false}, variant{"cgo-stripped", cgoStripped, nil, false})
			}
			for _, va := range variants {
				t.Run(va.name, func(t *testing.T) {
					stripped := strings.HasSuffix(va.name, "stripped")
					for field, p := range inspect(t, va.bin, va.flags...) {
						if strings.HasPrefix(p, "absent") {
							continue
						}
						if id, err := offsets.ParseFieldID(field); err == nil && fieldset.IsPending(offsets.StdModule, id) {
							if stripped {
								assert.Contains(t, p, "unresolved", field)
							} else {
								assert.Contains(t, p, "dwarf", field)
							}
							continue
						}
						if va.dwarf {
							assert.Contains(t, p, "dwarf", field)
						} else {
							assert.Contains(t, p, "database std", field)
						}
					}
					out, err := exec.Command(tracerBinary(t), append(append([]string{"inspect"}, va.flags...), va.bin)...).Output()
					require.NoError(t, err)
					assert.Contains(t, string(out), "stack calling convention, g at FS-8)", "tracer inspect names the calling convention")
					r := startTraced(t, va.bin, va.flags...)
					r.exercise(t)
					// One more request, continuing a remote trace.
					const remoteTrace, remoteSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
					req, err := http.NewRequest(http.MethodGet, "http://"+r.addr+"/backend?item=remote", nil)
					require.NoError(t, err)
					req.Header.Set("traceparent", "00-"+remoteTrace+"-"+remoteSpan+"-01")
					resp, err := http.DefaultClient.Do(req)
					require.NoError(t, err)
					resp.Body.Close()
					require.Equal(t, http.StatusOK, resp.StatusCode)

					want := 3*itemRequests + 1 + 1
					r.recv.WaitForSpans(t, want, eventTimeout)
					r.stop(t)
					stderr := r.stderr.String()
					got := r.recv.Spans()
					require.Len(t, got, want, "exactly one span per request; tracer stderr:\n%s", stderr)
					var remote []otlptest.Span
					var rest []otlptest.Span
					for _, s := range got {
						if s.Attributes["url.query"] == "item=remote" {
							remote = append(remote, s)
						} else {
							rest = append(rest, s)
						}
					}
					checkSpans(t, rest, v, r.addr)
					require.Len(t, remote, 1)
					if stripped && headerFieldsPending() {
						// The header map's fields are not in the database yet:
						// a stripped binary cannot read the header and says so.
						assert.NotEqual(t, remoteTrace, remote[0].TraceID)
						assert.Empty(t, remote[0].ParentSpanID)
						assert.Contains(t, stderr, "runtime.hmap.B", "the tracer names the fields it runs without")
					} else {
						assert.Equal(t, remoteTrace, remote[0].TraceID, "the server continues the caller's trace")
						assert.Equal(t, remoteSpan, remote[0].ParentSpanID)
					}
					assert.Contains(t, stderr, "dropped=0")
					attached := regexp.MustCompile(`msg=attached .*instrumentations="([^"]*)"`).FindStringSubmatch(stderr)
					require.NotNil(t, attached, "tracer stderr:\n%s", stderr)
					assert.Equal(t, "net/http server, net/http client, goroutine context", attached[1])
					assert.NotContains(t, stderr, "disabled")
					assert.NotContains(t, stderr, "level=ERROR")
				})
			}
		})
	}
}

// TestTraceContextThroughStackABIServices: a request crossing A → B → C
// (A go1.16.15 stripped and C go1.12.17, both with the stack-based calling
// convention; B go1.22.12 between them), under one tracer, is one trace:
// B continues A's traceparent and sends its own to C, which continues it.
// The fan-out goroutines of C (before Go 1.15 the new goroutine is found
// where newproc1 queues it) and of A (newproc1's result) make calls that
// are children of their server span, and a pooled worker's call gets no
// stale parent.
func TestTraceContextThroughStackABIServices(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: downloads Go toolchains and builds a collector")
	}
	releases := []struct {
		name, release string
		stripped      bool
	}{{"oldchain-a", "go1.16.15", true}, {"oldchain-b", "go1.22.12", false}, {"oldchain-c", "go1.12.17", false}}
	var bins, names []string
	for _, r := range releases {
		normal, stripped := buildProgram(t, "chain", goversion.MustParse(r.release))
		bin := normal
		if r.stripped {
			bin = stripped
		}
		named := filepath.Join(t.TempDir(), r.name)
		require.NoError(t, os.Link(bin, named))
		bins = append(bins, named)
		names = append(names, r.name)
	}
	w := startWatch(t, "oldchain-*")
	var addrs []string
	for _, bin := range bins {
		addr, pid := runService(t, bin, nil)
		w.waitLog(t, fmt.Sprintf("msg=attached pid=%d", pid))
		addrs = append(addrs, addr)
	}
	a, b, c := addrs[0], addrs[1], addrs[2]

	const hops, fans, pools = 20, 10, 10
	for i := 0; i < hops; i++ {
		code, body, err := httpGet(t, fmt.Sprintf("http://%s/hop/h%d?next=%s,%s", a, i, b, c))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code, "%s", body)
	}
	// Fan-outs on C (go1.12: the new goroutine read at newproc1's call of
	// runqput) and on A (go1.16: newproc1's result).
	fanOuts := []struct {
		prefix, on, next, service string
	}{{"f", c, a, names[2]}, {"g", a, b, names[0]}}
	for _, f := range fanOuts {
		for i := 0; i < fans; i++ {
			code, body, err := httpGet(t, fmt.Sprintf("http://%s/fan/%s%d?next=%s&n=3", f.on, f.prefix, i, f.next))
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, code, "%s", body)
		}
	}
	for i := 0; i < pools; i++ {
		code, body, err := httpGet(t, fmt.Sprintf("http://%s/pool/p%d?next=%s", c, i, a))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code, "%s", body)
	}
	w.stop(t)
	spans := w.recv.WaitForSpans(t, 5*hops+(1+3+3)*fans*len(fanOuts)+3*pools, eventTimeout)

	byID := map[string]otlptest.Span{}
	byRequest := map[string][]otlptest.Span{}
	for _, s := range spans {
		byID[s.SpanID] = s
		id := requestID(s)
		byRequest[strings.SplitN(id, "-", 2)[0]] = append(byRequest[strings.SplitN(id, "-", 2)[0]], s)
	}
	for i := 0; i < hops; i++ {
		id := fmt.Sprintf("h%d", i)
		ss := byRequest[id]
		require.Len(t, ss, 5, "request %s: A server, A client, B server, B client, C server", id)
		want := []hop{{names[0], "server"}, {names[0], "client"}, {names[1], "server"}, {names[1], "client"}, {names[2], "server"}}
		var root otlptest.Span
		for _, s := range ss {
			if s.ParentSpanID == "" {
				root = s
			}
		}
		require.NotEmpty(t, root.SpanID, "request %s has a root span", id)
		// Walk down from the root: each span's only child is the next hop.
		cur := root
		for depth, h := range want {
			assert.Equal(t, h, hop{service(cur), cur.Kind}, "request %s, depth %d", id, depth)
			assert.Equal(t, root.TraceID, cur.TraceID, "request %s: one trace", id)
			if depth == len(want)-1 {
				break
			}
			var next []otlptest.Span
			for _, s := range ss {
				if s.ParentSpanID == cur.SpanID {
					next = append(next, s)
				}
			}
			require.Len(t, next, 1, "request %s: children of %s %s", id, service(cur), cur.Kind)
			cur = next[0]
		}
	}
	for _, f := range fanOuts {
		for i := 0; i < fans; i++ {
			id := fmt.Sprintf("%s%d", f.prefix, i)
			var server otlptest.Span
			var clients []otlptest.Span
			for _, s := range byRequest[id] {
				switch {
				case s.Kind == "server" && service(s) == f.service:
					server = s
				case s.Kind == "client":
					clients = append(clients, s)
				}
			}
			require.NotEmpty(t, server.SpanID, "fan-out %s: %s's server span", id, f.service)
			require.Len(t, clients, 3, "fan-out %s: %s's calls from three goroutines", id, f.service)
			for _, cl := range clients {
				assert.Equal(t, server.SpanID, cl.ParentSpanID, "fan-out %s: a call from a goroutine is a child of the request's span", id)
				assert.Equal(t, server.TraceID, cl.TraceID)
			}
		}
	}
	for i := 0; i < pools; i++ {
		id := fmt.Sprintf("p%d", i)
		for _, s := range byRequest[id] {
			if s.Kind == "client" {
				assert.Empty(t, s.ParentSpanID, "a pooled worker's call %s must not get a stale parent", id)
			}
		}
	}
	assert.NotContains(t, w.stderr.String(), "disabled")
}
