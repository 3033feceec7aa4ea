package export_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/tracer/export"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/nethttp/httpconv"
	"github.com/offsetdb/offsetdb/tracer/spans"
)

// consoleLines parses out as one JSON object per line.
func consoleLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var objects []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), "line %q", sc.Text())
		objects = append(objects, m)
	}
	require.NoError(t, sc.Err())
	return objects
}

func TestConsoleExporterWritesOneJSONObjectPerSpanPerLine(t *testing.T) {
	setEnv(t, map[string]string{"OTEL_TRACES_EXPORTER": "console"})
	var out bytes.Buffer
	tp, err := export.NewTracerProvider(context.Background(), export.Options{ServiceName: "shop", Console: &out})
	require.NoError(t, err)
	recordAndShutdown(t, tp)

	lines := consoleLines(t, out.String())
	require.Len(t, lines, 2)
	byName := map[string]map[string]any{}
	for _, l := range lines {
		for _, key := range []string{"name", "trace_id", "span_id", "kind", "start", "end", "attributes", "resource"} {
			assert.Contains(t, l, key)
		}
		byName[l["name"].(string)] = l
	}

	root := byName["GET /items/{id}"]
	require.NotNil(t, root, "server span by name")
	assert.Equal(t, rootEvent.TraceID.String(), root["trace_id"])
	assert.Equal(t, rootEvent.SpanID.String(), root["span_id"])
	assert.NotContains(t, root, "parent_span_id", "root span")
	assert.NotContains(t, root, "status", "unset status")
	assert.Equal(t, "server", root["kind"])
	assert.Equal(t, rootEvent.Start.Format(time.RFC3339Nano), root["start"])
	assert.Equal(t, rootEvent.End.Format(time.RFC3339Nano), root["end"])
	assert.Equal(t, map[string]any{"service.name": "shop"}, pick(root["resource"], "service.name"))
	attrs := root["attributes"].(map[string]any)
	assert.Equal(t, "/items/{id}", attrs["http.route"])
	assert.Equal(t, float64(200), attrs["http.response.status_code"])

	child := byName["GET"]
	require.NotNil(t, child, "client span by name")
	assert.Equal(t, rootEvent.SpanID.String(), child["parent_span_id"])
	assert.Equal(t, "client", child["kind"])
	assert.Equal(t, map[string]any{"code": "error", "description": "no response"}, child["status"])
	assert.Equal(t, "http://stock:8080/stock/1", child["attributes"].(map[string]any)["url.full"])
}

// A panicked handler's span, with a remote parent, as the tracer records
// it: the console shows its exception event, trace state, remote parent,
// dropped attribute count and instrumentation scope, as OTLP carries them.
func TestConsoleExporterShowsEventsAndWhatElseOTLPCarries(t *testing.T) {
	setEnv(t, map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "4"})
	var out bytes.Buffer
	tp, err := export.NewTracerProvider(context.Background(), export.Options{ServiceName: "shop", Console: &out})
	require.NoError(t, err)
	rec, err := spans.NewRecorder(tp)
	require.NoError(t, err)
	ev := rootEvent
	ev.ParentSpanID = trace.SpanID{9, 9, 9, 9, 9, 9, 9, 9}
	ev.TraceState = "vendor=a"
	ev.StatusCode, ev.Panicked = 0, true
	ev.Exception = &httpconv.Exception{Type: "string", Message: "panicking on", MessageCut: true,
		Stacktrace: "goroutine 7 [running]:\nmain.handler()"}
	s, err := ev.Span()
	require.NoError(t, err)
	require.Greater(t, len(s.Attributes), 4, "more attributes than the limit")
	require.NoError(t, rec.Record(&s))
	require.NoError(t, tp.Shutdown(context.Background()))

	lines := consoleLines(t, out.String())
	require.Len(t, lines, 1)
	l := lines[0]
	assert.Equal(t, map[string]any{"code": "error", "description": "handler panicked"}, l["status"])
	assert.Equal(t, "0909090909090909", l["parent_span_id"])
	assert.Equal(t, true, l["parent_is_remote"])
	assert.Equal(t, "vendor=a", l["trace_state"])
	assert.Len(t, l["attributes"], 4)
	assert.Equal(t, float64(len(s.Attributes)-4), l["dropped_attributes_count"])
	assert.NotContains(t, l, "dropped_events_count")
	assert.NotContains(t, l, "links", "no links")
	assert.Equal(t, map[string]any{"name": spans.ScopeName, "schema_url": semconv.SchemaURL}, l["scope"])
	assert.Equal(t, []any{map[string]any{
		"name": "exception",
		"time": rootEvent.End.Format(time.RFC3339Nano),
		"attributes": map[string]any{
			"exception.type":       "string",
			"exception.message":    "panicking on",
			"exception.stacktrace": "goroutine 7 [running]:\nmain.handler()",
			"offsetdb.truncated":   []any{"exception.message"},
		},
	}}, l["events"])
}

