//go:build linux && (amd64 || arm64)

package propagation

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// The Kafka half of the writer, on Produce requests this test builds and
// writes on a socket of its own (adopted into the writer's sockhash), with
// the fingerprints a WriteMessages probe would list put into
// kafka_outgoing by hand: what arrives at the other end is parsed, and
// every length and the batch's CRC-32C checked.

type kRecord struct {
	key, value []byte // nil: null
	headers    [][2]string
}

type kProduce struct {
	version    int16
	topic      string
	attributes int16 // of the batch: 1 = gzip
	magic      int8
	records    []kRecord
}

func appendVarint(b []byte, v int64) []byte { return binary.AppendVarint(b, v) }

func appendBytesVarint(b, v []byte) []byte {
	if v == nil {
		return appendVarint(b, -1)
	}
	return append(appendVarint(b, int64(len(v))), v...)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encode returns the request as kafka-go writes it (Produce v3-v8, request header v1).
func (p kProduce) encode() []byte {
	var recs []byte
	for i, r := range p.records {
		var body []byte
		body = append(body, 0)                // attributes
		body = appendVarint(body, 0)          // timestamp delta
		body = appendVarint(body, int64(i))   // offset delta
		body = appendBytesVarint(body, r.key) // key
		body = appendBytesVarint(body, r.value)
		body = appendVarint(body, int64(len(r.headers)))
		for _, h := range r.headers {
			body = appendBytesVarint(body, []byte(h[0]))
			body = appendBytesVarint(body, []byte(h[1]))
		}
		recs = append(appendVarint(recs, int64(len(body))), body...)
	}
	be := binary.BigEndian
	// Batch: base offset, length, leader epoch, magic, crc, then the CRC'd part.
	var tail []byte
	tail = be.AppendUint16(tail, uint16(p.attributes))
	tail = be.AppendUint32(tail, uint32(len(p.records)-1)) // last offset delta
	tail = be.AppendUint64(tail, 1700000000000)            // base timestamp
	tail = be.AppendUint64(tail, 1700000000000)            // max timestamp
	tail = be.AppendUint64(tail, ^uint64(0))               // producer id
	tail = be.AppendUint16(tail, 0xffff)                   // producer epoch
	tail = be.AppendUint32(tail, 0xffffffff)               // base sequence
	tail = be.AppendUint32(tail, uint32(len(p.records)))
	tail = append(tail, recs...)
	var batch []byte
	batch = be.AppendUint64(batch, 0)
	batch = be.AppendUint32(batch, uint32(4+1+4+len(tail)))
	batch = be.AppendUint32(batch, 0)
	batch = append(batch, byte(p.magic))
	batch = be.AppendUint32(batch, crc32.Checksum(tail, castagnoli))
	batch = append(batch, tail...)

	var req []byte
	req = be.AppendUint16(req, 0) // Produce
	req = be.AppendUint16(req, uint16(p.version))
	req = be.AppendUint32(req, 7) // correlation id
	req = be.AppendUint16(req, uint16(len("kafkatest")))
	req = append(req, "kafkatest"...)
	req = be.AppendUint16(req, 0xffff) // transactional id: null
	req = be.AppendUint16(req, 1)      // acks
	req = be.AppendUint32(req, 10000)  // timeout
	req = be.AppendUint32(req, 1)      // topics
	req = be.AppendUint16(req, uint16(len(p.topic)))
	req = append(req, p.topic...)
	req = be.AppendUint32(req, 1) // partitions
	req = be.AppendUint32(req, 0)
	req = be.AppendUint32(req, uint32(len(batch)))
	req = append(req, batch...)
	return append(be.AppendUint32(nil, uint32(len(req))), req...)
}

// decodeProduce parses what encode writes, checking every length and the
// CRC, and returns the records.
func decodeProduce(t *testing.T, b []byte) []kRecord {
	t.Helper()
	be := binary.BigEndian
	require.Equal(t, len(b)-4, int(be.Uint32(b)), "request size")
	p := 4 + 8
	p += 2 + int(be.Uint16(b[p:]))
	p += 2 + 6 + 4 // null transactional id, acks, timeout, topics
	p += 2 + int(be.Uint16(b[p:]))
	p += 8
	size := int(be.Uint32(b[p:]))
	p += 4
	require.Equal(t, len(b)-p, size, "records size")
	batch := b[p:]
	require.Equal(t, len(batch)-12, int(be.Uint32(batch[8:])), "batch length")
	require.Equal(t, be.Uint32(batch[17:]), crc32.Checksum(batch[21:], castagnoli), "batch CRC")
	n := int(be.Uint32(batch[57:]))
	r := bytes.NewReader(batch[61:])
	varint := func() int64 {
		v, err := binary.ReadVarint(r)
		require.NoError(t, err)
		return v
	}
	field := func() []byte {
		l := varint()
		if l < 0 {
			return nil
		}
		v := make([]byte, l)
		_, err := io.ReadFull(r, v)
		require.NoError(t, err)
		return v
	}
	var recs []kRecord
	for range n {
		l := varint()
		start := r.Len()
		_, _ = r.ReadByte()
		varint()
		varint()
		rec := kRecord{key: field(), value: field()}
		for range varint() {
			rec.headers = append(rec.headers, [2]string{string(field()), string(field())})
		}
		require.Equal(t, int(l), start-r.Len(), "record length")
		recs = append(recs, rec)
	}
	require.Zero(t, r.Len(), "bytes after the records")
	return recs
}

// fingerprint is kafka_fp_hash (bpf/propagation.h) of a record of topic.
func fingerprint(topic string, key, value []byte) uint64 {
	var in [192]byte
	copy(in[:128], topic)
	ne := binary.NativeEndian
	ne.PutUint32(in[128:], uint32(len(topic)))
	ne.PutUint32(in[132:], uint32(len(key)))
	ne.PutUint32(in[136:], uint32(len(value)))
	copy(in[144:160], key)
	copy(in[160:192], value)
	h := uint64(0xcbf29ce484222325)
	for _, c := range in {
		h ^= uint64(c)
		h *= 0x100000001b3
	}
	return h
}

func monotonicNs(t *testing.T) uint64 {
	var ts unix.Timespec
	require.NoError(t, unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts))
	return uint64(ts.Nano())
}

