//go:build linux && (amd64 || arm64)

package client

import (
	"github.com/cilium/ebpf"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/tracer/instrumentation/grpc/grpcconv"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/grpc/server"
	"github.com/offsetdb/offsetdb/tracer/spans"
)

// spec returns the BPF objects of client.c, embedded by bpf2go.
func spec() (*ebpf.CollectionSpec, error) {
	return loadClient()
}

// decode is the instrumentation's uprobe.Instrumentation.Decode. The client
// programs submit the record format of the server programs (bpf/grpc.h),
// so package server decodes it.
func decode(record []byte, out *spans.Span) error {
	ev, err := server.DecodeRecord(record, trace.SpanKindClient)
	if err != nil {
		return err
	}
	return grpcconv.Describe(&ev, out)
}

// recordPIDAt is where the record format of package server holds the
// submitting process (uprobe.Instrumentation.PIDAt).
var recordPIDAt = server.RecordPIDAt
