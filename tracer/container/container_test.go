package container_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/offsetdb/offsetdb/tracer/container"
	"github.com/offsetdb/offsetdb/tracer/container/cgrouptest"
)

const (
	id  = "4b1d3e5f00112233445566778899aabbccddeeff00112233445566778899aabb"
	uid = "0f4c2a7e-9e1d-4a52-8b3c-2d1e0f9a8b7c"
)

func TestParse(t *testing.T) {
	uidU := strings.ReplaceAll(uid, "-", "_")
	for _, tc := range []struct {
		name, cgroup string
		want         container.Info
	}{
		{"systemd containerd", "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + id + ".scope\n", container.Info{ID: id, PodUID: uid}},
		{"systemd guaranteed crio", "0::/kubepods.slice/kubepods-pod" + uidU + ".slice/crio-" + id + ".scope\n", container.Info{ID: id, PodUID: uid}},
		{"cgroupfs", "0::/kubepods/besteffort/pod" + uid + "/" + id + "\n", container.Info{ID: id, PodUID: uid}},
		{"cgroup namespace", "0::/../../kubepods-besteffort-pod" + uidU + ".slice/cri-containerd-" + id + ".scope\n", container.Info{ID: id, PodUID: uid}},
		{"docker", "0::/system.slice/docker-" + id + ".scope\n", container.Info{ID: id}},
		{"docker cgroupfs", "0::/docker/" + id + "\n", container.Info{ID: id}},
		{"podman", "0::/machine.slice/libpod-" + id + ".scope/container\n", container.Info{ID: id}},
		{"v1 hybrid: first hierarchy with a container", "12:pids:/\n4:memory:/kubepods/pod" + uid + "/" + id + "\n0::/\n", container.Info{ID: id, PodUID: uid}},
		{"pod sandbox level only", "0::/kubepods/pod" + uid + "\n", container.Info{PodUID: uid}},
		{"host process", "0::/user.slice/user-0.slice/session-1.scope\n", container.Info{}},
		{"root", "0::/\n", container.Info{}},
		{"id too short", "0::/docker/" + id[:63] + "\n", container.Info{}},
		{"garbage", "no colons here\n", container.Info{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := container.Parse([]byte(tc.cgroup)); got != tc.want {
				t.Errorf("Parse(%q) = %+v, want %+v", tc.cgroup, got, tc.want)
			}
		})
	}
}

func TestTrimRuntime(t *testing.T) {
	for in, want := range map[string]string{"containerd://" + id: id, "cri-o://" + id: id, id: id, "": ""} {
		if got := container.TrimRuntime(in); got != want {
			t.Errorf("TrimRuntime(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestForPIDRealCgroup moves a real process into a cgroup named as the
// kubelet and containerd name them, and reads it back from /proc.
func TestForPIDRealCgroup(t *testing.T) {
	dir, cleanup := cgrouptest.KubeCgroup(t, uid, id)
	defer cleanup()
	cmd := exec.Command("sh", "-c", "echo $$ > "+filepath.Join(dir, "cgroup.procs")+" && exec sleep 30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var got container.Info
	for range 100 {
		var err error
		if got, err = container.ForPID(cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
		if got.ID != "" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if want := (container.Info{ID: id, PodUID: uid}); got != want {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", cmd.Process.Pid))
		t.Fatalf("ForPID = %+v, want %+v; cgroup:\n%s", got, want, b)
	}
	if _, err := container.ForPID(1 << 30); err == nil {
		t.Error("ForPID of a pid that cannot exist: no error")
	}
}
