//go:build linux && (amd64 || arm64)

package kafkago_test

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/tracer/instrumentation/databasesql/dbtest"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/kafkago/kafkatest"
	"github.com/offsetdb/offsetdb/tracer/propagation"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// serveBatched starts kafkasvc serve with a Writer that batches up to 100
// messages, so that the messages of one call leave in one record batch.
func serveBatched(t *testing.T, bin, broker, topic string) string {
	return serve(t, bin, broker, topic, "-batch-size", "100")
}

// attachWithWriter starts the socket-layer writer of trace context (closed
// at the end of the test), builds an own copy of kafkasvc for tg and
// attaches kafka-go's probes to it with the writer's maps shared and the
// context writer on; it returns the writer, the binary and the collector.
func attachWithWriter(t *testing.T, tg kafkatest.Target) (*propagation.Writer, string, *dbtest.Collector) {
	root, err := propagation.CgroupRoot()
	require.NoError(t, err)
	w, err := propagation.Start(root)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, w.Close()) })
	bin := dbtest.OwnCopy(t, tg.Build(t))
	c := dbtest.AttachWith(t, bin, &uprobe.Options{
		Shared:    w.Maps(),
		Constants: map[string]any{propagation.ContextWriterConst: uint8(1)},
	}, "kafka-go")
	return w, bin, c
}

// consumed is one message kafkasvc consume printed.
type consumed struct {
	offset  string
	key     string
	value   string
	headers map[string]string
}

func consumeAll(t *testing.T, bin, broker, topic, group string, n int) []consumed {
	out, err := exec.Command(bin, "consume", "-broker", broker, "-topic", topic, "-group", group, "-n", fmt.Sprint(n)).CombinedOutput()
	require.NoError(t, err, "consume: %s", out)
	var msgs []consumed
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[0] != "msg" {
			continue
		}
		// msg PARTITION OFFSET KEY "order ID.I" [HEADERS]: the value has one space.
		m := consumed{offset: f[2], key: f[3], value: f[4] + " " + f[5], headers: map[string]string{}}
		if len(f) > 6 {
			for _, kv := range strings.Split(f[6], ",") {
				k, v, _ := strings.Cut(kv, "=")
				m.headers[k] = v
			}
		}
		msgs = append(msgs, m)
	}
	require.Len(t, msgs, n, "%s", out)
	sort.Slice(msgs, func(i, j int) bool { return msgs[i].value < msgs[j].value })
	return msgs
}

// The messages kafkaProduceAll sends, in value order, with the headers the
// application gave them.
var wantMessages = []consumed{
	{key: "1", value: `"order 1.0"`, headers: map[string]string{"tag": "one"}},
	{key: "2", value: `"order 2.0"`, headers: map[string]string{"tag": "two"}},
	{key: "2", value: `"order 2.1"`, headers: map[string]string{"tag": "two"}},
	{key: "2", value: `"order 2.2"`, headers: map[string]string{"tag": "two"}},
	{key: "3", value: `"order 3.0"`, headers: map[string]string{"traceparent": "00-" + traceID + "-" + callerSpanID + "-01"}},
}

// kafkaProduceAll produces one message, a batch of three, and one with the
// application's own traceparent.
func kafkaProduceAll(t *testing.T, addr string) {
	produce(t, "http://"+addr+"/produce?id=1&tag=one", "")
	produce(t, "http://"+addr+"/produce?id=2&n=3&tag=two", "")
	produce(t, "http://"+addr+"/produce?id=3", "00-"+traceID+"-"+callerSpanID+"-01")
}

