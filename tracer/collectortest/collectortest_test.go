package collectortest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/tracer/otlptest"
)

// TestCollectorForwardsSpansIntact sends spans with the OpenTelemetry Go
// SDK to a real collector, over each OTLP protocol and through two
// collectors in a row, and checks that the receiver behind it gets them
// with ids, parents, kinds, attributes, status and resource unchanged.
func TestCollectorForwardsSpansIntact(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the OpenTelemetry Collector")
	}
	tests := []struct {
		name     string
		exporter func(t *testing.T, col *Collector) sdktrace.SpanExporter
		chain    bool // through a second collector
	}{
		{name: "otlp-http", exporter: httpExporter},
		{name: "otlp-grpc", exporter: grpcExporter},
		{name: "otlp-http-through-two-collectors", exporter: httpExporter, chain: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rcv := otlptest.NewHTTP(t)
			col := Start(t, rcv.Endpoint(), DebugVerbosity("normal"))
			if tt.chain {
				col = Start(t, col.HTTPEndpoint(), DebugVerbosity(""))
			}
			service := "collectortest-" + tt.name
			sent := sendSpans(t, tt.exporter(t, col), service)

			got := rcv.WaitForSpans(t, len(sent), time.Minute)
			require.Len(t, got, len(sent))
			byID := map[string]otlptest.Span{}
			for _, s := range got {
				byID[s.SpanID] = s
			}
			for _, want := range sent {
				s, ok := byID[want.SpanContext().SpanID().String()]
				require.True(t, ok, "span %q did not arrive", want.Name())
				assert.Equal(t, want.Name(), s.Name)
				assert.Equal(t, want.SpanContext().TraceID().String(), s.TraceID, "trace id of %q", want.Name())
				if want.Parent().IsValid() {
					assert.Equal(t, want.Parent().SpanID().String(), s.ParentSpanID, "parent of %q", want.Name())
				} else {
					assert.Empty(t, s.ParentSpanID, "parent of %q", want.Name())
				}
				assert.Equal(t, want.SpanKind().String(), s.Kind)
				assert.Equal(t, want.StartTime().UnixNano(), s.Start.UnixNano())
				assert.Equal(t, want.EndTime().UnixNano(), s.End.UnixNano())
				wantAttrs := map[string]any{}
				for _, kv := range want.Attributes() {
					wantAttrs[string(kv.Key)] = attrValue(kv.Value)
				}
				assert.Equal(t, wantAttrs, s.Attributes, "attributes of %q", want.Name())
				assert.Equal(t, statusName(want.Status().Code), s.StatusCode)
				assert.Equal(t, want.Status().Description, s.StatusMessage)
				assert.Equal(t, service, s.Resource["service.name"])
				assert.Equal(t, "collectortest", s.Scope)
				assert.Equal(t, "v1.2.3", s.ScopeVersion)
			}
			require.NoError(t, col.Stop())
			assert.Contains(t, col.Logs(), "Everything is ready")
		})
	}
}

func httpExporter(t *testing.T, col *Collector) sdktrace.SpanExporter {
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(col.HTTPEndpoint()+otlptest.TracesPath))
	require.NoError(t, err)
	return exp
}

func grpcExporter(t *testing.T, col *Collector) sdktrace.SpanExporter {
	exp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpointURL(col.GRPCEndpoint()))
	require.NoError(t, err)
	return exp
}

// sendSpans exports a small trace (a server span with a client child that
// failed, and an internal grandchild) plus a span continuing a remote
// parent, and returns the spans as the SDK ended them.
func sendSpans(t *testing.T, exp sdktrace.SpanExporter, service string) []sdktrace.ReadOnlySpan {
	t.Helper()
	rec := &recorder{}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSyncer(exp),
		sdktrace.WithSpanProcessor(rec),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service))),
	)
	tr := tp.Tracer("collectortest", trace.WithInstrumentationVersion("v1.2.3"))

	ctx, root := tr.Start(context.Background(), "GET /items/{id}", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			attribute.String("http.request.method", "GET"),
			attribute.Int("http.response.status_code", 200),
			attribute.Float64("ratio", 0.25),
			attribute.Bool("cached", true),
			attribute.StringSlice("tags", []string{"a", "b"}),
			attribute.Int64Slice("sizes", []int64{1, 2}),
		))
	cctx, client := tr.Start(ctx, "GET", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("url.full", "http://127.0.0.1:1/backend?item=1")))
	_, inner := tr.Start(cctx, "decode", trace.WithAttributes(attribute.Int("bytes", 42)))
	inner.End()
	client.SetStatus(codes.Error, "backend unavailable")
	client.End()
	root.SetStatus(codes.Ok, "")
	root.End()

	remote := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
		Remote:     true,
	})
	_, cont := tr.Start(trace.ContextWithRemoteSpanContext(context.Background(), remote), "POST /continue",
		trace.WithSpanKind(trace.SpanKindServer))
	cont.End()

	require.NoError(t, tp.Shutdown(context.Background()))
	require.Len(t, rec.spans, 4)
	return rec.spans
}

// recorder keeps the spans the SDK ends.
type recorder struct{ spans []sdktrace.ReadOnlySpan }

func (r *recorder) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (r *recorder) OnEnd(s sdktrace.ReadOnlySpan)                   { r.spans = append(r.spans, s) }
func (r *recorder) Shutdown(context.Context) error                  { return nil }
func (r *recorder) ForceFlush(context.Context) error                { return nil }

// attrValue is v as otlptest decodes it.
func attrValue(v attribute.Value) any {
	switch v.Type() {
	case attribute.BOOL:
		return v.AsBool()
	case attribute.INT64:
		return v.AsInt64()
	case attribute.FLOAT64:
		return v.AsFloat64()
	case attribute.STRING:
		return v.AsString()
	case attribute.STRINGSLICE:
		var out []any
		for _, s := range v.AsStringSlice() {
			out = append(out, s)
		}
		return out
	case attribute.INT64SLICE:
		var out []any
		for _, i := range v.AsInt64Slice() {
			out = append(out, i)
		}
		return out
	}
	return v.String()
}

// statusName is c as otlptest spells it.
func statusName(c codes.Code) string {
	switch c {
	case codes.Ok:
		return "ok"
	case codes.Error:
		return "error"
	}
	return "unset"
}
