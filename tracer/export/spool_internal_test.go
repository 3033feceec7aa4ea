package export

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestSegmentKeepsEverySpanField: a span read back from a segment has every
// field the OTLP exporter reads, equal to what was written: ids, flags,
// trace state, parent, kind, times, status, every attribute type, events,
// links, resource and scope.
func TestSegmentKeepsEverySpanField(t *testing.T) {
	ts, err := trace.ParseTraceState("vendor=abc,other=1")
	require.NoError(t, err)
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5},
		TraceFlags: trace.FlagsSampled, TraceState: ts})
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{9}, TraceFlags: trace.FlagsSampled, Remote: true})
	link := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{7}, SpanID: trace.SpanID{8}})
	start := time.Date(2026, 11, 30, 10, 0, 0, 123456789, time.UTC)
	attrs := []attribute.KeyValue{attribute.Bool("b", true), attribute.Int64("i", -42), attribute.Float64("f", 1.5),
		attribute.String("s", "x"), attribute.BoolSlice("bs", []bool{true, false}), attribute.Int64Slice("is", []int64{1, 2}),
		attribute.Float64Slice("fs", []float64{0.25}), attribute.StringSlice("ss", []string{"a", "b"})}
	want := tracetest.SpanStub{
		Name: "GET /items/{id}", SpanContext: sc, Parent: parent, SpanKind: trace.SpanKindServer,
		StartTime: start, EndTime: start.Add(1500 * time.Microsecond), Attributes: attrs, DroppedAttributes: 2,
		Events:               []sdktrace.Event{{Name: "exception", Time: start.Add(time.Millisecond), Attributes: []attribute.KeyValue{attribute.String("exception.type", "runtime.Error")}, DroppedAttributeCount: 1}},
		Links:                []sdktrace.Link{{SpanContext: link, Attributes: []attribute.KeyValue{attribute.Int64("n", 3)}}},
		DroppedEvents:        3,
		DroppedLinks:         4,
		Status:               sdktrace.Status{Code: codes.Error, Description: "HTTP 500"},
		ChildSpanCount:       5,
		Resource:             resource.NewWithAttributes("https://opentelemetry.io/schemas/1.43.0", attribute.String("service.name", "checkout"), attribute.Int64("process.pid", 42)),
		InstrumentationScope: instrumentation.Scope{Name: "offsetdb/nethttp", Version: "v1", SchemaURL: "https://x", Attributes: attribute.NewSet(attribute.String("k", "v"))},
	}
	path := filepath.Join(t.TempDir(), "a.spool")
	size, err := writeSegment(path, []sdktrace.ReadOnlySpan{want.Snapshot(), want.Snapshot()})
	require.NoError(t, err)
	n, gotSize, err := readSegmentHeader(path)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	assert.Equal(t, size, gotSize)
	got, err := readSegment(path)
	require.NoError(t, err)
	require.Len(t, got, 2)
	stub := tracetest.SpanStubFromReadOnlySpan(got[1])
	assert.True(t, stub.StartTime.Equal(want.StartTime) && stub.EndTime.Equal(want.EndTime))
	stub.StartTime, stub.EndTime = want.StartTime, want.EndTime
	stub.Events[0].Time = want.Events[0].Time
	assert.Equal(t, want.Resource.Attributes(), stub.Resource.Attributes())
	assert.Equal(t, want.Resource.SchemaURL(), stub.Resource.SchemaURL())
	stub.Resource = want.Resource
	//lint:ignore SA1019 the stub fills the deprecated alias from the scope
	stub.InstrumentationLibrary = want.InstrumentationLibrary
	assert.Equal(t, want, stub)
}
