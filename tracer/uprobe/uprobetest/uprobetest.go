// Package uprobetest holds test helpers for packages that attach uprobes.
package uprobetest

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
)

// RequireEnv is the environment variable that turns RequireBPF's skips into
// failures. CI sets it to 1 on machines that must run the BPF tests.
const RequireEnv = "OFFSETDB_REQUIRE_BPF"

// uprobePMU is where the kernel publishes the uprobe perf event type, which
// cilium/ebpf uses to create uprobes without tracefs.
const uprobePMU = "/sys/bus/event_source/devices/uprobe/type"

// RequireBPF skips the test, saying why, unless the process can load BPF
// programs and attach uprobes: it must run as root, on a kernel with
// uprobes, ring buffers and kprobe-type programs. When the environment
// variable OFFSETDB_REQUIRE_BPF is 1 it fails the test instead, so that a
// CI machine which should run these tests cannot silently skip them.
func RequireBPF(tb testing.TB) {
	tb.Helper()
	if err := bpfUsable(); err != nil {
		if os.Getenv(RequireEnv) == "1" {
			tb.Fatalf("BPF REQUIRED (%s=1) BUT UNAVAILABLE: %v", RequireEnv, err)
		}
		tb.Skipf("SKIPPING BPF TEST: %v (run as root on Linux 5.8+ with uprobes; set %s=1 to make this a failure)", err, RequireEnv)
	}
}

// bpfUsable says why BPF uprobe tests cannot run here, or returns nil.
func bpfUsable() error {
	if os.Geteuid() != 0 {
		return errors.New("not running as root")
	}
	if _, err := os.Stat(uprobePMU); err != nil {
		return fmt.Errorf("kernel has no uprobe PMU (%s): uprobes not supported", uprobePMU)
	}
	if err := features.HaveProgramType(ebpf.Kprobe); err != nil {
		return fmt.Errorf("cannot load kprobe-type BPF programs: %w", err)
	}
	if err := features.HaveMapType(ebpf.RingBuf); err != nil {
		return fmt.Errorf("no BPF ring buffer: %w", err)
	}
	return nil
}
