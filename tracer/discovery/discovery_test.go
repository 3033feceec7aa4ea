package discovery_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/offsetdb/offsetdb/tracer/container/cgrouptest"
	"github.com/offsetdb/offsetdb/tracer/discovery"
	"github.com/offsetdb/offsetdb/tracer/kube"
	"github.com/offsetdb/offsetdb/tracer/kube/kubetest"
	"github.com/offsetdb/offsetdb/tracer/process"
)

// TestMain lets the test binary serve as a listening child process:
// DISCOVERY_TEST_LISTEN=1 makes it listen on a TCP port, print it, and wait.
func TestMain(m *testing.M) {
	if os.Getenv("DISCOVERY_TEST_LISTEN") == "1" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
		time.Sleep(5 * time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestParse(t *testing.T) {
	c, err := discovery.Parse([]byte(`
discovery:
  services:
    - exe_path: "*/checkout*"
      open_ports: "8080-8089, 9090"
    - k8s_namespace: shop
      k8s_pod_labels: {app.kubernetes.io/name: "cart*"}
  exclude_services:
    - k8s_namespace: kube-system
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Discovery.Services) != 2 || len(c.Discovery.ExcludeServices) != 1 {
		t.Fatalf("parsed %+v", c)
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown key", "discovery:\n  services:\n    - exe_paht: x\n", "exe_paht"},
		{"no include rule", "discovery:\n  exclude_services:\n    - exe_path: x\n", "no rule"},
		{"empty rule", "discovery:\n  services:\n    - {}\n", "no selector"},
		{"bad glob", "discovery:\n  services:\n    - exe_path: \"[\"\n", "exe_path"},
		{"bad ports", "discovery:\n  services:\n    - open_ports: 9000-80\n", "open_ports"},
		{"port out of range", "discovery:\n  services:\n    - open_ports: \"70000\"\n", "open_ports"},
	} {
		_, err := discovery.Parse([]byte(tc.yaml))
		if !errors.Is(err, discovery.ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want ErrConfig mentioning %q", tc.name, err, tc.want)
		}
	}
}

// listener starts this test binary as a child listening on a TCP port.
func listener(t *testing.T) (pid, port int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "DISCOVERY_TEST_LISTEN=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if _, err := fmt.Fscan(out, &port); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid, port
}

func TestListeningPorts(t *testing.T) {
	pid, port := listener(t)
	ports, err := discovery.ListeningPorts(pid)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(ports, port) {
		t.Errorf("ListeningPorts(%d) = %v, want %d among them", pid, ports, port)
	}
	if ports, _ := discovery.ListeningPorts(os.Getpid()); len(ports) != 0 {
		t.Errorf("this test process listens on nothing, got %v", ports)
	}
}

func TestSelectsExeAndPorts(t *testing.T) {
	pid, port := listener(t)
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	for _, tc := range []struct {
		rules string
		want  bool
	}{
		{fmt.Sprintf("- open_ports: \"%d\"", port), true},
		{fmt.Sprintf("- open_ports: \"1-%d\"", port-1), false},
		{"- exe_path: \"" + filepath.Base(exe) + "\"", true},
		{"- exe_path: \"*/" + filepath.Base(exe) + "\"", true},
		{"- exe_path: \"nothing*\"", false},
		{fmt.Sprintf("- {exe_path: \"*\", open_ports: \"%d\", k8s_namespace: \"*\"}", port), false}, // no pod
	} {
		c, err := discovery.Parse([]byte("discovery:\n  services:\n    " + tc.rules + "\n"))
		if err != nil {
			t.Fatal(err)
		}
		s := discovery.NewSelector(c, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if got, why := s.Selects(pid, exe); got != tc.want {
			t.Errorf("rules %s: Selects = %v (%s), want %v", tc.rules, got, why, tc.want)
		}
	}
	c, _ := discovery.Parse([]byte("discovery:\n  services:\n    - exe_path: \"*\"\n"))
	s := discovery.NewSelector(c, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if got, _ := s.Selects(os.Getpid(), "/proc/self/exe"); got {
		t.Errorf("the tracer's own process was selected")
	}
}

func id(n int) string { return fmt.Sprintf("%064x", 0xd15c0000+n) }

// inPod runs sleep in a cgroup named after a pod's container.
func inPod(t *testing.T, uid types.UID, containerID string) int {
	t.Helper()
	leaf, cleanup := cgrouptest.KubeCgroup(t, string(uid), containerID)
	cmd := exec.Command("sh", "-c", "echo $$ > "+filepath.Join(leaf, "cgroup.procs")+" && exec sleep 300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); cleanup() })
	for range 200 {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", cmd.Process.Pid)); strings.Contains(string(b), containerID) {
			return cmd.Process.Pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process never in cgroup %s", leaf)
	return 0
}

// TestFilterFollowsPodLabels selects by namespace and pod label against a
// real API server, then relabels the pods: the process of the pod that
// gains the label is sent as new, the one whose pod loses it as exited.
func TestFilterFollowsPodLabels(t *testing.T) {
	c := kubetest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cs := c.Client
	for _, ns := range []string{"shop", "kube-system"} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !strings.Contains(err.Error(), "exists") {
			t.Fatal(err)
		}
	}
	mkpod := func(ns, name string, labels map[string]string, cid string) *corev1.Pod {
		p, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
			Spec:       corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "main", Image: "example.com/x:1"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main", ContainerID: "containerd://" + cid, Image: "example.com/x:1", ImageID: "sha256:" + cid}}
		if p, err = cs.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		return p
	}
	checkout := mkpod("shop", "checkout-1", map[string]string{"app.kubernetes.io/name": "checkout"}, id(1))
	cart := mkpod("shop", "cart-1", map[string]string{"app.kubernetes.io/name": "cart"}, id(2))
	system := mkpod("kube-system", "checkout-sys", map[string]string{"app.kubernetes.io/name": "checkout"}, id(3))

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	meta, err := kube.Start(ctx, kube.Config{Kubeconfig: c.Kubeconfig, NodeName: "node-a", Log: log})
	if err != nil {
		t.Fatal(err)
	}
	conf, err := discovery.Parse([]byte(`
discovery:
  services:
    - k8s_pod_labels: {app.kubernetes.io/name: "checkout*"}
  exclude_services:
    - k8s_namespace: kube-system
`))
	if err != nil {
		t.Fatal(err)
	}
	pCheckout, pCart, pSystem := inPod(t, checkout.UID, id(1)), inPod(t, cart.UID, id(2)), inPod(t, system.UID, id(3))

	in := make(chan process.Event)
	out := discovery.Filter(ctx, in, discovery.NewSelector(conf, meta, log), 200*time.Millisecond)
	go func() {
		for _, pid := range []int{pCheckout, pCart, pSystem} {
			in <- process.Event{PID: pid, Exe: "/usr/bin/sleep"}
		}
	}()
	next := func(what string) process.Event {
		t.Helper()
		select {
		case ev := <-out:
			return ev
		case <-time.After(30 * time.Second):
			t.Fatalf("no event: %s", what)
		}
		return process.Event{}
	}
	if ev := next("checkout selected"); ev.PID != pCheckout || ev.Exited {
		t.Fatalf("first event %+v, want pid %d (checkout) selected; cart is %d, kube-system's %d", ev, pCheckout, pCart, pSystem)
	}

	// cart gains the label, checkout loses it.
	relabel := func(p *corev1.Pod, name string) {
		cur, err := cs.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cur.Labels["app.kubernetes.io/name"] = name
		if _, err := cs.CoreV1().Pods(p.Namespace).Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	relabel(cart, "checkout-cart")
	if ev := next("cart selected after relabel"); ev.PID != pCart || ev.Exited {
		t.Fatalf("after relabelling cart: %+v, want pid %d selected", ev, pCart)
	}
	t.Logf("relabelled pod's process selected %s after the update", time.Since(start).Round(time.Millisecond))
	relabel(checkout, "payments")
	if ev := next("checkout detached after relabel"); ev.PID != pCheckout || !ev.Exited {
		t.Fatalf("after relabelling checkout: %+v, want pid %d exited (detach)", ev, pCheckout)
	}
	select {
	case ev := <-out:
		t.Fatalf("unexpected event %+v (kube-system's process is %d, excluded)", ev, pSystem)
	case <-time.After(time.Second):
	}
}

func TestExePathGlob(t *testing.T) {
	for _, tc := range []struct {
		glob, exe string
		want      bool
	}{
		{"*/checkout*", "/usr/local/bin/checkout-api", true},
		{"*/bin/checkout", "/usr/local/bin/checkout", true},
		{"/usr/*/checkout", "/usr/local/bin/checkout", false},
		{"/usr/local/bin/checkout", "/usr/local/bin/checkout", true},
		{"checkout*", "/usr/local/bin/checkout-api", true},
		{"checkout", "/srv/checkout/server", false},
		{"*/checkout/*", "/srv/checkout/server", true},
	} {
		c, err := discovery.Parse([]byte("discovery:\n  services:\n    - exe_path: \"" + tc.glob + "\"\n"))
		if err != nil {
			t.Fatal(err)
		}
		s := discovery.NewSelector(c, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
		// pid 1 is never this test process; its own attributes do not matter here.
		if got, _ := s.Selects(1, tc.exe); got != tc.want {
			t.Errorf("exe_path %q on %s: %v, want %v", tc.glob, tc.exe, got, tc.want)
		}
	}
}
