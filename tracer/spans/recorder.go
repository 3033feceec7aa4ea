package spans

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

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

	// ErrInvalidEvent is returned by Record for a span it cannot export:
	// zero trace or span ID, or no kind; and by decoders for records they
	// cannot describe.
	ErrInvalidEvent = errors.New("invalid span")
)

// Recorder turns Spans into spans of an OpenTelemetry SDK TracerProvider.
//
// A Recorder is safe for concurrent use.
type Recorder struct {
	tracer     trace.Tracer
	notSampled atomic.Uint64
}

// probeIDs are the IDs NewRecorder starts its probe span with.
var probeIDs = idContext{
	traceID: trace.TraceID{0x0f, 0xf5, 0xe7, 0xdb, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
	spanID:  trace.SpanID{0x0f, 0xf5, 0xe7, 0xdb, 1, 2, 3, 4},
}

// kindOption holds the span kind options Record uses, built once.
var kindOption = map[trace.SpanKind]trace.SpanStartOption{
	trace.SpanKindServer:   trace.WithSpanKind(trace.SpanKindServer),
	trace.SpanKindClient:   trace.WithSpanKind(trace.SpanKindClient),
	trace.SpanKindProducer: trace.WithSpanKind(trace.SpanKindProducer),
	trace.SpanKindConsumer: trace.WithSpanKind(trace.SpanKindConsumer),
	trace.SpanKindInternal: trace.WithSpanKind(trace.SpanKindInternal),
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

// Record creates and ends the span s describes, with exactly its IDs,
// parent and timestamps, so that the TracerProvider's span processors
// export it.
//
// Record returns ErrInvalidEvent, and creates no span, for a span with a
// zero trace or span ID or an unspecified kind. A zero Start or End is
// taken by the SDK as the current time. The span's Events are added to
// it, at their Time (zero: the span's end). The SDK copies the attributes,
// so s may be reused once Record returns.
func (r *Recorder) Record(s *Span) error {
	if !s.TraceID.IsValid() || !s.SpanID.IsValid() {
		return fmt.Errorf("record span %s/%s: %w: zero trace or span ID", s.TraceID, s.SpanID, ErrInvalidEvent)
	}
	kind, ok := kindOption[s.Kind]
	if !ok {
		return fmt.Errorf("record span %s/%s: %w: kind %s", s.TraceID, s.SpanID, ErrInvalidEvent, s.Kind)
	}
	var parent context.Context = context.Background()
	if s.ParentSpanID.IsValid() {
		var ts trace.TraceState
		if s.TraceState != "" {
			ts, _ = trace.ParseTraceState(s.TraceState) // an invalid tracestate is dropped, as W3C says
		}
		parent = trace.ContextWithSpanContext(parent, trace.NewSpanContext(trace.SpanContextConfig{
			TraceID:    s.TraceID,
			SpanID:     s.ParentSpanID,
			TraceFlags: trace.FlagsSampled,
			TraceState: ts,
			Remote:     s.RemoteParent,
		}))
	}
	ctx := &idContext{Context: parent, traceID: s.TraceID, spanID: s.SpanID}
	_, span := r.tracer.Start(ctx, s.Name,
		kind,
		trace.WithTimestamp(s.Start),
		trace.WithAttributes(s.Attributes...),
	)
	if s.Status == codes.Error {
		span.SetStatus(codes.Error, s.StatusDescription)
	}
	for i := range s.Events {
		ev := &s.Events[i]
		at := ev.Time
		if at.IsZero() {
			at = s.End
		}
		span.AddEvent(ev.Name, trace.WithTimestamp(at), trace.WithAttributes(ev.Attributes...))
	}
	span.End(trace.WithTimestamp(s.End))
	if !span.SpanContext().IsSampled() {
		r.notSampled.Add(1) // the TracerProvider's sampler said no: not exported
	}
	return nil
}

// NotSampled returns how many spans Record was given that the
// TracerProvider's sampler (OTEL_TRACES_SAMPLER) did not sample: they are
// not exported, and the tracer counts them as unsampled.
func (r *Recorder) NotSampled() uint64 { return r.notSampled.Load() }
