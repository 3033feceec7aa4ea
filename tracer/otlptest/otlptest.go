// Package otlptest is a real OTLP trace receiver for tests: it serves
// OTLP/HTTP (protobuf or JSON, optionally gzip-compressed) or OTLP/gRPC on the
// loopback interface, decodes what exporters send with the collector's pdata,
// and hands the spans back as plain values to assert on.
//
// It is a normal package so that end-to-end tests elsewhere can point the
// official exporters at it through OTEL_EXPORTER_OTLP_ENDPOINT.
package otlptest

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	_ "google.golang.org/grpc/encoding/gzip" // accept OTEL_EXPORTER_OTLP_COMPRESSION=gzip over gRPC
)

// TracesPath is the OTLP/HTTP path for traces.
const TracesPath = "/v1/traces"

// maxBodyBytes bounds one OTLP/HTTP request body, decompressed.
const maxBodyBytes = 64 << 20

// Span is one received span, decoded off the wire.
type Span struct {
	Name          string
	TraceID       string // lower-case hex
	SpanID        string // lower-case hex
	ParentSpanID  string // lower-case hex, "" for a root span
	Kind          string // "server", "client", "internal", "producer", "consumer" or "unspecified"
	Start, End    time.Time
	Attributes    map[string]any // string, int64, float64, bool, []byte, []any or map[string]any
	StatusCode    string         // "unset", "ok" or "error"
	StatusMessage string
	Resource      map[string]any // the resource's attributes
	Scope         string         // instrumentation scope name
	ScopeVersion  string
	SchemaURL     string // the scope's schema URL
}

// Receiver collects the spans OTLP exporters send to it. It is safe for
// concurrent use.
type Receiver struct {
	endpoint string

	mu      sync.Mutex
	spans   []Span
	changed chan struct{} // closed and replaced whenever spans grow
}

func newReceiver() *Receiver {
	return &Receiver{changed: make(chan struct{})}
}

// NewHTTP starts an OTLP/HTTP receiver on 127.0.0.1 for the duration of the
// test. It accepts POST /v1/traces with application/x-protobuf or
// application/json bodies, optionally with Content-Encoding: gzip.
func NewHTTP(t testing.TB) *Receiver {
	t.Helper()
	r := newReceiver()
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+TracesPath, r.serveHTTP)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	r.endpoint = srv.URL
	return r
}

// NewGRPC starts an OTLP/gRPC receiver (plaintext) on 127.0.0.1 for the
// duration of the test.
func NewGRPC(t testing.TB) *Receiver {
	t.Helper()
	r := newReceiver()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("otlptest: listen for OTLP/gRPC: %v", err)
	}
	srv := grpc.NewServer()
	ptraceotlp.RegisterGRPCServer(srv, &grpcTraces{r: r})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	r.endpoint = "http://" + lis.Addr().String()
	return r
}

// Endpoint returns the receiver's base URL ("http://127.0.0.1:PORT"), the
// value for OTEL_EXPORTER_OTLP_ENDPOINT; the http scheme makes the gRPC
// exporter connect without TLS.
func (r *Receiver) Endpoint() string { return r.endpoint }

// TracesURL returns the full OTLP/HTTP traces URL, the value for
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (which exporters use as is).
func (r *Receiver) TracesURL() string { return r.endpoint + TracesPath }

// Spans returns the spans received so far, in arrival order.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// WaitForSpans waits until at least n spans have arrived and returns all
// spans received so far. It fails the test, naming what did arrive, when
// timeout passes first. Call it from the test's goroutine.
func (r *Receiver) WaitForSpans(t testing.TB, n int, timeout time.Duration) []Span {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		r.mu.Lock()
		if len(r.spans) >= n {
			spans := append([]Span(nil), r.spans...)
			r.mu.Unlock()
			return spans
		}
		changed := r.changed
		r.mu.Unlock()
		select {
		case <-changed:
		case <-timer.C:
			spans := r.Spans()
			names := make([]string, len(spans))
			for i, s := range spans {
				names[i] = s.Name
			}
			t.Fatalf("otlptest: waited %s for %d spans at %s, got %d: %q", timeout, n, r.endpoint, len(spans), names)
			return nil
		}
	}
}

