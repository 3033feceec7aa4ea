package export

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// ErrExporterShutdown is returned by ConsoleExporter.ExportSpans once the
// exporter has been shut down.
var ErrExporterShutdown = errors.New("exporter is shut down")

// ConsoleExporter is the "console" OTEL_TRACES_EXPORTER: it writes each span
// as one JSON object on its own line, for people and for line-oriented tools
// (jq, grep). See ConsoleSpan for the keys.
//
// It is safe for concurrent use: every batch is written with a single Write
// call under a lock, so lines from concurrent exports never interleave.
type ConsoleExporter struct {
	mu       sync.Mutex
	w        io.Writer
	buf      bytes.Buffer
	shutdown bool
}

var _ sdktrace.SpanExporter = (*ConsoleExporter)(nil)

// NewConsoleExporter returns a ConsoleExporter writing to w.
func NewConsoleExporter(w io.Writer) *ConsoleExporter {
	return &ConsoleExporter{w: w}
}

// ConsoleSpan is the JSON object ConsoleExporter writes per span: what an
// OTLP export carries of it, in the same JSON style throughout. Keys whose
// value is empty, zero or false are left out, except attributes and
// resource.
type ConsoleSpan struct {
	Name         string `json:"name"`
	TraceID      string `json:"trace_id"`
	SpanID       string `json:"span_id"`
	TraceState   string `json:"trace_state,omitempty"`    // W3C tracestate, as received with a remote parent
	ParentSpanID string `json:"parent_span_id,omitempty"` // empty for a root span
	// RemoteParent: the parent came from another process (the trace
	// context of an incoming request), not from a span of this one.
	RemoteParent bool           `json:"parent_is_remote,omitempty"`
	Kind         string         `json:"kind"`  // "server", "client", ...
	Start        time.Time      `json:"start"` // RFC 3339 with nanoseconds, UTC
	End          time.Time      `json:"end"`
	Status       *ConsoleStatus `json:"status,omitempty"` // absent when unset
	Attributes   map[string]any `json:"attributes"`
	// Events in the order they were added, such as the "exception" of a
	// handler that panicked.
	Events []ConsoleEvent `json:"events,omitempty"`
	Links  []ConsoleLink  `json:"links,omitempty"`
	// Dropped*: how many attributes, events and links the SDK's span
	// limits (OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT, ...) left out.
	DroppedAttributes int            `json:"dropped_attributes_count,omitempty"`
	DroppedEvents     int            `json:"dropped_events_count,omitempty"`
	DroppedLinks      int            `json:"dropped_links_count,omitempty"`
	Resource          map[string]any `json:"resource"`
	Scope             ConsoleScope   `json:"scope"` // the instrumentation scope
}

// ConsoleStatus is a span status that is not unset.
type ConsoleStatus struct {
	Code        string `json:"code"` // "error" or "ok"
	Description string `json:"description,omitempty"`
}

// ConsoleEvent is a span event.
type ConsoleEvent struct {
	Name              string         `json:"name"`
	Time              time.Time      `json:"time"` // RFC 3339 with nanoseconds, UTC
	Attributes        map[string]any `json:"attributes"`
	DroppedAttributes int            `json:"dropped_attributes_count,omitempty"`
}

// ConsoleLink is a link to another span.
type ConsoleLink struct {
	TraceID           string         `json:"trace_id"`
	SpanID            string         `json:"span_id"`
	TraceState        string         `json:"trace_state,omitempty"`
	Attributes        map[string]any `json:"attributes"`
	DroppedAttributes int            `json:"dropped_attributes_count,omitempty"`
}

// ConsoleScope is the instrumentation scope that made a span.
type ConsoleScope struct {
	Name      string `json:"name"`
	Version   string `json:"version,omitempty"`
	SchemaURL string `json:"schema_url,omitempty"`
}

// ExportSpans writes one JSON line per span.
func (e *ConsoleExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.shutdown {
		return fmt.Errorf("console export: %w", ErrExporterShutdown)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("console export: %w", err)
	}
	e.buf.Reset()
	enc := json.NewEncoder(&e.buf)
	enc.SetEscapeHTML(false)
	for _, s := range spans {
		if err := enc.Encode(newConsoleSpan(s)); err != nil {
			return fmt.Errorf("console export: encode span %s: %w", s.SpanContext().SpanID(), err)
		}
	}
	if _, err := e.w.Write(e.buf.Bytes()); err != nil {
		return fmt.Errorf("console export: write %d spans: %w", len(spans), err)
	}
	return nil
}

// Shutdown stops the exporter; it does not close the writer.
func (e *ConsoleExporter) Shutdown(context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.shutdown = true
	return nil
}

// newConsoleSpan converts s to its JSON form.
func newConsoleSpan(s sdktrace.ReadOnlySpan) ConsoleSpan {
	c := ConsoleSpan{
		Name:       s.Name(),
		TraceID:    s.SpanContext().TraceID().String(),
		SpanID:     s.SpanContext().SpanID().String(),
		Kind:       s.SpanKind().String(),
		Start:      s.StartTime().UTC(),
		End:        s.EndTime().UTC(),
		TraceState: s.SpanContext().TraceState().String(),
		Attributes: attributeMap(s.Attributes()),
		Resource:   attributeMap(s.Resource().Attributes()),

		DroppedAttributes: s.DroppedAttributes(),
		DroppedEvents:     s.DroppedEvents(),
		DroppedLinks:      s.DroppedLinks(),
		Scope: ConsoleScope{
			Name:      s.InstrumentationScope().Name,
			Version:   s.InstrumentationScope().Version,
			SchemaURL: s.InstrumentationScope().SchemaURL,
		},
	}
	if p := s.Parent(); p.SpanID().IsValid() {
		c.ParentSpanID = p.SpanID().String()
		c.RemoteParent = p.IsRemote()
	}
	for _, ev := range s.Events() {
		c.Events = append(c.Events, ConsoleEvent{
			Name:              ev.Name,
			Time:              ev.Time.UTC(),
			Attributes:        attributeMap(ev.Attributes),
			DroppedAttributes: ev.DroppedAttributeCount,
		})
	}
	for _, l := range s.Links() {
		c.Links = append(c.Links, ConsoleLink{
			TraceID:           l.SpanContext.TraceID().String(),
			SpanID:            l.SpanContext.SpanID().String(),
			TraceState:        l.SpanContext.TraceState().String(),
			Attributes:        attributeMap(l.Attributes),
			DroppedAttributes: l.DroppedAttributeCount,
		})
	}
	switch st := s.Status(); st.Code {
	case codes.Error:
		c.Status = &ConsoleStatus{Code: "error", Description: st.Description}
	case codes.Ok:
		c.Status = &ConsoleStatus{Code: "ok"}
	}
	return c
}

// attributeMap returns attrs as key -> plain Go value (string, int64,
// float64, bool or a slice of one of those).
func attributeMap(attrs []attribute.KeyValue) map[string]any {
	m := make(map[string]any, len(attrs))
	for _, kv := range attrs {
		m[string(kv.Key)] = kv.Value.AsInterface()
	}
	return m
}