// listMessage does what the WriteMessages probe does for one message.
func listMessage(t *testing.T, w *Writer, topic string, key, value []byte, span byte) {
	k := writerKafkaFpKey{Tgid: uint32(os.Getpid()), Hash: fingerprint(topic, key, value)}
	v := writerKafkaOutgoing{Flags: 1, QueuedNs: monotonicNs(t)}
	for i := range v.TraceId {
		v.TraceId[i] = 0xab
	}
	for i := range v.SpanId {
		v.SpanId[i] = span
	}
	require.NoError(t, w.objs.KafkaOutgoing.Put(k, v))
	require.NoError(t, w.objs.KafkaProducers.Put(uint32(os.Getpid()), uint8(1)))
}

func spanTraceparent(span byte) string {
	return fmt.Sprintf("00-%s-%s-01", bytes.Repeat([]byte("ab"), 16), bytes.Repeat([]byte(fmt.Sprintf("%02x", span)), 8))
}

// kafkaPipe returns both ends of a TCP connection whose client side the writer watches.
func kafkaPipe(t *testing.T, w *Writer) (client, server net.Conn) {
	client, server = tcpPair(t)
	_, err := w.Adopt(os.Getpid())
	require.NoError(t, err)
	return client, server
}

// roundTrip writes req in the given pieces and returns the request that arrives.
func roundTrip(t *testing.T, client, server net.Conn, pieces ...[]byte) []byte {
	t.Helper()
	for i, p := range pieces {
		_, err := client.Write(p)
		require.NoError(t, err)
		if i < len(pieces)-1 {
			time.Sleep(20 * time.Millisecond) // a write of its own
		}
	}
	var size [4]byte
	_, err := io.ReadFull(server, size[:])
	require.NoError(t, err)
	rest := make([]byte, binary.BigEndian.Uint32(size[:]))
	_, err = io.ReadFull(server, rest)
	require.NoError(t, err)
	return append(size[:], rest...)
}

