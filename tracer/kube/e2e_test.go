package kube_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/offsetdb/offsetdb/tracer/container/cgrouptest"
	"github.com/offsetdb/offsetdb/tracer/kube/kubetest"
	"github.com/offsetdb/offsetdb/tracer/otlptest"
)

// lockedBuffer collects a process's output for the test to read.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func goBuild(t *testing.T, pkg, out string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = "../"
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// TestSpansCarryPodMetadata runs the tracer binary with --kubeconfig
// against a real API server and a Go HTTP service in a pod's cgroup, and
// checks the resource of the spans it exports.
func TestSpansCarryPodMetadata(t *testing.T) {
	if os.Geteuid() != 0 {
		cgrouptest.Skip(t, "attaching uprobes needs root")
	}
	c := kubetest.Start(t)
	o := objects{t: t, cs: c.Client}
	ctx := context.Background()
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	tracer, service := filepath.Join(bin, "tracer"), filepath.Join(bin, "service")
	goBuild(t, "./", tracer)
	goBuild(t, "./testdata/service", service)

	pod := o.pod("shipping-6b8d4-lq2wz", "node-a", controller("ReplicaSet", "shipping-6b8d4", "0a0a0a0a-0000-4000-8000-000000000011"),
		map[string]string{"app.kubernetes.io/name": "shipping", "pod-template-hash": "6b8d4"},
		[]string{"server"}, map[string]string{"server": id(11)})
	leaf, cleanup := cgrouptest.KubeCgroup(t, string(pod.UID), id(11))
	svc := exec.Command("sh", "-c", "echo $$ > "+filepath.Join(leaf, "cgroup.procs")+" && exec "+service)
	stdout, err := svc.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Process.Kill(); svc.Wait(); cleanup() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("service: %v", err)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok {
		t.Fatalf("service: unexpected first line %q", line)
	}
	go io.Copy(io.Discard, stdout)

	recv := otlptest.NewHTTP(t)
	tr := exec.Command(tracer, "--kubeconfig", c.Kubeconfig, "--node-name", "node-a", "--pid", strconv.Itoa(svc.Process.Pid))
	tr.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_ENDPOINT="+recv.Endpoint(), "OTEL_BSP_SCHEDULE_DELAY=100",
		"OTEL_RESOURCE_ATTRIBUTES=k8s.cluster.name=test-cluster")
	logs := &lockedBuffer{}
	tr.Stdout, tr.Stderr = logs, logs
	if err := tr.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Process.Kill(); tr.Wait() })
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(logs.String(), "msg=attached") {
		if time.Now().After(deadline) {
			t.Fatalf("tracer not attached:\n%s", logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp, err := http.Get("http://" + addr + "/backend")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	spans := recv.WaitForSpans(t, 1, 2*time.Minute)
	res := spans[0].Resource
	for k, want := range map[string]any{
		"service.name": "shipping", "k8s.namespace.name": ns, "k8s.pod.name": pod.Name, "k8s.pod.uid": string(pod.UID),
		"k8s.container.name": "server", "k8s.node.name": "node-a", "k8s.replicaset.name": "shipping-6b8d4",
		"k8s.deployment.name": "shipping", "container.id": id(11), "k8s.cluster.name": "test-cluster",
		"process.pid": int64(svc.Process.Pid),
	} {
		if res[k] != want {
			t.Errorf("resource %s = %v, want %v", k, res[k], want)
		}
	}
	if t.Failed() {
		t.Logf("resource: %v\ntracer:\n%s", res, logs)
	}
}
