package uprobe_test

import (
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/tracer/instrumentation/nethttp/client"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/nethttp/server"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// TestRegisterABINeedsNoKernelBTF loads real instrumentations as for a
// register-ABI target on a kernel without BTF (no kernel types: the CO-RE
// relocations of the thread-local-storage read of GO_G are poisoned): the
// verifier accepts them, because go_stack_abi is 0 and that branch is
// dead. Loaded as for a stack-ABI target, the same programs are rejected:
// the poisoned instructions are what the first load did without, not an
// accident of the object.
func TestRegisterABINeedsNoKernelBTF(t *testing.T) {
	uprobetest.RequireBPF(t)
	require.NoError(t, rlimit.RemoveMemlock())
	none, err := uprobe.NoKernelTypes()
	require.NoError(t, err)
	for _, inst := range []uprobe.Instrumentation{client.Instrumentation(), server.Instrumentation()} {
		t.Run(inst.Name, func(t *testing.T) {
			for _, stack := range []uint8{0, 1} {
				spec, err := inst.Spec()
				require.NoError(t, err)
				require.NoError(t, spec.Variables["go_stack_abi"].Set(stack))
				coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{KernelTypes: none}})
				if stack == 0 {
					require.NoError(t, err)
					coll.Close()
				} else {
					assert.Error(t, err, "the stack-ABI branch reads task_struct, which an empty set of kernel types poisons")
				}
			}
		})
	}
}
