package spans_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/tracer/instrumentation/nethttp/httpconv"
	"github.com/offsetdb/offsetdb/tracer/otlptest"
	"github.com/offsetdb/offsetdb/tracer/spans"
)

var (
	traceID  = trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	serverID = trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}
	clientID = trace.SpanID{0x53, 0x99, 0x5c, 0x3f, 0x42, 0xcd, 0x8a, 0xd8}
	failedID = trace.SpanID{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88}
	remoteID = trace.SpanID{0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8}
	otherTID = trace.TraceID{0xee, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	otherSID = trace.SpanID{0xee, 1, 2, 3, 4, 5, 6, 7}
	t0       = time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC)
)

// recordCase is one event and what must arrive at the receiver for it.
type recordCase struct {
	name       string
	ev         httpconv.HTTPEvent
	wantName   string
	wantKind   string
	wantParent string
	wantAttrs  map[string]any
	wantStatus string
	wantMsg    string
}

// recordCases are a server span with a child client span, a failed client
// span in the same trace, and an unrelated server span with a remote parent.
func recordCases() []recordCase {
	return []recordCase{
		{
			name: "server span is the trace root",
			ev: httpconv.HTTPEvent{Kind: trace.SpanKindServer, Start: t0, End: t0.Add(3 * time.Millisecond),
				TraceID: traceID, SpanID: serverID, Method: "GET", Host: "shop.example:8080", Path: "/items/42",
				Query: "color=red", Route: "GET /items/{id}", RemoteAddr: "10.0.0.7:51234", ProtoMajor: 1, ProtoMinor: 1,
				StatusCode: 200},
			wantName: "GET /items/{id}", wantKind: "server", wantStatus: "unset",
			wantAttrs: map[string]any{
				"http.request.method": "GET", "http.route": "/items/{id}", "url.path": "/items/42", "url.query": "color=red",
				"url.scheme": "http", "server.address": "shop.example", "server.port": int64(8080),
				"client.address": "10.0.0.7", "client.port": int64(51234), "network.protocol.version": "1.1",
				"http.response.status_code": int64(200),
			},
		},
		{
			name: "client span is the server span's child",
			ev: httpconv.HTTPEvent{Kind: trace.SpanKindClient, Start: t0.Add(time.Millisecond), End: t0.Add(2 * time.Millisecond),
				TraceID: traceID, SpanID: clientID, ParentSpanID: serverID, Method: "GET", Scheme: "https",
				Host: "inventory.internal", Path: "/stock/42", ProtoMajor: 2, StatusCode: 503},
			wantName: "GET", wantKind: "client", wantParent: serverID.String(), wantStatus: "error",
			wantAttrs: map[string]any{
				"http.request.method": "GET", "url.full": "https://inventory.internal/stock/42",
				"server.address": "inventory.internal", "server.port": int64(443), "network.protocol.version": "2",
				"http.response.status_code": int64(503), "error.type": "503",
			},
		},
		{
			name: "client span without response",
			ev: httpconv.HTTPEvent{Kind: trace.SpanKindClient, Start: t0.Add(2 * time.Millisecond), End: t0.Add(2*time.Millisecond + 1),
				TraceID: traceID, SpanID: failedID, ParentSpanID: serverID, Method: "POST", Scheme: "http",
				Host: "audit:9000", Path: "/log"},
			wantName: "POST", wantKind: "client", wantParent: serverID.String(), wantStatus: "error", wantMsg: "no response",
			wantAttrs: map[string]any{
				"http.request.method": "POST", "url.full": "http://audit:9000/log", "server.address": "audit",
				"server.port": int64(9000), "error.type": "_OTHER",
			},
		},
		{
			name: "server span continuing a remote trace with an unknown method",
			ev: httpconv.HTTPEvent{Kind: trace.SpanKindServer, Start: t0, End: t0.Add(time.Second),
				TraceID: otherTID, SpanID: otherSID, ParentSpanID: remoteID, Method: "PURGE", Host: "cache",
				Path: "/all", RemoteAddr: "[2001:db8::7]:3333", ProtoMajor: 1, ProtoMinor: 1, StatusCode: 500},
			wantName: "HTTP", wantKind: "server", wantParent: remoteID.String(), wantStatus: "error",
			wantAttrs: map[string]any{
				"http.request.method": "_OTHER", "http.request.method_original": "PURGE", "url.path": "/all",
				"url.scheme": "http", "server.address": "cache", "client.address": "2001:db8::7", "client.port": int64(3333),
				"network.protocol.version": "1.1", "http.response.status_code": int64(500), "error.type": "500",
			},
		},
	}
}

