//go:build linux && (amd64 || arm64)

package goroutine

import "github.com/cilium/ebpf"

// spec returns the BPF objects of goroutine.c, embedded by bpf2go.
func spec() (*ebpf.CollectionSpec, error) {
	return loadGoroutine()
}
