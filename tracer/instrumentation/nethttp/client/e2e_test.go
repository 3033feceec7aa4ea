//go:build linux && (amd64 || arm64)

package client_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
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
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/gobinary"
	"github.com/offsetdb/offsetdb/layout"
	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/nethttp/client"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/nethttp/httpconv"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/nethttp/server"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// targets are the traced program built twice, with and without symbols and
// DWARF, once per test binary.
var targets struct {
	once            sync.Once
	dir             string
	plain, stripped string
	values          map[offsets.FieldID]offsets.Value
	err             error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if targets.dir != "" {
		os.RemoveAll(targets.dir)
	}
	os.Exit(code)
}

// buildTargets builds the traced program (tracer/testdata/service: a server
// whose /items/{id} handler calls /backend?item=ID of the same server on the
// handler's goroutine, and a /fail route answering 500) with the local toolchain and
// resolves the instrumentations' fields from the plain build's DWARF.
func buildTargets(t *testing.T) (plain, stripped string, values map[offsets.FieldID]offsets.Value) {
	t.Helper()
	targets.once.Do(func() {
		targets.err = func() error {
			dir, err := os.MkdirTemp("", "offsetdb-httptarget-")
			if err != nil {
				return err
			}
			targets.dir = dir
			targets.plain = filepath.Join(dir, "target")
			targets.stripped = filepath.Join(dir, "target-stripped")
			for out, ldflags := range map[string]string{targets.plain: "", targets.stripped: "-s -w"} {
				// The traced program is the one the tracer's own tests use.
				cmd := exec.Command("go", "build", "-trimpath", "-ldflags="+ldflags, "-o", out, "../../../testdata/service")
				cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false", "GOWORK=off")
				if b, err := cmd.CombinedOutput(); err != nil {
					return fmt.Errorf("go build %s: %v\n%s", out, err, b)
				}
			}
			f, err := layout.Open(targets.plain)
			if err != nil {
				return err
			}
			defer f.Close()
			ids := uprobe.Fields(server.Instrumentation(), client.Instrumentation())
			targets.values, err = f.Fields(ids)
			// The fields of the other Go map implementation are not in this
			// release's runtime, nor Go 1.27's internal/http2 before it; the
			// instrumentations declare them IfResolved.
			var missing *layout.MissingError
			if errors.As(err, &missing) {
				for id := range missing.Missing {
					if id.Package != "runtime" && id.Package != "internal/runtime/maps" && id.Package != "net/http/internal/http2" {
						return err
					}
				}
				err = nil
			}
			return err
		}()
	})
	require.NoError(t, targets.err)
	return targets.plain, targets.stripped, targets.values
}

// startTarget runs the program at path and returns its pid and address.
func startTarget(t *testing.T, path string) (pid int, addr string) {
	t.Helper()
	cmd := exec.Command(path)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "read the target's address")
	return cmd.Process.Pid, strings.TrimPrefix(strings.TrimSpace(line), "listening on ")
}

// collector reads a session's events in the background.
type collector struct {
	mu     sync.Mutex
	events []httpconv.HTTPEvent
	errs   []error
	done   chan error
}

