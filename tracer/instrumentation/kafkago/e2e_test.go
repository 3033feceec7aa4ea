//go:build linux && (amd64 || arm64)

package kafkago_test

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/tracer/instrumentation/databasesql/dbtest"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/kafkago/kafkatest"
	"github.com/offsetdb/offsetdb/tracer/internal/proctest"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// A traceparent sent with one request, which its handler copies into the
// message it produces.
const (
	traceID      = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpanID = "00f067aa0ba902b7"
)

// serve starts kafkasvc serve, with more flags if given, and returns its address.
func serve(t *testing.T, bin, broker, topic string, flags ...string) string {
	args := append([]string{"serve", "-http", "127.0.0.1:0", "-broker", broker, "-topic", topic}, flags...)
	cmd := exec.Command(bin, args...)
	return proctest.Serve(t, cmd, "http ", "kafkasvc serve")
}

func produce(t *testing.T, url, traceparent string) {
	req, err := http.NewRequest("GET", url, nil)
	require.NoError(t, err)
	if traceparent != "" {
		req.Header.Set("traceparent", traceparent)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
}

// topicPerTarget returns the targets of kafkatest.Targets, a topic for
// each (prefix and its index) and the address of a broker that has them.
func topicPerTarget(t *testing.T, prefix string) ([]kafkatest.Target, []string, string) {
	targets := kafkatest.Targets(t)
	var topics []string
	for i := range targets {
		topics = append(topics, fmt.Sprintf("%s%d", prefix, i))
	}
	return targets, topics, kafkatest.StartBroker(t, topics...)
}

// TestTraceKafkaGoAcrossVersions runs kafkasvc, built for each target of
// kafkatest.Matrix (kafka-go v0.2.5, v0.4.1 stripped, v0.4.51), against an
// in-process Kafka broker (franz-go's kfake, in a process of its own): an
// HTTP handler produces (one message, then a batch of three, then one
// carrying the request's traceparent) and a consumer in a group reads the
// five messages. Producer spans are children of their request's span;
// consumer spans have topic, partition, offset and group, and the one whose
// message carries a traceparent continues it.
func TestTraceKafkaGoAcrossVersions(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: builds services with toolchains from the module proxy")
	}
	targets, topics, broker := topicPerTarget(t, "orders")
	for i, tg := range targets {
		t.Run(tg.String(), func(t *testing.T) {
			topic := topics[i]
			bin := dbtest.OwnCopy(t, tg.Build(t))
			c := dbtest.Attach(t, bin, "kafka-go")
			addr := serve(t, bin, broker, topic)
			produce(t, "http://"+addr+"/produce?id=1", "")
			produce(t, "http://"+addr+"/produce?id=2&n=3", "")
			produce(t, "http://"+addr+"/produce?id=3", "00-"+traceID+"-"+callerSpanID+"-01")
			out, err := exec.Command(bin, "consume", "-broker", broker, "-topic", topic, "-group", "billing", "-n", "5").CombinedOutput()
			require.NoError(t, err, "consume: %s", out)
			require.Equal(t, 5, strings.Count(string(out), "msg "), "%s", out)

			got := c.Wait(t, 3+3+5)
			assert.Zero(t, c.Session.Drops())
			assert.Zero(t, c.Session.InFlightLost(), "spans lost in flight")
			servers := map[trace.SpanID]dbtest.Span{}
			for _, sp := range got {
				if sp.Inst == "net/http server" {
					servers[sp.SpanID] = sp
				}
			}
			require.Len(t, servers, 3)
			var producers, consumers []dbtest.Span
			for _, sp := range got {
				if sp.Inst != "kafka-go" {
					continue
				}
				t.Logf("%s %q parent=%s status=%v %v", sp.Kind, sp.Name, sp.ParentID, sp.Status, sp.Attrs)
				assert.Equal(t, "kafka", sp.Attrs["messaging.system"])
				assert.Equal(t, topic, sp.Attrs["messaging.destination.name"])
				switch sp.Kind {
				case trace.SpanKindProducer:
					producers = append(producers, sp)
					assert.Equal(t, "send "+topic, sp.Name)
					parent, ok := servers[sp.ParentID]
					if assert.True(t, ok, "producer span's parent %s is no server span", sp.ParentID) {
						assert.Equal(t, parent.TraceID, sp.TraceID)
						assert.False(t, sp.Start.Before(parent.Start) || sp.End.After(parent.End), "producer span outside its request")
					}
				case trace.SpanKindConsumer:
					consumers = append(consumers, sp)
					assert.Equal(t, "receive "+topic, sp.Name)
					assert.Equal(t, "billing", sp.Attrs["messaging.consumer.group.name"])
					assert.Equal(t, "0", sp.Attrs["messaging.destination.partition.id"])
				}
			}
			require.Len(t, producers, 3)
			require.Len(t, consumers, 5)
			counts := map[any]int{}
			for _, sp := range producers {
				counts[sp.Attrs["messaging.batch.message_count"]]++
			}
			assert.Equal(t, map[any]int{nil: 2, int64(3): 1}, counts, "batch sizes")
			offsets := map[any]bool{}
			continued := 0
			for _, sp := range consumers {
				offsets[sp.Attrs["messaging.kafka.offset"]] = true
				if sp.TraceID.String() == traceID {
					continued++
					assert.Equal(t, callerSpanID, sp.ParentID.String())
				} else {
					assert.False(t, sp.ParentID.IsValid(), "a consumer span of a message without traceparent has a parent")
				}
			}
			assert.Equal(t, map[any]bool{int64(0): true, int64(1): true, int64(2): true, int64(3): true, int64(4): true}, offsets)
			assert.Equal(t, 1, continued, "the message with a traceparent continues it")
			// The request with the traceparent, its producer span and the
			// consumer span of its message: one trace, where the net/http
			// server can read request headers (not in a stripped Go 1.24+
			// binary, whose map layout the database lacks: only the
			// consumer span is in the caller's trace there).
			want := 3
			for _, sp := range servers {
				if sp.Attrs["url.query"] == "id=3" && sp.TraceID.String() != traceID {
					t.Logf("the net/http server did not continue the request's traceparent")
					want = 1
				}
			}
			inTrace := 0
			for _, sp := range got {
				if sp.TraceID.String() == traceID {
					inTrace++
				}
			}
			assert.Equal(t, want, inTrace, "spans in the caller's trace")
		})
	}
}

