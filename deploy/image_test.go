package deploy

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
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

	"github.com/offsetdb/offsetdb/tracer/otlptest"
)

const (
	testImage   = "localhost/offsetdb-test/tracer"
	testVersion = "test"
	// eventTimeout bounds each wait for the traced service, the tracer or spans.
	eventTimeout = 2 * time.Minute
)

// TestImage builds the image with scripts/image.sh (both architectures, both
// variants, manifest lists), then runs it with podman as a DaemonSet would —
// host PID namespace, host network, small ulimits — against a Go service
// started on this host, and checks the spans it exports over OTLP:
//
//   - root: --privileged, as in the README;
//   - nonroot: uid 65532, every capability dropped but the four
//     docs/deployment.md lists, the service's executable unreadable by that
//     uid (mode 0700, root's), so each capability is exercised.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an image: not in -short")
	}
	needRoot(t, "building and running images with podman")
	needTools(t, "podman", "buildah", "setcap")

	start := time.Now()
	build := exec.Command("../scripts/image.sh")
	build.Env = append(os.Environ(), "IMAGE="+testImage, "VERSION="+testVersion, "ARCHES=amd64 arm64")
	out, err := build.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/image.sh: %v\n%s", err, out)
	}
	t.Logf("scripts/image.sh (amd64+arm64, root+nonroot) took %s:\n%s", time.Since(start).Round(100*time.Millisecond), out)
	t.Cleanup(func() {
		for _, list := range []string{testImage + ":" + testVersion, testImage + ":" + testVersion + "-nonroot"} {
			exec.Command("buildah", "manifest", "rm", list).Run()
		}
		for _, suffix := range []string{"-amd64", "-arm64", "-nonroot-amd64", "-nonroot-arm64"} {
			exec.Command("podman", "rmi", "-f", testImage+":"+testVersion+suffix).Run()
		}
	})

	t.Run("manifest", func(t *testing.T) {
		for _, list := range []string{testVersion, testVersion + "-nonroot"} {
			out, err := exec.Command("podman", "manifest", "inspect", testImage+":"+list).Output()
			if err != nil {
				t.Fatalf("podman manifest inspect %s: %v", list, err)
			}
			var m struct {
				Manifests []struct {
					Platform struct{ Architecture, OS string }
				}
			}
			if err := json.Unmarshal(out, &m); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range m.Manifests {
				got = append(got, e.Platform.OS+"/"+e.Platform.Architecture)
			}
			if strings.Join(got, ",") != "linux/amd64,linux/arm64" {
				t.Errorf("manifest list %s: platforms %v, want linux/amd64, linux/arm64", list, got)
			}
		}
	})

	t.Run("labels and size", func(t *testing.T) {
		head, err := exec.Command("git", "rev-parse", "HEAD").Output()
		if err != nil {
			t.Skipf("not a git checkout: %v", err)
		}
		for _, suffix := range []string{"-amd64", "-arm64", "-nonroot-amd64", "-nonroot-arm64"} {
			ref := testImage + ":" + testVersion + suffix
			out, err := exec.Command("podman", "image", "inspect", ref).Output()
			if err != nil {
				t.Fatalf("podman image inspect %s: %v", ref, err)
			}
			var imgs []struct {
				Size   int64
				Labels map[string]string
				Config struct {
					User       string
					Entrypoint []string
				}
			}
			if err := json.Unmarshal(out, &imgs); err != nil || len(imgs) != 1 {
				t.Fatalf("podman image inspect %s: %v", ref, err)
			}
			img := imgs[0]
			t.Logf("%s: %.1f MB", ref, float64(img.Size)/1e6)
			for key, want := range map[string]string{
				"org.opencontainers.image.version":  testVersion,
				"org.opencontainers.image.revision": strings.TrimSpace(string(head)),
				"org.opencontainers.image.source":   "https://github.com/offsetdb/offsetdb",
			} {
				if got := img.Labels[key]; got != want {
					t.Errorf("%s: label %s = %q, want %q", ref, key, got, want)
				}
			}
			if img.Size > 40e6 {
				t.Errorf("%s: %d bytes; a static tracer FROM scratch should stay under 40 MB", ref, img.Size)
			}
			wantUser := ""
			if strings.Contains(suffix, "nonroot") {
				wantUser = "65532:65532"
			}
			if img.Config.User != wantUser {
				t.Errorf("%s: user %q, want %q", ref, img.Config.User, wantUser)
			}
			checkBinary(t, ref, strings.TrimPrefix(suffix[strings.LastIndex(suffix, "-"):], "-"), wantUser != "")
		}
	})

	t.Run("sidecar in a pod sharing its PID namespace", func(t *testing.T) {
		runSidecar(t, testImage+":"+testVersion+"-nonroot-amd64")
	})

	svc := buildService(t)
	t.Run("root privileged", func(t *testing.T) {
		runImage(t, imageRun{image: testImage + ":" + testVersion + "-amd64", service: svc,
			podman: []string{"--privileged"}})
	})
	t.Run("root privileged writing trace context through the host's cgroup", func(t *testing.T) {
		// What deploy/kubernetes/overlays/privileged does: the node's cgroup v2
		// hierarchy mounted read-only and named by --cgroup-root, so that the
		// socket-layer writer sees the traced processes' sockets. The service's
		// call to its own /backend must then carry the client span's context:
		// one trace of three spans.
		root := hostCgroup2(t)
		runImage(t, imageRun{image: testImage + ":" + testVersion + "-amd64", service: svc,
			podman:   []string{"--privileged", "-v", root + ":/host-cgroup:ro"},
			tracer:   []string{"--cgroup-root", "/host-cgroup"},
			oneTrace: true})
	})
	t.Run("nonroot capabilities", func(t *testing.T) {
		// An executable only root may read: the tracer needs CAP_DAC_READ_SEARCH
		// to open it through /proc/PID/exe and CAP_SYS_PTRACE to resolve that link.
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		private := filepath.Join(dir, "service")
		data, err := os.ReadFile(svc)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(private, data, 0o700); err != nil {
			t.Fatal(err)
		}
		runImage(t, imageRun{image: testImage + ":" + testVersion + "-nonroot-amd64", service: private,
			podman: []string{"--cap-drop=all", "--cap-add=BPF,PERFMON,SYS_PTRACE,DAC_READ_SEARCH",
				// Podman's default seccomp profile lets bpf() and perf_event_open()
				// through only with CAP_SYS_ADMIN; see docs/deployment.md.
				"--security-opt", "seccomp=unconfined"}})
	})
}