// add records the spans of one export request.
func (r *Receiver) add(td ptrace.Traces) {
	spans := convert(td)
	if len(spans) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.spans = append(r.spans, spans...)
	close(r.changed)
	r.changed = make(chan struct{})
}

// serveHTTP handles one OTLP/HTTP export request.
func (r *Receiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	contentType, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	var body io.Reader = http.MaxBytesReader(w, req.Body, maxBodyBytes)
	switch enc := strings.ToLower(req.Header.Get("Content-Encoding")); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			http.Error(w, fmt.Sprintf("read gzip body: %v", err), http.StatusBadRequest)
			return
		}
		defer zr.Close()
		body = io.LimitReader(zr, maxBodyBytes)
	default:
		http.Error(w, fmt.Sprintf("unsupported Content-Encoding %q", enc), http.StatusUnsupportedMediaType)
		return
	}
	data, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, fmt.Sprintf("read body: %v", err), http.StatusBadRequest)
		return
	}

	request := ptraceotlp.NewExportRequest()
	response := ptraceotlp.NewExportResponse()
	var out []byte
	switch contentType {
	case "application/x-protobuf":
		if err = request.UnmarshalProto(data); err == nil {
			out, err = response.MarshalProto()
		}
	case "application/json":
		if err = request.UnmarshalJSON(data); err == nil {
			out, err = response.MarshalJSON()
		}
	default:
		http.Error(w, fmt.Sprintf("unsupported Content-Type %q", contentType), http.StatusUnsupportedMediaType)
		return
	}
	if err != nil {
		http.Error(w, fmt.Sprintf("decode OTLP %s export request: %v", contentType, err), http.StatusBadRequest)
		return
	}
	r.add(request.Traces())
	w.Header().Set("Content-Type", contentType)
	_, _ = w.Write(out)
}

// grpcTraces is the OTLP/gRPC trace service of a Receiver.
type grpcTraces struct {
	ptraceotlp.UnimplementedGRPCServer
	r *Receiver
}

// Export records the spans of one OTLP/gRPC export request.
func (g *grpcTraces) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	g.r.add(req.Traces())
	return ptraceotlp.NewExportResponse(), nil
}

// convert flattens td into Spans.
func convert(td ptrace.Traces) []Span {
	var out []Span
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		rs := td.ResourceSpans().At(i)
		resource := rs.Resource().Attributes().AsRaw()
		for j := 0; j < rs.ScopeSpans().Len(); j++ {
			ss := rs.ScopeSpans().At(j)
			for k := 0; k < ss.Spans().Len(); k++ {
				s := ss.Spans().At(k)
				out = append(out, Span{
					Name:          s.Name(),
					TraceID:       s.TraceID().String(),
					SpanID:        s.SpanID().String(),
					ParentSpanID:  s.ParentSpanID().String(),
					Kind:          kindName(s.Kind()),
					Start:         s.StartTimestamp().AsTime(),
					End:           s.EndTimestamp().AsTime(),
					Attributes:    s.Attributes().AsRaw(),
					StatusCode:    strings.ToLower(s.Status().Code().String()),
					StatusMessage: s.Status().Message(),
					Resource:      resource,
					Scope:         ss.Scope().Name(),
					ScopeVersion:  ss.Scope().Version(),
					SchemaURL:     ss.SchemaUrl(),
				})
			}
		}
	}
	return out
}

// kindName returns the lower-case name of k, as trace.SpanKind spells it.
func kindName(k ptrace.SpanKind) string {
	switch k {
	case ptrace.SpanKindServer:
		return "server"
	case ptrace.SpanKindClient:
		return "client"
	case ptrace.SpanKindInternal:
		return "internal"
	case ptrace.SpanKindProducer:
		return "producer"
	case ptrace.SpanKindConsumer:
		return "consumer"
	}
	return "unspecified"
}
