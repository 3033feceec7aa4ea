//go:build linux && (amd64 || arm64)

package server

import (
	"encoding/binary"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

// BenchmarkDecodeRecord measures decoding one ring-buffer record of a
// typical request into an httpconv.HTTPEvent: what the tracer's reader does for
// every event before building the span.
func BenchmarkDecodeRecord(b *testing.B) {
	r := serverHttpEvent{
		Kind: 1, ProtoMajor: 1, ProtoMinor: 1, Status: 200,
		StartNs: 1_000_000_000, EndNs: 1_000_250_000,
		TraceId: [16]uint8{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanId:  [8]uint8{1, 1, 1, 1, 1, 1, 1, 1},
	}
	r.MethodLen = put(r.Method[:], "GET")
	r.HostLen = put(r.Host[:], "127.0.0.1:35051")
	r.PathLen = putLong(r.Path[:], "/items/1")
	r.RouteLen = put(r.Route[:], "GET /items/{id}")
	r.RemoteAddrLen = put(r.RemoteAddr[:], "127.0.0.1:50412")
	rec, err := binary.Append(nil, binary.NativeEndian, &r)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(rec)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeRecord(rec, trace.SpanKindServer); err != nil {
			b.Fatal(err)
		}
	}
}
