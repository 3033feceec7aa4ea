// Package client instruments net/http clients: one client span per request
// sent by a net/http.Transport, once per redirect hop, over HTTP/1.x or
// HTTP/2.
//
// It probes net/http.(*Transport).roundTrip with the BPF programs of
// client.c: the request is read at the function's entry, the response
// status at each of its RET instructions. When the goroutine sending the
// request has an active span (bpf/context.h: a server request it handles,
// traced by the net/http or gRPC server instrumentation in the same
// uprobe.Session), the client span joins that trace as its child;
// otherwise it starts a trace.
// Requests sent from goroutines the handler started are its children too
// (the goroutine instrumentation carries the context across the go
// statement).
//
// Trace context goes out with the request: a request that already carries
// a traceparent (the application's own instrumentation) is left alone and
// the client span becomes a child of the span it names; otherwise, when a
// writer runs (package propagation), the request's bytes get a traceparent
// naming the client span as they leave the process.
//
// Requirements on the target: Go 1.12+ (both calling conventions,
// bpf/go_abi.h).
package client

import (
	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/gomap"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
)

// The BPF objects, compiled for both targets and committed, come from
// client.c and the shared headers in bpf/; the build needs clang and
// libbpf-dev.
//go:generate go tool bpf2go -tags linux -target amd64,arm64 -type http_event client client.c -- -I../../../../bpf -O2 -mcpu=v3 -Wall -Werror -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu

// Symbol is the function the instrumentation probes for its spans.
const Symbol = "net/http.(*Transport).roundTrip"

// Where a request is handed to the writer of trace context (package
// propagation): RoundTripConnSymbol receives the request an HTTP/1.x
// connection writes (a copy, for a request with a body), WriteSymbol
// writes it, and ConnWriteSymbol is where its bytes leave, on the
// goroutine whose write(2) sends them.
const (
	RoundTripConnSymbol = "net/http.(*persistConn).roundTrip"
	WriteSymbol         = "net/http.(*Request).write"
	ConnWriteSymbol     = "net/http.persistConnWriter.Write"
)

// Instrumentation returns the declaration of the net/http client
// instrumentation, for uprobe.Attach. Each call returns a new copy.
func Instrumentation() uprobe.Instrumentation {
	return uprobe.Instrumentation{
		Name: "net/http client",
		Probes: []uprobe.Probe{
			{Symbol: Symbol, Entry: "client_entry", Return: "client_return", StackABI: true, StackResults: 24},
			// Where the request's bytes are written, for the writer of
			// trace context; the spans do not need them.
			{Symbol: RoundTripConnSymbol, Entry: "conn_round_trip", Optional: true, StackABI: true},
			{Symbol: WriteSymbol, Entry: "request_write", Optional: true, StackABI: true},
			{Symbol: ConnWriteSymbol, Entry: "conn_write", Optional: true, StackABI: true},
		},
		Fields: append([]uprobe.Field{
			{ID: offsets.MustParseFieldID("runtime.g.goid"), Const: "off_g_goid"},
			{ID: offsets.MustParseFieldID("net/http.Request.Method"), Const: "off_Request_Method"},
			{ID: offsets.MustParseFieldID("net/http.Request.URL"), Const: "off_Request_URL"},
			{ID: offsets.MustParseFieldID("net/http.Request.Header"), Const: "off_Request_Header", IfResolved: true}, // the application's own traceparent
			{ID: offsets.MustParseFieldID("net/url.URL.Scheme"), Const: "off_URL_Scheme"},
			{ID: offsets.MustParseFieldID("net/url.URL.Host"), Const: "off_URL_Host"},
			{ID: offsets.MustParseFieldID("net/url.URL.Path"), Const: "off_URL_Path"},
			{ID: offsets.MustParseFieldID("net/url.URL.RawQuery"), Const: "off_URL_RawQuery"},
			{ID: offsets.MustParseFieldID("net/http.Response.StatusCode"), Const: "off_Response_StatusCode"},
		}, gomap.Fields()...),
		Spec:   spec,
		PIDAt:  recordPIDAt,
		Decode: decode,
	}
}