func kafkaStats(t *testing.T, w *Writer) Stats {
	st, err := w.Stats()
	require.NoError(t, err)
	return st
}

func TestKafkaRecordsGetTraceparent(t *testing.T) {
	w := startWriter(t)
	client, server := kafkaPipe(t, w)
	topic := "orders"
	long := bytes.Repeat([]byte("v"), 300) // a record length varint of 2 bytes either way
	p := kProduce{version: 8, topic: topic, magic: 2, records: []kRecord{
		{key: []byte("1"), value: []byte("order 1"), headers: [][2]string{{"tag", "one"}}},
		{key: nil, value: []byte("unlisted")},
		{key: []byte("2"), value: []byte("order 2")},
		{key: []byte("3"), value: long},
		{key: []byte("4"), value: []byte("order 4"), headers: [][2]string{{"traceparent", "00-" + "11111111111111111111111111111111-2222222222222222-01"}}},
		{}, // null key and value, no headers: the smallest record (6 bytes)
	}}
	listMessage(t, w, topic, []byte("1"), []byte("order 1"), 1)
	listMessage(t, w, topic, []byte("2"), []byte("order 2"), 2)
	listMessage(t, w, topic, []byte("3"), long, 3)
	listMessage(t, w, topic, []byte("4"), []byte("order 4"), 4)
	listMessage(t, w, "other", []byte("x"), []byte("unlisted"), 5) // another topic: no match

	got := decodeProduce(t, roundTrip(t, client, server, p.encode()))
	require.Len(t, got, 6)
	want := p.records
	want[0].headers = append(want[0].headers, [2]string{"traceparent", spanTraceparent(1)})
	want[2].headers = append(want[2].headers, [2]string{"traceparent", spanTraceparent(2)})
	want[3].headers = append(want[3].headers, [2]string{"traceparent", spanTraceparent(3)})
	assert.Equal(t, want, got)
	st := kafkaStats(t, w)
	assert.Equal(t, uint64(3), st.KafkaWritten)
	assert.Equal(t, uint64(1), st.KafkaAppSet)
	assert.Equal(t, uint64(2), st.KafkaUnmatched)
	assert.Equal(t, uint64(1), st.KafkaRequests)

	// 31 headers: the count becomes 32, still a 1-byte varint.
	listMessage(t, w, topic, []byte("H"), []byte("headers"), 7)
	p = kProduce{version: 8, topic: topic, magic: 2, records: []kRecord{{key: []byte("H"), value: []byte("headers"), headers: manyHeaders(31)}}}
	got = decodeProduce(t, roundTrip(t, client, server, p.encode()))
	assert.Equal(t, []kRecord{{key: []byte("H"), value: []byte("headers"), headers: append(manyHeaders(31), [2]string{"traceparent", spanTraceparent(7)})}}, got)

	// A request of several pages, rebuilt whole.
	large := bytes.Repeat([]byte("0123456789"), 2500)
	listMessage(t, w, topic, []byte("L"), large, 6)
	p = kProduce{version: 3, topic: topic, magic: 2, records: []kRecord{{key: []byte("L"), value: large}}}
	got = decodeProduce(t, roundTrip(t, client, server, p.encode()))
	assert.Equal(t, []kRecord{{key: []byte("L"), value: large, headers: [][2]string{{"traceparent", spanTraceparent(6)}}}}, got)
}

func manyHeaders(n int) [][2]string {
	var hs [][2]string
	for i := range n {
		hs = append(hs, [2]string{fmt.Sprintf("h%d", i), "v"})
	}
	return hs
}

