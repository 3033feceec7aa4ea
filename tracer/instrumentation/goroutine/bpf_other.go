//go:build !(linux && (amd64 || arm64))

package goroutine

import "github.com/offsetdb/offsetdb/tracer/uprobe"

// spec reports that the BPF objects are built for Linux on amd64 and arm64 only.
var spec, _ = uprobe.Unsupported(Name)