func collect(t *testing.T, s *uprobe.Session) *collector {
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{done: make(chan error, 1)}
	go func() {
		c.done <- s.Read(ctx, func(ev uprobe.Event) {
			c.mu.Lock()
			defer c.mu.Unlock()
			if ev.Err != nil {
				c.errs = append(c.errs, ev.Err)
				return
			}
			c.events = append(c.events, decodeRecord(t, ev))
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-c.done
	})
	return c
}

// decodeRecord decodes the raw record of ev into the request it describes,
// so that the assertions see every field the programs recorded; the spans
// made of them are checked by package httpconv and the tracer's end-to-end
// tests.
func decodeRecord(t *testing.T, ev uprobe.Event) httpconv.HTTPEvent {
	kind := trace.SpanKindServer
	if ev.Instrumentation == client.Instrumentation().Name {
		kind = trace.SpanKindClient
	}
	hev, err := server.DecodeRecord(ev.Record, kind)
	assert.NoError(t, err)
	if kind == trace.SpanKindClient && hev.Method == "" {
		hev.Method = "GET"
	}
	return hev
}

// eventTimeout bounds the waits for events. They end on the events; the
// bound is generous so that only a test that would never pass reaches it,
// not one on a loaded CI machine.
const eventTimeout = 2 * time.Minute

// wait returns the events once there are n, or fails after eventTimeout.
func (c *collector) wait(t *testing.T, n int) []httpconv.HTTPEvent {
	t.Helper()
	deadline := time.Now().Add(eventTimeout)
	for {
		c.mu.Lock()
		evs, errs := append([]httpconv.HTTPEvent(nil), c.events...), c.errs
		c.mu.Unlock()
		require.Empty(t, errs, "decode errors")
		if len(evs) >= n {
			time.Sleep(100 * time.Millisecond) // let any unexpected extra event arrive
			c.mu.Lock()
			defer c.mu.Unlock()
			return append([]httpconv.HTTPEvent(nil), c.events...)
		}
		if time.Now().After(deadline) {
			require.Failf(t, "timeout", "got %d of %d events: %+v", len(evs), n, evs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// get sends a GET and returns the status.
func get(t *testing.T, client *http.Client, url string) int {
	t.Helper()
	resp, err := client.Get(url)
	require.NoError(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

const items = 5

// exercise attaches both instrumentations to the target at path, sends
// items requests to /items/{id} and two to /fail, and returns the events.
func exercise(t *testing.T, path string, values map[offsets.FieldID]offsets.Value) (addr string, evs []httpconv.HTTPEvent) {
	t.Helper()
	return exerciseWith(t, path, values, server.Instrumentation())
}

// exerciseWith is exercise with srv as the server instrumentation.
func exerciseWith(t *testing.T, path string, values map[offsets.FieldID]offsets.Value, srv uprobe.Instrumentation) (addr string, evs []httpconv.HTTPEvent) {
	t.Helper()
	pid, addr := startTarget(t, path)
	bin, err := gobinary.Open(path)
	require.NoError(t, err)
	defer bin.Close()

	ctx := context.Background()
	s, err := uprobe.Attach(ctx, bin, pid, []uprobe.Instrumentation{srv, client.Instrumentation()}, values, nil)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, s.Close()) })
	c := collect(t, s)

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	for i := range items {
		require.Equal(t, http.StatusOK, get(t, client, fmt.Sprintf("http://%s/items/%d?q=%d", addr, i, i)))
	}
	for range 2 {
		require.Equal(t, http.StatusInternalServerError, get(t, client, "http://"+addr+"/fail"))
	}
	// Per item: a server span, a client span and the backend's server span.
	evs = c.wait(t, 3*items+2)
	assert.Zero(t, s.Drops(), "dropped records")
	return addr, evs
}

// checkEvents asserts the events of exercise.
func checkEvents(t *testing.T, addr string, evs []httpconv.HTTPEvent, route func(string) string) {
	t.Helper()
	var itemSpans, backendSpans, failSpans, clientSpans []httpconv.HTTPEvent
	for _, ev := range evs {
		switch {
		case ev.Kind == trace.SpanKindClient:
			clientSpans = append(clientSpans, ev)
		case strings.HasPrefix(ev.Path, "/items/"):
			itemSpans = append(itemSpans, ev)
		case ev.Path == "/backend":
			backendSpans = append(backendSpans, ev)
		case ev.Path == "/fail":
			failSpans = append(failSpans, ev)
		default:
			t.Errorf("unexpected event %+v", ev)
		}
	}
	require.Len(t, itemSpans, items)
	require.Len(t, clientSpans, items)
	require.Len(t, backendSpans, items)
	require.Len(t, failSpans, 2)

	bySpan := make(map[trace.SpanID]httpconv.HTTPEvent)
	seenPaths := make(map[string]bool)
	for _, ev := range itemSpans {
		assert.Equal(t, trace.SpanKindServer, ev.Kind)
		assert.Equal(t, "GET", ev.Method)
		assert.Equal(t, "http", ev.Scheme, "plain HTTP/1.1: no TLS handshake")
		assert.Equal(t, addr, ev.Host)
		assert.Regexp(t, `^/items/[0-9]$`, ev.Path)
		assert.Equal(t, "q="+strings.TrimPrefix(ev.Path, "/items/"), ev.Query)
		assert.Equal(t, route("GET /items/{id}"), ev.Route)
		assert.Regexp(t, `^127\.0\.0\.1:[0-9]+$`, ev.RemoteAddr)
		assert.Equal(t, 1, ev.ProtoMajor)
		assert.Equal(t, 1, ev.ProtoMinor)
		assert.Equal(t, http.StatusOK, ev.StatusCode)
		assert.True(t, ev.End.After(ev.Start), "end %v not after start %v", ev.End, ev.Start)
		assert.WithinDuration(t, time.Now(), ev.Start, 30*time.Second)
		assert.True(t, ev.TraceID.IsValid() && ev.SpanID.IsValid())
		assert.False(t, ev.ParentSpanID.IsValid(), "server span with a parent")
		seenPaths[ev.Path] = true
		bySpan[ev.SpanID] = ev
	}
	assert.Len(t, seenPaths, items)

	for _, ev := range clientSpans {
		assert.Equal(t, "GET", ev.Method)
		assert.Equal(t, "http", ev.Scheme)
		assert.Equal(t, addr, ev.Host)
		assert.Equal(t, "/backend", ev.Path)
		assert.Regexp(t, `^item=[0-9]$`, ev.Query)
		assert.Equal(t, http.StatusOK, ev.StatusCode)
		assert.Empty(t, ev.Route)
		parent, ok := bySpan[ev.ParentSpanID]
		if assert.True(t, ok, "client span %v has no /items server span as parent", ev.ParentSpanID) {
			assert.Equal(t, parent.TraceID, ev.TraceID)
			assert.Equal(t, "item="+strings.TrimPrefix(parent.Path, "/items/"), ev.Query)
			assert.False(t, ev.Start.Before(parent.Start), "client span starts before its parent")
			assert.False(t, ev.End.After(parent.End), "client span ends after its parent")
		}
		assert.NotEqual(t, ev.SpanID, ev.ParentSpanID)
	}

	traces := make(map[trace.TraceID]bool)
	for _, ev := range itemSpans {
		traces[ev.TraceID] = true
	}
	for _, ev := range backendSpans {
		// No propagation header is injected: the backend request is its own trace.
		assert.False(t, traces[ev.TraceID], "backend server span in the trace of an /items span")
		assert.False(t, ev.ParentSpanID.IsValid())
		assert.Equal(t, route("/backend"), ev.Route)
		assert.Equal(t, http.StatusOK, ev.StatusCode)
		assert.Regexp(t, `^127\.0\.0\.1:[0-9]+$`, ev.RemoteAddr)
	}
	for _, ev := range failSpans {
		assert.Equal(t, http.StatusInternalServerError, ev.StatusCode)
		assert.Equal(t, route("/fail"), ev.Route)
		assert.Equal(t, "GET", ev.Method)
	}
}

func TestAttachTracesServerAndClientRequests(t *testing.T) {
	uprobetest.RequireBPF(t)
	plain, _, values := buildTargets(t)
	addr, evs := exercise(t, plain, values)
	checkEvents(t, addr, evs, func(r string) string { return r })
}

func TestAttachStrippedBinaryUsesFunctionTable(t *testing.T) {
	uprobetest.RequireBPF(t)
	_, stripped, values := buildTargets(t)
	bin, err := gobinary.Open(stripped)
	require.NoError(t, err)
	require.True(t, bin.Stripped, "the -s -w build still has a symbol table")
	bin.Close()
	addr, evs := exercise(t, stripped, values)
	checkEvents(t, addr, evs, func(r string) string { return r })
}

// TestAttachReadsRouteOfEachGoRelease passes the route fields as absent, as
// for Go releases before 1.23 (no Request.Pattern) and 1.22 (no
// Request.pat either), and checks that the BPF code falls back.
func TestAttachReadsRouteOfEachGoRelease(t *testing.T) {
	uprobetest.RequireBPF(t)
	plain, _, values := buildTargets(t)
	for _, tt := range []struct {
		name   string
		absent []string
		route  func(string) string
	}{
		{"go1.22 Request.pat", []string{"net/http.Request.Pattern"}, func(r string) string { return r }},
		{"go1.21 no route", []string{"net/http.Request.Pattern", "net/http.Request.pat", "net/http.pattern.str"}, func(string) string { return "" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			vs := make(map[offsets.FieldID]offsets.Value)
			for id, v := range values {
				vs[id] = v
			}
			for _, s := range tt.absent {
				id, err := offsets.ParseFieldID(s)
				require.NoError(t, err)
				delete(vs, id)
			}
			// The pattern as the Request holds it: without the ServeMux
			// probe, which releases before 1.22 do not have and which
			// would give the route whatever the Request holds.
			srv := server.Instrumentation()
			srv.Probes = slices.DeleteFunc(srv.Probes, func(p uprobe.Probe) bool { return p.Symbol == "net/http.(*ServeMux).findHandler" })
			addr, evs := exerciseWith(t, plain, vs, srv)
			checkEvents(t, addr, evs, tt.route)
		})
	}
}

func TestAttachFailsForRequiredFieldMissing(t *testing.T) {
	plain, _, values := buildTargets(t)
	bin, err := gobinary.Open(plain)
	require.NoError(t, err)
	defer bin.Close()
	vs := make(map[offsets.FieldID]offsets.Value)
	for id, v := range values {
		vs[id] = v
	}
	id, err := offsets.ParseFieldID("net/http.Response.StatusCode")
	require.NoError(t, err)
	delete(vs, id)

	_, err = uprobe.Attach(context.Background(), bin, 0, []uprobe.Instrumentation{client.Instrumentation()}, vs, nil)
	require.Error(t, err)
	assert.True(t, errors.Is(err, uprobe.ErrMissingField))
	assert.ErrorContains(t, err, "net/http.Response.StatusCode")
	assert.ErrorContains(t, err, "net/http client")
}

func TestReadEndsWithContextThenWithClose(t *testing.T) {
	uprobetest.RequireBPF(t)
	plain, _, values := buildTargets(t)
	pid, _ := startTarget(t, plain)
	bin, err := gobinary.Open(plain)
	require.NoError(t, err)
	defer bin.Close()
	s, err := uprobe.Attach(context.Background(), bin, pid, []uprobe.Instrumentation{server.Instrumentation()}, values, nil)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, s.Read(ctx, func(uprobe.Event) {}), context.DeadlineExceeded)

	done := make(chan error, 1)
	go func() { done <- s.Read(context.Background(), func(uprobe.Event) {}) }()
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, s.Close())
	select {
	case err := <-done:
		assert.ErrorIs(t, err, uprobe.ErrClosed)
	case <-time.After(eventTimeout):
		t.Fatal("Read still blocked after Close")
	}
	assert.NoError(t, s.Close(), "second Close")
	assert.Zero(t, s.Drops())
}
