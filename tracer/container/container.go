// Package container finds the container a process runs in from its cgroup
// path: the container id (for container.id and for finding its pod) and, on
// Kubernetes nodes, the pod UID the kubelet writes into the path.
//
// Every runtime names the cgroup after the container's 64-hex-digit id, with
// its own prefix and suffix; the kubelet adds a "pod<UID>" level above it:
//
//	0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f4c…_9e1d.slice/cri-containerd-4b1d….scope   (systemd driver)
//	0::/kubepods/besteffort/pod0f4c…-9e1d/4b1d…                                                                  (cgroupfs driver)
//	0::/system.slice/docker-4b1d….scope, 0::/docker/4b1d…, 0::/machine.slice/libpod-4b1d….scope, crio-4b1d….scope
//
// Paths seen from inside a cgroup namespace (a tracer in a pod) start with
// "/../.." and still carry both names, so only path segments are matched,
// never the whole path.
package container

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// Info is what a process's cgroup says about its container.
type Info struct {
	// ID is the runtime's container id: 64 lowercase hex digits (the value
	// of container.id, and of a pod's status.containerStatuses[].containerID
	// after its "runtime://" prefix). Empty when the process is not in a
	// container.
	ID string
	// PodUID is the Kubernetes pod UID from the kubelet's "pod<UID>" cgroup
	// level, with dashes ("0f4c…-9e1d-…"); empty outside Kubernetes.
	PodUID string
}

// ErrNoCgroup is returned when /proc/PID/cgroup cannot be read.
var ErrNoCgroup = errors.New("cannot read the process's cgroup")

var (
	// idSegment is one path segment naming a container: an optional runtime
	// prefix, the id, an optional ".scope".
	idSegment = regexp.MustCompile(`^(?:[a-z0-9]+(?:-[a-z0-9]+)*-)?([0-9a-f]{64})(?:\.scope)?$`)
	// podSegment is the kubelet's pod level: "pod<UID>" (cgroupfs) or
	// "kubepods[-<qos>]-pod<UID with underscores>.slice" (systemd).
	podSegment = regexp.MustCompile(`(?:^|-)pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})(?:\.slice)?$`)
)

// ForPID reads /proc/PID/cgroup.
func ForPID(pid int) (Info, error) {
	return ForProc("/proc", pid)
}

// ForProc reads PROCROOT/PID/cgroup; procRoot lets a tracer with the host's
// /proc mounted elsewhere (or a test) use it.
func ForProc(procRoot string, pid int) (Info, error) {
	b, err := os.ReadFile(procRoot + "/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return Info{}, fmt.Errorf("%w: %w", ErrNoCgroup, err)
	}
	return Parse(b), nil
}

// Parse reads the contents of a /proc/PID/cgroup file: one
// "hierarchy-ID:controllers:path" line per hierarchy (a single "0::path" on
// cgroup v2). The first line whose path names a container wins; the
// innermost (last) container segment of that path is the container, the
// innermost pod segment its pod.
func Parse(cgroup []byte) Info {
	sc := bufio.NewScanner(bytes.NewReader(cgroup))
	for sc.Scan() {
		line := sc.Text()
		i := strings.Index(line, ":")
		if i < 0 {
			continue
		}
		j := strings.Index(line[i+1:], ":")
		if j < 0 {
			continue
		}
		if info := parsePath(line[i+1+j+1:]); info.ID != "" || info.PodUID != "" {
			return info
		}
	}
	return Info{}
}

// parsePath finds the container id and pod UID in one cgroup path.
func parsePath(path string) Info {
	var info Info
	for _, seg := range strings.Split(path, "/") {
		if m := idSegment.FindStringSubmatch(seg); m != nil {
			info.ID = m[1]
			continue
		}
		if m := podSegment.FindStringSubmatch(seg); m != nil {
			info.PodUID = strings.ReplaceAll(m[1], "_", "-")
		}
	}
	return info
}

// TrimRuntime returns a container id without the "runtime://" prefix the
// Kubernetes API writes ("containerd://4b1d…" → "4b1d…").
func TrimRuntime(containerID string) string {
	if _, id, ok := strings.Cut(containerID, "://"); ok {
		return id
	}
	return containerID
}
