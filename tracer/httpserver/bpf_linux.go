//go:build linux && (amd64 || arm64)

package httpserver

import (
	"encoding/binary"
	"fmt"

	"github.com/cilium/ebpf"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/tracer/spans"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
)

// spec returns the BPF objects of bpf/httpserver.c, embedded by bpf2go.
func spec() (*ebpf.CollectionSpec, error) {
	return loadServer()
}

// decode is the instrumentation's uprobe.Instrumentation.Decode.
func decode(record []byte) (any, error) {
	return DecodeRecord(record, trace.SpanKindServer)
}

// recordSize is the size of struct http_event.
var recordSize = binary.Size(serverHttpEvent{})

// DecodeRecord decodes a struct http_event record (bpf/nethttp.h), the
// format the net/http server and client BPF objects share, as a span of
// the given kind. Strings cut by the fixed-size buffers of the record stay
// cut.
func DecodeRecord(record []byte, kind trace.SpanKind) (spans.HTTPEvent, error) {
	var r serverHttpEvent
	if len(record) < recordSize {
		return spans.HTTPEvent{}, fmt.Errorf("record of %d bytes, want %d", len(record), recordSize)
	}
	if _, err := binary.Decode(record[:recordSize], binary.NativeEndian, &r); err != nil {
		return spans.HTTPEvent{}, fmt.Errorf("decode http_event: %w", err)
	}
	return spans.HTTPEvent{
		Kind:         kind,
		Start:        uprobe.WallTime(r.StartNs),
		End:          uprobe.WallTime(r.EndNs),
		TraceID:      r.TraceId,
		SpanID:       r.SpanId,
		ParentSpanID: r.ParentSpanId,
		Method:       prefix(r.Method[:], r.MethodLen),
		Scheme:       prefix(r.Scheme[:], r.SchemeLen),
		Host:         prefix(r.Host[:], r.HostLen),
		Path:         prefix(r.Path[:], r.PathLen),
		Query:        prefix(r.Query[:], r.QueryLen),
		Route:        prefix(r.Route[:], r.RouteLen),
		RemoteAddr:   prefix(r.RemoteAddr[:], r.RemoteAddrLen),
		ProtoMajor:   int(r.ProtoMajor),
		ProtoMinor:   int(r.ProtoMinor),
		StatusCode:   int(r.Status),
	}, nil
}

// prefix returns the first n bytes of buf as a string; the rest of a
// buffer is left over from earlier records.
func prefix(buf []byte, n uint8) string {
	return string(buf[:min(int(n), len(buf))])
}
