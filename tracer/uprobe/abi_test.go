package uprobe_test

import (
	"fmt"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/gobinary"
	"github.com/offsetdb/offsetdb/goversion"
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

// TestLocateOnStackABITargets: on a binary of a release before the
// register calling convention (the test binary, as if built by go1.15.15),
// a probe not marked as made for the stack convention is skipped, saying
// so, and so is a return probe whose declared results do not fit the
// function's argument area in the function table; when no probe fits, the
// instrumentation's error gives each reason.
func TestLocateOnStackABITargets(t *testing.T) {
	bin := self(t)
	bin.GoVersion, bin.GoVersionRaw = goversion.MustParse("go1.15.15"), "go1.15.15"
	require.True(t, uprobe.StackABI(bin))
	fn, err := bin.Function("runtime.newobject") // (typ *_type) unsafe.Pointer
	require.NoError(t, err)
	require.Positive(t, fn.Args)

	marked := uprobe.Probe{Symbol: "runtime.newobject", Entry: "entry", Return: "ret", StackABI: true, StackResults: 8}
	unmarked := uprobe.Probe{Symbol: "runtime.main", Entry: "entry", Optional: true}
	tooBig := uprobe.Probe{Symbol: "runtime.newobject", Return: "ret", StackABI: true, StackResults: int(fn.Args) + 8, Optional: true}
	stack := fake("stack", marked, unmarked, tooBig)
	located, skipped, err := stack.Locate(bin)
	require.NoError(t, err)
	require.Len(t, located, 1)
	assert.Equal(t, marked, located[0].Probe)
	if assert.Len(t, skipped, 2) {
		assert.ErrorContains(t, skipped[0].Err, "runtime.main: its programs are not made for the stack-based calling convention of go1.15.15 (amd64 passes arguments in registers from go1.17 on)")
		assert.ErrorContains(t, skipped[1].Err, fmt.Sprintf("runtime.newobject: its results are %d bytes, but the function table gives %d bytes for its arguments and results", fn.Args+8, fn.Args))
	}
	none := fake("none", unmarked)
	_, _, err = none.Locate(bin)
	assert.ErrorContains(t, err, "instrumentation none: probe skipped: no probe fits "+bin.Path+": runtime.main: its programs are not made for the stack-based calling convention of go1.15.15")
}

// TestNoRegABIExperimentIsRefused: Go 1.17 built with a noregabi
// GOEXPERIMENT passes arguments on the stack in a release the tracer reads
// as register-based: refused with the reason, not traced with garbage.
func TestNoRegABIExperimentIsRefused(t *testing.T) {
	bin := &gobinary.Binary{Arch: "amd64", GoVersion: goversion.MustParse("go1.17.13"),
		GoVersionRaw: "go1.17.13 X:noregabiwrappers,noregabiargs", Experiments: []string{"noregabiargs", "noregabiwrappers"}}
	assert.False(t, uprobe.StackABI(bin))
	err := uprobe.CanReadStackABI(bin)
	assert.ErrorContains(t, err, "GOEXPERIMENT=noregabiargs turns off the register-based calling convention")
	bin.Experiments = []string{"boringcrypto"}
	assert.NoError(t, uprobe.CanReadStackABI(bin))
}
