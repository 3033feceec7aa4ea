//go:build linux && (amd64 || arm64)

package server

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/tracer/spans"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// record encodes r as the BPF programs submit it.
func record(t *testing.T, r serverGrpcEvent) []byte {
	t.Helper()
	b, err := binary.Append(nil, binary.NativeEndian, &r)
	require.NoError(t, err)
	return b
}

func event(method string, state uint8, code uint32, mod func(*serverGrpcEvent)) serverGrpcEvent {
	r := serverGrpcEvent{
		Kind: 3, StatusState: state, Status: code, Flags: 1,
		StartNs: 2_000_000_000, EndNs: 2_000_500_000,
		TraceId: [16]uint8{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanId:  [8]uint8{1, 1, 1, 1, 1, 1, 1, 1},
	}
	r.MethodLen = uint8(copy(r.Method[:], method))
	if mod != nil {
		mod(&r)
	}
	return r
}

func TestInstrumentationDecodesServerRecords(t *testing.T) {
	tid := trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	sid := trace.SpanID{1, 1, 1, 1, 1, 1, 1, 1}
	parent := trace.SpanID{9, 9, 9, 9, 9, 9, 9, 9}
	ids := spans.Span{Kind: trace.SpanKindServer, TraceID: tid, SpanID: sid,
		Start: uprobe.WallTime(2_000_000_000), End: uprobe.WallTime(2_000_500_000)}
	withName := func(s spans.Span, name string) spans.Span { s.Name = name; return s }
	remote := withName(ids, "helloworld.Greeter/SayHello")
	remote.ParentSpanID, remote.RemoteParent = parent, true

	uprobetest.CheckInstrumentation(t, Instrumentation(), []uprobetest.DecodeCase{
		{
			Name:   "OK unary call",
			Record: record(t, event("/helloworld.Greeter/SayHello", statusSet, 0, nil)),
			Want:   withName(ids, "helloworld.Greeter/SayHello"),
			WantAttrs: map[string]any{"rpc.system.name": "grpc", "rpc.method": "helloworld.Greeter/SayHello",
				"rpc.response.status_code": "OK"},
		},
		{
			Name:   "NOT_FOUND is the client's fault, not an error of the server",
			Record: record(t, event("/helloworld.Greeter/SayHello", statusSet, 5, nil)),
			Want:   withName(ids, "helloworld.Greeter/SayHello"),
			WantAttrs: map[string]any{"rpc.system.name": "grpc", "rpc.method": "helloworld.Greeter/SayHello",
				"rpc.response.status_code": "NOT_FOUND"},
		},
		{
			Name:   "INTERNAL is an error",
			Record: record(t, event("/routeguide.RouteGuide/RouteChat", statusSet, 13, nil)),
			Want:   withName(ids, "routeguide.RouteGuide/RouteChat"),
			WantAttrs: map[string]any{"rpc.system.name": "grpc", "rpc.method": "routeguide.RouteGuide/RouteChat",
				"rpc.response.status_code": "INTERNAL", "error.type": "INTERNAL"},
			WantStatus: codes.Error,
		},
		{
			Name:   "an unknown method is _OTHER",
			Record: record(t, event("/nope.Nope/Nope", statusSet, 12, nil)),
			Want:   withName(ids, "grpc"),
			WantAttrs: map[string]any{"rpc.system.name": "grpc", "rpc.method": "_OTHER", "rpc.method_original": "nope.Nope/Nope",
				"rpc.response.status_code": "UNIMPLEMENTED", "error.type": "UNIMPLEMENTED"},
			WantStatus: codes.Error,
		},
		{
			Name:      "status not read: no code, no error",
			Record:    record(t, event("/helloworld.Greeter/SayHello", 0, 7, nil)),
			Want:      withName(ids, "helloworld.Greeter/SayHello"),
			WantAttrs: map[string]any{"rpc.system.name": "grpc", "rpc.method": "helloworld.Greeter/SayHello"},
		},
		{
			Name: "continues an incoming trace",
			Record: record(t, event("/helloworld.Greeter/SayHello", statusSet, 0, func(r *serverGrpcEvent) {
				r.RemoteParent = 1
				r.ParentSpanId = parent
			})),
			Want: remote,
			WantAttrs: map[string]any{"rpc.system.name": "grpc", "rpc.method": "helloworld.Greeter/SayHello",
				"rpc.response.status_code": "OK"},
		},
		{
			Name: "the client's address",
			Record: record(t, event("/helloworld.Greeter/SayHello", statusSet, 0, func(r *serverGrpcEvent) {
				r.PeerIpLen = 4
				copy(r.PeerIp[:], []byte{10, 1, 2, 3})
				r.PeerPort = 51234
			})),
			Want: withName(ids, "helloworld.Greeter/SayHello"),
			WantAttrs: map[string]any{"rpc.system.name": "grpc", "rpc.method": "helloworld.Greeter/SayHello",
				"rpc.response.status_code": "OK", "network.peer.address": "10.1.2.3", "network.peer.port": int64(51234)},
		},
		{
			Name: "an IPv6 client",
			Record: record(t, event("/helloworld.Greeter/SayHello", statusSet, 0, func(r *serverGrpcEvent) {
				r.PeerIpLen = 16
				r.PeerIp = [16]uint8{15: 1}
				r.PeerPort = 443
			})),
			Want: withName(ids, "helloworld.Greeter/SayHello"),
			WantAttrs: map[string]any{"rpc.system.name": "grpc", "rpc.method": "helloworld.Greeter/SayHello",
				"rpc.response.status_code": "OK", "network.peer.address": "::1", "network.peer.port": int64(443)},
		},
		{Name: "short record", Record: []byte{3, 1, 2}, WantErr: "record of 3 bytes"},
	})
}

func TestDecodeRecordReadsTheSampledFlagAndCutStrings(t *testing.T) {
	r := event("/a.B/C", statusSet, 0, func(r *serverGrpcEvent) { r.Flags = 0; r.MethodLen = 255 })
	copy(r.Method[6:], "left over")
	ev, err := DecodeRecord(record(t, r), trace.SpanKindServer)
	require.NoError(t, err)
	require.True(t, ev.Unsampled)
	require.Len(t, ev.Method, len(r.Method), "a length beyond the buffer is cut to the buffer")
}
