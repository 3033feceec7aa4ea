//go:build linux && (amd64 || arm64)

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/goversion"
	"github.com/offsetdb/offsetdb/tracer/collectortest"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/grpc/grpctest"
	"github.com/offsetdb/offsetdb/tracer/otlptest"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// The chain's three services, each built with another Go release: A with
// the stack-based calling convention (before Go 1.17) and stripped, B
// before swiss maps, C with them.
var chainReleases = []struct {
	name     string
	release  string
	stripped bool
}{
	{"chain-a", "go1.16.15", true},
	{"chain-b", "go1.22.12", false},
	{"chain-c", "go1.24.13", false},
}

// chainRequests is how many requests cross the chain concurrently.
const chainRequests = 1000

// watchRun is one `tracer --exe GLOB` run exporting to a real collector.
type watchRun struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	recv   *otlptest.Receiver
	col    *collectortest.Collector
}

// startWatch starts the tracer on every process named like glob, exporting
// through a real OpenTelemetry Collector to a receiver the test reads.
func startWatch(t *testing.T, glob string, env ...string) *watchRun {
	return startWatchFlags(t, glob, nil, env...)
}

// startWatchFlags is startWatch with more tracer flags.
func startWatchFlags(t *testing.T, glob string, flags []string, env ...string) *watchRun {
	recv := otlptest.NewHTTP(t)
	col := collectortest.Start(t, recv.Endpoint(), collectortest.DebugVerbosity("basic"))
	cmd := exec.Command(tracerBinary(t), append([]string{"--exe", glob}, flags...)...)
	cmd.Env = append(append(os.Environ(),
		"OTEL_TRACES_EXPORTER=otlp",
		"OTEL_METRICS_EXPORTER=none",
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_EXPORTER_OTLP_ENDPOINT="+col.HTTPEndpoint(),
		"OTEL_BSP_SCHEDULE_DELAY=100",
	), env...)
	w := &watchRun{cmd: cmd, stderr: &syncBuffer{}, recv: recv, col: col}
	cmd.Stderr = w.stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	w.waitLog(t, "watching for processes")
	return w
}