// TestTraceManyConcurrentProduces sends 500 concurrent requests to the
// producing handler, each with a traceparent of its own that the handler
// copies into its message, then consumes the 500 messages: every request's
// trace must hold its server span, the producer span under it and the
// consumer span of its message under the caller's span, and nothing else.
func TestTraceManyConcurrentProduces(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: builds services with toolchains from the module proxy")
	}
	tg := kafkatest.Matrix[len(kafkatest.Matrix)-1]
	broker := kafkatest.StartBroker(t, "many")
	bin := dbtest.OwnCopy(t, tg.Build(t))
	c := dbtest.Attach(t, bin, "kafka-go")
	addr := serve(t, bin, broker, "many")

	const n = 500
	type ids struct{ trace, caller string }
	want := make([]ids, n)
	errs := make(chan error, n)
	done := make(chan struct{})
	sem := make(chan struct{}, n)
	for i := range n {
		want[i] = ids{fmt.Sprintf("%032x", 0xabc000+i), fmt.Sprintf("%016x", 0xdef000+i)}
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; done <- struct{}{} }()
			req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/produce?id=%d", addr, i), nil)
			req.Header.Set("traceparent", "00-"+want[i].trace+"-"+want[i].caller+"-01")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				errs <- fmt.Errorf("id %d: status %d", i, resp.StatusCode)
			}
		}()
	}
	for range n {
		<-done
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	out, err := exec.Command(bin, "consume", "-broker", broker, "-topic", "many", "-group", "many", "-n", fmt.Sprint(n)).CombinedOutput()
	require.NoError(t, err, "consume: %s", lastLines(string(out)))

	got := c.Wait(t, 3*n)
	assert.Zero(t, c.Session.Drops())
	assert.Zero(t, c.Session.InFlightLost(), "spans lost in flight")
	type tree struct{ server, producer, consumer []dbtest.Span }
	traces := map[string]*tree{}
	for _, sp := range got {
		tr := traces[sp.TraceID.String()]
		if tr == nil {
			tr = &tree{}
			traces[sp.TraceID.String()] = tr
		}
		switch {
		case sp.Inst == "net/http server":
			tr.server = append(tr.server, sp)
		case sp.Kind == trace.SpanKindProducer:
			tr.producer = append(tr.producer, sp)
		case sp.Kind == trace.SpanKindConsumer:
			tr.consumer = append(tr.consumer, sp)
		}
	}
	bad := 0
	for _, w := range want {
		tr := traces[w.trace]
		ok := tr != nil && len(tr.server) == 1 && len(tr.producer) == 1 && len(tr.consumer) == 1 &&
			tr.server[0].ParentID.String() == w.caller && tr.producer[0].ParentID == tr.server[0].SpanID &&
			tr.consumer[0].ParentID.String() == w.caller
		if !ok {
			bad++
			if bad <= 5 {
				t.Errorf("trace %s: %+v", w.trace, tr)
			}
		}
	}
	assert.Zero(t, bad, "requests whose trace is not server → producer, caller → consumer")
	assert.Len(t, traces, n, "traces")
}

func lastLines(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}
