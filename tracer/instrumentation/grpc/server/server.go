// Package server instruments grpc-go servers: one server span per RPC a
// grpc.Server handles over its HTTP/2 transport or through ServeHTTP,
// unary or streaming.
//
// It probes, with the BPF programs of server.c:
//   - google.golang.org/grpc.(*Server).handleStream, entry and RETs: the
//     span, on the goroutine that runs the handler, which it makes the
//     goroutine's active span (bpf/context.h) so that the handler's
//     outgoing calls (gRPC, net/http) are its children;
//   - the transport's (*http2Server).operateHeaders: the request's
//     traceparent metadata, which the span continues (W3C Trace Context);
//   - the transport's (*http2Server).WriteStatus (writeStatus from v1.69.0,
//     where the exported method is inlined): the status code sent.
//
// Each probe is bound to the grpc-go versions that have its function with
// the signature its program reads; the transport lived in package
// google.golang.org/grpc/transport before v1.14.0. Reading the status code
// needs the layout of google.rpc.Status in the genproto module the binary
// links: without it spans carry no status code. Without the x/net/http2
// fields, incoming trace context and the client's address are not read. Requirements on the target:
// Go 1.12+ (both calling conventions, bpf/go_abi.h).
package server

import (
	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
)

// The BPF objects, compiled for both targets and committed, come from
// server.c and the shared headers in bpf/; the build needs clang and
// libbpf-dev.
//go:generate go tool bpf2go -tags linux -target amd64,arm64 -type grpc_event server server.c -- -I../../../../bpf -O2 -mcpu=v3 -Wall -Werror -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu

// Symbols the instrumentation probes.
const (
	HandleStream           = "google.golang.org/grpc.(*Server).handleStream"
	operateHeadersPublic   = "google.golang.org/grpc/transport.(*http2Server).operateHeaders"
	operateHeadersInternal = "google.golang.org/grpc/internal/transport.(*http2Server).operateHeaders"
	writeStatusPublic      = "google.golang.org/grpc/transport.(*http2Server).WriteStatus"
	writeStatusInternal    = "google.golang.org/grpc/internal/transport.(*http2Server).WriteStatus"
	writeStatusLower       = "google.golang.org/grpc/internal/transport.(*http2Server).writeStatus"
)

// Instrumentation returns the declaration of the grpc-go server
// instrumentation, for uprobe.Attach. Each call returns a new copy.
func Instrumentation() uprobe.Instrumentation {
	f := offsets.MustParseFieldID
	return uprobe.Instrumentation{
		Name: "gRPC server",
		Probes: []uprobe.Probe{
			{Symbol: HandleStream, Entry: "server_entry", Return: "server_return", StackABI: true},
			{Symbol: operateHeadersPublic, Entry: "server_headers", Versions: "<v1.14.0", Optional: true, StackABI: true},
			{Symbol: operateHeadersInternal, Entry: "server_headers", Versions: ">=v1.14.0,<v1.60.0", Optional: true, StackABI: true},
			{Symbol: operateHeadersInternal, Entry: "server_headers_ctx", Versions: ">=v1.60.0", Optional: true},
			{Symbol: writeStatusPublic, Entry: "server_status_code", Versions: "<v1.3.0", Optional: true, StackABI: true},
			{Symbol: writeStatusPublic, Entry: "server_status", Versions: ">=v1.3.0,<v1.14.0", Optional: true, StackABI: true},
			{Symbol: writeStatusInternal, Entry: "server_status", Versions: ">=v1.14.0,<v1.69.0", Optional: true, StackABI: true},
			{Symbol: writeStatusLower, Entry: "server_status", Versions: ">=v1.69.0", Optional: true},
		},
		Fields: []uprobe.Field{
			{ID: f("runtime.g.goid"), Const: "off_g_goid"},
			// The stream's method and ID, in each era's package and type.
			{ID: f("google.golang.org/grpc/transport.Stream.id"), Const: "off_tStream_id", Optional: true},
			{ID: f("google.golang.org/grpc/transport.Stream.method"), Const: "off_tStream_method", Optional: true},
			{ID: f("google.golang.org/grpc/internal/transport.Stream.id"), Const: "off_Stream_id", Optional: true},
			{ID: f("google.golang.org/grpc/internal/transport.Stream.method"), Const: "off_Stream_method", Optional: true},
			{ID: f("google.golang.org/grpc/internal/transport.ServerStream.Stream"), Const: "off_ServerStream_Stream", Optional: true},
			{ID: f("google.golang.org/grpc/internal/transport.ServerStream.Stream.id"), Const: "off_ServerStream_id", Optional: true},
			{ID: f("google.golang.org/grpc/internal/transport.ServerStream.Stream.method"), Const: "off_ServerStream_method", Optional: true},
			// Incoming metadata: the request's HPACK header fields.
			{ID: f("golang.org/x/net/http2.MetaHeadersFrame.HeadersFrame"), Const: "off_MetaHeadersFrame_HeadersFrame", IfResolved: true},
			{ID: f("golang.org/x/net/http2.MetaHeadersFrame.Fields"), Const: "off_MetaHeadersFrame_Fields", IfResolved: true},
			{ID: f("golang.org/x/net/http2.HeadersFrame.FrameHeader.StreamID"), Const: "off_HeadersFrame_StreamID", IfResolved: true},
			{ID: f("golang.org/x/net/http2/hpack.HeaderField.Name"), Const: "off_HeaderField_Name", IfResolved: true},
			{ID: f("golang.org/x/net/http2/hpack.HeaderField.Value"), Const: "off_HeaderField_Value", IfResolved: true},
			// The status written: *status.Status -> *spb.Status -> Code.
			{ID: f("google.golang.org/grpc/internal/status.Status.s"), Const: "off_iStatus_s", Optional: true},
			{ID: f("google.golang.org/grpc/status.Status.s"), Const: "off_Status_s", Optional: true},
			{ID: f("google.golang.org/genproto/googleapis/rpc/status.Status.Code"), Const: "off_spb_Code", IfResolved: true},
			// The client's address: the transport's peer.Addr or remoteAddr, a *net.TCPAddr.
			{ID: f("google.golang.org/grpc/internal/transport.http2Server.peer"), Const: "off_http2Server_peer", IfResolved: true},
			{ID: f("google.golang.org/grpc/internal/transport.http2Server.remoteAddr"), Const: "off_http2Server_remoteAddr", IfResolved: true},
			{ID: f("google.golang.org/grpc/transport.http2Server.remoteAddr"), Const: "off_thttp2Server_remoteAddr", IfResolved: true},
			{ID: f("google.golang.org/grpc/peer.Peer.Addr"), Const: "off_Peer_Addr", IfResolved: true},
			{ID: f("net.TCPAddr.IP"), Const: "off_TCPAddr_IP", IfResolved: true},
			{ID: f("net.TCPAddr.Port"), Const: "off_TCPAddr_Port", IfResolved: true},
		},
		Spec:   spec,
		PIDAt:  RecordPIDAt,
		Decode: decode,
	}
}
