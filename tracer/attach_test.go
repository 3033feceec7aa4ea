package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/goversion"
	"github.com/offsetdb/offsetdb/tracer/otlptest"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// buildLocalService builds testdata/service with the local toolchain, under
// a name no other process has.
func buildLocalService(t testing.TB) string { return localServiceBuild.get(t) }

// startService starts the service untraced and returns its address.
func startService(t *testing.T, bin string) (*exec.Cmd, string) {
	cmd := exec.Command(bin)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	return cmd, strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
}

// startTracer runs the tracer with args, exporting to a fresh receiver, and
// waits until its log says it attached.
func startTracer(t *testing.T, args ...string) (*exec.Cmd, *syncBuffer, *otlptest.Receiver) {
	recv := otlptest.NewHTTP(t)
	cmd := exec.Command(tracerBinary(t), args...)
	cmd.Env = append(os.Environ(), "OTEL_EXPORTER_OTLP_ENDPOINT="+recv.Endpoint(), "OTEL_BSP_SCHEDULE_DELAY=100", "OTEL_TRACES_EXPORTER=otlp")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, stderr, recv
}

func waitFor(t testing.TB, buf *syncBuffer, text string) {
	deadline := time.Now().Add(eventTimeout)
	for !strings.Contains(buf.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("tracer never logged %q:\n%s", text, buf)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func get(t *testing.T, addr, path string) {
	resp, err := http.Get("http://" + addr + path)
	require.NoError(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

func TestTracePID(t *testing.T) {
	uprobetest.RequireBPF(t)
	svc, addr := startService(t, buildLocalService(t))
	tr, stderr, recv := startTracer(t, "--pid", fmt.Sprint(svc.Process.Pid))
	waitFor(t, stderr, "msg=attached")
	get(t, addr, "/items/7")
	spans := recv.WaitForSpans(t, 3, eventTimeout)
	assert.Len(t, spans, 3, "server, client child, backend server")

	// The target exits: the tracer detaches, flushes and exits by itself,
	// with status 0 only if it did so within its stop budget.
	require.NoError(t, svc.Process.Kill())
	svc.Wait()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- tr.Wait() }()
	select {
	case err := <-done:
		assert.NoError(t, err, "tracer exit; stderr:\n%s", stderr)
		t.Logf("tracer exited %v after its target", time.Since(start).Round(time.Millisecond))
	case <-time.After(eventTimeout):
		t.Fatalf("tracer kept running after its target exited:\n%s", stderr)
	}
	assert.Contains(t, stderr.String(), "target exited")
}

func TestTracePIDOfGoneProcess(t *testing.T) {
	uprobetest.RequireBPF(t)
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	out, err := exec.Command(tracerBinary(t), "--pid", fmt.Sprint(cmd.Process.Pid)).CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "process not found")
}

// TestTraceNonGoProgram: a program that is not Go, started by the tracer,
// still runs (untraced) and the tracer exits 3, saying why; --pid on one
// exits 3 at once with the same reason.
func TestTraceNonGoProgram(t *testing.T) {
	uprobetest.RequireBPF(t)
	cmd := exec.Command(tracerBinary(t), "--", "sh", "-c", "echo ran; exit 0")
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "%s", out)
	assert.Equal(t, exitNothingTraced, exit.ExitCode(), "%s", out)
	assert.Contains(t, string(out), "ran\n", "the program did not run")
	assert.Contains(t, string(out), "not a Go binary")
	assert.Contains(t, string(out), "Go programs only")

	sleep := exec.Command("sleep", "30")
	require.NoError(t, sleep.Start())
	defer func() {
		_ = sleep.Process.Kill()
		_ = sleep.Wait()
	}()
	cmd = exec.Command(tracerBinary(t), "--pid", strconv.Itoa(sleep.Process.Pid))
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	out, err = cmd.CombinedOutput()
	require.ErrorAs(t, err, &exit, "%s", out)
	assert.Equal(t, exitNothingTraced, exit.ExitCode(), "%s", out)
	assert.Contains(t, string(out), "Go programs only")
}

func TestTraceExeGlobFollowsProcesses(t *testing.T) {
	uprobetest.RequireBPF(t)
	bin := buildLocalService(t)
	tr, stderr, recv := startTracer(t, "--exe", "offsetdb-attach-*")
	waitFor(t, stderr, "watching for processes")

	// Two processes started after the tracer, one after the other exits.
	for i, n := 0, 0; i < 2; i++ {
		svc, addr := startService(t, bin)
		waitFor(t, stderr, fmt.Sprintf("msg=attached pid=%d", svc.Process.Pid))
		get(t, addr, "/items/1")
		n += 3
		spans := recv.WaitForSpans(t, n, eventTimeout)
		assert.Len(t, spans, n)
		require.NoError(t, svc.Process.Kill())
		svc.Wait()
		waitFor(t, stderr, fmt.Sprintf("msg=detached pid=%d", svc.Process.Pid))
	}
	require.NoError(t, tr.Process.Signal(syscall.SIGINT))
	require.NoError(t, tr.Wait(), "SIGINT: flush, detach, exit 0")
}

// TestCallsInFlightAtAttachAreCountedLost: a request already in its
// handler, and inside an outgoing call, when the tracer attaches ends
// without a start the BPF side recorded: its server and client spans are
// lost, and counted so (dropped_in_flight_lost), not silently missing; the
// next request is traced whole.
func TestCallsInFlightAtAttachAreCountedLost(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: downloads a Go toolchain")
	}
	normal, _ := buildProgram(t, "chain", goversion.MustParse("go1.24.13"))
	addr, pid := runService(t, normal, nil)

	// A server that holds the chain's outgoing call until released.
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	blocker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			arrived <- struct{}{}
			<-release
		}
		fmt.Fprint(w, "ok")
	}))
	defer blocker.Close()
	done := make(chan error, 1)
	go func() {
		_, _, err := httpGet(t, fmt.Sprintf("http://%s/relay/held?to=%s/hold", addr, blocker.URL))
		done <- err
	}()
	<-arrived // the chain is in its handler and in its client call

	tr, stderr, recv := startTracer(t, "--pid", fmt.Sprint(pid))
	waitFor(t, stderr, "msg=attached")
	close(release)
	require.NoError(t, <-done)
	code, _, err := httpGet(t, fmt.Sprintf("http://%s/relay/after?to=%s/now", addr, blocker.URL))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	spans := recv.WaitForSpans(t, 2, eventTimeout)
	stopTracer(t, tr, stderr)
	for _, s := range spans {
		where := fmt.Sprint(s.Attributes["url.path"], " ", s.Attributes["url.full"])
		assert.NotContains(t, where, "held", "only the request after the attach has spans")
		assert.NotContains(t, where, "hold", "only the request after the attach has spans")
	}
	log := stderr.String()
	assert.Contains(t, log, "in_flight_lost=2", "the held request's server and client spans")
	assert.Regexp(t, `msg=totals spans=2 exported=2 pending=0 dropped=2 .*dropped_in_flight_lost=2`, log)
}

