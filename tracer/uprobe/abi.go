package uprobe

import (
	"bytes"
	"fmt"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"

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

// Constants of bpf/runtime.h that Attach sets in every object declaring
// them: the tracer's pid namespace (see record_tgid there).
const (
	pidnsDevConst = "pidns_dev"
	pidnsInoConst = "pidns_ino"
)

// ABIConsts are the BPF constants that no Field sets because Attach sets
// them from the target's calling convention (bpf/go_abi.h declares them
// in every object that includes it) and from the tracer's pid namespace
// (bpf/runtime.h).
var ABIConsts = []string{stackABIConst, tlsGConst, pidnsDevConst, pidnsInoConst}

// pidNamespace returns the device and inode of the tracer's pid namespace,
// or zeros when /proc/self/ns/pid cannot be read (the BPF side then keeps
// the kernel's tgids, right for a tracer in the initial namespace).
var pidNamespace = sync.OnceValues(func() (dev, ino uint64) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/pid", &st); err != nil {
		return 0, 0
	}
	return uint64(st.Dev), st.Ino
})

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
	if err := CanReadStackABI(bin); err != nil {
		return a, err
	}
	if a.stack {
		// Results are located through the RET uprobes' cookies. The
		// check loads a program, so it needs the privileges Attach has,
		// not those of planning (tracer inspect).
		if err := features.HaveProgramHelper(ebpf.Kprobe, asm.FnGetAttachCookie); err != nil {
			return a, fmt.Errorf("built with %s (stack-based calling convention), whose results the programs locate through the uprobes' BPF cookies (bpf_get_attach_cookie, Linux 5.15): %w", bin.GoVersionRaw, err)
		}
	}
	if a.stack && bin.Arch == "amd64" {
		a.tlsG, _ = bin.GoTLSOffset() // checked by CanReadStackABI
	}
	return a, nil
}

// CanReadStackABI says why the programs cannot read bin's goroutines if
// bin uses the stack-based calling convention on amd64 and they cannot:
// g is in thread-local storage at an offset read from bin's code
// (gobinary.GoTLSOffset), and the thread's FS base is read from the
// kernel's task_struct, whose layout only the kernel's BTF gives. Nil for
// every other binary. A release with the register convention built with
// a noregabi* GOEXPERIMENT (Go 1.17 only) mixes the conventions in a way
// the programs do not read: refused, with the reason.
func CanReadStackABI(bin *gobinary.Binary) error {
	if !StackABI(bin) {
		for _, x := range bin.Experiments {
			if strings.HasPrefix(x, "noregabi") {
				return fmt.Errorf("built with %s: GOEXPERIMENT=%s turns off the register-based calling convention this release otherwise uses, which the programs do not support (rebuild without it)", bin.GoVersionRaw, x)
			}
		}
	}
	if !StackABI(bin) || bin.Arch != "amd64" {
		return nil
	}
	if _, err := bin.GoTLSOffset(); err != nil {
		return fmt.Errorf("built with %s (stack-based calling convention), whose current goroutine is in thread-local storage, but its offset could not be read from the code: %w", bin.GoVersionRaw, err)
	}
	if _, err := btf.LoadKernelSpec(); err != nil {
		return fmt.Errorf("built with %s (stack-based calling convention), whose current goroutine is read from the thread's FS base, which needs the kernel's BTF (CONFIG_DEBUG_INFO_BTF): %w", bin.GoVersionRaw, err)
	}
	return nil
}

// noKernelTypes is an empty set of kernel types, built once.
var noKernelTypes = sync.OnceValues(func() (*btf.Spec, error) {
	b, err := btf.NewBuilder(nil, nil)
	if err != nil {
		return nil, err
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		return nil, err
	}
	return btf.LoadSpecFromReader(bytes.NewReader(raw))
})

// kernelTypes returns the types the CO-RE relocations of a's programs are
// resolved against: nil, the kernel's, when it has BTF or the target uses
// the stack-based calling convention (whose amd64 branch of GO_G reads
// task_struct); otherwise none, which poisons those relocations. The
// verifier accepts the poisoned instructions because go_stack_abi is 0 and
// their branch is dead: register-ABI targets need no kernel BTF, as
// before the stack ABI was read.
func (a abi) kernelTypes() (*btf.Spec, error) {
	if a.stack {
		return nil, nil
	}
	if _, err := btf.LoadKernelSpec(); err == nil {
		return nil, nil
	}
	return noKernelTypes()
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
