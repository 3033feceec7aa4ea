//go:build linux && (amd64 || arm64)

package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/tracer/instrumentation/databasesql/dbtest"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/kafkago/kafkatest"
	"github.com/offsetdb/offsetdb/tracer/internal/proctest"
	"github.com/offsetdb/offsetdb/tracer/otlptest"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// The kinds of span a request of the one-trace test makes, in the order
// of the table the test logs.
var oneTraceKinds = []string{"http server", "pq", "mysql", "pgx", "go-redis", "kafka producer", "kafka consumer"}

// oneTraceRun is what a run of the one-trace scenario leaves.
type oneTraceRun struct {
	spans    []otlptest.Span
	offsetID map[int64]int // the consumed message at an offset → its request id
	stderr   string        // the tracer's log
}

// runOneTrace runs the scenario of issue 14 under one `tracer --exe`
// (with flags): dbsvc (the newest dbtest.Matrix build: lib/pq,
// go-sql-driver/mysql, pgx, go-redis and a kafka-go v0.4.51 Writer, Go
// 1.27.4) serves n requests, 64 in flight, each with its own id, on /all:
// a PostgreSQL query through lib/pq, a MariaDB query, a Redis SET, a
// PostgreSQL query through pgx, and one Kafka message (key "req-ID");
// OFFSETDB_DB_TARGET=GO picks another dbtest.Matrix build by its Go release;
// kafkasvc (kafka-go v0.4.1 on Go 1.24.13, stripped) consumes the n
// messages in a consumer group meanwhile. Both are started after the
// tracer, which holds them at exec until their probes are attached.
func runOneTrace(t *testing.T, n int, flags ...string) oneTraceRun {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: builds services with toolchains from the module proxy and starts database servers")
	}
	srv := dbtest.StartServers(t)
	broker := kafkatest.StartBroker(t, "requests")
	dbTarget := dbtest.Matrix[len(dbtest.Matrix)-1]
	if env := os.Getenv("OFFSETDB_DB_TARGET"); env != "" { // another Matrix build, by Go release
		i := slices.IndexFunc(dbtest.Matrix, func(m dbtest.Target) bool { return m.Go == env })
		require.NotEqual(t, -1, i, "OFFSETDB_DB_TARGET=%s: no dbtest.Matrix build with that Go release", env)
		dbTarget = dbtest.Matrix[i]
	}
	consumerTarget := kafkatest.Matrix[2]
	require.Equal(t, "go1.24.13/kafka-go-v0.4.1-stripped", consumerTarget.String())
	built := dbTarget.Build(t)
	dbtest.Setup(t, built, srv) // the cached build's name: not traced
	dir := t.TempDir()
	svc := filepath.Join(dir, "onetrace-dbsvc")
	consumerBin := filepath.Join(dir, "onetrace-kafkasvc")
	require.NoError(t, os.Link(built, svc))
	require.NoError(t, os.Link(consumerTarget.Build(t), consumerBin))
	t.Logf("producer: dbsvc %s; consumer: kafkasvc %s", dbTarget, consumerTarget)

	w := startWatchFlags(t, "onetrace-*", flags)

	cmd := exec.Command(svc, append([]string{"serve", "-http", "127.0.0.1:0", "-broker", broker, "-topic", "requests"}, srv.Flags()...)...)
	cmd.Stderr = os.Stderr
	addr := proctest.Serve(t, cmd, "http ", "dbsvc serve")
	w.waitLog(t, fmt.Sprintf("msg=attached pid=%d", cmd.Process.Pid))

	consumer := exec.Command(consumerBin, "consume", "-broker", broker, "-topic", "requests", "-group", "onetrace", "-n", strconv.Itoa(n))
	var consumed bytes.Buffer
	consumer.Stdout, consumer.Stderr = &consumed, &consumed
	require.NoError(t, consumer.Start())
	consumerDone := make(chan error, 1)
	go func() { consumerDone <- consumer.Wait() }()
	t.Cleanup(func() { consumer.Process.Kill() })
	w.waitLog(t, fmt.Sprintf("msg=attached pid=%d", consumer.Process.Pid))

	start := time.Now()
	var wg sync.WaitGroup
	// 64 in flight: more opens more database connections than PostgreSQL's
	// default max_connections (100) allows, and requests then fail (500).
	sem := make(chan struct{}, 64)
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			code, body, err := httpGet(t, fmt.Sprintf("http://%s/all?id=%d", addr, i))
			if err == nil && code != http.StatusOK {
				err = fmt.Errorf("id %d: status %d: %s", i, code, body)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d requests answered in %v", n, time.Since(start).Round(time.Millisecond))
	select {
	case err := <-consumerDone:
		require.NoError(t, err, "consume: %s", tailLines(consumed.String()))
	case <-time.After(eventTimeout):
		t.Fatalf("the consumer did not read %d messages: %s", n, tailLines(consumed.String()))
	}

	// "msg PARTITION OFFSET KEY VALUE HEADERS": the offset tells the
	// consumer span's request.
	run := oneTraceRun{offsetID: map[int64]int{}}
	msg := regexp.MustCompile(`^msg 0 (\d+) req-(\d+) `)
	for _, line := range strings.Split(consumed.String(), "\n") {
		if m := msg.FindStringSubmatch(line); m != nil {
			off, _ := strconv.ParseInt(m[1], 10, 64)
			id, _ := strconv.Atoi(m[2])
			run.offsetID[off] = id
		}
	}
	require.Len(t, run.offsetID, n, "messages consumed")

	run.spans = w.recv.WaitForSpans(t, len(oneTraceKinds)*n, eventTimeout)
	w.stop(t)
	time.Sleep(time.Second) // anything more the tracer exported
	run.spans = w.recv.Spans()
	run.stderr = w.stderr.String()
	return run
}