// Several processes of one binary and a process of a second binary, traced
// at once by one tracer (one Loader: collections per binary, one ring
// buffer): every span is exported under the resource of the process that
// made it (process.pid, service.name), a process that exits is detached
// alone, and one started after it is traced.
func TestTraceManyProcessesAttributesEverySpanToItsProcess(t *testing.T) {
	uprobetest.RequireBPF(t)
	bin := buildLocalService(t)
	second := filepath.Join(t.TempDir(), "offsetdb-attach-second")
	b, err := os.ReadFile(bin)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(second, b, 0o755))

	tr, stderr, recv := startTracer(t, "--exe", "offsetdb-attach-*")
	waitFor(t, stderr, "watching for processes")
	type proc struct {
		cmd  *exec.Cmd
		addr string
		name string
	}
	var procs []proc
	start := func(path string) proc {
		cmd, addr := startService(t, path)
		waitFor(t, stderr, fmt.Sprintf("msg=attached pid=%d", cmd.Process.Pid))
		p := proc{cmd, addr, filepath.Base(path)}
		procs = append(procs, p)
		return p
	}
	for range 3 {
		start(bin)
	}
	start(second)
	want := 0
	request := func(p proc) {
		get(t, p.addr, fmt.Sprintf("/items/%d", p.cmd.Process.Pid))
		want += 3
	}
	for _, p := range procs {
		request(p)
	}
	// The first exits; a new process of the binary joins.
	require.NoError(t, procs[0].cmd.Process.Kill())
	procs[0].cmd.Wait()
	waitFor(t, stderr, fmt.Sprintf("msg=detached pid=%d", procs[0].cmd.Process.Pid))
	request(procs[1])
	request(start(bin))

	spans := recv.WaitForSpans(t, want, eventTimeout)
	assert.Len(t, spans, want)
	names := map[int64]string{}
	for _, p := range procs {
		names[int64(p.cmd.Process.Pid)] = p.name
	}
	perPID := map[int64]int{}
	for _, s := range spans {
		pid, _ := s.Resource["process.pid"].(int64)
		name, ok := names[pid]
		if !assert.True(t, ok, "span %s %v from no traced process: %v", s.Name, s.Attributes["url.path"], s.Resource) {
			continue
		}
		perPID[pid]++
		assert.Equal(t, name, s.Resource["service.name"], "pid %d", pid)
		if p, ok := s.Attributes["url.path"].(string); ok && strings.HasPrefix(p, "/items/") {
			assert.Equal(t, fmt.Sprintf("/items/%d", pid), p, "a request to pid %d is in pid %d's resource", pid, pid)
		}
	}
	for _, p := range procs {
		pid := int64(p.cmd.Process.Pid)
		if p.cmd == procs[1].cmd {
			assert.Equal(t, 6, perPID[pid], "pid %d: two requests", pid)
		} else {
			assert.Equal(t, 3, perPID[pid], "pid %d: one request", pid)
		}
	}
	require.NoError(t, tr.Process.Signal(syscall.SIGINT))
	require.NoError(t, tr.Wait(), "SIGINT: flush, detach, exit 0")
	assert.Contains(t, stderr.String(), fmt.Sprintf("msg=totals spans=%d exported=%d pending=0 dropped=0 ", want, want))
}
