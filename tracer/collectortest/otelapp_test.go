package collectortest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/tracer/otlptest"
)

// traceparentRE is a well-formed W3C traceparent of version 00.
var traceparentRE = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$`)

// TestOtelAppClientAndServerFormOneTrace runs otelapp's client against
// otelapp's server, both exporting through a real collector, and checks
// that every request is one trace: the client's root span, its otelhttp
// client span under it, and the server's span under that.
func TestOtelAppClientAndServerFormOneTrace(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the OpenTelemetry Collector and otelapp")
	}
	app := BuildOtelApp(t)
	rcv := otlptest.NewHTTP(t)
	col := Start(t, rcv.Endpoint(), DebugVerbosity("basic"))

	addr := startOtelAppServer(t, app, col.HTTPEndpoint(), "otelapp-server")
	const n = 3
	out := runOtelApp(t, app, col.HTTPEndpoint(), "otelapp-client", "client", "-url", "http://"+addr+"/items/{i}", "-n", fmt.Sprint(n))
	traceIDs := strings.Fields(out)
	require.Len(t, traceIDs, n, "client output: %q", out)

	spans := rcv.WaitForSpans(t, 3*n, time.Minute)
	require.Len(t, spans, 3*n)
	for i, id := range traceIDs {
		var root, client, server *otlptest.Span
		for j := range spans {
			s := &spans[j]
			if s.TraceID != id {
				continue
			}
			switch s.Kind {
			case "internal":
				root = s
			case "client":
				client = s
			case "server":
				server = s
			}
		}
		require.NotNil(t, root, "trace %s: no client root span", id)
		require.NotNil(t, client, "trace %s: no otelhttp client span", id)
		require.NotNil(t, server, "trace %s: no otelhttp server span", id)
		assert.Equal(t, "otelapp.client", root.Name)
		assert.Empty(t, root.ParentSpanID)
		assert.Equal(t, root.SpanID, client.ParentSpanID)
		assert.Equal(t, client.SpanID, server.ParentSpanID)
		assert.Equal(t, "otelapp-client", root.Resource["service.name"])
		assert.Equal(t, "otelapp-client", client.Resource["service.name"])
		assert.Equal(t, "otelapp-server", server.Resource["service.name"])
		assert.Equal(t, fmt.Sprintf("/items/%d", i), server.Attributes["url.path"])
		assert.Equal(t, "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp", server.Scope)
		assert.Equal(t, strings.TrimPrefix(OtelHTTPVersion, "v"), server.ScopeVersion)
	}
}

// TestOtelAppClientSendsOneTraceparent points otelapp's client at a plain
// server and checks that each request carries exactly one well-formed
// traceparent, for the trace id the client printed.
func TestOtelAppClientSendsOneTraceparent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds otelapp")
	}
	app := BuildOtelApp(t)
	var mu sync.Mutex
	var got []http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Clone())
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)

	cmd := exec.Command(app, "client", "-url", srv.URL+"/x", "-n", "2")
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	out, err := cmd.Output()
	require.NoError(t, err, "%s", stderrOf(err))
	traceIDs := strings.Fields(string(out))
	require.Len(t, traceIDs, 2)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, 2)
	for i, h := range got {
		require.Len(t, h.Values("Traceparent"), 1, "request %d headers: %v", i, h)
		m := traceparentRE.FindStringSubmatch(h.Get("Traceparent"))
		require.NotNil(t, m, "malformed traceparent %q", h.Get("Traceparent"))
		assert.Equal(t, traceIDs[i], m[1])
		assert.True(t, strings.HasSuffix(h.Get("Traceparent"), "-01"), "sampled flag")
	}
}

// TestOtelAppServerEchoesRequest sends requests with and without a
// traceparent to otelapp's server and checks the echo: the headers as
// sent, and a server span continuing the incoming context.
func TestOtelAppServerEchoesRequest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds otelapp")
	}
	app := BuildOtelApp(t)
	addr := startOtelAppServer(t, app, "", "")
	tests := []struct {
		name        string
		traceparent string
		wantParent  bool
		wantSampled bool
	}{
		{name: "sampled-parent", traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", wantParent: true, wantSampled: true},
		{name: "unsampled-parent", traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", wantParent: true},
		{name: "no-parent", wantSampled: true},
		{name: "invalid-parent", traceparent: "00-00000000000000000000000000000000-00f067aa0ba902b7-01", wantSampled: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/echo?q=1", strings.NewReader("hello"))
			require.NoError(t, err)
			req.Header.Set("X-Test", "a")
			req.Header.Add("X-Test", "b")
			if tt.traceparent != "" {
				req.Header.Set("Traceparent", tt.traceparent)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			var e Echo
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))

			assert.Equal(t, "POST", e.Method)
			assert.Equal(t, "/echo?q=1", e.RequestURI)
			assert.Equal(t, addr, e.Host)
			assert.Equal(t, "HTTP/1.1", e.Proto)
			assert.Equal(t, "hello", e.Body)
			assert.Equal(t, int64(5), e.ContentLength)
			assert.Equal(t, []string{"a", "b"}, e.Headers["X-Test"])
			if tt.traceparent != "" {
				assert.Equal(t, []string{tt.traceparent}, e.Headers["Traceparent"])
			} else {
				assert.NotContains(t, e.Headers, "Traceparent")
			}
			assert.Regexp(t, "^[0-9a-f]{32}$", e.TraceID)
			assert.Regexp(t, "^[0-9a-f]{16}$", e.SpanID)
			if tt.wantParent {
				assert.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", e.TraceID)
				assert.Equal(t, "00f067aa0ba902b7", e.ParentSpanID)
			} else {
				assert.NotEqual(t, "00000000000000000000000000000000", e.TraceID)
				assert.Empty(t, e.ParentSpanID)
			}
			assert.Equal(t, tt.wantSampled, e.Sampled)
		})
	}
}

// startOtelAppServer starts `otelapp server` on a free port, exporting to
// endpoint (nothing when ""), and returns its address. It is stopped with
// SIGTERM when the test ends and must then exit 0.
func startOtelAppServer(t *testing.T, app, endpoint, service string) string {
	t.Helper()
	cmd := exec.Command(app, "server", "-listen", "127.0.0.1:0")
	cmd.Env = otelEnv(endpoint, service)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			assert.NoError(t, err, "otelapp server: %s", stderr.String())
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("otelapp server did not exit within 20s of SIGTERM")
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	go func() { exited <- cmd.Wait() }()
	require.NoError(t, err, "otelapp server: %s", stderr.String())
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	require.True(t, ok, "otelapp server printed %q", line)
	return addr
}

// runOtelApp runs otelapp with args, exporting to endpoint, and returns
// its standard output; it must exit 0.
func runOtelApp(t *testing.T, app, endpoint, service string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, app, args...)
	cmd.Env = otelEnv(endpoint, service)
	out, err := cmd.Output()
	require.NoError(t, err, "otelapp %v: %s", args, stderrOf(err))
	return string(out)
}

// otelEnv is the environment for otelapp: export to endpoint over
// OTLP/HTTP as service, or nothing when endpoint is "".
func otelEnv(endpoint, service string) []string {
	env := append(os.Environ(), "OTEL_BSP_SCHEDULE_DELAY=100")
	if endpoint == "" {
		return append(env, "OTEL_TRACES_EXPORTER=none")
	}
	return append(env, "OTEL_EXPORTER_OTLP_ENDPOINT="+endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf", "OTEL_SERVICE_NAME="+service)
}

// stderrOf returns the standard error captured in an *exec.ExitError.
func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}
