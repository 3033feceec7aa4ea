//go:build linux && (amd64 || arm64)

package server_test

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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/gobinary"
	"github.com/offsetdb/offsetdb/layout"
	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/nethttp/client"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/nethttp/httpconv"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/nethttp/server"
	"github.com/offsetdb/offsetdb/tracer/spans"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// The traced program (tracer/testdata/service), built once per test binary
// with and without symbols and DWARF, and the fields resolved from the
// plain build's DWARF.
var target struct {
	once            sync.Once
	dir             string
	plain, stripped string
	values          map[offsets.FieldID]offsets.Value
	err             error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if target.dir != "" {
		os.RemoveAll(target.dir)
	}
	os.Exit(code)
}

func buildTarget(t testing.TB) {
	t.Helper()
	target.once.Do(func() {
		target.err = func() error {
			dir, err := os.MkdirTemp("", "offsetdb-httpserver-")
			if err != nil {
				return err
			}
			target.dir = dir
			target.plain = filepath.Join(dir, "target")
			target.stripped = filepath.Join(dir, "target-stripped")
			for out, ldflags := range map[string]string{target.plain: "", target.stripped: "-s -w"} {
				cmd := exec.Command("go", "build", "-trimpath", "-ldflags="+ldflags, "-o", out, "../../../testdata/service")
				cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false", "GOWORK=off")
				if b, err := cmd.CombinedOutput(); err != nil {
					return fmt.Errorf("go build %s: %v\n%s", out, err, b)
				}
			}
			f, err := layout.Open(target.plain)
			if err != nil {
				return err
			}
			defer f.Close()
			target.values, err = f.Fields(uprobe.Fields(server.Instrumentation(), client.Instrumentation()))
			// The other Go map implementation's fields are not in this
			// release, nor Go 1.27's internal/http2 before it.
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
	require.NoError(t, target.err)
}

// traced runs the program at path under the server and client
// instrumentations, with the field values vs, and returns its address and
// a function that waits for n events.
func traced(t testing.TB, path string, vs map[offsets.FieldID]offsets.Value) (addr string, wait func(n int) []httpconv.HTTPEvent) {
	t.Helper()
	addr, waitAtMost := tracedWithin(t, path, vs)
	return addr, func(n int) []httpconv.HTTPEvent {
		t.Helper()
		evs, ok := waitAtMost(n, 2*time.Minute)
		require.True(t, ok, "timeout: got %d of %d events", len(evs), n)
		return evs
	}
}

// tracedWithin is traced whose wait function returns the events seen
// once n arrived or the timeout passed, and whether n arrived.
func tracedWithin(t testing.TB, path string, vs map[offsets.FieldID]offsets.Value) (addr string, wait func(n int, timeout time.Duration) ([]httpconv.HTTPEvent, bool)) {
	t.Helper()
	addr, attach := untraced(t, path)
	return addr, attach(vs)
}

// untraced runs the program at path and returns its address and a
// function that attaches the server and client instrumentations to it,
// with the field values vs, and returns tracedWithin's wait function.
func untraced(t testing.TB, path string) (addr string, attach func(vs map[offsets.FieldID]offsets.Value) func(n int, timeout time.Duration) ([]httpconv.HTTPEvent, bool)) {
	t.Helper()
	cmd := exec.Command(path)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "read the target's address")
	addr = strings.TrimPrefix(strings.TrimSpace(line), "listening on ")
	return addr, func(vs map[offsets.FieldID]offsets.Value) func(n int, timeout time.Duration) ([]httpconv.HTTPEvent, bool) {
		t.Helper()
		return attachTo(t, path, cmd.Process.Pid, vs)
	}
}

// attachTo attaches the server and client instrumentations to process pid
// running path, and returns tracedWithin's wait function.
func attachTo(t testing.TB, path string, pid int, vs map[offsets.FieldID]offsets.Value) (wait func(n int, timeout time.Duration) ([]httpconv.HTTPEvent, bool)) {
	t.Helper()
	bin, err := gobinary.Open(path)
	require.NoError(t, err)
	defer bin.Close()
	s, err := uprobe.Attach(context.Background(), bin, pid, []uprobe.Instrumentation{server.Instrumentation(), client.Instrumentation()}, vs, nil)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, s.Close()) })

	var mu sync.Mutex
	var evs []httpconv.HTTPEvent
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.Read(ctx, func(ev uprobe.Event) {
			kind := trace.SpanKindServer
			if ev.Instrumentation == client.Instrumentation().Name {
				kind = trace.SpanKindClient
			}
			hev, err := server.DecodeRecord(ev.Record, kind)
			if assert.NoError(t, err) && assert.NoError(t, ev.Err) {
				mu.Lock()
				evs = append(evs, hev)
				mu.Unlock()
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	wait = func(n int, timeout time.Duration) ([]httpconv.HTTPEvent, bool) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			mu.Lock()
			got := len(evs)
			mu.Unlock()
			if got >= n || time.Now().After(deadline) {
				time.Sleep(200 * time.Millisecond) // let any unexpected extra event arrive
				assert.Zero(t, s.Drops(), "dropped records")
				assert.Zero(t, s.InFlightLost(), "returns that found no span")
				mu.Lock()
				defer mu.Unlock()
				return append([]httpconv.HTTPEvent(nil), evs...), got >= n
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return wait
}

// send sends a GET and returns the status, or 0 when no response came.
func send(t *testing.T, url string) int {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// byPath returns the events of the given kind and path.
func byPath(evs []httpconv.HTTPEvent, kind trace.SpanKind, path string) []httpconv.HTTPEvent {
	var out []httpconv.HTTPEvent
	for _, ev := range evs {
		if ev.Kind == kind && ev.Path == path {
			out = append(out, ev)
		}
	}
	return out
}

// A handler that panics (after a client call) yields its server span, with
// the panic and no status, and the client call it made keeps it as parent;
// a panic with http.ErrAbortHandler, which net/http does not log, yields a
// span too, panicked, without status or exception. The requests after them
// on the same goroutines are traced as usual.
func TestAttachEndsSpanOfPanickingHandler(t *testing.T) {
	uprobetest.RequireBPF(t)
	buildTarget(t)
	for name, path := range map[string]string{"plain": target.plain, "stripped": target.stripped} {
		t.Run(name, func(t *testing.T) {
			addr, wait := traced(t, path, target.values)
			const n = 3
			for range n {
				assert.Zero(t, send(t, "http://"+addr+"/panic"), "/panic answered")
				assert.Zero(t, send(t, "http://"+addr+"/abort"), "/abort answered")
				assert.Equal(t, http.StatusOK, send(t, "http://"+addr+"/backend"))
			}
			// Per /panic: its span, its client call and the backend's span;
			// per /abort and /backend: its span.
			evs := wait(5 * n)
			aborts := byPath(evs, trace.SpanKindServer, "/abort")
			assert.Len(t, aborts, n, "spans of a handler aborted with http.ErrAbortHandler")
			for _, ev := range aborts {
				assert.True(t, ev.Panicked, "/abort")
				assert.Nil(t, ev.Exception, "/abort: not logged")
				assert.Zero(t, ev.StatusCode, "/abort")
				assert.Equal(t, "/abort", ev.Route)
			}
			panics := byPath(evs, trace.SpanKindServer, "/panic")
			require.Len(t, panics, n)
			bySpan := make(map[trace.SpanID]httpconv.HTTPEvent)
			for _, ev := range panics {
				assert.True(t, ev.Panicked)
				assert.Zero(t, ev.StatusCode)
				assert.Equal(t, "GET", ev.Method)
				assert.Equal(t, "/panic", ev.Route)
				assert.True(t, ev.End.After(ev.Start))
				bySpan[ev.SpanID] = ev
			}
			calls := byPath(evs, trace.SpanKindClient, "/backend")
			require.Len(t, calls, n)
			for _, ev := range calls {
				parent, ok := bySpan[ev.ParentSpanID]
				if assert.True(t, ok, "client span %v has no /panic span as parent", ev.ParentSpanID) {
					assert.Equal(t, parent.TraceID, ev.TraceID)
					assert.False(t, ev.End.After(parent.End), "client span ends after its parent")
				}
			}
			backends := byPath(evs, trace.SpanKindServer, "/backend")
			require.Len(t, backends, 2*n)
			for _, ev := range backends {
				assert.False(t, ev.Panicked)
				assert.Equal(t, http.StatusOK, ev.StatusCode)
				assert.False(t, ev.ParentSpanID.IsValid(), "no context is propagated: %+v", ev)
			}
		})
	}
}

// A handler that writes nothing gets the 200 net/http answers with; one
// that hijacks the connection gets no status, and is marked hijacked: told
// apart by the probe on (*response).Hijack, which needs no field offsets,
// so a stripped binary read from the database alone gets both too.
func TestAttachReportsStatusOfEmptyAndHijackingHandlers(t *testing.T) {
	uprobetest.RequireBPF(t)
	buildTarget(t)
	for _, tt := range []struct {
		name   string
		path   string
		values map[offsets.FieldID]offsets.Value
	}{
		{"plain", target.plain, target.values},
		{"stripped", target.stripped, resolveLikeTheTracer(t, target.stripped)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr, wait := traced(t, tt.path, tt.values)
			const n = 3
			for range n {
				assert.Equal(t, http.StatusOK, send(t, "http://"+addr+"/empty"))
				assert.Equal(t, http.StatusNoContent, send(t, "http://"+addr+"/hijack"))
				assert.Equal(t, http.StatusInternalServerError, send(t, "http://"+addr+"/fail"))
			}
			evs := wait(3 * n)
			require.Len(t, evs, 3*n)
			for _, ev := range byPath(evs, trace.SpanKindServer, "/empty") {
				assert.Equal(t, http.StatusOK, ev.StatusCode, "/empty")
				assert.False(t, ev.Hijacked || ev.Panicked)
			}
			for _, ev := range byPath(evs, trace.SpanKindServer, "/hijack") {
				assert.Zero(t, ev.StatusCode, "/hijack")
				assert.True(t, ev.Hijacked, "/hijack")
			}
			for _, ev := range byPath(evs, trace.SpanKindServer, "/fail") {
				assert.Equal(t, http.StatusInternalServerError, ev.StatusCode, "/fail")
				assert.False(t, ev.Hijacked)
			}
		})
	}
}

// Paths and queries are read up to 1 KiB each; a longer one is cut at
// 1 KiB and marked cut. The value of a sensitive query key (sig) cut short
// is still redacted in url.query.
func TestAttachReadsLongPathsAndMarksCutOnes(t *testing.T) {
	uprobetest.RequireBPF(t)
	buildTarget(t)
	addr, wait := traced(t, target.plain, target.values)
	fits := "/long/" + strings.Repeat("f", 1000)  // 1006 bytes
	cut := "/long/" + strings.Repeat("c", 1100)   // 1106 bytes
	fitsQuery := "q=" + strings.Repeat("1", 1022) // 1024 bytes
	// 2007 bytes, cut in the value of sig:
	cutQuery := "q=" + strings.Repeat("2", 1000) + "&sig=" + strings.Repeat("s", 1000)
	require.Equal(t, http.StatusOK, send(t, "http://"+addr+fits+"?"+fitsQuery))
	require.Equal(t, http.StatusOK, send(t, "http://"+addr+cut+"?"+cutQuery))
	require.Equal(t, http.StatusOK, send(t, "http://"+addr+cut))
	evs := wait(3)
	require.Len(t, evs, 3)
	assert.Equal(t, fits, evs[0].Path)
	assert.Equal(t, fitsQuery, evs[0].Query)
	assert.False(t, evs[0].PathCut || evs[0].QueryCut)
	assert.Equal(t, cut[:1024], evs[1].Path)
	assert.Equal(t, cutQuery[:1024], evs[1].Query)
	assert.True(t, evs[1].PathCut && evs[1].QueryCut)
	var described spans.Span
	require.NoError(t, httpconv.Describe(&evs[1], &described))
	assert.Contains(t, described.Attributes, semconv.URLQuery(cutQuery[:len("q=")+1000+len("&sig=")]+"REDACTED"))
	assert.Equal(t, cut[:1024], evs[2].Path)
	assert.Empty(t, evs[2].Query)
	assert.True(t, evs[2].PathCut)
	assert.False(t, evs[2].QueryCut)
	for _, ev := range evs {
		assert.Equal(t, http.StatusOK, ev.StatusCode)
		assert.Equal(t, "/long/", ev.Route)
	}
}
