// Package grpcconv describes RPCs seen by the gRPC instrumentations as
// spans, following the RPC semantic conventions for gRPC (semconv v1.43.0:
// rpc.system.name, rpc.method, rpc.response.status_code).
package grpcconv

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/tracer/spans"
)

// Event is one finished RPC seen by an instrumentation, server or client
// side, decoded from the eBPF ring buffer into Go values.
type Event struct {
	Kind         trace.SpanKind // trace.SpanKindServer or trace.SpanKindClient
	Start, End   time.Time
	TraceID      trace.TraceID
	SpanID       trace.SpanID
	ParentSpanID trace.SpanID // zero for a root span
	RemoteParent bool         // the parent came in with the request's metadata
	Unsampled    bool         // the parent's W3C trace-flags were not sampled

	Method    string // full method, "/helloworld.Greeter/SayHello"
	Target    string // client: the ClientConn's dial target, "dns:///greeter:50051"
	Streaming bool   // client: a stream (NewStream), not a unary call
	// PeerAddress and PeerPort are, on the server, the client's IP and TCP
	// port; empty and 0 when unknown.
	PeerAddress string
	PeerPort    int
	// HasStatus says Code is the RPC's status code. Without it the
	// instrumentation could not read the status; Failed then says whether
	// the call returned an error.
	HasStatus bool
	Code      uint32
	Failed    bool
}

// codeNames are the gRPC status codes as rpc.response.status_code spells
// them (the names of google.rpc.Code).
var codeNames = [...]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED",
}

// CodeName returns the name of a gRPC status code ("NOT_FOUND"), or its
// number for a code gRPC does not define.
func CodeName(code uint32) string {
	if int(code) < len(codeNames) {
		return codeNames[code]
	}
	return strconv.FormatUint(uint64(code), 10)
}

// serverErrors are the codes that make a server span an error: the ones
// the semantic conventions name as the server's fault.
var serverErrors = map[uint32]bool{2: true, 4: true, 12: true, 13: true, 14: true, 15: true}

// unimplemented is the code a server answers for a method it does not know.
const unimplemented = 12

// Describe fills out with the span of ev.
//
// The name is rpc.method ("helloworld.Greeter/SayHello"). A server span
// with status UNIMPLEMENTED has rpc.method "_OTHER" and the method the
// client asked for in rpc.method_original, as the conventions require for
// methods the server does not know. Status: a client span fails for every
// code but OK; a server span for UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED,
// INTERNAL, UNAVAILABLE and DATA_LOSS; both with error.type the code name.
// Describe returns an error wrapping spans.ErrInvalidEvent for a kind
// other than server or client.
func Describe(ev *Event, out *spans.Span) error {
	if ev.Kind != trace.SpanKindServer && ev.Kind != trace.SpanKindClient {
		return fmt.Errorf("describe gRPC event %s/%s: %w: kind %s", ev.TraceID, ev.SpanID, spans.ErrInvalidEvent, ev.Kind)
	}
	out.Kind = ev.Kind
	out.Start, out.End = ev.Start, ev.End
	out.TraceID, out.SpanID, out.ParentSpanID = ev.TraceID, ev.SpanID, ev.ParentSpanID
	out.RemoteParent = ev.RemoteParent
	out.Unsampled = ev.Unsampled
	attrs := append(out.Attributes[:0], semconv.RPCSystemNameGRPC)

	method := strings.TrimPrefix(ev.Method, "/")
	out.Name = method
	switch {
	case method == "":
		out.Name = "grpc"
	case ev.Kind == trace.SpanKindServer && ev.HasStatus && ev.Code == unimplemented:
		out.Name = "grpc"
		attrs = append(attrs, semconv.RPCMethod("_OTHER"), semconv.RPCMethodOriginal(method))
	default:
		attrs = append(attrs, semconv.RPCMethod(method))
	}
	if ev.Kind == trace.SpanKindClient {
		if host, port := targetHostPort(ev.Target); host != "" {
			attrs = append(attrs, semconv.ServerAddress(host))
			if port > 0 {
				attrs = append(attrs, semconv.ServerPort(port))
			}
		}
	}
	if ev.Kind == trace.SpanKindServer && ev.PeerAddress != "" {
		attrs = append(attrs, semconv.NetworkPeerAddress(ev.PeerAddress))
		if ev.PeerPort > 0 {
			attrs = append(attrs, semconv.NetworkPeerPort(ev.PeerPort))
		}
	}
	out.Attributes = attrs
	switch {
	case ev.HasStatus:
		name := CodeName(ev.Code)
		out.Attributes = append(out.Attributes, semconv.RPCResponseStatusCode(name))
		if (ev.Kind == trace.SpanKindClient && ev.Code != 0) || (ev.Kind == trace.SpanKindServer && serverErrors[ev.Code]) {
			out.SetError(semconv.ErrorTypeKey.String(name), "")
		}
	case ev.Failed:
		out.SetError(semconv.ErrorTypeOther, "status code not readable")
	}
	return nil
}

// Span returns the span of ev (see Describe).
func (ev Event) Span() (spans.Span, error) {
	var s spans.Span
	err := Describe(&ev, &s)
	return s, err
}

// targetHostPort returns the host and port a gRPC dial target names:
// "dns:///greeter:50051", "dns://8.8.8.8/greeter:50051",
// "passthrough:///10.0.0.1:50051" and "greeter:50051" all name greeter (or
// the address) and 50051; "unix:///run/app.sock" names the socket path.
// The port is 0 when absent or invalid.
func targetHostPort(target string) (string, int) {
	if scheme, rest, ok := strings.Cut(target, "://"); ok && !strings.ContainsAny(scheme, "/:") {
		_, endpoint, _ := strings.Cut(rest, "/") // drop the authority
		if scheme == "unix" || scheme == "unix-abstract" {
			return "/" + strings.TrimPrefix(endpoint, "/"), 0
		}
		target = endpoint
	} else if scheme, rest, ok := strings.Cut(target, ":"); ok && (scheme == "unix" || scheme == "unix-abstract") {
		return rest, 0
	}
	return spans.SplitHostPort(target)
}
