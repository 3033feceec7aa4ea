// Package cgrouptest makes real cgroups named the way the kubelet and
// containerd name a pod's container, for tests that need a process whose
// /proc/PID/cgroup carries a pod UID and a container id.
package cgrouptest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Require reports whether tests that need privileges must run rather than
// skip: CI sets OFFSETDB_REQUIRE_BPF=1.
func Require() bool { return os.Getenv("OFFSETDB_REQUIRE_BPF") == "1" }

// Skip skips t, or fails it when Require says the test must run.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Require() {
		t.Fatalf("%s (OFFSETDB_REQUIRE_BPF=1: this test must run)", msg)
	}
	t.Skipf("SKIPPED: %s", msg)
}

// Root returns a writable cgroup hierarchy: the cgroup2 mount, else the v1
// "name=systemd" one. Either is enough, since a process's /proc/PID/cgroup
// lists its path in every hierarchy.
func Root() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	var v2, named string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "36 35 0:31 / /sys/fs/cgroup/unified rw,... - cgroup2 cgroup2 rw"
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+3 >= len(fields) || fields[3] != "/" {
			continue
		}
		switch fstype, opts := fields[sep+1], fields[sep+3]; {
		case fstype == "cgroup2" && v2 == "":
			v2 = fields[4]
		case fstype == "cgroup" && strings.Contains(opts, "name=systemd") && named == "":
			named = fields[4]
		}
	}
	for _, dir := range []string{v2, named} {
		if dir != "" {
			return dir, nil
		}
	}
	return "", fmt.Errorf("no cgroup2 or name=systemd cgroup hierarchy mounted")
}

// KubeCgroup creates, under a fresh test cgroup, the systemd-driver path the
// kubelet and containerd give a BestEffort pod's container:
//
//	…/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<UID>.slice/cri-containerd-<ID>.scope
//
// and returns that leaf directory (write a pid to its cgroup.procs) and a
// cleanup that removes the directories once their processes have exited.
// It skips t (fails under Require) without root or a writable hierarchy.
func KubeCgroup(t testing.TB, podUID, containerID string) (string, func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "creating cgroups needs root")
	}
	root, err := Root()
	if err != nil {
		Skip(t, "%v", err)
	}
	top, err := os.MkdirTemp(root, "offsetdb-test-")
	if err != nil {
		Skip(t, "cgroup hierarchy %s is not writable: %v", root, err)
	}
	uid := strings.ReplaceAll(podUID, "-", "_")
	leaf := filepath.Join(top, "kubepods.slice", "kubepods-besteffort.slice",
		"kubepods-besteffort-pod"+uid+".slice", "cri-containerd-"+containerID+".scope")
	if err := os.MkdirAll(leaf, 0o755); err != nil {
		t.Fatalf("create cgroup %s: %v", leaf, err)
	}
	cleanup := func() {
		// cgroup directories are removed with rmdir, innermost first, and
		// only once the processes moved in have exited.
		for dir := leaf; strings.HasPrefix(dir, top); dir = filepath.Dir(dir) {
			var err error
			for range 50 {
				if err = os.Remove(dir); err == nil || os.IsNotExist(err) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil && !os.IsNotExist(err) {
				t.Logf("remove cgroup %s: %v", dir, err)
				return
			}
		}
	}
	return leaf, cleanup
}
