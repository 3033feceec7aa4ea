//go:build !(linux && (amd64 || arm64))

package server

import "github.com/offsetdb/offsetdb/tracer/uprobe"

// spec and decode report that the BPF objects are built for Linux on
// amd64 and arm64 only.
var spec, decode = uprobe.Unsupported("net/http server")

// RecordPIDAt is 0: no records on this platform.
const RecordPIDAt = 0
