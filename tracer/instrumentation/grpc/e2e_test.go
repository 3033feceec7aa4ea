//go:build linux && (amd64 || arm64)

package grpc_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/mod/semver"

	"github.com/offsetdb/offsetdb"
	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/instrumentation"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/grpc/grpctest"
	"github.com/offsetdb/offsetdb/tracer/resolve"
	"github.com/offsetdb/offsetdb/tracer/target"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// span is what the tests keep of a decoded span.
type span struct {
	inst             string
	name             string
	kind             trace.SpanKind
	traceID          trace.TraceID
	spanID, parentID trace.SpanID
	remoteParent     bool
	unsampled        bool
	start, end       time.Time
	attrs            map[string]any
	status           codes.Code
}

// collector reads a session's spans in the background.
type collector struct {
	mu    sync.Mutex
	spans []span
	errs  []error
}

func collect(t *testing.T, s *uprobe.Session) *collector {
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{}
	done := make(chan error, 1)
	go func() {
		done <- s.Read(ctx, func(ev uprobe.Event) {
			c.mu.Lock()
			defer c.mu.Unlock()
			if ev.Err != nil {
				c.errs = append(c.errs, ev.Err)
				return
			}
			sp := ev.Span
			c.spans = append(c.spans, span{
				inst: ev.Instrumentation, name: sp.Name, kind: sp.Kind, traceID: sp.TraceID, spanID: sp.SpanID,
				parentID: sp.ParentSpanID, remoteParent: sp.RemoteParent, unsampled: sp.Unsampled, start: sp.Start, end: sp.End,
				attrs: uprobetest.AttrMap(t, sp.Attributes), status: sp.Status,
			})
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return c
}

// ownCopy copies the built binary at path into the test's temporary
// directory. The tests attach to every process running their binary (pid
// 0: server and client processes at once), and uprobes are placed on the
// file: a copy of their own keeps them from recording the processes of
// another test run that uses the same cached build at the same time.
func ownCopy(t *testing.T, path string) string {
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	own := filepath.Join(t.TempDir(), filepath.Base(path))
	require.NoError(t, os.WriteFile(own, data, 0o755))
	return own
}

// eventTimeout bounds the waits for spans. They end on the spans; the bound
// is generous so that only a test that would never pass reaches it, not one
// on a loaded CI machine.
const eventTimeout = 2 * time.Minute

// wait returns the spans once there are n, or fails after eventTimeout.
func (c *collector) wait(t *testing.T, n int) []span {
	t.Helper()
	deadline := time.Now().Add(eventTimeout)
	for {
		c.mu.Lock()
		got, errs := append([]span(nil), c.spans...), c.errs
		c.mu.Unlock()
		require.Empty(t, errs, "decode errors")
		if len(got) >= n {
			time.Sleep(300 * time.Millisecond) // let unexpected extra spans arrive
			c.mu.Lock()
			defer c.mu.Unlock()
			return append([]span(nil), c.spans...)
		}
		if time.Now().After(deadline) {
			for _, s := range got {
				t.Logf("%s %s %s status=%v %v", s.inst, s.kind, s.name, s.status, s.attrs)
			}
			require.Failf(t, "timeout", "got %d of %d spans", len(got), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// resolver answers from the embedded database, then DWARF, as the tracer does.
func resolver(t *testing.T) *resolve.Resolver {
	db, err := offsets.Open(offsetdb.Data())
	require.NoError(t, err)
	return &resolve.Resolver{DBs: []*offsets.DB{db}}
}

// serve starts `grpcsvc serve` and returns its gRPC and HTTP addresses.
func serve(t *testing.T, bin string) (grpcAddr, httpAddr string) {
	cmd := exec.Command(bin, "serve", "-addr", "127.0.0.1:0", "-http", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
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
	require.NotEmpty(t, grpcAddr, "grpcsvc serve did not say where it listens")
	go io.Copy(io.Discard, stdout)
	return grpcAddr, httpAddr
}

// call runs `grpcsvc call` and returns its output lines. An RPC starting
// with "-" is a flag of call.
func call(t *testing.T, bin, addr string, rpcs ...string) []string {
	out, err := exec.Command(bin, append([]string{"call", "-addr", addr}, rpcs...)...).Output()
	require.NoError(t, err)
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// TestTraceGRPCAcrossVersions traces grpc-go's own example services, built
// with grpc-go releases from v1.0.0 to the newest and Go releases from 1.13
// on (grpctest.Matrix, three of them stripped; 1.13 and 1.14 with the
// stack-based calling convention), server and client processes
// at once, and checks every span: names, status codes, errors, and that
// the calls a handler makes (gRPC and net/http) are its children.
func TestTraceGRPCAcrossVersions(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: builds grpc-go services with toolchains from the module proxy")
	}
	for _, tg := range targets(t) {
		t.Run(tg.String(), func(t *testing.T) {
			checkTarget(t, tg)
		})
	}
}

// targetsEnv overrides grpctest.Matrix for a wider sweep:
// OFFSETDB_GRPC_TARGETS=v1.40.0/go1.20.14,v1.60.0/go1.22.12/stripped.
const targetsEnv = "OFFSETDB_GRPC_TARGETS"

// targets are grpctest.Matrix, or the targets targetsEnv names.
func targets(t *testing.T) []grpctest.Target {
	env := os.Getenv(targetsEnv)
	if env == "" {
		return grpctest.Matrix
	}
	var ts []grpctest.Target
	for _, item := range strings.Split(env, ",") {
		parts := strings.Split(strings.TrimSpace(item), "/")
		require.True(t, len(parts) == 2 || (len(parts) == 3 && parts[2] == "stripped"), "%s: want GRPC/GO[/stripped], got %q", targetsEnv, item)
		ts = append(ts, grpctest.Target{GRPC: parts[0], Go: parts[1], Stripped: len(parts) == 3})
	}
	return ts
}

func checkTarget(t *testing.T, tg grpctest.Target) {
	bin := ownCopy(t, tg.Build(t))
	plan, err := target.NewPlan(bin, resolver(t), instrumentation.All())
	require.NoError(t, err)
	defer plan.Binary.Close()
	for _, d := range plan.Disabled {
		t.Errorf("%s", d)
	}
	if len(plan.Disabled) > 0 {
		t.FailNow() // the spans it would wait for cannot come
	}
	for name, fs := range plan.Degraded {
		for _, f := range fs {
			t.Logf("%s runs without %s: %v", name, f.ID, f.Err)
		}
	}
	// Status codes are read through google.rpc.Status, whose layout comes
	// from the genproto module the binary links; say when it is unknown.
	// Incoming trace context is read through x/net's HTTP/2 types, from
	// the x/net version the binary links.
	// The client's address needs those and the transport's peer fields.
	codesKnown, contextKnown, peerKnown := true, true, true
	for _, fs := range plan.Degraded {
		for _, f := range fs {
			if f.ID.Struct == "Status" && f.ID.Field == "Code" {
				codesKnown = false
			}
			if strings.HasPrefix(f.ID.Package, "golang.org/x/net/") {
				contextKnown, peerKnown = false, false
			}
			if f.ID.Package == "net" || f.ID.Struct == "Peer" || f.ID.Struct == "http2Server" {
				peerKnown = false
			}
		}
	}
	// Some early releases keep no remote address in the transport.
	hasAddr := false
	for id, f := range plan.Fields {
		if id.Struct == "http2Server" && (id.Field == "peer" || id.Field == "remoteAddr") && f.Status == resolve.Resolved {
			hasAddr = true
		}
	}
	peerKnown = peerKnown && hasAddr
	t.Logf("status codes known: %v; incoming context known: %v; client address known: %v", codesKnown, contextKnown, peerKnown)

	s, err := uprobe.Attach(context.Background(), plan.Binary, 0, plan.Enabled, plan.Values(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, s.Close()) })
	c := collect(t, s)

	grpcAddr, httpAddr := serve(t, bin)
	rpcs := []string{"hello:ok", "hello:notfound", "hello:panic", "hello:slow", "get", "list", "record", "chat",
		"hello:grpc:" + grpcAddr, "hello:http:http://" + httpAddr + "/ping"}
	out := call(t, bin, grpcAddr, rpcs...)
	require.Len(t, out, len(rpcs), "grpcsvc call: %v", out)
	assert.Equal(t, []string{"hello:ok Unavailable"}, call(t, bin, closedPort(t), "hello:ok"))

	// Server: the 10 RPCs and the nested SayHello; client: the 10 RPCs,
	// the nested call and the call to the closed port; net/http: the
	// nested GET, client and server.
	got := c.wait(t, 11+12+2)
	assert.Zero(t, s.Drops())

	var servers, clients []span
	var httpClient, httpServer []span
	for _, sp := range got {
		switch sp.inst {
		case "gRPC server":
			servers = append(servers, sp)
		case "gRPC client":
			clients = append(clients, sp)
		case "net/http client":
			httpClient = append(httpClient, sp)
		case "net/http server":
			httpServer = append(httpServer, sp)
		}
	}
	require.Len(t, servers, 11, "gRPC server spans")
	require.Len(t, clients, 12, "gRPC client spans")
	require.Len(t, httpClient, 1, "net/http client spans")
	require.Len(t, httpServer, 1, "net/http server spans")

	for _, sp := range append(append([]span(nil), servers...), clients...) {
		assert.Equal(t, "grpc", sp.attrs["rpc.system.name"], sp.name)
		assert.True(t, sp.traceID.IsValid() && sp.spanID.IsValid(), sp.name)
		assert.True(t, sp.end.After(sp.start), "%s: end %v not after start %v", sp.name, sp.end, sp.start)
		assert.WithinDuration(t, time.Now(), sp.start, time.Minute)
		assert.False(t, sp.remoteParent, "no traceparent was sent")
	}

	// Each server span: name and status by method. SayHello spans are
	// told apart by their status; the two OK ones are the plain call and
	// the nested one (or the parents of the nested calls).
	type want struct {
		name, code string
		err        bool
	}
	serverWant := map[want]int{
		{"helloworld.Greeter/SayHello", "OK", false}:               4, // ok, grpc:, http:, the nested one
		{"helloworld.Greeter/SayHello", "NOT_FOUND", false}:        1, // the client's fault: not an error
		{"helloworld.Greeter/SayHello", "INTERNAL", true}:          1,
		{"helloworld.Greeter/SayHello", "DEADLINE_EXCEEDED", true}: 1,
		{"routeguide.RouteGuide/GetFeature", "OK", false}:          1,
		{"routeguide.RouteGuide/ListFeatures", "OK", false}:        1,
		{"routeguide.RouteGuide/RecordRoute", "OK", false}:         1,
		{"routeguide.RouteGuide/RouteChat", "OK", false}:           1,
	}
	clientWant := map[want]int{
		{"helloworld.Greeter/SayHello", "OK", false}:               4,
		{"helloworld.Greeter/SayHello", "NOT_FOUND", true}:         1,
		{"helloworld.Greeter/SayHello", "INTERNAL", true}:          1,
		{"helloworld.Greeter/SayHello", "DEADLINE_EXCEEDED", true}: 1,
		{"helloworld.Greeter/SayHello", "UNAVAILABLE", true}:       1,
		{"routeguide.RouteGuide/GetFeature", "OK", false}:          1,
		{"routeguide.RouteGuide/ListFeatures", "OK", false}:        1,
		{"routeguide.RouteGuide/RecordRoute", "OK", false}:         1,
		{"routeguide.RouteGuide/RouteChat", "OK", false}:           1,
	}
	tally := func(ss []span) map[want]int {
		m := map[want]int{}
		for _, sp := range ss {
			code, _ := sp.attrs["rpc.response.status_code"].(string)
			w := want{sp.name, code, sp.status == codes.Error}
			// The slow call's handler returns its context's error: the
			// deadline's, or the client's cancellation when the client's
			// RST_STREAM arrives first. Both are right.
			if w == (want{"helloworld.Greeter/SayHello", "CANCELLED", false}) {
				w = want{"helloworld.Greeter/SayHello", "DEADLINE_EXCEEDED", true}
			}
			m[w]++
		}
		return m
	}
	// Before v1.3.0 a client error is a grpc.rpcError, whose code no field
	// set tracks: failed calls are errors without a code there.
	clientCodes := codesKnown && semver.Compare(tg.GRPC, "v1.3.0") >= 0
	if codesKnown {
		assert.Equal(t, serverWant, tally(servers), "server spans by name, status code and error")
	} else {
		// Without the genproto layout no code is read: server spans
		// carry no status.
		for _, sp := range servers {
			assert.NotContains(t, sp.attrs, "rpc.response.status_code", sp.name)
		}
	}
	if clientCodes {
		assert.Equal(t, clientWant, tally(clients), "client spans by name, status code and error")
	} else {
		errs := 0
		for _, sp := range clients {
			if sp.status == codes.Error {
				errs++
				assert.NotContains(t, sp.attrs, "rpc.response.status_code", sp.name)
			} else {
				assert.Equal(t, "OK", sp.attrs["rpc.response.status_code"], sp.name)
			}
		}
		assert.Equal(t, 4, errs, "failed client calls: notfound, panic, slow, unavailable")
	}
	for _, sp := range servers {
		if peerKnown {
			assert.Equal(t, "127.0.0.1", sp.attrs["network.peer.address"], "client address of %s", sp.name)
			assert.Greater(t, sp.attrs["network.peer.port"], int64(0), "client port of %s", sp.name)
		} else {
			assert.NotContains(t, sp.attrs, "network.peer.address", sp.name)
		}
	}
	for _, sp := range clients {
		if sp.attrs["server.address"] != nil {
			assert.Equal(t, "127.0.0.1", sp.attrs["server.address"], sp.name)
		}
	}

	// The nested calls are children of the server span of the RPC whose
	// handler made them, in its trace.
	byID := map[trace.SpanID]span{}
	for _, sp := range servers {
		byID[sp.spanID] = sp
	}
	nested := 0
	for _, sp := range append(append([]span(nil), clients...), httpClient...) {
		parent, ok := byID[sp.parentID]
		if !sp.parentID.IsValid() {
			continue
		}
		nested++
		if assert.True(t, ok, "%s %s: parent %s is no gRPC server span", sp.inst, sp.name, sp.parentID) {
			assert.Equal(t, parent.traceID, sp.traceID, sp.name)
			assert.Equal(t, "helloworld.Greeter/SayHello", parent.name)
			assert.False(t, sp.start.Before(parent.start), "child starts before its parent")
			assert.False(t, sp.end.After(parent.end), "child ends after its parent")
		}
	}
	assert.Equal(t, 2, nested, "the nested gRPC call and the nested GET have a parent")
	assert.Equal(t, "GET", httpClient[0].name)

	checkIncomingContext(t, c, len(got), bin, grpcAddr, contextKnown)
}

// checkIncomingContext sends SayHello calls with a traceparent in their
// metadata and checks that the server span continues a valid one (and the
// handler's nested gRPC call follows it), honours its sampled flag, and
// ignores every invalid one as the W3C Trace Context spec says. Where the
// metadata cannot be read (known false), every value must be ignored.
func checkIncomingContext(t *testing.T, c *collector, seen int, bin, grpcAddr string, known bool) {
	const (
		tid = "4bf92f3577b34da6a3ce929d0e0e4736"
		sid = "00f067aa0ba902b7"
	)
	valid := []struct{ name, value string }{
		{"sampled", "00-" + tid + "-" + sid + "-01"},
		{"unsampled", "00-" + tid + "-" + sid + "-00"},
		{"later version with more fields", "01-" + tid + "-" + sid + "-01-extra"},
	}
	invalid := []struct{ name, value string }{
		{"too short", "00-" + tid + "-" + sid + "-0"},
		{"uppercase hex", "00-" + strings.ToUpper(tid) + "-" + sid + "-01"},
		{"not hex", "00-" + tid[:30] + "zz-" + sid + "-01"},
		{"version ff", "ff-" + tid + "-" + sid + "-01"},
		{"zero trace id", "00-" + strings.Repeat("0", 32) + "-" + sid + "-01"},
		{"zero parent id", "00-" + tid + "-" + strings.Repeat("0", 16) + "-01"},
		{"version 00 with trailing data", "00-" + tid + "-" + sid + "-01-extra"},
		{"wrong separator", "00_" + tid + "-" + sid + "-01"},
	}
	serverSpans := func(n int) []span {
		var out []span
		for _, sp := range c.wait(t, seen+n)[seen:] {
			if sp.inst == "gRPC server" {
				out = append(out, sp)
			}
		}
		seen += n
		return out
	}
	wantTID, err := trace.TraceIDFromHex(tid)
	require.NoError(t, err)
	wantSID, err := trace.SpanIDFromHex(sid)
	require.NoError(t, err)

	if !known {
		invalid = append(invalid, valid...)
		valid = nil
	}
	for _, v := range valid {
		// The nested call: a client span in the server's handler and the
		// nested server span, plus the outer client and server spans.
		out := call(t, bin, grpcAddr, "-traceparent", v.value, "hello:grpc:"+grpcAddr)
		require.Equal(t, []string{"hello:grpc:" + grpcAddr + " OK"}, out, v.name)
		var outer *span
		spans := c.wait(t, seen+4)[seen:]
		seen += 4
		// The outer and the nested server span both continue the trace
		// (the handler passes its incoming metadata on), and either may
		// end, so be recorded, last: the outer one is the one that started
		// first, before its handler made the nested call.
		for i, sp := range spans {
			if sp.inst == "gRPC server" && sp.traceID == wantTID && (outer == nil || sp.start.Before(outer.start)) {
				outer = &spans[i]
			}
		}
		if !assert.NotNil(t, outer, "%s: no server span continues the trace", v.name) {
			continue
		}
		assert.Equal(t, wantSID, outer.parentID, v.name)
		assert.True(t, outer.remoteParent, v.name)
		assert.Equal(t, v.name == "unsampled", outer.unsampled, v.name)
		children := 0
		for _, sp := range spans {
			if sp.parentID == outer.spanID {
				children++
				assert.Equal(t, "gRPC client", sp.inst, v.name)
				assert.Equal(t, wantTID, sp.traceID, v.name)
				assert.Equal(t, outer.unsampled, sp.unsampled, "%s: the child inherits the sampled flag", v.name)
			}
		}
		assert.Equal(t, 1, children, "%s: the handler's nested call is the server span's child", v.name)
	}
	for _, v := range invalid {
		out := call(t, bin, grpcAddr, "-traceparent", v.value, "hello:ok")
		require.Equal(t, []string{"hello:ok OK"}, out, v.name)
		ss := serverSpans(2)
		if assert.Len(t, ss, 1, v.name) {
			assert.NotEqual(t, wantTID, ss[0].traceID, "%s: ignored, a new trace", v.name)
			assert.False(t, ss[0].parentID.IsValid(), v.name)
			assert.False(t, ss[0].remoteParent, v.name)
			assert.False(t, ss[0].unsampled, v.name)
		}
	}
}

// TestConcurrentRequestsKeepTheirParents sends 500 requests at once through
// grpcsvc's HTTP front end: each /hello?name=http:URL request makes a
// SayHello call whose handler makes a GET of URL, which carries the
// request's number. Every HTTP server span must have exactly one gRPC
// client child, every gRPC server span exactly one HTTP client child with
// its own request's number, none lost: no cross-talk between goroutines.
// (Without outgoing trace context, the gRPC call's server span starts its
// own trace; see docs/tracer.md.)
func TestConcurrentRequestsKeepTheirParents(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: builds a grpc-go service with a toolchain from the module proxy")
	}
	const requests = 500
	tg := grpctest.Matrix[len(grpctest.Matrix)-2] // the newest unstripped build
	bin := ownCopy(t, tg.Build(t))
	plan, err := target.NewPlan(bin, resolver(t), instrumentation.All())
	require.NoError(t, err)
	defer plan.Binary.Close()
	require.Empty(t, plan.Disabled)
	s, err := uprobe.Attach(context.Background(), plan.Binary, 0, plan.Enabled, plan.Values(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, s.Close()) })
	c := collect(t, s)
	_, httpAddr := serve(t, bin)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: requests}}
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, requests)
	for i := range requests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			name := fmt.Sprintf("http:http://%s/ping?id=%d", httpAddr, i)
			resp, err := client.Get("http://" + httpAddr + "/hello?name=" + url.QueryEscape(name))
			if err != nil {
				errs <- err
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				errs <- fmt.Errorf("request %d: status %d", i, resp.StatusCode)
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// Per request: HTTP server /hello, gRPC client, gRPC server, HTTP client
	// GET /ping, HTTP server /ping.
	got := c.wait(t, 5*requests)
	require.Len(t, got, 5*requests)
	assert.Zero(t, s.Drops())
	children := map[trace.SpanID][]span{}
	for _, sp := range got {
		if sp.parentID.IsValid() {
			children[sp.parentID] = append(children[sp.parentID], sp)
		}
	}
	ids := map[string]bool{}
	var hello, grpcServers int
	for _, sp := range got {
		switch {
		case sp.inst == "net/http server" && sp.attrs["url.path"] == "/hello":
			hello++
			kids := children[sp.spanID]
			if assert.Len(t, kids, 1, "children of an HTTP request") {
				assert.Equal(t, "gRPC client", kids[0].inst)
				assert.Equal(t, sp.traceID, kids[0].traceID)
			}
		case sp.inst == "gRPC server":
			grpcServers++
			kids := children[sp.spanID]
			if assert.Len(t, kids, 1, "children of a gRPC call") {
				assert.Equal(t, "net/http client", kids[0].inst)
				assert.Equal(t, sp.traceID, kids[0].traceID)
				full, _ := kids[0].attrs["url.full"].(string)
				_, id, ok := strings.Cut(full, "?id=")
				assert.True(t, ok, full)
				assert.False(t, ids[id], "request %s seen twice", id)
				ids[id] = true
			}
		}
	}
	assert.Equal(t, requests, hello)
	assert.Equal(t, requests, grpcServers)
	assert.Len(t, ids, requests)
}

// TestGoroutinesInheritTheRequestSpan: a handler that fans out to two
// goroutines makes two GETs that are children of its span (the goroutine
// context instrumentation), and a goroutine that makes its GET after the
// handler returned starts a new trace rather than parenting to a span that
// has ended. On Go 1.17 (newproc1's older signature) and a recent Go.
func TestGoroutinesInheritTheRequestSpan(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: builds grpc-go services with toolchains from the module proxy")
	}
	for _, tg := range []grpctest.Target{grpctest.Matrix[0], grpctest.Matrix[len(grpctest.Matrix)-2]} {
		t.Run(tg.String(), func(t *testing.T) {
			bin := ownCopy(t, tg.Build(t))
			plan, err := target.NewPlan(bin, resolver(t), instrumentation.All())
			require.NoError(t, err)
			defer plan.Binary.Close()
			require.Empty(t, plan.Disabled)
			require.True(t, slices.ContainsFunc(plan.Enabled, func(i uprobe.Instrumentation) bool { return i.Name == "goroutine context" }))
			s, err := uprobe.Attach(context.Background(), plan.Binary, 0, plan.Enabled, plan.Values(), nil)
			require.NoError(t, err)
			t.Cleanup(func() { assert.NoError(t, s.Close()) })
			c := collect(t, s)
			grpcAddr, httpAddr := serve(t, bin)

			fanout, late := "hello:fanout:http://"+httpAddr+"/ping", "hello:late:http://"+httpAddr+"/ping?late=1"
			require.Equal(t, []string{fanout + " OK", late + " OK"}, call(t, bin, grpcAddr, fanout, late))
			// Two SayHello server and client spans; 3 GETs, client and server.
			got := c.wait(t, 4+6)
			var handlers []span
			var gets []span
			for _, sp := range got {
				switch sp.inst {
				case "gRPC server":
					handlers = append(handlers, sp)
				case "net/http client":
					gets = append(gets, sp)
				}
			}
			require.Len(t, handlers, 2)
			require.Len(t, gets, 3)
			slices.SortFunc(handlers, func(a, b span) int { return a.start.Compare(b.start) })
			fanoutSpan := handlers[0]
			for _, g := range gets {
				if strings.Contains(g.attrs["url.full"].(string), "late=1") {
					assert.False(t, g.parentID.IsValid(), "a goroutine that outlives its request starts a new trace")
					assert.NotEqual(t, handlers[1].traceID, g.traceID)
					continue
				}
				assert.Equal(t, fanoutSpan.spanID, g.parentID, "a fanned-out GET is a child of the handler's span")
				assert.Equal(t, fanoutSpan.traceID, g.traceID)
			}
		})
	}
}