// oneTraceKind names the kind of a span of the one-trace scenario, or
// says what it is if it is none.
func oneTraceKind(s otlptest.Span) string {
	switch {
	case s.Kind == "server":
		return "http server"
	case s.Kind == "producer":
		return "kafka producer"
	case s.Kind == "consumer":
		return "kafka consumer"
	case s.Kind == "client" && s.Attributes["db.system.name"] == "mysql":
		return "mysql"
	case s.Kind == "client" && s.Attributes["db.system.name"] == "redis":
		return "go-redis"
	case s.Kind == "client" && s.Attributes["db.system.name"] == "postgresql":
		return "postgresql" // lib/pq or pgx: see labelTrace
	}
	return fmt.Sprintf("%s %q %v", s.Kind, s.Name, s.Attributes)
}

// labelTrace returns the kind of each span of a trace (by span ID): the
// /all handler makes its calls one after another, lib/pq's query first
// and pgx's after Redis, so that of a trace's PostgreSQL spans, by start,
// the first is lib/pq's and the second pgx's.
func labelTrace(ss []otlptest.Span) map[string]string {
	ss = slices.Clone(ss)
	slices.SortFunc(ss, func(a, b otlptest.Span) int { return a.Start.Compare(b.Start) })
	kinds := map[string]string{}
	pg := 0
	for _, s := range ss {
		k := oneTraceKind(s)
		if k == "postgresql" {
			k = []string{"pq", "pgx", "postgresql"}[min(pg, 2)]
			pg++
		}
		kinds[s.SpanID] = k
	}
	return kinds
}

// TestOneTracePerRequestAcrossDatabasesAndKafka is the end-to-end test of
// issue 14: 500 concurrent requests with unique ids to a service that
// queries PostgreSQL (lib/pq and pgx) and MariaDB, calls Redis and
// produces to Kafka, with a consumer service continuing the trace, all
// under the real tracer (context writer on by default). Per request id:
// exactly one trace, whose root is the request's server span; its
// children are the lib/pq, go-sql-driver/mysql, pgx, go-redis and kafka-go
// producer spans; the consumer span of the request's message (told by its
// offset) is the producer span's child; nothing of another request in it,
// nothing missing, and the tracer wrote the 500 records' traceparent and
// dropped no span.
func TestOneTracePerRequestAcrossDatabasesAndKafka(t *testing.T) {
	const n = 500
	run := runOneTrace(t, n)

	byTrace := map[string][]otlptest.Span{}
	serverOf := map[int]otlptest.Span{} // request id → its server span
	servers := map[int]int{}
	kinds := map[string]int{}
	for _, s := range run.spans {
		byTrace[s.TraceID] = append(byTrace[s.TraceID], s)
		if s.Kind == "server" {
			id, err := strconv.Atoi(strings.TrimPrefix(fmt.Sprint(s.Attributes["url.query"]), "id="))
			require.NoError(t, err, "server span %+v", s)
			servers[id]++
			serverOf[id] = s
		}
	}
	label := map[string]string{} // span ID → kind
	for _, ss := range byTrace {
		for id, k := range labelTrace(ss) {
			label[id] = k
			kinds[k]++
		}
	}
	complete := 0
	bad := 0
	fail := func(id int, format string, args ...any) {
		bad++
		if bad <= 5 {
			t.Errorf("request %d: "+format, append([]any{id}, args...)...)
			for _, s := range byTrace[serverOf[id].TraceID] {
				t.Logf("  %s %q trace %s span %s parent %s %v", s.Kind, s.Name, s.TraceID, s.SpanID, s.ParentSpanID, s.Attributes)
			}
		}
	}
	for id := range n {
		if servers[id] != 1 {
			fail(id, "%d server spans", servers[id])
			continue
		}
		root := serverOf[id]
		if root.ParentSpanID != "" {
			fail(id, "the server span has a parent %s", root.ParentSpanID)
			continue
		}
		got := map[string][]otlptest.Span{}
		for _, s := range byTrace[root.TraceID] {
			got[label[s.SpanID]] = append(got[label[s.SpanID]], s)
		}
		want := map[string]int{}
		for _, k := range oneTraceKinds {
			want[k] = 1
		}
		counts := map[string]int{}
		for k, ss := range got {
			counts[k] = len(ss)
		}
		if !assert.ObjectsAreEqual(want, counts) {
			fail(id, "spans in its trace by kind %v, want %v", counts, want)
			continue
		}
		ok := true
		for k, ss := range got {
			for _, s := range ss {
				switch k {
				case "http server":
				case "kafka consumer":
					if s.ParentSpanID != got["kafka producer"][0].SpanID {
						fail(id, "the consumer span's parent is %s, not the producer span %s", s.ParentSpanID, got["kafka producer"][0].SpanID)
						ok = false
					}
					off, _ := s.Attributes["messaging.kafka.offset"].(int64)
					if mid, found := run.offsetID[off]; !found || mid != id {
						fail(id, "its trace holds the consumer span of the message at offset %d, request %d's", off, mid)
						ok = false
					}
				default:
					if s.ParentSpanID != root.SpanID {
						fail(id, "%s span %q: parent %s, not the server span %s", k, s.Name, s.ParentSpanID, root.SpanID)
						ok = false
					}
				}
			}
		}
		if ok {
			complete++
		}
	}
	assert.Zero(t, bad, "requests whose trace is not the expected tree")
	assert.Len(t, byTrace, n, "traces: one per request, none other")

	// The log table: requests, traces, complete ones, spans per kind.
	var table strings.Builder
	fmt.Fprintf(&table, "\n%-24s %6d\n%-24s %6d\n%-24s %6d\n", "requests", n, "traces", len(byTrace), "traces complete", complete)
	for _, k := range oneTraceKinds {
		fmt.Fprintf(&table, "%-24s %6d\n", "spans "+k, kinds[k])
		delete(kinds, k)
	}
	for k, c := range kinds {
		fmt.Fprintf(&table, "%-24s %6d (unexpected)\n", "spans "+k, c)
	}
	t.Log(table.String())
	assert.Empty(t, kinds, "spans of no expected kind")
	assert.Len(t, run.spans, len(oneTraceKinds)*n, "spans")

	checkOneTraceLog(t, run.stderr, n)
}