// checkBinary mounts the image and checks its tracer: an ELF for arch, and
// for the non-root image the file capabilities scripts/image.sh sets.
func checkBinary(t *testing.T, ref, arch string, nonroot bool) {
	t.Helper()
	out, err := exec.Command("podman", "image", "mount", ref).Output()
	if err != nil {
		t.Fatalf("podman image mount %s: %v", ref, err)
	}
	defer exec.Command("podman", "image", "unmount", ref).Run()
	bin := filepath.Join(strings.TrimSpace(string(out)), "usr", "local", "bin", "tracer")
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	defer f.Close()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
	if f.Machine != want {
		t.Errorf("%s: tracer is %v, want %v", ref, f.Machine, want)
	}
	caps, err := exec.Command("getcap", bin).Output()
	if err != nil {
		t.Fatalf("getcap: %v", err)
	}
	const wantCaps = "cap_dac_read_search,cap_sys_ptrace,cap_perfmon,cap_bpf=ep"
	if got := strings.TrimSpace(strings.TrimPrefix(string(caps), bin)); nonroot && got != wantCaps {
		t.Errorf("%s: tracer's file capabilities %q, want %q", ref, got, wantCaps)
	} else if !nonroot && got != "" {
		t.Errorf("%s: root image's tracer has file capabilities %q", ref, got)
	}
}

// buildService builds the tracer's test service (an HTTP server whose
// /items handler calls its own /backend).
func buildService(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "service")
	cmd := exec.Command("go", "build", "-o", out, "./testdata/service")
	cmd.Dir = "../tracer"
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the test service: %v\n%s", err, b)
	}
	return out
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startService starts the service and returns its pid and address.
func startService(t *testing.T, path string) (int, string) {
	t.Helper()
	cmd := exec.Command(path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("service: %v", err)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok {
		t.Fatalf("service: unexpected first line %q", line)
	}
	go io.Copy(io.Discard, stdout)
	return cmd.Process.Pid, addr
}

// imageRun is one run of the image against the test service.
type imageRun struct {
	image, service string
	podman         []string // podman run flags
	tracer         []string // tracer flags before --pid
	// oneTrace requires the service's outgoing call to carry trace context:
	// the /backend server span continues the client span, and the tracer's
	// exit line counts the traceparent it wrote.
	oneTrace bool
}

// hostCgroup2 returns this host's cgroup v2 hierarchy: the first cgroup2
// mount in /proc/self/mountinfo (/sys/fs/cgroup on a cgroup v2 host,
// /sys/fs/cgroup/unified on a hybrid one).
func hostCgroup2(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
		pre, post, ok := strings.Cut(line, " - ")
		if f := strings.Fields(pre); ok && len(f) >= 5 && strings.HasPrefix(post, "cgroup2 ") {
			return f[4]
		}
	}
	t.Fatal("no cgroup2 mount in /proc/self/mountinfo: the trace-context writer needs one")
	return ""
}

