package main

import (
	"bufio"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/tracer/uprobe"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

var attachedPID = regexp.MustCompile(`msg=attached pid=(\d+)`)

// BenchmarkTargetExitToTracerExit measures, per link mode, the time from
// SIGKILL of the service run by `tracer -- service` to the tracer's exit:
// exit noticed, records read, uprobes detached, spans flushed (exporter
// none). It reports exit-ms.
//
//	sudo go test ./tracer -run '^$' -bench TargetExitToTracerExit -benchtime 5x
func BenchmarkTargetExitToTracerExit(b *testing.B) {
	uprobetest.RequireBPF(b)
	svc := buildLocalService(b)
	for _, mode := range []struct {
		name  string
		flags []string
	}{
		{"per-link", []string{"--per-uprobe-links"}},
		{"multi-link", nil},
	} {
		b.Run(mode.name, func(b *testing.B) {
			if err := uprobe.HaveMultiLinks(); mode.flags == nil && err != nil {
				b.Skipf("SKIPPED: %v", err)
			}
			var total time.Duration
			for b.Loop() {
				total += exitToTracerExit(b, svc, mode.flags...)
			}
			b.ReportMetric(float64(total)/float64(time.Millisecond)/float64(b.N), "exit-ms")
		})
	}
}

// exitToTracerExit runs `tracer FLAGS -- svc`, kills svc once it listens
// and returns how long the tracer took to exit after that.
func exitToTracerExit(b *testing.B, svc string, flags ...string) time.Duration {
	cmd := exec.Command(tracerBinary(b), append(append([]string{}, flags...), "--", svc)...)
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(b, err)
	require.NoError(b, cmd.Start())
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	_, err = bufio.NewReader(stdout).ReadString('\n')
	require.NoError(b, err, "service did not start:\n%s", stderr)
	m := attachedPID.FindStringSubmatch(stderr.String())
	require.NotNil(b, m, "no attached line before the service listened:\n%s", stderr)
	pid, err := strconv.Atoi(m[1])
	require.NoError(b, err)

	require.NoError(b, syscall.Kill(pid, syscall.SIGKILL))
	start := time.Now()
	cmd.Wait() // exit status 137: the service's
	return time.Since(start)
}
