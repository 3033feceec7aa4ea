// Package preflight checks, before anything is loaded, that this host can
// run the tracer: privileges, BPF program and map types, and uprobes. Each
// failure names what is missing and how to get it.
package preflight

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
)

// Capability numbers from linux/capability.h.
const (
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

// ErrPrivileges reports a process that may not load BPF programs or
// attach uprobes.
var ErrPrivileges = errors.New("insufficient privileges")

// ErrKernel reports a kernel without a feature the tracer needs.
var ErrKernel = errors.New("kernel lacks a required feature")

// Check runs every check and returns all failures joined. Missing
// privileges are reported alone: without them the kernel probes fail too,
// and would blame the kernel.
func Check() error {
	if err := checkCapabilities(); err != nil {
		return err
	}
	return checkKernel()
}

// checkCapabilities accepts root, or CAP_BPF plus CAP_PERFMON (Linux 5.8+),
// or CAP_SYS_ADMIN.
func checkCapabilities() error {
	eff, err := effectiveCapabilities()
	if err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	has := func(c uint) bool { return eff&(1<<c) != 0 }
	if has(capSysAdmin) || (has(capBPF) && has(capPerfmon)) {
		return nil
	}
	var missing []string
	if !has(capBPF) {
		missing = append(missing, "CAP_BPF")
	}
	if !has(capPerfmon) {
		missing = append(missing, "CAP_PERFMON")
	}
	return fmt.Errorf("%w: missing %s (or CAP_SYS_ADMIN); run as root, or grant them: sudo setcap cap_bpf,cap_perfmon,cap_sys_ptrace+ep $(which tracer)",
		ErrPrivileges, strings.Join(missing, " and "))
}

func effectiveCapabilities() (uint64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, errors.New("no CapEff line in /proc/self/status")
}

func checkKernel() error {
	var errs []error
	if err := features.HaveProgramType(ebpf.Kprobe); err != nil {
		errs = append(errs, fmt.Errorf("%w: uprobe (kprobe-type) BPF programs: %v", ErrKernel, err))
	}
	if err := features.HaveMapType(ebpf.RingBuf); err != nil {
		errs = append(errs, fmt.Errorf("%w: BPF ring buffers (Linux 5.8+): %v", ErrKernel, err))
	}
	if !uprobesAvailable() {
		errs = append(errs, fmt.Errorf("%w: uprobes (CONFIG_UPROBE_EVENTS): neither /sys/bus/event_source/devices/uprobe nor tracefs uprobe_events exists", ErrKernel))
	}
	return errors.Join(errs...)
}

func uprobesAvailable() bool {
	for _, p := range []string{
		"/sys/bus/event_source/devices/uprobe/type",
		"/sys/kernel/tracing/uprobe_events",
		"/sys/kernel/debug/tracing/uprobe_events",
	} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}