// Links, dropped counts and the attributes of an event and a link, from
// SDK spans of any origin.
func TestConsoleExporterWritesLinksAndDroppedCounts(t *testing.T) {
	linked := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{7}, SpanID: trace.SpanID{8}})
	stub := tracetest.SpanStub{
		Name:        "batch",
		SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}}),
		SpanKind:    trace.SpanKindConsumer,
		StartTime:   time.Unix(0, 0),
		EndTime:     time.Unix(1, 0),
		Events: []sdktrace.Event{{Name: "retry", Time: time.Unix(0, 5).In(time.FixedZone("x", 3600)),
			Attributes: []attribute.KeyValue{attribute.Int("attempt", 2)}, DroppedAttributeCount: 1}},
		Links: []sdktrace.Link{{SpanContext: linked,
			Attributes: []attribute.KeyValue{attribute.String("messaging.message.id", "m1")}, DroppedAttributeCount: 3}},
		DroppedAttributes:    1,
		DroppedEvents:        2,
		DroppedLinks:         3,
		Resource:             resource.NewSchemaless(semconv.ServiceName("stub")),
		InstrumentationScope: instrumentation.Scope{Name: "lib", Version: "1.2.3"},
	}
	var out bytes.Buffer
	e := export.NewConsoleExporter(&out)
	require.NoError(t, e.ExportSpans(context.Background(), tracetest.SpanStubs{stub}.Snapshots()))
	lines := consoleLines(t, out.String())
	require.Len(t, lines, 1)
	l := lines[0]
	assert.Equal(t, []any{map[string]any{"name": "retry", "time": "1970-01-01T00:00:00.000000005Z",
		"attributes": map[string]any{"attempt": float64(2)}, "dropped_attributes_count": float64(1)}}, l["events"])
	assert.Equal(t, []any{map[string]any{"trace_id": linked.TraceID().String(), "span_id": linked.SpanID().String(),
		"attributes": map[string]any{"messaging.message.id": "m1"}, "dropped_attributes_count": float64(3)}}, l["links"])
	assert.Equal(t, float64(1), l["dropped_attributes_count"])
	assert.Equal(t, float64(2), l["dropped_events_count"])
	assert.Equal(t, float64(3), l["dropped_links_count"])
	assert.Equal(t, map[string]any{"name": "lib", "version": "1.2.3"}, l["scope"])
	assert.NotContains(t, l, "parent_is_remote")
	assert.NotContains(t, l, "trace_state")
}

// pick returns the given keys of a JSON object.
func pick(object any, keys ...string) map[string]any {
	m := object.(map[string]any)
	out := map[string]any{}
	for _, k := range keys {
		out[k] = m[k]
	}
	return out
}

// stubSpans returns n ended spans named "span-i".
func stubSpans(n int) []sdktrace.ReadOnlySpan {
	stubs := make(tracetest.SpanStubs, n)
	for i := range stubs {
		stubs[i] = tracetest.SpanStub{
			Name: fmt.Sprintf("span-%d", i),
			SpanContext: trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: trace.TraceID{1}, SpanID: trace.SpanID{byte(i + 1)},
			}),
			SpanKind:  trace.SpanKindInternal,
			StartTime: time.Unix(0, 0),
			EndTime:   time.Unix(1, 0),
			Resource:  resource.NewSchemaless(semconv.ServiceName("stub")),
		}
	}
	return stubs.Snapshots()
}

func TestConsoleExporterIsSafeForConcurrentExports(t *testing.T) {
	var out bytes.Buffer // not safe for concurrent writes by itself
	e := export.NewConsoleExporter(&out)
	const goroutines, batches, perBatch = 8, 20, 5
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range batches {
				assert.NoError(t, e.ExportSpans(context.Background(), stubSpans(perBatch)))
			}
		})
	}
	wg.Wait()
	lines := consoleLines(t, out.String())
	assert.Len(t, lines, goroutines*batches*perBatch)
	for _, l := range lines {
		assert.Equal(t, "internal", l["kind"])
		assert.Equal(t, map[string]any{}, l["attributes"])
	}
}

func TestConsoleExporterRefusesSpansAfterShutdown(t *testing.T) {
	var out bytes.Buffer
	e := export.NewConsoleExporter(&out)
	require.NoError(t, e.Shutdown(context.Background()))
	assert.ErrorIs(t, e.ExportSpans(context.Background(), stubSpans(1)), export.ErrExporterShutdown)
	assert.Empty(t, out.String())
}
