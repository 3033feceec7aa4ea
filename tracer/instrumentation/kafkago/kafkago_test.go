//go:build linux && (amd64 || arm64)

package kafkago

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/tracer/spans"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

func record(t *testing.T, r kafkagoKafkaEvent, topic, group string) []byte {
	r.Kind, r.Flags = 9, 1
	r.TraceId, r.SpanId, r.ParentSpanId = [16]uint8{1}, [8]uint8{2}, [8]uint8{3}
	r.TopicLen = uint8(copy(r.Topic[:], topic))
	r.GroupLen = uint8(copy(r.Group[:], group))
	b, err := binary.Append(nil, binary.NativeEndian, &r)
	require.NoError(t, err)
	return b
}

func TestInstrumentationDecodesKafkaRecords(t *testing.T) {
	want := func(name string, kind trace.SpanKind, remote bool) spans.Span {
		return spans.Span{Name: name, Kind: kind, TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, ParentSpanID: trace.SpanID{3}, RemoteParent: remote}
	}
	uprobetest.CheckInstrumentation(t, Instrumentation(), []uprobetest.DecodeCase{
		{
			Name:   "a batch sent",
			Record: record(t, kafkagoKafkaEvent{Op: 1, Count: 3}, "orders", ""),
			Want:   want("send orders", trace.SpanKindProducer, false),
			WantAttrs: map[string]any{"messaging.system": "kafka", "messaging.operation.name": "send", "messaging.operation.type": "send",
				"messaging.batch.message_count": int64(3), "messaging.destination.name": "orders"},
		},
		{
			Name:   "one message sent, failed",
			Record: record(t, kafkagoKafkaEvent{Op: 1, Count: 1, Failed: 1}, "orders", ""),
			Want:   want("send orders", trace.SpanKindProducer, false),
			WantAttrs: map[string]any{"messaging.system": "kafka", "messaging.operation.name": "send", "messaging.operation.type": "send",
				"messaging.destination.name": "orders", "error.type": "_OTHER"},
			WantStatus: codes.Error,
		},
		{
			Name:   "a message received in a group, continuing its traceparent",
			Record: record(t, kafkagoKafkaEvent{Op: 2, HasMessage: 1, Partition: 2, Offset: 41, RemoteParent: 1}, "orders", "billing"),
			Want:   want("receive orders", trace.SpanKindConsumer, true),
			WantAttrs: map[string]any{"messaging.system": "kafka", "messaging.operation.name": "receive", "messaging.operation.type": "receive",
				"messaging.destination.name": "orders", "messaging.consumer.group.name": "billing",
				"messaging.destination.partition.id": "2", "messaging.kafka.offset": int64(41)},
		},
		{
			Name:   "a fetch that failed",
			Record: record(t, kafkagoKafkaEvent{Op: 2, Failed: 1}, "orders", ""),
			Want:   want("receive orders", trace.SpanKindConsumer, false),
			WantAttrs: map[string]any{"messaging.system": "kafka", "messaging.operation.name": "receive", "messaging.operation.type": "receive",
				"messaging.destination.name": "orders", "error.type": "_OTHER"},
			WantStatus: codes.Error,
		},
		{Name: "unknown operation", Record: record(t, kafkagoKafkaEvent{Op: 7}, "", ""), WantErr: "operation 7"},
	})
}
