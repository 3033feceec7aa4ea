//go:build linux && (amd64 || arm64)

package httpclient

import (
	"github.com/cilium/ebpf"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/tracer/httpserver"
)

// spec returns the BPF objects of bpf/httpclient.c, embedded by bpf2go.
func spec() (*ebpf.CollectionSpec, error) {
	return loadClient()
}

// decode is the instrumentation's uprobe.Instrumentation.Decode. The client
// programs submit the record format of the server programs
// (bpf/nethttp.h), so httpserver decodes it.
func decode(record []byte) (any, error) {
	ev, err := httpserver.DecodeRecord(record, trace.SpanKindClient)
	if err != nil {
		return nil, err
	}
	if ev.Method == "" {
		ev.Method = "GET" // as net/http sends a Request with no Method
	}
	return ev, nil
}
