//go:build linux && (amd64 || arm64)

package routes_test

import (
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/tracer/instrumentation/nethttp/server"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// TestVerifierAcceptsEveryObject loads each router object, and the server
// object that reads their map, into the kernel with every field offset
// set (an absent one would let the verifier skip the code that uses it):
// the verifier's verdict on the template copies of bpf/route.h, without a
// target.
func TestVerifierAcceptsEveryObject(t *testing.T) {
	uprobetest.RequireBPF(t)
	require.NoError(t, rlimit.RemoveMemlock())
	for _, inst := range append(all(), server.Instrumentation()) {
		t.Run(inst.Name, func(t *testing.T) {
			spec, err := inst.Spec()
			require.NoError(t, err)
			for _, f := range inst.Fields {
				require.NoError(t, spec.Variables[f.Const].Set(uint64(8)))
			}
			coll, err := ebpf.NewCollection(spec)
			require.NoError(t, err)
			coll.Close()
		})
	}
}