// TestProducerWritesTraceparent runs kafkasvc under the tracer with the
// socket-layer writer of trace context, for each target of
// kafkatest.Matrix: every record a WriteMessages call produced carries a
// traceparent naming the call's producer span, so the consumer span of
// each message is that producer span's child; a message the application
// gave its own traceparent keeps it; keys, values and other headers are
// unchanged.
func TestProducerWritesTraceparent(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: builds services with toolchains from the module proxy")
	}
	targets, topics, broker := topicPerTarget(t, "traced")
	for i, tg := range targets {
		t.Run(tg.String(), func(t *testing.T) {
			topic := topics[i]
			w, bin, c := attachWithWriter(t, tg)
			addr := serveBatched(t, bin, broker, topic)
			kafkaProduceAll(t, addr)
			msgs := consumeAll(t, bin, broker, topic, "billing", 5)

			got := c.Wait(t, 3+3+5)
			assert.Zero(t, c.Session.Drops())
			producers := map[trace.SpanID]dbtest.Span{}
			var consumers []dbtest.Span
			for _, sp := range got {
				switch {
				case sp.Inst == "kafka-go" && sp.Kind == trace.SpanKindProducer:
					producers[sp.SpanID] = sp
				case sp.Inst == "kafka-go" && sp.Kind == trace.SpanKindConsumer:
					consumers = append(consumers, sp)
				}
			}
			require.Len(t, producers, 3)
			require.Len(t, consumers, 5)

			// Each message: what the application wrote, plus our traceparent
			// (messages 1 and 2.x), which names a producer span.
			parents := map[string]trace.SpanID{}
			for i, m := range msgs {
				want := wantMessages[i]
				assert.Equal(t, want.key, m.key)
				assert.Equal(t, want.value, m.value)
				tp, ok := m.headers["traceparent"]
				if !assert.True(t, ok, "message %s has no traceparent", m.value) {
					continue
				}
				for k, v := range want.headers {
					assert.Equal(t, v, m.headers[k], "header %s of %s", k, m.value)
				}
				assert.Len(t, m.headers, len(want.headers)+map[bool]int{true: 0, false: 1}[want.key == "3"], "headers of %s: %v", m.value, m.headers)
				if want.key == "3" {
					continue // the application's own
				}
				parts := strings.Split(tp, "-")
				if !assert.Len(t, parts, 4, "traceparent %q", tp) || !assert.Equal(t, "01", parts[3], "flags of %q", tp) {
					continue
				}
				tid, err1 := trace.TraceIDFromHex(parts[1])
				sid, err2 := trace.SpanIDFromHex(parts[2])
				if !assert.NoError(t, err1, "traceparent %q", tp) || !assert.NoError(t, err2, "traceparent %q", tp) {
					continue
				}
				p, ok := producers[sid]
				if assert.True(t, ok, "traceparent %s of %s names no producer span", tp, m.value) {
					assert.Equal(t, p.TraceID, tid)
				}
				parents[m.offset] = sid
			}
			// The three messages of one call name the same producer span, the
			// single message another.
			assert.Len(t, parents, 4)
			byKey := map[string]map[trace.SpanID]bool{}
			for _, m := range msgs {
				if sid, ok := parents[m.offset]; ok {
					if byKey[m.key] == nil {
						byKey[m.key] = map[trace.SpanID]bool{}
					}
					byKey[m.key][sid] = true
				}
			}
			assert.Len(t, byKey["1"], 1)
			assert.Len(t, byKey["2"], 1)

			// Each consumer span continues its message's traceparent.
			continued := 0
			for _, sp := range consumers {
				off := fmt.Sprint(sp.Attrs["messaging.kafka.offset"])
				if sid, ok := parents[off]; ok {
					assert.Equal(t, sid, sp.ParentID, "consumer span of offset %s", off)
					assert.Equal(t, producers[sid].TraceID, sp.TraceID)
					continued++
				} else {
					assert.Equal(t, traceID, sp.TraceID.String(), "consumer span of offset %s", off)
					assert.Equal(t, callerSpanID, sp.ParentID.String())
				}
			}
			assert.Equal(t, 4, continued, "consumer spans children of a producer span")

			st, err := w.Stats()
			require.NoError(t, err)
			t.Logf("writer: %+v", st)
			assert.Equal(t, uint64(4), st.KafkaWritten, "records given a traceparent")
			assert.Equal(t, uint64(1), st.KafkaAppSet, "records with the application's traceparent")
			assert.Equal(t, uint64(2), st.KafkaRequests, "Produce requests rewritten: one record, then a batch of three")
			assert.Zero(t, st.KafkaUnmatched+st.KafkaUnsupported+st.KafkaTooLarge+st.KafkaWriteFailed+st.WriteFailed, "records or requests left alone")
		})
	}
}

// TestProducerWritesNothingWithoutWriter: traced without the writer
// (--context-propagation=false), the consumed messages are exactly what
// the application produced, and consumer spans of messages without a
// traceparent have no parent.
func TestProducerWritesNothingWithoutWriter(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: builds services with toolchains from the module proxy")
	}
	tg := kafkatest.Matrix[len(kafkatest.Matrix)-1]
	broker := kafkatest.StartBroker(t, "untraced")
	bin := dbtest.OwnCopy(t, tg.Build(t))
	c := dbtest.Attach(t, bin, "kafka-go")
	addr := serveBatched(t, bin, broker, "untraced")
	kafkaProduceAll(t, addr)
	msgs := consumeAll(t, bin, broker, "untraced", "billing", 5)
	for i, m := range msgs {
		want := wantMessages[i]
		assert.Equal(t, want.key, m.key)
		assert.Equal(t, want.value, m.value)
		assert.Equal(t, want.headers, m.headers, "headers of %s", m.value)
	}
	got := c.Wait(t, 3+3+5)
	for _, sp := range got {
		if sp.Inst == "kafka-go" && sp.Kind == trace.SpanKindConsumer && sp.TraceID.String() != traceID {
			assert.False(t, sp.ParentID.IsValid(), "consumer span %s has a parent", sp.Name)
		}
	}
}