// waitLog waits until the tracer has logged a line containing s.
func (w *watchRun) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(eventTimeout)
	for !strings.Contains(w.stderr.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("tracer did not log %q; stderr:\n%s", s, w.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the tracer with SIGTERM; it must flush and exit 0.
func (w *watchRun) stop(t *testing.T) { stopTracer(t, w.cmd, w.stderr) }

// runService runs bin and returns its address once it listens.
func runService(t *testing.T, bin string, env []string, args ...string) (addr string, pid int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	sc := bufio.NewScanner(stdout)
	require.True(t, sc.Scan(), "%s printed nothing", bin)
	addr, ok := strings.CutPrefix(sc.Text(), "listening on ")
	require.True(t, ok, "unexpected first line %q of %s", sc.Text(), bin)
	go io.Copy(io.Discard, stdout)
	return addr, cmd.Process.Pid
}

// httpGet GETs url and returns the status and body.
func httpGet(t testing.TB, url string, header ...string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// chain is the three traced services, running.
type chain struct {
	w     *watchRun
	addrs []string // A, B, C
	names []string // service.name of each (its executable's name)
}

// startChain builds the chain's services, starts the tracer on them and
// then the services, and waits until each is attached.
func startChain(t *testing.T, env ...string) *chain {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: downloads Go toolchains and builds a collector")
	}
	var bins []string
	for _, r := range chainReleases {
		normal, stripped := buildProgram(t, "chain", goversion.MustParse(r.release))
		bin := normal
		if r.stripped {
			bin = stripped
		}
		named := filepath.Join(t.TempDir(), r.name)
		require.NoError(t, os.Link(bin, named))
		bins = append(bins, named)
	}
	c := &chain{w: startWatch(t, "chain-*", env...)}
	for _, bin := range bins {
		addr, pid := runService(t, bin, nil)
		c.w.waitLog(t, fmt.Sprintf("msg=attached pid=%d", pid))
		c.addrs = append(c.addrs, addr)
		c.names = append(c.names, filepath.Base(bin))
	}
	return c
}

// spanPathID is the request ID of a span of the chain: the last segment of
// its url.path (servers) or of the path in its url.full (clients).
var spanPathID = regexp.MustCompile(`/(?:hop|fan|pool|relay)/([^/?]+)`)

func requestID(s otlptest.Span) string {
	for _, k := range []string{"url.path", "url.full"} {
		if v, ok := s.Attributes[k].(string); ok {
			if m := spanPathID.FindStringSubmatch(v); m != nil {
				return m[1]
			}
		}
	}
	return ""
}

func service(s otlptest.Span) string {
	name, _ := s.Resource["service.name"].(string)
	return name
}

// TestTraceContextAcrossServices: a request crossing A → B → C (three Go
// releases, A stripped) under one tracer is one trace with the expected
// tree, for 1,000 concurrent requests each with its own ID in its path: no
// span in another request's trace, no orphan.
func TestTraceContextAcrossServices(t *testing.T) {
	c := startChain(t)
	a, b, cc := c.addrs[0], c.addrs[1], c.addrs[2]

	var wg sync.WaitGroup
	errs := make(chan error, chainRequests)
	slots := make(chan struct{}, 64) // requests in flight at once
	for i := 0; i < chainRequests; i++ {
		wg.Add(1)
		slots <- struct{}{}
		go func(i int) {
			defer func() { <-slots; wg.Done() }()
			code, body, err := httpGet(t, fmt.Sprintf("http://%s/hop/r%d?next=%s,%s", a, i, b, cc))
			if err == nil && code != http.StatusOK {
				err = fmt.Errorf("request r%d: %d %s", i, code, body)
			}
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	c.w.stop(t)
	spans := c.w.recv.WaitForSpans(t, 5*chainRequests, eventTimeout)

	byRequest := map[string][]otlptest.Span{}
	for _, s := range spans {
		if id := requestID(s); strings.HasPrefix(id, "r") {
			byRequest[id] = append(byRequest[id], s)
		}
	}
	require.Len(t, byRequest, chainRequests, "requests with spans")
	// Each request: A server → A client → B server → B client → C server.
	want := []hop{
		{c.names[0], "server"}, {c.names[0], "client"}, {c.names[1], "server"}, {c.names[1], "client"}, {c.names[2], "server"},
	}
	traces := map[string]string{}
	split := 0
	for id, ss := range byRequest {
		if splitRequest(ss) {
			split++
			if split <= 3 {
				for _, s := range ss {
					t.Logf("request %s: %s %s trace %s span %s parent %s", id, service(s), s.Kind, s.TraceID, s.SpanID, s.ParentSpanID)
				}
			}
		}
	}
	t.Logf("%d of %d requests split across traces", split, len(byRequest))
	// A hop whose traceparent was missed (the first request of a new
	// connection written on another thread) splits its request in two
	// traces; it must be rare and counted.
	assert.LessOrEqual(t, split, chainRequests/200, "requests split across traces")
	line := regexp.MustCompile(`msg="outgoing trace context".*`).FindString(c.w.stderr.String())
	m := regexp.MustCompile(` written=(\d+) .* not_written=(\d+) .* missed=(\d+)`).FindStringSubmatch(line)
	require.NotNil(t, m, "the tracer reports its trace-context counts")
	t.Log(line)
	var written, notWritten, missed int
	fmt.Sscan(m[1], &written)
	fmt.Sscan(m[2], &notWritten)
	fmt.Sscan(m[3], &missed)
	// not_written is every call that left without trace context, for
	// its counted reason (missed is one of them).
	t.Logf("of %d calls: %d written, %d not written (%d of them counted missed)", 2*chainRequests, written, notWritten, missed)
	assert.Equal(t, split, notWritten, "every call without trace context is counted, with its reason")
	assert.Equal(t, 2*chainRequests, written+notWritten, "every call is counted written or not written")
	for id, ss := range byRequest {
		require.Len(t, ss, 5, "spans of request %s", id)
		if splitRequest(ss) {
			continue // counted above; its spans are checked for orphans below
		}
		byParent := map[string]otlptest.Span{}
		for _, s := range ss {
			require.Equal(t, ss[0].TraceID, s.TraceID, "request %s: a span in another trace: %+v", id, s)
			_, dup := byParent[s.ParentSpanID]
			require.False(t, dup, "request %s: two spans with parent %q", id, s.ParentSpanID)
			byParent[s.ParentSpanID] = s
		}
		prev, ok := traces[ss[0].TraceID]
		require.False(t, ok, "requests %s and %s share trace %s", id, prev, ss[0].TraceID)
		traces[ss[0].TraceID] = id
		checkChain(t, "request "+id, byParent, want)
	}
	// No orphans: every parent named is a span of the same request.
	for id, ss := range byRequest {
		ids := map[string]bool{}
		for _, s := range ss {
			ids[s.SpanID] = true
		}
		for _, s := range ss {
			assert.True(t, s.ParentSpanID == "" || ids[s.ParentSpanID], "request %s: span %s has a parent %s that is not one of its request's spans", id, s.SpanID, s.ParentSpanID)
		}
	}
}

// hop is one span of a chain: its service.name and kind.
type hop struct{ service, kind string }

// checkChain asserts that byParent (spans by parent span ID) holds the
// chain want from the root down, each span the parent of the next.
func checkChain(t *testing.T, what string, byParent map[string]otlptest.Span, want []hop) {
	t.Helper()
	parent := ""
	for i, w := range want {
		s, ok := byParent[parent]
		require.True(t, ok, "%s: no span #%d (%s %s) with parent %q", what, i, w.service, w.kind, parent)
		assert.Equal(t, w.service, service(s), "%s span #%d", what, i)
		assert.Equal(t, w.kind, s.Kind, "%s span #%d", what, i)
		parent = s.SpanID
	}
}

// splitRequest reports whether a request's spans are in more than one trace.
func splitRequest(ss []otlptest.Span) bool {
	for _, s := range ss {
		if s.TraceID != ss[0].TraceID {
			return true
		}
	}
	return false
}

// TestTraceContextFollowsGoroutines: calls made from goroutines a handler
// starts are its children; a worker started before any request (reused by
// every request) is not given a stale parent; and the request the next
// service receives carries exactly one well-formed traceparent and is
// otherwise what the application sent.
func TestTraceContextFollowsGoroutines(t *testing.T) {
	c := startChain(t)
	a, b, cc := c.addrs[0], c.addrs[1], c.addrs[2]

	for i := 0; i < 20; i++ {
		code, body, err := httpGet(t, fmt.Sprintf("http://%s/fan/f%d?next=%s&n=3", a, i, b))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code, "%s", body)
		code, body, err = httpGet(t, fmt.Sprintf("http://%s/pool/p%d?next=%s", a, i, b))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code, "%s", body)
	}

	// The echo, through A (traced, propagating) and straight (baseline).
	_, traced, err := httpGet(t, fmt.Sprintf("http://%s/relay/e1?to=http://%s/echo", a, cc))
	require.NoError(t, err)
	_, untraced, err := httpGet(t, fmt.Sprintf("http://%s/echo", cc)) // the same client code, untraced
	require.NoError(t, err)
	var got, base struct {
		Method, URI, Proto, Host string
		Headers                  map[string][]string
	}
	require.NoError(t, json.Unmarshal(traced, &got), "%s", traced)
	require.NoError(t, json.Unmarshal(untraced, &base), "%s", untraced)
	require.Len(t, got.Headers["Traceparent"], 1, "exactly one traceparent: %v", got.Headers)
	tp := got.Headers["Traceparent"][0]
	require.Regexp(t, `^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$`, tp)
	delete(got.Headers, "Traceparent")
	assert.Equal(t, base.Headers, got.Headers, "the request differs from an untraced one only by traceparent")
	assert.Equal(t, base.Method, got.Method)
	assert.Equal(t, base.URI, got.URI)
	assert.Equal(t, base.Proto, got.Proto)

	c.w.stop(t)
	spans := c.w.recv.WaitForSpans(t, 20*(1+3+3)+20*(1+1+1)+2, eventTimeout)
	byID := map[string]otlptest.Span{}
	for _, s := range spans {
		byID[s.SpanID] = s
	}
	for _, s := range spans {
		id := requestID(s)
		switch {
		case strings.HasPrefix(id, "f") && s.Kind == "client": // A's calls from the fan-out goroutines
			p, ok := byID[s.ParentSpanID]
			require.True(t, ok, "fan-out call %s has no parent span", id)
			assert.Equal(t, "server", p.Kind)
			assert.True(t, strings.HasPrefix(requestID(p), strings.SplitN(id, "-", 2)[0]), "call %s under %s", id, requestID(p))
		case strings.HasPrefix(id, "p") && s.Kind == "client": // A's call from the pool worker
			assert.Empty(t, s.ParentSpanID, "a pooled worker's call %s must not get a stale parent", id)
		case strings.HasPrefix(id, "p") && s.Kind == "server" && service(s) == c.names[1]:
			p, ok := byID[s.ParentSpanID]
			require.True(t, ok, "B's span of %s continues A's client span", id)
			assert.Equal(t, "client", p.Kind)
		case id == "e1" && s.Kind == "client":
			assert.Contains(t, tp, s.TraceID+"-"+s.SpanID, "the traceparent C received names A's client span")
		}
	}
}

// TestTraceContextWithTheOpenTelemetrySDK: a client instrumented with the
// OpenTelemetry Go SDK (otelhttp) calls A, A calls a server instrumented
// with otelhttp: the SDK's spans and ours are one trace, both ways. A is
// stripped: the header map's layout comes from the offset database.
func TestTraceContextWithTheOpenTelemetrySDK(t *testing.T) {
	c := startChain(t)
	app := collectortest.BuildOtelApp(t)
	env := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + c.w.col.HTTPEndpoint(), "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_TRACES_EXPORTER=otlp", "OTEL_BSP_SCHEDULE_DELAY=100"}
	srv, _ := runService(t, app, append(env, "OTEL_SERVICE_NAME=sdk-server"), "server", "-listen", "127.0.0.1:0")

	const n = 10
	cmd := exec.Command(app, "client", "-n", fmt.Sprint(n), "-url", fmt.Sprintf("http://%s/hop/i{i}?next=%s", c.addrs[0], srv))
	cmd.Env = append(append(os.Environ(), env...), "OTEL_SERVICE_NAME=sdk-client")
	out, err := cmd.Output()
	require.NoError(t, err, "otelapp client: %s", out)
	sdkTraces := strings.Fields(string(out))
	require.Len(t, sdkTraces, n, "trace ids printed by the SDK client")

	c.w.stop(t)
	// Per request: the SDK client's root and client spans, A's server and
	// client spans, the SDK server's span.
	spans := c.w.recv.WaitForSpans(t, 5*n, eventTimeout)
	byID := map[string]otlptest.Span{}
	for _, s := range spans {
		byID[s.SpanID] = s
	}
	for _, trace := range sdkTraces {
		var aServer, aClient, sdkServer *otlptest.Span
		for i, s := range spans {
			if s.TraceID != trace {
				continue
			}
			switch {
			case service(s) == c.names[0] && s.Kind == "server":
				aServer = &spans[i]
			case service(s) == c.names[0] && s.Kind == "client":
				aClient = &spans[i]
			case service(s) == "sdk-server" && s.Kind == "server":
				sdkServer = &spans[i]
			}
		}
		require.NotNil(t, aServer, "A (stripped) continues the SDK client's trace %s", trace)
		p, ok := byID[aServer.ParentSpanID]
		require.True(t, ok, "A's server span has the SDK's client span as parent")
		assert.Equal(t, "sdk-client", service(p))
		require.NotNil(t, aClient, "A's client span in trace %s", trace)
		assert.Equal(t, aServer.SpanID, aClient.ParentSpanID)
		require.NotNil(t, sdkServer, "the SDK server continues A's trace %s", trace)
		assert.Equal(t, aClient.SpanID, sdkServer.ParentSpanID, "the SDK server's parent is A's client span")
	}
}

// TestIncomingTraceContextValidation: B continues only a valid W3C
// traceparent; every malformed one (the spec's cases) starts a new trace
// and changes nothing else; an unsampled parent is followed: neither B nor
// C exports a span of that request.
func TestIncomingTraceContextValidation(t *testing.T) {
	c := startChain(t)
	b, cc := c.addrs[1], c.addrs[2]
	const trace, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	cases := []struct {
		name   string
		values []string
		cont   bool
	}{
		{"valid", []string{"00-" + trace + "-" + parent + "-01"}, true},
		{"future-version", []string{"cc-" + trace + "-" + parent + "-01-what-the-future-holds"}, true},
		{"uppercase", []string{"00-" + strings.ToUpper(trace) + "-" + parent + "-01"}, false},
		{"short", []string{"00-" + trace[:31] + "-" + parent + "-01"}, false},
		{"version-ff", []string{"ff-" + trace + "-" + parent + "-01"}, false},
		{"zero-trace", []string{"00-" + strings.Repeat("0", 32) + "-" + parent + "-01"}, false},
		{"zero-parent", []string{"00-" + trace + "-" + strings.Repeat("0", 16) + "-01"}, false},
		{"not-hex", []string{"00-" + trace[:30] + "zz-" + parent + "-01"}, false},
		{"v00-trailing", []string{"00-" + trace + "-" + parent + "-01-extra"}, false},
		{"duplicated", []string{"00-" + trace + "-" + parent + "-01", "00-" + trace + "-" + parent + "-01"}, false},
	}
	for _, tc := range cases {
		req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s/hop/v-%s?next=%s", b, tc.name, cc), nil)
		require.NoError(t, err)
		for _, v := range tc.values {
			req.Header.Add("Traceparent", v)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, tc.name)
	}
	unsampled := "00-" + "5bf92f3577b34da6a3ce929d0e0e4736" + "-" + parent + "-00"
	code, body, err := httpGet(t, fmt.Sprintf("http://%s/hop/v-unsampled?next=%s", b, cc), "Traceparent", unsampled)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, "%s", body)

	c.w.stop(t)
	spans := c.w.recv.WaitForSpans(t, 3*len(cases), eventTimeout)
	byRequest := map[string][]otlptest.Span{}
	for _, s := range spans {
		byRequest[requestID(s)] = append(byRequest[requestID(s)], s)
	}
	for _, tc := range cases {
		ss := byRequest["v-"+tc.name]
		require.Len(t, ss, 3, "%s: B server, B client, C server", tc.name)
		for _, s := range ss {
			if s.Kind == "server" && service(s) == c.names[1] {
				if tc.cont {
					assert.Equal(t, trace, s.TraceID, "%s: B continues the trace", tc.name)
					assert.Equal(t, parent, s.ParentSpanID, "%s: B's parent is the caller's span", tc.name)
				} else {
					assert.NotEqual(t, trace, s.TraceID, "%s: B starts a new trace", tc.name)
					assert.Empty(t, s.ParentSpanID, "%s: B's span is a root", tc.name)
				}
			}
			assert.Equal(t, ss[0].TraceID, s.TraceID, "%s: one trace across B and C", tc.name)
		}
	}
	assert.Empty(t, byRequest["v-unsampled"], "an unsampled request exports no span, here or downstream")
	assert.Regexp(t, `unsampled=[1-9]`, c.w.stderr.String(), "unsampled spans are counted")
}

