//go:build !linux || !(amd64 || arm64)

package propagation

import (
	"errors"

	"github.com/cilium/ebpf"
)

// Writer is the socket-layer writer; this platform has none.
type Writer struct{}

// Start fails: the writer needs Linux on amd64 or arm64.
func Start(cgroupRoot string) (*Writer, error) {
	return nil, errors.New("the trace-context writer needs Linux on amd64 or arm64")
}

// Maps returns nil.
func (w *Writer) Maps() map[string]*ebpf.Map { return nil }

// Stats returns zero counters.
func (w *Writer) Stats() (Stats, error) { return Stats{}, nil }

// Adopt does nothing.
func (w *Writer) Adopt(pid int) (int, error) { return 0, nil }

// Close does nothing.
func (w *Writer) Close() error { return nil }
