// Package spans turns the spans the instrumentations decode from eBPF
// records into OpenTelemetry spans and hands them to the SDK's exporters.
package spans

import (
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// TruncatedKey is the attribute that lists, as a string slice, the names of
// a span's attributes whose values were cut to fit a BPF record
// (["url.path", "db.query.text"]): a cut is never silent.
const TruncatedKey attribute.Key = "offsetdb.truncated"

// Span is one finished operation seen by an instrumentation, in terms that
// know no protocol: every instrumentation decodes its records into a Span
// (following its protocol's semantic conventions), and Recorder exports it.
//
// The eBPF side assigns the IDs when the operation starts, so that an
// operation started while another is active on the same goroutine carries
// it as its parent; spans keep those IDs.
type Span struct {
	Name         string
	Kind         trace.SpanKind
	Start, End   time.Time
	TraceID      trace.TraceID
	SpanID       trace.SpanID
	ParentSpanID trace.SpanID // zero for a root span
	// RemoteParent says the parent came from another process (a trace
	// context received over the wire), not from a span of this one.
	RemoteParent bool
	// Unsampled says the trace's W3C trace-flags, as received from the
	// caller, have the sampled bit clear: the span is not exported, though
	// its context still propagates to its children.
	Unsampled bool
	// TraceState is the W3C tracestate that came with a remote parent
	// (empty if none); the span keeps it in its span context.
	TraceState string
	// Attributes follow the semantic conventions of the span's protocol.
	// Decoders append to Attributes[:0] so that its storage is reused.
	Attributes []attribute.KeyValue
	// Status is codes.Error for a failed operation, else codes.Unset.
	Status            codes.Code
	StatusDescription string
	// Events are things that happened during the span, such as the
	// "exception" of a handler that panicked; usually none.
	Events []Event
}

// Event is a span event: a named, timestamped set of attributes, such as
// the semantic conventions' "exception" event.
type Event struct {
	Name       string
	Time       time.Time // zero: the span's end
	Attributes []attribute.KeyValue
}

// Reset empties s for the next decode, keeping the storage of Attributes.
func (s *Span) Reset() {
	attrs := s.Attributes[:0]
	*s = Span{Attributes: attrs}
}

// SetError marks s as failed, with error.type set to errorType and an
// optional description.
func (s *Span) SetError(errorType attribute.KeyValue, description string) {
	s.Status = codes.Error
	s.StatusDescription = description
	s.Attributes = append(s.Attributes, errorType)
}
