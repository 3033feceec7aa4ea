package deploy

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/offsetdb/offsetdb/tracer/otlptest"
)

// podman runs podman and fails the test with its output on error.
func podman(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("podman", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// runSidecar runs the sidecar shape of deploy/kubernetes/sidecar with
// podman: a pod whose containers share one PID namespace (Kubernetes
// shareProcessNamespace), the test service in one container (its own image,
// FROM scratch), the non-root tracer in the other following it with --exe,
// pod metadata given through OTEL_RESOURCE_ATTRIBUTES as the downward API
// would. The spans must come from the service's container.
func runSidecar(t *testing.T, tracerImage string) {
	// The service's image: the static test service, FROM scratch.
	bin := filepath.Join(t.TempDir(), "checkout")
	build := exec.Command("go", "build", "-o", bin, "./testdata/service")
	build.Dir = "../tracer"
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the service: %v\n%s", err, out)
	}
	svcImage := testImage + "-sidecar-app:" + testVersion
	out, err := exec.Command("buildah", "from", "scratch").Output()
	if err != nil {
		t.Fatalf("buildah from scratch: %v", err)
	}
	b := strings.TrimSpace(string(out))
	defer exec.Command("buildah", "rm", b).Run()
	for _, args := range [][]string{
		{"copy", b, bin, "/checkout"},
		{"config", "--entrypoint", `["/checkout"]`, b},
		{"commit", "--quiet", b, svcImage},
	} {
		if out, err := exec.Command("buildah", args...).CombinedOutput(); err != nil {
			t.Fatalf("buildah %v: %v\n%s", args, err, out)
		}
	}
	t.Cleanup(func() { exec.Command("podman", "rmi", "-f", svcImage).Run() })

	// Two containers, the tracer joining the app's PID namespace (what a
	// pod's infra container does for shareProcessNamespace; a podman pod's
	// infra container cannot be given the small ulimits this machine needs).
	pod := fmt.Sprintf("offsetdb-test-sidecar-%d", os.Getpid())
	common := []string{"--runtime", "runc", "--network", "host", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"}
	app := podman(t, append(append([]string{"run", "-d", "--name", pod + "-app"}, common...), svcImage)...)
	t.Cleanup(func() { exec.Command("podman", "rm", "-f", "-t", "2", app).Run() })
	var addr string
	for deadline := time.Now().Add(eventTimeout); addr == ""; {
		logs := podman(t, "logs", app)
		if a, ok := strings.CutPrefix(strings.TrimSpace(logs), "listening on "); ok {
			addr = a
		} else if time.Now().After(deadline) {
			t.Fatalf("app container: %q", logs)
		}
		time.Sleep(100 * time.Millisecond)
	}

	recv := otlptest.NewHTTP(t)
	tracerCtr := podman(t, append(append([]string{"run", "-d", "--name", pod + "-tracer", "--pid", "container:" + app}, common...),
		"--cap-drop=all", "--cap-add=BPF,PERFMON,SYS_PTRACE,DAC_READ_SEARCH", "--security-opt", "seccomp=unconfined",
		"-e", "OTEL_EXPORTER_OTLP_ENDPOINT="+recv.Endpoint(), "-e", "OTEL_BSP_SCHEDULE_DELAY=100",
		"-e", "OTEL_SERVICE_NAME=checkout",
		"-e", "OTEL_RESOURCE_ATTRIBUTES=k8s.pod.name="+pod+",k8s.container.name=app",
		tracerImage, "--exe=checkout", "--kube-metadata=false")...)
	t.Cleanup(func() { exec.Command("podman", "rm", "-f", "-t", "2", tracerCtr).Run() })
	attached := regexp.MustCompile(`msg=attached pid=(\d+)`)
	var logs string
	for deadline := time.Now().Add(eventTimeout); ; {
		logs = podman(t, "logs", tracerCtr)
		if attached.MatchString(logs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sidecar tracer not attached:\n%s", logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp, err := http.Get("http://" + addr + "/items/3")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	spans := recv.WaitForSpans(t, 3, eventTimeout)
	for _, s := range spans {
		if s.Resource["service.name"] != "checkout" || s.Resource["k8s.pod.name"] != pod || s.Resource["k8s.container.name"] != "app" {
			t.Errorf("span %s resource %v: want service.name checkout, k8s.pod.name %s, k8s.container.name app", s.Name, s.Resource, pod)
		}
	}
	t.Logf("sidecar: %d spans from the app container, e.g. %q; tracer attached as %s", len(spans), spans[0].Name, attached.FindString(logs))
}
