package uprobe

import (
	"fmt"

	"github.com/offsetdb/offsetdb/gobinary"
	"github.com/offsetdb/offsetdb/goversion"
)

// registerABI is the first Go release, by architecture, whose functions
// take their arguments in registers (ABIInternal); the releases before it
// pass them on the stack (ABI0). See bpf/go_abi.h.
var registerABI = map[string]goversion.Version{
	"amd64": goversion.MustParse("go1.17"),
	"arm64": goversion.MustParse("go1.18"),
}

// Constants of bpf/go_abi.h that Attach sets in every object declaring
// them, from the target binary's calling convention.
const (
	stackABIConst = "go_stack_abi" // __u8: 1 for the stack-based convention
	tlsGConst     = "go_tls_g"     // __u64: amd64 stack ABI, g's offset from the FS base
)

// StackABI reports whether bin's Go functions use the stack-based calling
// convention (ABI0): built by a release before Go 1.17 on amd64 or 1.18 on
// arm64. A binary whose Go version is unknown is taken to use registers.
func StackABI(bin *gobinary.Binary) bool {
	first, ok := registerABI[bin.Arch]
	return ok && bin.GoVersionErr == nil && bin.GoVersion.Less(first)
}

// abi is what the programs of one Session need to know of the target's
// calling convention.
type abi struct {
	stack bool
	tlsG  int64 // amd64 and stack only
}

// binaryABI reads bin's calling convention and, for a stack-ABI amd64
// binary, where it keeps g (gobinary.GoTLSOffset).
func binaryABI(bin *gobinary.Binary) (abi, error) {
	a := abi{stack: StackABI(bin)}
	if a.stack && bin.Arch == "amd64" {
		off, err := bin.GoTLSOffset()
		if err != nil {
			return a, fmt.Errorf("%s uses the stack-based calling convention, but where it keeps the current goroutine is unknown: %w", bin.GoVersionRaw, err)
		}
		a.tlsG = off
	}
	return a, nil
}

// resultsCookie is the BPF cookie of a RET uprobe of fn on a stack-ABI
// target: the offset from SP of the first result, which follows the
// arguments in the caller's frame (bpf/go_abi.h), or 0 when p declares no
// results. _func.args counts arguments and results together, the whole
// rounded up to a word, and results start at a word boundary, so the
// first result is StackResults bytes before the end.
func resultsCookie(p Probe, fn gobinary.Function) uint64 {
	if p.StackResults == 0 || fn.Args < int64(p.StackResults) {
		return 0
	}
	return uint64(8 + fn.Args - int64(p.StackResults))
}
