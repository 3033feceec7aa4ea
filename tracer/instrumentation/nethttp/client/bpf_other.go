//go:build !(linux && (amd64 || arm64))

package client

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/offsetdb/offsetdb/tracer/spans"
)

// spec reports that the BPF objects are built for Linux on amd64 and arm64 only.
func spec() (*ebpf.CollectionSpec, error) {
	return nil, fmt.Errorf("net/http client instrumentation: %w", errors.ErrUnsupported)
}

// decode reports that the BPF objects are built for Linux on amd64 and arm64 only.
func decode([]byte, *spans.Span) error {
	return fmt.Errorf("net/http client instrumentation: %w", errors.ErrUnsupported)
}