func TestRecordExportsEventSpansOverOTLP(t *testing.T) {
	protocols := []struct {
		name     string
		receiver func(testing.TB) *otlptest.Receiver
		exporter func(context.Context, *otlptest.Receiver) (sdktrace.SpanExporter, error)
	}{
		{
			name:     "http/protobuf",
			receiver: otlptest.NewHTTP,
			exporter: func(ctx context.Context, r *otlptest.Receiver) (sdktrace.SpanExporter, error) {
				return otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(r.TracesURL()))
			},
		},
		{
			name:     "grpc",
			receiver: otlptest.NewGRPC,
			exporter: func(ctx context.Context, r *otlptest.Receiver) (sdktrace.SpanExporter, error) {
				return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(r.Endpoint()))
			},
		},
	}
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			ctx := context.Background()
			receiver := p.receiver(t)
			exporter, err := p.exporter(ctx, receiver)
			require.NoError(t, err)
			tp := sdktrace.NewTracerProvider(sdktrace.WithIDGenerator(spans.IDGenerator()), sdktrace.WithBatcher(exporter))
			rec, err := spans.NewRecorder(tp)
			require.NoError(t, err)

			cases := recordCases()
			for _, c := range cases {
				s, err := c.ev.Span()
				require.NoError(t, err, c.name)
				require.NoError(t, rec.Record(&s), c.name)
			}
			require.NoError(t, tp.Shutdown(ctx), "shutdown flushes the batch")

			got := map[string]otlptest.Span{}
			for _, s := range receiver.WaitForSpans(t, len(cases), 10*time.Second) {
				got[s.SpanID] = s
			}
			require.Len(t, got, len(cases), "one span per event, no probe span")
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					s, ok := got[c.ev.SpanID.String()]
					require.True(t, ok, "span %s not received", c.ev.SpanID)
					assert.Equal(t, c.ev.TraceID.String(), s.TraceID)
					assert.Equal(t, c.wantParent, s.ParentSpanID)
					assert.Equal(t, c.wantName, s.Name)
					assert.Equal(t, c.wantKind, s.Kind)
					assert.Equal(t, c.ev.Start.UnixNano(), s.Start.UnixNano(), "start")
					assert.Equal(t, c.ev.End.UnixNano(), s.End.UnixNano(), "end")
					assert.Equal(t, c.wantAttrs, s.Attributes)
					assert.Equal(t, c.wantStatus, s.StatusCode)
					assert.Equal(t, c.wantMsg, s.StatusMessage)
					assert.Equal(t, spans.ScopeName, s.Scope)
					assert.Equal(t, semconv.SchemaURL, s.SchemaURL)
				})
			}
		})
	}
}

func TestNewRecorderRejectsProviderWithoutIDGenerator(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	_, err := spans.NewRecorder(tp)
	require.ErrorIs(t, err, spans.ErrForeignIDGenerator)
}

func TestRecordRejectsInvalidEvents(t *testing.T) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithIDGenerator(spans.IDGenerator()))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	rec, err := spans.NewRecorder(tp)
	require.NoError(t, err)
	tests := map[string]httpconv.HTTPEvent{
		"zero trace id": {Kind: trace.SpanKindServer, SpanID: serverID},
		"zero span id":  {Kind: trace.SpanKindServer, TraceID: traceID},
		"internal kind": {Kind: trace.SpanKindInternal, TraceID: traceID, SpanID: serverID},
		"unspecified":   {TraceID: traceID, SpanID: serverID},
		"producer kind": {Kind: trace.SpanKindProducer, TraceID: traceID, SpanID: serverID},
	}
	for name, ev := range tests {
		s, err := ev.Span()
		if err == nil {
			err = rec.Record(&s)
		}
		assert.ErrorIs(t, err, spans.ErrInvalidEvent, name)
	}
}

func TestIDGeneratorGivesRandomIDsToOrdinarySpans(t *testing.T) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithIDGenerator(spans.IDGenerator()))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tracer := tp.Tracer("test")
	ctx, a := tracer.Start(context.Background(), "a")
	_, b := tracer.Start(ctx, "b")
	assert.True(t, a.SpanContext().IsValid())
	assert.Equal(t, a.SpanContext().TraceID(), b.SpanContext().TraceID())
	assert.NotEqual(t, a.SpanContext().SpanID(), b.SpanContext().SpanID())
}

// BenchmarkRecord measures building one span through the SDK (attributes,
// name, status, start and end) without export cost: the provider has no
// span processor.
func BenchmarkRecord(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithIDGenerator(spans.IDGenerator()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	rec, err := spans.NewRecorder(tp)
	require.NoError(b, err)
	for _, c := range recordCases()[:2] {
		b.Run(c.wantKind, func(b *testing.B) {
			b.ReportAllocs()
			var s spans.Span
			for b.Loop() {
				if err := httpconv.Describe(&c.ev, &s); err != nil {
					b.Fatal(err)
				}
				if err := rec.Record(&s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A span's events are exported with it: the "exception" event of a
// handler that panicked, at the span's end, with its attributes.
func TestRecordExportsSpanEvents(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithIDGenerator(spans.IDGenerator()), sdktrace.WithSyncer(exp))
	rec, err := spans.NewRecorder(tp)
	require.NoError(t, err)
	ev := httpconv.HTTPEvent{Kind: trace.SpanKindServer, Start: t0, End: t0.Add(time.Millisecond),
		TraceID: traceID, SpanID: serverID, Method: "GET", Path: "/panic", ProtoMajor: 1, ProtoMinor: 1, Panicked: true,
		Exception: &httpconv.Exception{Type: "runtime.plainError", Message: "assignment to entry in nil map", Stacktrace: "goroutine 7 [running]:\n"}}
	s, err := ev.Span()
	require.NoError(t, err)
	require.NoError(t, rec.Record(&s))
	got := exp.GetSpans()
	require.Len(t, got, 1)
	assert.Equal(t, "handler panicked", got[0].Status.Description)
	require.Len(t, got[0].Events, 1)
	e := got[0].Events[0]
	assert.Equal(t, "exception", e.Name)
	assert.Equal(t, ev.End, e.Time)
	assert.Equal(t, []attribute.KeyValue{
		semconv.ExceptionType("runtime.plainError"),
		semconv.ExceptionMessage("assignment to entry in nil map"),
		semconv.ExceptionStacktrace("goroutine 7 [running]:\n"),
	}, e.Attributes)
}
