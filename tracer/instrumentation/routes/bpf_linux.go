//go:build linux && (amd64 || arm64)

package routes

import "github.com/cilium/ebpf"

// The BPF objects of the C files beside, embedded by bpf2go.
func ginSpec() (*ebpf.CollectionSpec, error)        { return loadGin() }
func echoSpec() (*ebpf.CollectionSpec, error)       { return loadEcho() }
func chiSpec() (*ebpf.CollectionSpec, error)        { return loadChi() }
func gorillamuxSpec() (*ebpf.CollectionSpec, error) { return loadGorillamux() }