// Requests the writer does not rebuild arrive byte for byte as written,
// and are counted.
func TestKafkaRequestsLeftAlone(t *testing.T) {
	w := startWriter(t)
	client, server := kafkaPipe(t, w)
	topic := "orders"
	listMessage(t, w, topic, []byte("1"), []byte("order 1"), 1)
	one := []kRecord{{key: []byte("1"), value: []byte("order 1")}}
	big := []kRecord{{key: []byte("1"), value: bytes.Repeat([]byte("x"), 40000)}}
	listMessage(t, w, topic, big[0].key, big[0].value, 2)
	// Fits in the writer's 32 KiB buffer as written, not with the header added.
	full := []kRecord{{key: []byte("5"), value: bytes.Repeat([]byte("y"), 32700)}}
	listMessage(t, w, topic, full[0].key, full[0].value, 3)

	for _, tc := range []struct {
		name  string
		p     kProduce
		split bool
		count func(Stats) uint64 // nil: not a Produce request the writer knows, nothing counted
	}{
		{"gzip", kProduce{version: 8, topic: topic, magic: 2, attributes: 1, records: one}, false, func(s Stats) uint64 { return s.KafkaUnsupported }},
		{"magic 1", kProduce{version: 8, topic: topic, magic: 1, records: one}, false, func(s Stats) uint64 { return s.KafkaUnsupported }},
		{"over 32 KiB", kProduce{version: 8, topic: topic, magic: 2, records: big}, false, func(s Stats) uint64 { return s.KafkaTooLarge }},
		{"over 32 KiB with the header", kProduce{version: 8, topic: topic, magic: 2, records: full}, false, func(s Stats) uint64 { return s.KafkaTooLarge }},
		{"32 headers", kProduce{version: 8, topic: topic, magic: 2, records: []kRecord{{key: []byte("1"), value: []byte("order 1"), headers: manyHeaders(32)}}}, false, func(s Stats) uint64 { return s.KafkaUnsupported }},
		{"split", kProduce{version: 8, topic: topic, magic: 2, records: one}, true, func(s Stats) uint64 { return s.KafkaTooLarge }},
		{"flexible v9", kProduce{version: 9, topic: topic, magic: 2, records: one}, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := kafkaStats(t, w)
			req := tc.p.encode()
			pieces := [][]byte{req}
			if tc.split {
				pieces = [][]byte{req[:40], req[40:]}
			}
			got := roundTrip(t, client, server, pieces...)
			assert.Equal(t, req, got, "bytes changed")
			after := kafkaStats(t, w)
			assert.Equal(t, before.KafkaWritten, after.KafkaWritten)
			if tc.count == nil {
				assert.Equal(t, before.NotWritten(), after.NotWritten(), "counted")
			} else {
				assert.Equal(t, uint64(1), tc.count(after)-tc.count(before), "counted")
			}
		})
	}

	// Another task holds this CPU's buffer (it was preempted while
	// rebuilding a request): the request goes out as written.
	setBusy := func(v uint32) {
		cpus, err := ebpf.PossibleCPU()
		require.NoError(t, err)
		for cpu := range cpus {
			var kb writerKafkaBuf
			require.NoError(t, w.objs.KafkaBufs.Lookup(uint32(cpu), &kb))
			kb.Busy = v
			require.NoError(t, w.objs.KafkaBufs.Put(uint32(cpu), &kb))
		}
	}
	setBusy(1)
	busyBefore := kafkaStats(t, w)
	busyReq := kProduce{version: 8, topic: topic, magic: 2, records: one}.encode()
	assert.Equal(t, busyReq, roundTrip(t, client, server, busyReq), "bytes changed")
	busyAfter := kafkaStats(t, w)
	assert.Equal(t, busyBefore.KafkaWriteFailed+1, busyAfter.KafkaWriteFailed, "counted")
	assert.Equal(t, busyBefore.KafkaWritten, busyAfter.KafkaWritten)
	setBusy(0)

	// A process the kafka-go probe never saw produce: its writes are not
	// looked at as Kafka requests at all.
	require.NoError(t, w.objs.KafkaProducers.Delete(uint32(os.Getpid())))
	before := kafkaStats(t, w)
	req := kProduce{version: 8, topic: topic, magic: 2, records: one}.encode()
	assert.Equal(t, req, roundTrip(t, client, server, req))
	assert.Equal(t, before, kafkaStats(t, w))
}
