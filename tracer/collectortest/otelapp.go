package collectortest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// OtelHTTPVersion is the release of otelhttp
// (go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp) that
// otelapp is built with; testdata/otelapp/go.mod pins it.
const OtelHTTPVersion = "v0.72.0"

// otelappFiles are the files of the otelapp module, in testdata/otelapp.
var otelappFiles = []string{"main.go", "go.mod", "go.sum"}

// Echo is what `otelapp server` answers to every request: the request as
// its handler received it (after otelhttp.NewHandler) and the server span
// that otelhttp started for it. Decode the response body into it.
type Echo struct {
	Method        string              `json:"method"`
	RequestURI    string              `json:"request_uri"`
	Host          string              `json:"host"`
	Proto         string              `json:"proto"`
	ContentLength int64               `json:"content_length"`
	Body          string              `json:"body"`
	Headers       map[string][]string `json:"headers"` // as net/http canonicalised them
	TraceID       string              `json:"trace_id"`
	SpanID        string              `json:"span_id"`
	ParentSpanID  string              `json:"parent_span_id,omitempty"` // the remote parent, "" for a new trace
	Sampled       bool                `json:"sampled"`
}

// BuildOtelApp returns the path of otelapp, a program instrumented with
// the OpenTelemetry Go SDK and otelhttp [OtelHTTPVersion], built with the
// installed go command from testdata/otelapp (a module of its own, so that
// its dependencies stay out of offsetdb's go.mod):
//
//	otelapp client -url URL [-n N]  # N GETs to URL ("{i}" in it becomes 0..N-1),
//	                                # each in its own SDK root span; prints each trace id
//	otelapp server -listen ADDR     # prints "listening on HOST:PORT", answers 200
//	                                # with an Echo of each request, as JSON
//
// Both export over OTLP/HTTP as the OTEL_* environment says
// (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER,
// OTEL_BSP_SCHEDULE_DELAY, ...), propagate W3C tracecontext and baggage,
// and flush their spans when they exit, on SIGTERM too. See
// testdata/otelapp/main.go.
//
// The binary is cached beside the collector, in
// <user cache dir>/offsetdb-test/otelapp/<hash>/, keyed by the module's
// files and the go command's version; a cold build takes a minute of CPU
// (measured at 6 minutes of wall time on two busy cores).
// It skips the test only when the module proxy is unreachable.
func BuildOtelApp(tb testing.TB) string {
	tb.Helper()
	src, err := otelappDir()
	if err != nil {
		tb.Fatalf("collectortest: %v", err)
	}
	parts := [][]byte{[]byte(OtelHTTPVersion)}
	for _, name := range otelappFiles {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			tb.Fatalf("collectortest: %v", err)
		}
		parts = append(parts, []byte(name), b)
	}
	env := newGoEnv(tb)
	parts = append(parts, []byte(env.version))
	entry := filepath.Join(env.base, "otelapp", hashOf(parts...))
	bin := filepath.Join(entry, "otelapp")
	return cacheEntry(tb, entry, bin, func(ctx context.Context, tmp string) error {
		checkProxy(ctx, tb, env.base, "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp", OtelHTTPVersion)
		cmd := exec.CommandContext(ctx, env.gocmd, "build", "-trimpath", "-o", filepath.Join(tmp, "bin"), ".")
		cmd.Dir = src
		cmd.Env = env.environ(tmp, "-mod=readonly")
		if out, err := cmd.CombinedOutput(); err != nil {
			if unreachable(string(out)) {
				tb.Skipf("SKIPPED: module proxy unreachable while building otelapp: %s", out)
			}
			return fmt.Errorf("build otelapp: %w\n%s", err, out)
		}
		return nil
	})
}

// otelappDir returns the directory of otelapp's source. A module of its
// own cannot be embedded, so it is found beside this file.
func otelappDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return "", fmt.Errorf("cannot locate testdata/otelapp from %q (built with -trimpath?)", file)
	}
	return filepath.Join(filepath.Dir(file), "testdata", "otelapp"), nil
}
