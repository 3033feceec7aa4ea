// Package client instruments grpc-go clients: one client span per unary
// call and per stream a grpc.ClientConn makes.
//
// It probes, with the BPF programs of client.c:
//   - google.golang.org/grpc.(*ClientConn).Invoke (grpc.Invoke before
//     v1.8.0, after which that function is an inlined wrapper), entry and
//     RETs: a unary call's span, from the call to its error;
//   - (*ClientConn).NewStream (grpc.NewClientStream before v1.8.0), entry
//     and RETs, and (*clientStream).finish: a stream's span, from its
//     creation to the first time it finishes (its last message received,
//     an error, or its context cancelled).
//
// A span is a child of the calling goroutine's active span (a server
// request being handled, over gRPC or net/http), else a new trace. The
// status code is read from the error returned: the status error's layout
// in the traced grpc-go version, then google.rpc.Status.Code in the
// genproto module the binary links; where that is not known, a failed call
// is an error span without a code. Outgoing trace context (a traceparent
// in the request metadata) is not written: see docs/tracer.md.
// Requirements on the target: Go 1.12+ (both calling conventions,
// bpf/go_abi.h).
package client

import (
	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
)

// The BPF objects, compiled for both targets and committed, come from
// client.c and the shared headers in bpf/; the build needs clang and
// libbpf-dev.
//go:generate go tool bpf2go -tags linux -target amd64,arm64 -type grpc_event client client.c -- -I../../../../bpf -O2 -mcpu=v3 -Wall -Werror -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu

// Symbols the instrumentation probes.
const (
	Invoke          = "google.golang.org/grpc.(*ClientConn).Invoke"
	invokePkg       = "google.golang.org/grpc.Invoke"
	NewStream       = "google.golang.org/grpc.(*ClientConn).NewStream"
	newClientStream = "google.golang.org/grpc.NewClientStream"
	finish          = "google.golang.org/grpc.(*clientStream).finish"
)

// Instrumentation returns the declaration of the grpc-go client
// instrumentation, for uprobe.Attach. Each call returns a new copy.
// The functions between which a call's header fields pass to the
// connection's writer goroutine (internal/transport from v1.14.0, the
// public transport package before).
const (
	createHeaderFields    = "google.golang.org/grpc/internal/transport.(*http2Client).createHeaderFields"
	createHeaderFieldsPub = "google.golang.org/grpc/transport.(*http2Client).createHeaderFields"
	writeHeader           = "google.golang.org/grpc/internal/transport.(*loopyWriter).writeHeader"
	writeHeaderPub        = "google.golang.org/grpc/transport.(*loopyWriter).writeHeader"
)

func Instrumentation() uprobe.Instrumentation {
	f := offsets.MustParseFieldID
	return uprobe.Instrumentation{
		Name: "gRPC client",
		Probes: []uprobe.Probe{
			{Symbol: Invoke, Entry: "client_invoke", Return: "client_invoke_return", Versions: ">=v1.8.0", Optional: true, StackABI: true, StackResults: 16},
			{Symbol: invokePkg, Entry: "client_invoke_pkg", Return: "client_invoke_return", Versions: "<v1.8.0", Optional: true, StackABI: true, StackResults: 16},
			{Symbol: NewStream, Entry: "client_stream", Return: "client_stream_return", Versions: ">=v1.8.0", Optional: true, StackABI: true, StackResults: 32},
			{Symbol: newClientStream, Entry: "client_stream_pkg", Return: "client_stream_return", Versions: "<v1.8.0", Optional: true, StackABI: true, StackResults: 32},
			{Symbol: finish, Entry: "client_finish", Optional: true, StackABI: true},
			// Outgoing trace context, for the writer (package propagation):
			// the header fields of a call, and the frame that carries them.
			{Symbol: createHeaderFields, Return: "client_header_fields", Versions: ">=v1.14.0", Optional: true, StackABI: true, StackResults: 40},
			{Symbol: createHeaderFieldsPub, Return: "client_header_fields", Versions: ">=v1.12.0,<v1.14.0", Optional: true, StackABI: true, StackResults: 40},
			{Symbol: writeHeader, Entry: "client_write_header", Versions: ">=v1.14.0", Optional: true, StackABI: true},
			{Symbol: writeHeaderPub, Entry: "client_write_header", Versions: ">=v1.12.0,<v1.14.0", Optional: true, StackABI: true},
		},
		Fields: []uprobe.Field{
			{ID: f("runtime.g.goid"), Const: "off_g_goid"},
			{ID: f("google.golang.org/grpc.ClientConn.target"), Const: "off_ClientConn_target"},
			{ID: f("google.golang.org/grpc.clientStreamWrapper.ClientStream"), Const: "off_wrapper_ClientStream", Optional: true},
			// The status of an error: *Error -> *Status -> *spb.Status -> Code.
			{ID: f("google.golang.org/grpc/internal/status.Error.s"), Const: "off_Error_s", Optional: true},
			{ID: f("google.golang.org/grpc/internal/status.Error.e"), Const: "off_Error_e", Optional: true},
			{ID: f("google.golang.org/grpc/internal/status.Status.s"), Const: "off_iStatus_s", Optional: true},
			{ID: f("google.golang.org/grpc/status.Status.s"), Const: "off_Status_s", Optional: true},
			{ID: f("google.golang.org/genproto/googleapis/rpc/status.Status.Code"), Const: "off_spb_Code", IfResolved: true},
		},
		Spec:   spec,
		PIDAt:  recordPIDAt,
		Decode: decode,
	}
}
