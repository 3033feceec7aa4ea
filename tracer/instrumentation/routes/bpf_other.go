//go:build !(linux && (amd64 || arm64))

package routes

import "github.com/offsetdb/offsetdb/tracer/uprobe"

// The BPF objects are built for Linux on amd64 and arm64 only.
var (
	ginSpec, _        = uprobe.Unsupported(GinName)
	echoSpec, _       = uprobe.Unsupported(EchoName)
	chiSpec, _        = uprobe.Unsupported(ChiName)
	gorillamuxSpec, _ = uprobe.Unsupported(GorillaMuxName)
)
