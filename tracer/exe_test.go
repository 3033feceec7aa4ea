package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/tracer/otlptest"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

var execToAttached = regexp.MustCompile(`msg="new process traced from its start" pid=\d+ exec_to_attached=(\S+)`)

// restartRun restarts a private copy of the test service n times under
// `tracer --exe` with flags, sending each process's first request as soon
// as it listens, and returns how many of those first requests have a
// server span, and the exec-to-attached times the tracer logged.
func restartRun(t testing.TB, n int, flags ...string) (traced int, attach []time.Duration) {
	return restartRunVia(t, n, nil, flags...)
}

// restartRunVia is restartRun with each process started through wrapper
// (a command that execs its arguments, such as env), when not nil.
func restartRunVia(t testing.TB, n int, wrapper []string, flags ...string) (traced int, attach []time.Duration) {
	data, err := os.ReadFile(buildLocalService(t))
	require.NoError(t, err)
	bin := filepath.Join(t.TempDir(), "offsetdb-restart-svc")
	require.NoError(t, os.WriteFile(bin, data, 0o755))

	recv := otlptest.NewHTTP(t)
	cmd := exec.Command(tracerBinary(t), append(flags, "--exe", "offsetdb-restart-*")...)
	cmd.Env = append(os.Environ(), "OTEL_EXPORTER_OTLP_ENDPOINT="+recv.Endpoint(), "OTEL_BSP_SCHEDULE_DELAY=100", "OTEL_TRACES_EXPORTER=otlp",
		"OTEL_METRICS_EXPORTER=none")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	waitFor(t, stderr, "watching for processes")
	for i := 1; i <= n; i++ {
		svc := exec.Command(bin)
		if wrapper != nil {
			svc = exec.Command(wrapper[0], append(wrapper[1:], bin)...)
		}
		stdout, err := svc.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, svc.Start())
		line, err := bufio.NewReader(stdout).ReadString('\n')
		require.NoError(t, err, "service %d did not start; tracer:\n%s", i, stderr)
		addr := strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
		path := fmt.Sprintf("/items/%d", i)
		resp, err := http.Get("http://" + addr + path) // its first request, at once
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		// The server span ends when the handler returns, which may be
		// after the client has the response: killing the process at once
		// could lose the span with the process, which is not what this
		// measures. Wait a little for it.
		for wait := time.Now().Add(3 * time.Second); time.Now().Before(wait) && !hasServerSpan(recv, path); {
			time.Sleep(20 * time.Millisecond)
		}
		require.NoError(t, svc.Process.Kill())
		_ = svc.Wait()
	}
	// Spans still on their way get a few more seconds.
	for wait := time.Now().Add(10 * time.Second); time.Now().Before(wait) && !hasServerSpan(recv, fmt.Sprintf("/items/%d", n)); {
		time.Sleep(50 * time.Millisecond)
	}
	var missed []int
	for i := 1; i <= n; i++ {
		if hasServerSpan(recv, fmt.Sprintf("/items/%d", i)) {
			traced++
		} else {
			missed = append(missed, i)
		}
	}
	if len(missed) > 0 {
		t.Logf("first requests not traced: processes %v of %d; tracer:\n%s", missed, n, stderr)
	}
	for _, m := range execToAttached.FindAllStringSubmatch(stderr.String(), -1) {
		d, err := time.ParseDuration(m[1])
		require.NoError(t, err)
		attach = append(attach, d)
	}
	return traced, attach
}

// hasServerSpan reports whether recv has the server span of a request for path.
func hasServerSpan(recv *otlptest.Receiver, path string) bool {
	return slices.ContainsFunc(recv.Spans(), func(s otlptest.Span) bool { return s.Kind == "server" && s.Attributes["url.path"] == path })
}

// TestExeTracesTheFirstRequestOfEveryNewProcess: --exe learns of a new
// process from the kernel at its exec and holds it until the probes are
// attached, so the first request of each of 20 processes started one after
// another is traced.
func TestExeTracesTheFirstRequestOfEveryNewProcess(t *testing.T) {
	uprobetest.RequireBPF(t)
	const restarts = 20
	traced, attach := restartRun(t, restarts)
	// The hold is only as quick as the tracer is scheduled after the
	// exec: on this project's 2-core machines, loaded by other test
	// processes, one process in a few runs of 20 was read from the
	// connector late enough to have served its first request before the
	// SIGSTOP (it then detached with spans=0: no other request came).
	// One such miss is tolerated; the polling this replaces missed 15 %.
	assert.GreaterOrEqual(t, traced, restarts-1, "first requests traced")
	require.Len(t, attach, restarts, "one \"new process traced from its start\" line per process")
	slices.Sort(attach)
	t.Logf("exec to attached: median %v, max %v", attach[len(attach)/2], attach[len(attach)-1])
}

// TestExeTracesProcessesStartedThroughAnExecWrapper: a process started
// through a program that execs it (env here; sh -c 'exec …' and runc init
// have the same shape) can be seen at the wrapper's exec already running
// the traced program, then again at that program's exec. Every such
// process must end up traced, not left untraced by its two traces
// (formerly: "process already traced", 12 of 20 untraced).
func TestExeTracesProcessesStartedThroughAnExecWrapper(t *testing.T) {
	uprobetest.RequireBPF(t)
	const restarts = 10
	traced, _ := restartRunVia(t, restarts, []string{"env"})
	// As in TestExeTracesTheFirstRequestOfEveryNewProcess: one process
	// read late enough to serve its first request before the hold is
	// tolerated.
	assert.GreaterOrEqual(t, traced, restarts-1, "first requests traced")
}

// BenchmarkExeFirstRequestTraced reports the share of new processes' first
// requests traced with --exe, with the hold at exec (the default) and
// without it (--exe-hold=false), and the median time from exec to
// attached. Twenty restarts per iteration.
func BenchmarkExeFirstRequestTraced(b *testing.B) {
	uprobetest.RequireBPF(b)
	for _, mode := range []struct {
		name  string
		flags []string
	}{{"hold", nil}, {"no-hold", []string{"--exe-hold=false"}}} {
		b.Run(mode.name, func(b *testing.B) {
			const restarts = 20
			var traced, n int
			var attach []time.Duration
			for b.Loop() {
				got, a := restartRun(b, restarts, mode.flags...)
				traced += got
				n += restarts
				attach = append(attach, a...)
			}
			b.ReportMetric(100*float64(traced)/float64(n), "first_requests_traced_%")
			if len(attach) > 0 {
				slices.Sort(attach)
				b.ReportMetric(float64(attach[len(attach)/2])/float64(time.Millisecond), "exec_to_attached_ms")
			}
		})
	}
}
