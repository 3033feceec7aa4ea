//go:build linux && (amd64 || arm64)

package kafkago

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"unsafe"

	"github.com/cilium/ebpf"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/tracer/spans"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
)

// spec returns the BPF objects of kafkago.c, embedded by bpf2go.
func spec() (*ebpf.CollectionSpec, error) {
	return loadKafkago()
}

// The values of kafka_event.op.
const (
	opSend    = 1
	opReceive = 2
)

// recordPIDAt is where struct kafka_event holds the thread group id of the
// process that submitted it (uprobe.Instrumentation.PIDAt).
var recordPIDAt = int(unsafe.Offsetof(kafkagoKafkaEvent{}.Pid))

var recordSize = int(unsafe.Sizeof(kafkagoKafkaEvent{}))

// Where each field of struct kafka_event sits in a record, from the bpf2go
// type (which mirrors the C struct).
var (
	offOp         = unsafe.Offsetof(kafkagoKafkaEvent{}.Op)
	offFailed     = unsafe.Offsetof(kafkagoKafkaEvent{}.Failed)
	offFlags      = unsafe.Offsetof(kafkagoKafkaEvent{}.Flags)
	offRemote     = unsafe.Offsetof(kafkagoKafkaEvent{}.RemoteParent)
	offTopicLen   = unsafe.Offsetof(kafkagoKafkaEvent{}.TopicLen)
	offGroupLen   = unsafe.Offsetof(kafkagoKafkaEvent{}.GroupLen)
	offHasMessage = unsafe.Offsetof(kafkagoKafkaEvent{}.HasMessage)
	offPartition  = unsafe.Offsetof(kafkagoKafkaEvent{}.Partition)
	offOffset     = unsafe.Offsetof(kafkagoKafkaEvent{}.Offset)
	offCount      = unsafe.Offsetof(kafkagoKafkaEvent{}.Count)
	offStartNs    = unsafe.Offsetof(kafkagoKafkaEvent{}.StartNs)
	offEndNs      = unsafe.Offsetof(kafkagoKafkaEvent{}.EndNs)
	offTraceID    = unsafe.Offsetof(kafkagoKafkaEvent{}.TraceId)
	offSpanID     = unsafe.Offsetof(kafkagoKafkaEvent{}.SpanId)
	offParentID   = unsafe.Offsetof(kafkagoKafkaEvent{}.ParentSpanId)
	offTopic      = unsafe.Offsetof(kafkagoKafkaEvent{}.Topic)
	offGroup      = unsafe.Offsetof(kafkagoKafkaEvent{}.Group)
	topicSize     = len(kafkagoKafkaEvent{}.Topic)
	groupSize     = len(kafkagoKafkaEvent{}.Group)
)

// decode is the instrumentation's uprobe.Instrumentation.Decode: a
// producer span "send <topic>" or a consumer span "receive <topic>"
// (semconv v1.43.0 messaging attributes; error.type _OTHER for a failed
// call, whose error type is not read).
func decode(record []byte, out *spans.Span) error {
	if len(record) < recordSize {
		return fmt.Errorf("record of %d bytes, want %d", len(record), recordSize)
	}
	ne := binary.NativeEndian
	str := func(lenAt, at uintptr, size int) string {
		n := min(int(record[lenAt]), size)
		return string(record[at : int(at)+n])
	}
	out.Start = uprobe.WallTime(ne.Uint64(record[offStartNs:]))
	out.End = uprobe.WallTime(ne.Uint64(record[offEndNs:]))
	copy(out.TraceID[:], record[offTraceID:])
	copy(out.SpanID[:], record[offSpanID:])
	copy(out.ParentSpanID[:], record[offParentID:])
	out.RemoteParent = record[offRemote] != 0
	out.Unsampled = record[offFlags]&1 == 0
	topic := str(offTopicLen, offTopic, topicSize)
	attrs := append(out.Attributes[:0], semconv.MessagingSystemKafka)
	var verb string
	switch record[offOp] {
	case opSend:
		out.Kind = trace.SpanKindProducer
		verb = "send"
		attrs = append(attrs, semconv.MessagingOperationName("send"), semconv.MessagingOperationTypeSend)
		if n := int(ne.Uint64(record[offCount:])); n != 1 {
			attrs = append(attrs, semconv.MessagingBatchMessageCount(n))
		}
	case opReceive:
		out.Kind = trace.SpanKindConsumer
		verb = "receive"
		attrs = append(attrs, semconv.MessagingOperationName("receive"), semconv.MessagingOperationTypeReceive)
		if g := str(offGroupLen, offGroup, groupSize); g != "" {
			attrs = append(attrs, semconv.MessagingConsumerGroupName(g))
		}
		if record[offHasMessage] != 0 {
			attrs = append(attrs,
				semconv.MessagingDestinationPartitionID(strconv.Itoa(int(int32(ne.Uint32(record[offPartition:]))))),
				semconv.MessagingKafkaOffset(int(int64(ne.Uint64(record[offOffset:])))))
		}
	default:
		return fmt.Errorf("kafka-go record %s/%s: %w: operation %d", out.TraceID, out.SpanID, spans.ErrInvalidEvent, record[offOp])
	}
	out.Name = verb
	if topic != "" {
		out.Name = verb + " " + topic
		attrs = append(attrs, semconv.MessagingDestinationName(topic))
	}
	out.Attributes = attrs
	if record[offFailed] != 0 {
		out.SetError(semconv.ErrorTypeOther, "")
	}
	return nil
}
