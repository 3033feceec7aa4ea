//go:build linux && (amd64 || arm64)

package client

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/tracer/spans"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// The record is the client's generated type, decoded through package
// server: the test also checks that both objects share one record layout.
func record(t *testing.T, method, target string, state uint8, code uint32) []byte {
	r := clientGrpcEvent{Kind: 4, StatusState: state, Status: code, Flags: 1,
		TraceId: [16]uint8{1}, SpanId: [8]uint8{2}, ParentSpanId: [8]uint8{3}}
	r.MethodLen = uint8(copy(r.Method[:], method))
	r.TargetLen = uint8(copy(r.Target[:], target))
	b, err := binary.Append(nil, binary.NativeEndian, &r)
	require.NoError(t, err)
	return b
}

func TestInstrumentationDecodesClientRecords(t *testing.T) {
	want := func(name string) spans.Span {
		return spans.Span{Name: name, Kind: trace.SpanKindClient, TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, ParentSpanID: trace.SpanID{3}}
	}
	uprobetest.CheckInstrumentation(t, Instrumentation(), []uprobetest.DecodeCase{
		{
			Name:   "OK, target with the dns scheme",
			Record: record(t, "/helloworld.Greeter/SayHello", "dns:///greeter.default:50051", 1, 0),
			Want:   want("helloworld.Greeter/SayHello"),
			WantAttrs: map[string]any{"rpc.system.name": "grpc", "rpc.method": "helloworld.Greeter/SayHello",
				"rpc.response.status_code": "OK", "server.address": "greeter.default", "server.port": int64(50051)},
		},
		{
			Name:   "every non-OK code is a client error",
			Record: record(t, "/helloworld.Greeter/SayHello", "127.0.0.1:50051", 1, 5),
			Want:   want("helloworld.Greeter/SayHello"),
			WantAttrs: map[string]any{"rpc.system.name": "grpc", "rpc.method": "helloworld.Greeter/SayHello",
				"rpc.response.status_code": "NOT_FOUND", "error.type": "NOT_FOUND", "server.address": "127.0.0.1", "server.port": int64(50051)},
			WantStatus: codes.Error,
		},
		{
			Name:   "failed with a status the programs could not read",
			Record: record(t, "/routeguide.RouteGuide/ListFeatures", "passthrough:///10.0.0.1:443", 2, 0),
			Want:   want("routeguide.RouteGuide/ListFeatures"),
			WantAttrs: map[string]any{"rpc.system.name": "grpc", "rpc.method": "routeguide.RouteGuide/ListFeatures",
				"error.type": "_OTHER", "server.address": "10.0.0.1", "server.port": int64(443)},
			WantStatus: codes.Error, WantDescription: "status code not readable",
		},
		{
			Name:   "unix socket target",
			Record: record(t, "/a.B/C", "unix:///run/app.sock", 1, 0),
			Want:   want("a.B/C"),
			WantAttrs: map[string]any{"rpc.system.name": "grpc", "rpc.method": "a.B/C",
				"rpc.response.status_code": "OK", "server.address": "/run/app.sock"},
		},
	})
}