// checkOneTraceLog checks the tracer's exit lines: kafka_written=n with
// no Kafka record left alone, and no span dropped.
func checkOneTraceLog(t *testing.T, stderr string, kafkaWritten int) {
	t.Helper()
	ctxLine := regexp.MustCompile(`msg="outgoing trace context".*`).FindString(stderr)
	require.NotEmpty(t, ctxLine, "the tracer logs its trace-context counts: %s", stderr)
	t.Log(ctxLine)
	for k, want := range map[string]int{"kafka_written": kafkaWritten, "kafka_unmatched": 0, "kafka_unsupported": 0, "kafka_too_large": 0, "kafka_write_failed": 0, "kafka_application_set": 0} {
		m := regexp.MustCompile(`\b` + k + `=(\d+)`).FindStringSubmatch(ctxLine)
		if assert.NotNil(t, m, "%s in %s", k, ctxLine) {
			assert.Equal(t, strconv.Itoa(want), m[1], "%s", k)
		}
	}
	detached := regexp.MustCompile(`msg=detached .*`).FindAllString(stderr, -1)
	assert.Len(t, detached, 2, "the tracer detaches from both services")
	for _, line := range detached {
		t.Log(line)
		for _, m := range regexp.MustCompile(`\b(dropped\w*)=(\d+)`).FindAllStringSubmatch(line, -1) {
			assert.Equal(t, "0", m[2], "%s: %s", m[1], line)
		}
	}
	for _, m := range regexp.MustCompile(`\b(dropped\w*|lost\w*|\w*_lost)=(\d+)`).FindAllStringSubmatch(stderr, -1) {
		assert.Equal(t, "0", m[2], "%s in the tracer's log", m[1])
	}
}

// TestOneTracePerRequestNeedsContextPropagation is the scenario of
// TestOneTracePerRequestAcrossDatabasesAndKafka with the context writer
// off (--context-propagation=false), on 20 requests: the messages carry
// no traceparent, so every consumer span is the root of a trace of its
// own, and the tracer writes no record; the producer side is unchanged.
func TestOneTracePerRequestNeedsContextPropagation(t *testing.T) {
	const n = 20
	run := runOneTrace(t, n, "--context-propagation=false")
	traces := map[string]bool{}
	consumers := 0
	for _, s := range run.spans {
		if s.Kind == "server" {
			traces[s.TraceID] = true
		}
	}
	require.Len(t, traces, n, "server spans")
	for _, s := range run.spans {
		if s.Kind != "consumer" {
			continue
		}
		consumers++
		assert.Empty(t, s.ParentSpanID, "a consumer span has a parent without the context writer")
		assert.False(t, traces[s.TraceID], "a consumer span in a request's trace without the context writer")
	}
	assert.Equal(t, n, consumers, "consumer spans")
	assert.NotContains(t, run.stderr, `msg="outgoing trace context"`, "the context writer is off")
	assert.Len(t, slices.DeleteFunc(slices.Clone(run.spans), func(s otlptest.Span) bool { return s.Kind == "consumer" }), (len(oneTraceKinds)-1)*n, "spans other than the consumer's")
}

// tailLines returns the last five lines of s.
func tailLines(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}