// TestTraceContextOnConnectionsOpenedBeforeTheTracer: a service traced with
// --pid whose kept-alive connection to the next service was opened before
// the tracer started still sends trace context on it.
func TestTraceContextOnConnectionsOpenedBeforeTheTracer(t *testing.T) {
	uprobetest.RequireBPF(t)
	bin := (&localBuild{name: "chain-warm", pkg: "./testdata/chain"}).get(t)
	b, bpid := runService(t, bin, nil)
	cc, _ := runService(t, bin, nil)
	relay := fmt.Sprintf("http://%s/relay/w?to=http://%s/echo", b, cc)
	echo := func() map[string][]string {
		code, body, err := httpGet(t, relay)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code, "%s", body)
		var e struct{ Headers map[string][]string }
		require.NoError(t, json.Unmarshal(body, &e), "%s", body)
		return e.Headers
	}
	require.Empty(t, echo()["Traceparent"], "untraced: no traceparent")

	recv := otlptest.NewHTTP(t)
	cmd := exec.Command(tracerBinary(t), "--pid", fmt.Sprint(bpid))
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=otlp", "OTEL_METRICS_EXPORTER=none",
		"OTEL_EXPORTER_OTLP_ENDPOINT="+recv.Endpoint(), "OTEL_BSP_SCHEDULE_DELAY=100")
	w := &watchRun{cmd: cmd, stderr: &syncBuffer{}, recv: recv}
	cmd.Stderr = w.stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	w.waitLog(t, fmt.Sprintf("msg=attached pid=%d", bpid))
	got := echo()
	require.Len(t, got["Traceparent"], 1, "the kept-alive connection carries trace context: %v", got)
	w.stop(t)
	spans := recv.WaitForSpans(t, 2, eventTimeout)
	var client *otlptest.Span
	for i, s := range spans {
		if s.Kind == "client" {
			client = &spans[i]
		}
	}
	require.NotNil(t, client)
	assert.Equal(t, "00-"+client.TraceID+"-"+client.SpanID+"-01", got["Traceparent"][0])
}

