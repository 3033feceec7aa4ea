// Package kafkago instruments segmentio/kafka-go
// (github.com/segmentio/kafka-go): a producer span per batch a Writer
// sends and a consumer span per message a Reader fetches, following the
// messaging semantic conventions for Kafka.
//
// It probes, with the BPF programs of kafkago.c, (*Writer).WriteMessages
// and (*Reader).FetchMessage (which ReadMessage calls), whose signatures
// have not changed since v0.1.0.
//
// A producer span ("send orders") is a child of the calling goroutine's
// active span (the HTTP or gRPC request being handled), with the topic and
// the batch's message count; the partitions are chosen later, by the
// Writer's balancer, and are not in it. A consumer span ("receive
// orders") has the topic, partition, offset and consumer group of the
// message fetched and continues the W3C traceparent in its headers, if it
// carries a valid one (kafka-go v0.2.0 and later have headers); it covers
// the wait for the message. With the socket-layer writer of trace context
// (package propagation), each produced record gets a traceparent header
// naming its producer span: the WriteMessages probe lists each message's
// fingerprint (topic, key and value lengths and first bytes) with the
// span's context, and the writer adds the header to the matching records
// of the Produce request as it leaves the process.
package kafkago

import (
	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
)

// The BPF objects, compiled for both targets and committed, come from
// kafkago.c and the shared headers in bpf/; the build needs clang and
// libbpf-dev.
//go:generate go tool bpf2go -tags linux -target amd64,arm64 -type kafka_event kafkago kafkago.c -- -I../../../bpf -O2 -mcpu=v3 -Wall -Werror -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu

// Symbols the instrumentation probes.
const (
	WriteMessages = "github.com/segmentio/kafka-go.(*Writer).WriteMessages"
	FetchMessage  = "github.com/segmentio/kafka-go.(*Reader).FetchMessage"
)

// Instrumentation returns the declaration of the kafka-go instrumentation,
// for uprobe.Attach. Each call returns a new copy.
//
// Both probes are optional: a program that only produces, or only
// consumes, has the other function dropped by the linker.
func Instrumentation() uprobe.Instrumentation {
	f := offsets.MustParseFieldID
	return uprobe.Instrumentation{
		Name: "kafka-go",
		Probes: []uprobe.Probe{
			// Stack ABI: the programs read the error, the last 16 bytes
			// of the results (FetchMessage's Message before it varies in
			// size with the version; kafka_fetch_return finds it after
			// the arguments).
			{Symbol: WriteMessages, Entry: "kafka_produce", Return: "kafka_produce_return", Optional: true, StackABI: true, StackResults: 16},
			{Symbol: FetchMessage, Entry: "kafka_fetch", Return: "kafka_fetch_return", Optional: true, StackABI: true, StackResults: 16},
		},
		Fields: []uprobe.Field{
			{ID: f("runtime.g.goid"), Const: "off_g_goid"},
			{ID: f("github.com/segmentio/kafka-go.Message.Topic"), Const: "off_Message_Topic"},
			{ID: f("github.com/segmentio/kafka-go.Message.Partition"), Const: "off_Message_Partition"},
			{ID: f("github.com/segmentio/kafka-go.Message.Offset"), Const: "off_Message_Offset"},
			{ID: f("github.com/segmentio/kafka-go.Message.Headers"), Const: "off_Message_Headers", Optional: true},
			// The fingerprints of produced messages, for the writer of
			// trace context (see kafkago.c, list_messages).
			{ID: f("github.com/segmentio/kafka-go.Message.Key"), Const: "off_Message_Key", IfResolved: true},
			{ID: f("github.com/segmentio/kafka-go.Message.Value"), Const: "off_Message_Value", IfResolved: true},
			{ID: f("github.com/segmentio/kafka-go.Message.Time"), Const: "off_Message_Time", IfResolved: true},
			{ID: f("github.com/segmentio/kafka-go.Writer.Topic"), Const: "off_Writer_Topic", Optional: true},
			{ID: f("github.com/segmentio/kafka-go.Writer.config.Topic"), Const: "off_Writer_config_Topic", Optional: true},
			{ID: f("github.com/segmentio/kafka-go.Reader.config.GroupID"), Const: "off_Reader_GroupID", IfResolved: true},
			{ID: f("github.com/segmentio/kafka-go.Reader.config.Topic"), Const: "off_Reader_Topic", IfResolved: true},
		},
		Spec:   spec,
		PIDAt:  recordPIDAt,
		Decode: decode,
	}
}
