//go:build !(linux && (amd64 || arm64))

package kafkago

import "github.com/offsetdb/offsetdb/tracer/uprobe"

// spec and decode report that the BPF objects are built for Linux on
// amd64 and arm64 only.
var spec, decode = uprobe.Unsupported("kafka-go")

// recordPIDAt is 0: no records on this platform.
const recordPIDAt = 0