// runGRPCService starts `grpcsvc serve` and returns its gRPC and HTTP
// addresses once it prints them ("grpc ADDR", "http ADDR").
func runGRPCService(t *testing.T, bin string, flags ...string) (grpcAddr, httpAddr string, pid int) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "-addr", "127.0.0.1:0", "-http", "127.0.0.1:0"}, flags...)...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	sc := bufio.NewScanner(stdout)
	for (grpcAddr == "" || httpAddr == "") && sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "grpc "); ok {
			grpcAddr = a
		} else if a, ok := strings.CutPrefix(sc.Text(), "http "); ok {
			httpAddr = a
		}
	}
	require.NotEmpty(t, grpcAddr, "grpcsvc did not say where it listens")
	go io.Copy(io.Discard, stdout)
	return grpcAddr, httpAddr, cmd.Process.Pid
}

// TestTraceContextAcrossHTTPAndGRPC: an HTTP front end calls a gRPC
// service, which calls either another gRPC service or an HTTP service
// (four processes under one tracer, grpc-go v1.73.0 and v1.54.0): one trace
// per request with the right tree, for 500 concurrent requests (no
// cross-talk). The gRPC calls' HEADERS frames carry a traceparent header
// field added at the socket layer.
func TestTraceContextAcrossHTTPAndGRPC(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: builds grpc-go services with toolchains from the module proxy")
	}
	link := func(bin, name string) string {
		named := filepath.Join(t.TempDir(), name)
		require.NoError(t, os.Link(bin, named))
		return named
	}
	frontBin := grpctest.Target{GRPC: "v1.73.0", Go: "go1.24.13"}.Build(t)
	backBin := grpctest.Target{GRPC: "v1.54.0", Go: "go1.21.13"}.Build(t)
	front, back, back2 := link(frontBin, "mixed-front"), link(backBin, "mixed-back"), link(frontBin, "mixed-back2")
	leaf := link((&localBuild{name: "chain-leaf", pkg: "./testdata/chain"}).get(t), "mixed-leaf")

	w := startWatch(t, "mixed-*")
	leafAddr, leafPID := runService(t, leaf, nil)
	w.waitLog(t, fmt.Sprintf("msg=attached pid=%d", leafPID))
	back2GRPC, _, back2PID := runGRPCService(t, back2)
	w.waitLog(t, fmt.Sprintf("msg=attached pid=%d", back2PID))
	backGRPC, _, backPID := runGRPCService(t, back)
	w.waitLog(t, fmt.Sprintf("msg=attached pid=%d", backPID))
	_, frontHTTP, frontPID := runGRPCService(t, front, "-upstream", backGRPC)
	w.waitLog(t, fmt.Sprintf("msg=attached pid=%d", frontPID))

	// Even requests: front → back → back2 (gRPC); odd: front → back → leaf (HTTP, ID in the path).
	const n = 500
	var wg sync.WaitGroup
	errs := make(chan error, n)
	slots := make(chan struct{}, 32)
	for i := 0; i < n; i++ {
		name := "grpc:" + back2GRPC
		if i%2 == 1 {
			name = fmt.Sprintf("http:http://%s/hop/m%d", leafAddr, i)
		}
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			code, body, err := httpGet(t, fmt.Sprintf("http://%s/hello?name=%s", frontHTTP, name))
			if err == nil && code != http.StatusOK {
				err = fmt.Errorf("%s: %d %s", name, code, body)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	w.stop(t)
	spans := w.recv.WaitForSpans(t, 5*n, eventTimeout)
	for _, l := range strings.Split(w.stderr.String(), "\n") {
		if strings.Contains(l, "outgoing trace context") {
			t.Log(l)
		}
	}
	byTrace := map[string][]otlptest.Span{}
	for _, s := range spans {
		byTrace[s.TraceID] = append(byTrace[s.TraceID], s)
	}
	// A gRPC call whose HEADERS frame went out without context (the first
	// frames of a new connection, flushed on another thread) splits its
	// request in two traces: rare, and counted as missed.
	m := regexp.MustCompile(`written=(\d+) written_http2=(\d+) .* missed=(\d+)`).FindStringSubmatch(w.stderr.String())
	require.NotNil(t, m, "the tracer reports its trace-context counts")
	var written1, written2, missed int
	fmt.Sscan(m[1], &written1)
	fmt.Sscan(m[2], &written2)
	fmt.Sscan(m[3], &missed)
	calls := n/2 + n + n/2 // HTTP/1.x back → leaf; gRPC front → back and back → back2
	t.Logf("of %d calls: %d HTTP/1.x and %d gRPC written, %d counted missed", calls, written1, written2, missed)
	assert.LessOrEqual(t, written1+written2+missed, calls, "no call counted twice")
	assert.GreaterOrEqual(t, written1+written2, calls*98/100, "at least 98%% of calls carried trace context")
	split := 0
	for trace, ss := range byTrace {
		if len(ss) != 5 {
			split++
			for _, s := range ss {
				assert.True(t, s.ParentSpanID == "" || slices.ContainsFunc(ss, func(p otlptest.Span) bool { return p.SpanID == s.ParentSpanID }),
					"trace %s: orphan span %s", trace, s.SpanID)
			}
			delete(byTrace, trace)
		}
	}
	assert.LessOrEqual(t, split, 2*(calls-written1-written2), "each call without context splits at most one request into two traces")
	viaGRPC, viaHTTP := 0, 0
	for trace, ss := range byTrace {
		require.Len(t, ss, 5, "trace %s: front server, front client, back server, back client, back2 or leaf server", trace)
		byParent := map[string]otlptest.Span{}
		for _, s := range ss {
			byParent[s.ParentSpanID] = s
		}
		last := byParent[byParent[byParent[byParent[""].SpanID].SpanID].SpanID] // back's client call
		want := []hop{
			{"mixed-front", "server"}, {"mixed-front", "client"}, {"mixed-back", "server"}, {"mixed-back", "client"}, {"mixed-back2", "server"},
		}
		if service(byParent[last.SpanID]) == "mixed-leaf" {
			want[4].service = "mixed-leaf"
			viaHTTP++
		} else {
			viaGRPC++
		}
		checkChain(t, "trace "+trace, byParent, want)
	}
	assert.GreaterOrEqual(t, viaGRPC+viaHTTP, n-(calls-written1-written2), "requests in one trace")
}

// TestTraceContextOnEveryKindOfRequest: a request with a body (net/http
// writes a copy of it), the shortest request line ("GET / HTTP/1.1"), and a
// request the application already gave a traceparent (from a stripped
// binary, where the tracer cannot read the header map): the first two get
// exactly one traceparent, the third keeps the application's alone.
func TestTraceContextOnEveryKindOfRequest(t *testing.T) {
	c := startChain(t)
	a, cc := c.addrs[0], c.addrs[2] // A is stripped
	type echoed struct {
		Method, URI string
		Headers     map[string][]string
		Body        string
	}
	get := func(path string) echoed {
		code, body, err := httpGet(t, "http://"+a+path)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code, "%s", body)
		var e echoed
		require.NoError(t, json.Unmarshal(body, &e), "%s", body)
		return e
	}
	tp := regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$`)

	e := get(fmt.Sprintf("/post/b1?n=100000&to=http://%s/echo", cc))
	assert.Equal(t, "POST", e.Method)
	assert.Len(t, e.Body, 100000, "the body arrives whole")
	require.Len(t, e.Headers["Traceparent"], 1, "a request with a body gets one traceparent: %v", e.Headers)
	assert.Regexp(t, tp, e.Headers["Traceparent"][0])

	e = get(fmt.Sprintf("/relay/s1?to=http://%s/", cc))
	assert.Equal(t, "/", e.URI)
	require.Len(t, e.Headers["Traceparent"], 1, "the shortest request line gets one traceparent: %v", e.Headers)
	assert.Regexp(t, tp, e.Headers["Traceparent"][0])

	e = get(fmt.Sprintf("/own/o1?to=http://%s/echo", cc))
	assert.Equal(t, []string{"00-11111111111111111111111111111111-2222222222222222-01"}, e.Headers["Traceparent"],
		"the application's own traceparent is left alone, and no second one is added")

	c.w.stop(t)
	assert.Regexp(t, `written=2 .*application_set=1`, c.w.stderr.String())
}