// runImage starts the service, runs the image against its pid with podman,
// sends requests and checks the spans the receiver gets.
func runImage(t *testing.T, r imageRun) {
	image, service := r.image, r.service
	pid, addr := startService(t, service)
	recv := otlptest.NewHTTP(t)
	name := fmt.Sprintf("offsetdb-test-%d", pid)
	args := append([]string{"run", "--rm", "--name", name, "--runtime", "runc",
		"--pid=host", "--network", "host",
		// This machine lacks CAP_SYS_RESOURCE: limits may not exceed ours.
		"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096",
		"-e", "OTEL_TRACES_EXPORTER=otlp",
		"-e", "OTEL_EXPORTER_OTLP_ENDPOINT=" + recv.Endpoint(),
		"-e", "OTEL_BSP_SCHEDULE_DELAY=100",
	}, r.podman...)
	args = append(append(append(args, image), r.tracer...), "--pid", strconv.Itoa(pid))
	cmd := exec.Command("podman", args...)
	stderr := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	started := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		exec.Command("podman", "rm", "-f", name).Run()
	})
	deadline := time.Now().Add(eventTimeout)
	for !strings.Contains(stderr.String(), "msg=attached") {
		select {
		case err := <-exited:
			t.Fatalf("podman run exited before attaching: %v\n%s", err, stderr)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("not attached after %s:\n%s", eventTimeout, stderr)
		}
	}
	t.Logf("%s: podman run to attached in %s", image, time.Since(started).Round(time.Millisecond))

	resp, err := http.Get("http://" + addr + "/items/7")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	got := recv.WaitForSpans(t, 3, eventTimeout) // server /items, client, server /backend
	var server *otlptest.Span
	for i, s := range got {
		if s.Kind == "server" && s.Attributes["url.path"] == "/items/7" {
			server = &got[i]
		}
	}
	if server == nil {
		t.Fatalf("no server span for /items/7 among %+v", got)
	}
	if server.Name != "GET /items/{id}" {
		t.Errorf("server span name %q, want %q", server.Name, "GET /items/{id}")
	}
	if got := server.Resource["process.pid"]; got != int64(pid) {
		t.Errorf("resource process.pid = %v, want %d", got, pid)
	}
	if got := server.Resource["service.name"]; got != "service" {
		t.Errorf("resource service.name = %v, want the executable's name %q", got, "service")
	}
	if r.oneTrace {
		checkOneTrace(t, *server, got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "podman", "stop", "-t", "20", name).CombinedOutput(); err != nil {
		t.Errorf("podman stop: %v\n%s", err, out)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("tracer in the container exited with %v after SIGTERM; want 0\n%s", err, stderr)
		}
	case <-time.After(eventTimeout):
		t.Errorf("podman run still running after podman stop:\n%s", stderr)
	}
	if r.oneTrace && !strings.Contains(stderr.String(), `msg="outgoing trace context" written=1 `) {
		t.Errorf("the tracer's exit line does not count one traceparent written:\n%s", stderr)
	}
}

// checkOneTrace checks that the spans of one /items request form one trace:
// server /items → client → server /backend, each the parent of the next.
func checkOneTrace(t *testing.T, items otlptest.Span, spans []otlptest.Span) {
	t.Helper()
	var client, backend *otlptest.Span
	for i, s := range spans {
		switch {
		case s.Kind == "client":
			client = &spans[i]
		case s.Kind == "server" && s.Attributes["url.path"] == "/backend":
			backend = &spans[i]
		}
	}
	if client == nil || backend == nil {
		t.Fatalf("want a client span and a /backend server span among %+v", spans)
	}
	if client.TraceID != items.TraceID || client.ParentSpanID != items.SpanID {
		t.Errorf("client span trace %s parent %s; want trace %s parent %s (the /items server span)",
			client.TraceID, client.ParentSpanID, items.TraceID, items.SpanID)
	}
	if backend.TraceID != items.TraceID || backend.ParentSpanID != client.SpanID {
		t.Errorf("/backend server span trace %s parent %s; want trace %s parent %s (the client span): "+
			"the outgoing request carried no trace context", backend.TraceID, backend.ParentSpanID, items.TraceID, client.SpanID)
	}
}
