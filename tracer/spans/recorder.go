package spans

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of every span a Recorder creates.
const ScopeName = "github.com/offsetdb/offsetdb/tracer/spans"

var (
	// ErrForeignIDGenerator is returned by NewRecorder for a TracerProvider
	// not built with IDGenerator: its spans would not keep the event IDs.
	ErrForeignIDGenerator = errors.New("tracer provider does not use spans.IDGenerator")

	// ErrInvalidEvent is returned by Record for an event it cannot turn into
	// a span: zero trace or span ID, or a kind other than server or client.
	ErrInvalidEvent = errors.New("invalid HTTP event")
)

// Recorder turns HTTPEvents into spans of an OpenTelemetry SDK
// TracerProvider, following the HTTP semantic conventions (semconv v1.43.0).
//
// A Recorder is safe for concurrent use.
type Recorder struct {
	tracer trace.Tracer
}

// probeIDs are the IDs NewRecorder starts its probe span with.
var probeIDs = idContext{
	traceID: trace.TraceID{0x0f, 0xf5, 0xe7, 0xdb, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
	spanID:  trace.SpanID{0x0f, 0xf5, 0xe7, 0xdb, 1, 2, 3, 4},
}

// httpSpans recycles the attribute storage of Record: the SDK copies the
// attributes it is given, so the storage is free again once Record returns.
var httpSpans = sync.Pool{New: func() any { return new(httpSpan) }}

// kindOption holds the span kind options Record uses, built once.
var kindOption = map[trace.SpanKind]trace.SpanStartOption{
	trace.SpanKindServer: trace.WithSpanKind(trace.SpanKindServer),
	trace.SpanKindClient: trace.WithSpanKind(trace.SpanKindClient),
}

// NewRecorder returns a Recorder that creates its spans through tp.
//
// tp must be an SDK TracerProvider built with sdktrace.WithIDGenerator(IDGenerator())
// (export.NewTracerProvider does this). NewRecorder checks so by starting,
// and never ending, one probe span: a span that is not ended is not
// exported. It returns ErrForeignIDGenerator when the probe did not get the
// IDs it asked for.
func NewRecorder(tp trace.TracerProvider) (*Recorder, error) {
	tracer := tp.Tracer(ScopeName, trace.WithSchemaURL(semconv.SchemaURL))
	probe := probeIDs
	probe.Context = context.Background()
	_, span := tracer.Start(&probe, "offsetdb.probe")
	if sc := span.SpanContext(); sc.TraceID() != probe.traceID || sc.SpanID() != probe.spanID {
		return nil, fmt.Errorf("new span recorder: %w", ErrForeignIDGenerator)
	}
	return &Recorder{tracer: tracer}, nil
}

// Record creates and ends the span for ev with exactly ev's IDs, parent and
// timestamps, so that the TracerProvider's span processors export it.
//
// Record returns ErrInvalidEvent, and creates no span, for an event with a
// zero trace or span ID or a kind other than server or client. A zero Start
// or End is taken by the SDK as the current time.
//
// A server span whose parent is set continues a trace that came in over the
// wire, so the parent is marked remote; a client span's parent is the local
// server span the request was made for.
func (r *Recorder) Record(ev HTTPEvent) error {
	if !ev.TraceID.IsValid() || !ev.SpanID.IsValid() {
		return fmt.Errorf("record span %s/%s: %w: zero trace or span ID", ev.TraceID, ev.SpanID, ErrInvalidEvent)
	}
	s := httpSpans.Get().(*httpSpan)
	defer httpSpans.Put(s)
	switch ev.Kind {
	case trace.SpanKindServer:
		s.describeServer(&ev)
	case trace.SpanKindClient:
		s.describeClient(&ev)
	default:
		return fmt.Errorf("record span %s/%s: %w: kind %s", ev.TraceID, ev.SpanID, ErrInvalidEvent, ev.Kind)
	}

	var parent context.Context = context.Background()
	if ev.ParentSpanID.IsValid() {
		parent = trace.ContextWithSpanContext(parent, trace.NewSpanContext(trace.SpanContextConfig{
			TraceID:    ev.TraceID,
			SpanID:     ev.ParentSpanID,
			TraceFlags: trace.FlagsSampled,
			Remote:     ev.Kind == trace.SpanKindServer,
		}))
	}
	ctx := &idContext{Context: parent, traceID: ev.TraceID, spanID: ev.SpanID}
	_, span := r.tracer.Start(ctx, s.name,
		kindOption[ev.Kind],
		trace.WithTimestamp(ev.Start),
		trace.WithAttributes(s.attrs...),
	)
	if s.status == codes.Error {
		span.SetStatus(codes.Error, s.description)
	}
	span.End(trace.WithTimestamp(ev.End))
	return nil
}
