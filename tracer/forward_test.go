//go:build linux && (amd64 || arm64)

package main

import (
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// TestCommandGetsTheSignalTheTracerGot: `tracer -- CMD` stopped by SIGINT
// passes SIGINT on to CMD (a program may handle only os.Interrupt), and
// SIGTERM as SIGTERM.
func TestCommandGetsTheSignalTheTracerGot(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: runs the tracer")
	}
	for _, c := range []struct {
		sig  syscall.Signal
		want string
	}{{syscall.SIGINT, "signal=interrupt"}, {syscall.SIGTERM, "signal=terminated"}} {
		t.Run(c.sig.String(), func(t *testing.T) {
			r := startTraced(t, localServiceBuild.get(t))
			require.NoError(t, r.cmd.Process.Signal(c.sig))
			done := make(chan error, 1)
			go func() { done <- r.cmd.Wait() }()
			select {
			case err := <-done:
				require.NoError(t, err, "tracer exit; stderr:\n%s", r.stderr)
			case <-time.After(eventTimeout):
				t.Fatalf("tracer did not exit; stderr:\n%s", r.stderr)
			}
			assert.Regexp(t, `msg="stopping the traced program" pid=\d+ `+c.want, r.stderr.String())
		})
	}
}
