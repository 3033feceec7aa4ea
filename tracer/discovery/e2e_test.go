package discovery_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/offsetdb/offsetdb/tracer/container/cgrouptest"
	"github.com/offsetdb/offsetdb/tracer/kube/kubetest"
	"github.com/offsetdb/offsetdb/tracer/otlptest"
)

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

// serveInPod starts the test HTTP service in a pod's cgroup and returns its
// pid and address.
func serveInPod(t *testing.T, service string, uid types.UID, containerID string) (int, string) {
	t.Helper()
	leaf, cleanup := cgrouptest.KubeCgroup(t, string(uid), containerID)
	cmd := exec.Command("sh", "-c", "echo $$ > "+filepath.Join(leaf, "cgroup.procs")+" && exec "+service)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); cleanup() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("service: %v", err)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok {
		t.Fatalf("service: %q", line)
	}
	go io.Copy(io.Discard, out)
	return cmd.Process.Pid, addr
}

func get(t *testing.T, addr, path string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// spansOf returns the server spans of process pid received so far.
func spansOf(recv *otlptest.Receiver, pid int) int {
	n := 0
	for _, s := range recv.Spans() {
		if s.Kind == "server" && s.Resource["process.pid"] == int64(pid) {
			n++
		}
	}
	return n
}

// TestTracerDiscovery runs the tracer binary with --discovery and
// --kubeconfig against a real API server and Go services in pod cgroups:
// only the selected pod's service is traced, a service started later in a
// selected pod is traced from its start, and relabelling a pod into the
// rules gets its running service traced.
func TestTracerDiscovery(t *testing.T) {
	if os.Geteuid() != 0 {
		cgrouptest.Skip(t, "attaching uprobes needs root")
	}
	c := kubetest.Start(t)
	ctx := context.Background()
	cs := c.Client
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mkpod := func(name, app string) *corev1.Pod {
		p, err := cs.CoreV1().Pods("shop").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: map[string]string{"app.kubernetes.io/name": app}},
			Spec:       corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "server", Image: "example.com/x:1"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	bin := t.TempDir()
	tracer, service := filepath.Join(bin, "tracer"), filepath.Join(bin, "service")
	goBuild(t, "./", tracer)
	goBuild(t, "./testdata/service", service)

	selected, other := mkpod("checkout-1", "checkout"), mkpod("cart-1", "cart")
	pSel, aSel := serveInPod(t, service, selected.UID, id(21))
	pOther, aOther := serveInPod(t, service, other.UID, id(22))

	rules := filepath.Join(t.TempDir(), "discovery.yaml")
	if err := os.WriteFile(rules, []byte(`
discovery:
  services:
    - k8s_namespace: shop
      k8s_pod_labels: {app.kubernetes.io/name: "checkout*"}
      exe_path: "*/service"
`), 0o644); err != nil {
		t.Fatal(err)
	}
	recv := otlptest.NewHTTP(t)
	tr := exec.Command(tracer, "--kubeconfig", c.Kubeconfig, "--node-name", "node-a", "--discovery", rules)
	tr.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_ENDPOINT="+recv.Endpoint(), "OTEL_BSP_SCHEDULE_DELAY=100")
	logs := &lockedBuffer{}
	tr.Stdout, tr.Stderr = logs, logs
	if err := tr.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Process.Kill(); tr.Wait() })
	waitLog := func(re string) {
		t.Helper()
		rx := regexp.MustCompile(re)
		deadline := time.Now().Add(2 * time.Minute)
		for !rx.MatchString(logs.String()) {
			if time.Now().After(deadline) {
				t.Fatalf("no log line matching %s:\n%s", re, logs)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitLog(`msg=attached pid=` + strconv.Itoa(pSel) + ` `)
	get(t, aSel, "/backend")
	get(t, aOther, "/backend")
	recv.WaitForSpans(t, 1, time.Minute)
	time.Sleep(500 * time.Millisecond)
	if n := spansOf(recv, pOther); n != 0 {
		t.Errorf("the cart pod's service (not selected) has %d spans", n)
	}
	if n := spansOf(recv, pSel); n != 1 {
		t.Errorf("the checkout pod's service has %d server spans, want 1", n)
	}

	// A service started later in a selected pod: traced from its start.
	late := mkpod("checkout-2", "checkout")
	pLate, aLate := serveInPod(t, service, late.UID, id(23))
	waitLog(`msg="new process traced from its start" pid=` + strconv.Itoa(pLate) + ` exec_to_attached=\S+`)
	m := regexp.MustCompile(`pid=` + strconv.Itoa(pLate) + ` exec_to_attached=(\S+)`).FindStringSubmatch(logs.String())
	t.Logf("new process in a selected pod: exec to attached %s", m[1])
	get(t, aLate, "/backend")

	// The cart pod is relabelled into the rules: its running service is traced.
	cur, err := cs.CoreV1().Pods("shop").Get(ctx, other.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Labels["app.kubernetes.io/name"] = "checkout-cart"
	relabelled := time.Now()
	if _, err := cs.CoreV1().Pods("shop").Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitLog(`msg=attached pid=` + strconv.Itoa(pOther) + ` `)
	t.Logf("relabelled pod's running service attached %s after the update", time.Since(relabelled).Round(time.Millisecond))
	get(t, aOther, "/backend")
	deadline := time.Now().Add(time.Minute)
	for spansOf(recv, pOther) == 0 || spansOf(recv, pLate) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("spans: relabelled %d, late %d; tracer:\n%s", spansOf(recv, pOther), spansOf(recv, pLate), logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, s := range recv.Spans() {
		if s.Resource["process.pid"] == int64(pOther) && s.Resource["k8s.pod.name"] != other.Name {
			t.Errorf("relabelled pod's span resource k8s.pod.name = %v, want %s", s.Resource["k8s.pod.name"], other.Name)
		}
	}
}