// TestProducerTraceparentUnderConcurrency sends 200 concurrent requests to
// a producing handler whose Writer batches up to 100 messages, so that
// records of different WriteMessages calls share record batches: each
// consumed message's traceparent must name the producer span of the
// request that produced it, and its consumer span be that span's child.
func TestProducerTraceparentUnderConcurrency(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: builds services with toolchains from the module proxy")
	}
	tg := kafkatest.Matrix[len(kafkatest.Matrix)-1]
	broker := kafkatest.StartBroker(t, "busy")
	w, bin, c := attachWithWriter(t, tg)
	addr := serveBatched(t, bin, broker, "busy")

	const n = 200
	done := make(chan error, n)
	for i := range n {
		go func() {
			resp, err := http.Get(fmt.Sprintf("http://%s/produce?id=%d", addr, i))
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("id %d: status %d", i, resp.StatusCode)
				}
			}
			done <- err
		}()
	}
	for range n {
		assert.NoError(t, <-done)
	}
	msgs := consumeAll(t, bin, broker, "busy", "busy", n)

	got := c.Wait(t, 3*n)
	assert.Zero(t, c.Session.Drops())
	serverOf := map[trace.SpanID]string{} // server span → its id= query
	producers := map[trace.SpanID]dbtest.Span{}
	consumerParent := map[string]trace.SpanID{} // offset → parent
	for _, sp := range got {
		switch {
		case sp.Inst == "net/http server":
			serverOf[sp.SpanID] = fmt.Sprint(sp.Attrs["url.query"])
		case sp.Inst == "kafka-go" && sp.Kind == trace.SpanKindProducer:
			producers[sp.SpanID] = sp
		case sp.Inst == "kafka-go" && sp.Kind == trace.SpanKindConsumer:
			consumerParent[fmt.Sprint(sp.Attrs["messaging.kafka.offset"])] = sp.ParentID
		}
	}
	bad := 0
	for _, m := range msgs {
		tp := strings.Split(m.headers["traceparent"], "-")
		ok := len(tp) == 4
		var sid trace.SpanID
		if ok {
			var err error
			sid, err = trace.SpanIDFromHex(tp[2])
			ok = err == nil
		}
		p, found := producers[sid]
		ok = ok && found && p.TraceID.String() == tp[1] && serverOf[p.ParentID] == "id="+m.key && consumerParent[m.offset] == sid
		if !ok {
			bad++
			if bad <= 5 {
				t.Errorf("message %s (offset %s): traceparent %q is not its request's producer span", m.key, m.offset, m.headers["traceparent"])
			}
		}
	}
	assert.Zero(t, bad, "messages whose traceparent names another request's producer span")
	st, err := w.Stats()
	require.NoError(t, err)
	t.Logf("writer: %+v", st)
	assert.Equal(t, uint64(n), st.KafkaWritten)
	assert.Less(t, st.KafkaRequests, uint64(n), "records of several calls shared Produce requests")
	assert.Zero(t, st.NotWritten())
}

// TestProducerLargeMessages produces messages of 3,000, 12,000 and 40,000
// bytes (one call each) with the writer on, for each target of
// kafkatest.Matrix: each is delivered intact, and either carries a
// traceparent or was counted as too large (a request over the writer's
// 32 KiB, or written in several pieces).
func TestProducerLargeMessages(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: builds services with toolchains from the module proxy")
	}
	targets, topics, broker := topicPerTarget(t, "large")
	for i, tg := range targets {
		t.Run(tg.String(), func(t *testing.T) {
			topic := topics[i]
			w, bin, _ := attachWithWriter(t, tg)
			addr := serveBatched(t, bin, broker, topic)
			pads := []int{3000, 12000, 40000}
			for j, pad := range pads {
				produce(t, fmt.Sprintf("http://%s/produce?id=%d&pad=%d", addr, j, pad), "")
			}
			msgs := consumeAll(t, bin, broker, topic, "large", len(pads))
			with := 0
			for j, m := range msgs {
				assert.Equal(t, fmt.Sprint(j), m.key)
				assert.Equal(t, fmt.Sprintf("%q", fmt.Sprintf("order %d.0", j)+strings.Repeat("x", pads[j])), m.value)
				if _, ok := m.headers["traceparent"]; ok {
					with++
				}
			}
			st, err := w.Stats()
			require.NoError(t, err)
			t.Logf("writer: %+v; messages with a traceparent: %d", st, with)
			assert.Equal(t, uint64(with), st.KafkaWritten)
			assert.Equal(t, uint64(len(pads)-with), st.KafkaTooLarge, "messages without a traceparent counted as too large")
			assert.Zero(t, st.KafkaUnmatched+st.KafkaUnsupported+st.KafkaWriteFailed+st.WriteFailed)
		})
	}
}
