package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/tracer/otlptest"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// exitCounts matches the counts of a "detached" or "totals" line.
var exitCounts = regexp.MustCompile(`msg=(detached|totals)(?: pid=\d+)? spans=(\d+) exported=(\d+) pending=(\d+) dropped=(\d+) dropped_queue_full=(\d+) dropped_rejected=(\d+) dropped_export_failed=(\d+)`)

// TestSignalTwiceBeforeTheFlush: a second SIGINT that comes before the
// flush has started (here 50 ms after the first, while the tracer stops
// the program and detaches) still gives the exporter a short grace for the
// spans in memory, and every span ends under an outcome: none is left
// "pending" in the exit lines. A healthy collector gets them all, and
// receives what the lines count as exported; with the collector
// unreachable they are counted as dropped_export_failed.
func TestSignalTwiceBeforeTheFlush(t *testing.T) {
	uprobetest.RequireBPF(t)
	const spans = 3 * 5 // 5 requests
	t.Run("healthy collector", func(t *testing.T) {
		recv := otlptest.NewHTTP(t)
		got := signalTwice(t, recv.Endpoint())
		received := len(recv.Spans())
		for what, c := range got {
			assert.Equal(t, spans, c.exported, "%s: every span exported within the grace", what)
			assert.Equal(t, received, c.exported, "%s: the collector received what is counted as exported", what)
		}
		assert.Equal(t, spans, received)
	})
	t.Run("unreachable collector", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		closed := "http://" + ln.Addr().String() // nothing listens once closed
		require.NoError(t, ln.Close())
		got := signalTwice(t, closed)
		for what, c := range got {
			assert.Equal(t, 0, c.exported, "%s", what)
			assert.Equal(t, spans, c.exportFailed, "%s: every span counted as dropped_export_failed", what)
		}
	})
}

// exitCount holds the counts of one exit line.
type exitCount struct{ spans, exported, pending, dropped, exportFailed int }

// signalTwice runs the test service traced, exporting over OTLP/HTTP to
// endpoint with the default batch delay (5 s, so that the spans are still
// in the export buffer), sends 5 requests, then SIGINT twice 50 ms apart.
// It checks the exit (status 0, the second signal logged) and the counts
// every exit line must have, and returns them by line ("detached",
// "totals").
func signalTwice(t *testing.T, endpoint string) map[string]exitCount {
	cmd := exec.Command(tracerBinary(t), "--stats-interval", "100ms", "--", buildLocalService(t))
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_EXPORTER_OTLP_ENDPOINT="+endpoint, "OTEL_METRICS_EXPORTER=none")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	addr := serveTraced(t, cmd, stderr)
	const requests = 5
	for i := 1; i <= requests; i++ {
		get(t, addr, fmt.Sprintf("/items/%d", i))
	}
	const spans = 3 * requests
	waitFor(t, stderr, fmt.Sprintf("spans so far\" spans=%d exported=0 pending=%d ", spans, spans))

	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	second := time.Now()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		assert.NoError(t, err, "a tracer stopped by signals exits 0:\n%s", stderr)
		assert.Less(t, time.Since(second), flushTimeout, "the second signal does not wait for the flush budget:\n%s", stderr)
	case <-time.After(eventTimeout):
		t.Fatalf("tracer still running after the second signal:\n%s", stderr)
	}
	log := stderr.String()
	t.Logf("tracer log:\n%s", log)
	assert.Contains(t, log, "second signal")
	lines := exitCounts.FindAllStringSubmatch(log, -1)
	require.Len(t, lines, 2, "a detached and a totals line:\n%s", log)
	got := map[string]exitCount{}
	for _, m := range lines {
		num := func(i int) int {
			v, err := strconv.Atoi(m[i])
			require.NoError(t, err)
			return v
		}
		c := exitCount{spans: num(2), exported: num(3), pending: num(4), dropped: num(5), exportFailed: num(8)}
		what := m[1]
		assert.Equal(t, spans, c.spans, "%s: 3 spans per request", what)
		assert.Equal(t, 0, c.pending, "%s: no span left pending", what)
		assert.Equal(t, c.spans, c.exported+c.exportFailed, "%s: spans = exported + dropped_export_failed", what)
		assert.Equal(t, c.dropped, c.exportFailed, "%s: every loss is an export failure", what)
		got[what] = c
	}
	return got
}
