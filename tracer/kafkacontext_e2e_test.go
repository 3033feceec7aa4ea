//go:build linux && (amd64 || arm64)

package main

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/tracer/instrumentation/kafkago/kafkatest"
	"github.com/offsetdb/offsetdb/tracer/internal/proctest"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// TestKafkaTraceContextThroughTheTracer runs the tracer (`--exe`, the
// context writer on by default) on kafkasvc built with the newest kafka-go
// of kafkatest.Matrix: the messages a traced handler produces (one, then a
// batch of three in one record batch) arrive with a traceparent naming
// their call's exported producer span, and the tracer reports them written.
func TestKafkaTraceContextThroughTheTracer(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: builds services with toolchains from the module proxy")
	}
	tg := kafkatest.Matrix[len(kafkatest.Matrix)-1]
	broker := kafkatest.StartBroker(t, "orders")
	bin := filepath.Join(t.TempDir(), "kafkasvc-e2e")
	require.NoError(t, os.Link(tg.Build(t), bin))
	w := startWatch(t, "kafkasvc-e2e")

	cmd := exec.Command(bin, "serve", "-http", "127.0.0.1:0", "-broker", broker, "-topic", "orders", "-batch-size", "100")
	addr := proctest.Serve(t, cmd, "http ", "kafkasvc serve")
	w.waitLog(t, fmt.Sprintf("msg=attached pid=%d", cmd.Process.Pid))

	for _, q := range []string{"id=1", "id=2&n=3"} {
		code, body, err := httpGet(t, "http://"+addr+"/produce?"+q)
		require.NoError(t, err)
		require.Equal(t, 200, code, "%s", body)
	}
	// The consumer runs untraced (another name): only the messages are read.
	consumer := filepath.Join(t.TempDir(), "consumer")
	require.NoError(t, os.Link(bin, consumer))
	out, err := exec.Command(consumer, "consume", "-broker", broker, "-topic", "orders", "-group", "g", "-n", "4").CombinedOutput()
	require.NoError(t, err, "%s", out)
	w.stop(t)

	spans := w.recv.WaitForSpans(t, 2+2, eventTimeout)
	producers := map[string]string{} // span ID → trace ID
	for _, s := range spans {
		if s.Kind == "producer" {
			producers[s.SpanID] = s.TraceID
		}
	}
	require.Len(t, producers, 2)
	tp := regexp.MustCompile(`traceparent=00-([0-9a-f]{32})-([0-9a-f]{16})-01`)
	perCall := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if !strings.HasPrefix(line, "msg ") {
			continue
		}
		m := tp.FindStringSubmatch(line)
		if !assert.NotNil(t, m, "message without traceparent: %s", line) {
			continue
		}
		if assert.Contains(t, producers, m[2], "traceparent of %s names no producer span", line) {
			assert.Equal(t, producers[m[2]], m[1])
		}
		perCall[m[2]]++
	}
	assert.ElementsMatch(t, []int{1, 3}, slices.Collect(maps.Values(perCall)), "messages per producer span")
	assert.Regexp(t, `kafka_written=4 `, w.stderr.String(), "the tracer counts the records it wrote")
}
