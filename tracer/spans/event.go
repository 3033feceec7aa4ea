// Package spans turns decoded eBPF events into OpenTelemetry spans and
// hands them to the SDK's exporters.
package spans

import (
	"time"

	"go.opentelemetry.io/otel/trace"
)

// HTTPEvent is one finished HTTP request seen by an instrumentation, server
// or client side, decoded from the eBPF ring buffer into Go values.
//
// The eBPF side assigns the IDs at function entry, so that a client request
// made while a server request is handled on the same goroutine carries the
// server span as its parent; spans keep those IDs.
type HTTPEvent struct {
	Kind         trace.SpanKind // trace.SpanKindServer or trace.SpanKindClient
	Start, End   time.Time
	TraceID      trace.TraceID
	SpanID       trace.SpanID
	ParentSpanID trace.SpanID // zero for a root span

	Method     string // "GET"
	Scheme     string // client: URL scheme ("http"); server: empty
	Host       string // server: Request.Host; client: URL.Host (host[:port])
	Path       string // URL.Path
	Query      string // URL.RawQuery
	Route      string // server: the ServeMux pattern that matched ("GET /items/{id}"), if the Go release records one
	RemoteAddr string // server: Request.RemoteAddr ("ip:port")
	ProtoMajor int
	ProtoMinor int
	StatusCode int // 0 if unknown (client request failed before a response)
}
