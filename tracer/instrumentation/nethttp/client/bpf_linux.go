//go:build linux && (amd64 || arm64)

package client

import (
	"github.com/cilium/ebpf"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/tracer/instrumentation/nethttp/httpconv"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/nethttp/server"
	"github.com/offsetdb/offsetdb/tracer/spans"
)

// spec returns the BPF objects of client.c, embedded by bpf2go.
func spec() (*ebpf.CollectionSpec, error) {
	return loadClient()
}

// decode is the instrumentation's uprobe.Instrumentation.Decode.
func decode(record []byte, out *spans.Span) error {
	ev, err := decodeRecord(record)
	if err != nil {
		return err
	}
	return httpconv.Describe(&ev, out)
}

// decodeRecord decodes a record of the client programs. They submit the
// record format of the server programs (bpf/nethttp.h), so package server
// decodes it.
func decodeRecord(record []byte) (httpconv.HTTPEvent, error) {
	ev, err := server.DecodeRecord(record, trace.SpanKindClient)
	if err != nil {
		return ev, err
	}
	if ev.Method == "" {
		ev.Method = "GET" // as net/http sends a Request with no Method
	}
	return ev, nil
}

// recordPIDAt is where the record format of package server holds the
// submitting process (uprobe.Instrumentation.PIDAt).
var recordPIDAt = server.RecordPIDAt
