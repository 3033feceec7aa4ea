//go:build !(linux && (amd64 || arm64))

package httpserver

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// spec reports that the BPF objects are built for Linux on amd64 and arm64 only.
func spec() (*ebpf.CollectionSpec, error) {
	return nil, fmt.Errorf("net/http server instrumentation: %w", errors.ErrUnsupported)
}

// decode reports that the BPF objects are built for Linux on amd64 and arm64 only.
func decode([]byte) (any, error) {
	return nil, fmt.Errorf("net/http server instrumentation: %w", errors.ErrUnsupported)
}
