//go:build linux && (amd64 || arm64)

package server

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/tracer/instrumentation/nethttp/httpconv"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
)

// record encodes r as the BPF programs submit it.
func record(t *testing.T, r serverHttpEvent) []byte {
	t.Helper()
	b, err := binary.Append(nil, binary.NativeEndian, &r)
	require.NoError(t, err)
	return b
}

func put(dst []uint8, s string) uint8 {
	return uint8(copy(dst, s))
}

func putLong(dst []uint8, s string) uint16 {
	return uint16(copy(dst, s))
}

func TestDecodeRecordReadsEveryField(t *testing.T) {
	r := serverHttpEvent{
		Kind: 1, ProtoMajor: 1, ProtoMinor: 1, Status: 404, Flags: 1, BodySize: 10 << 20,
		StartNs: 1_000_000_000, EndNs: 1_000_250_000,
		TraceId:      [16]uint8{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanId:       [8]uint8{1, 1, 1, 1, 1, 1, 1, 1},
		ParentSpanId: [8]uint8{2, 2, 2, 2, 2, 2, 2, 2},
	}
	r.MethodLen = put(r.Method[:], "POST")
	r.HostLen = put(r.Host[:], "example.com:8080")
	r.SchemeLen = put(r.Scheme[:], "https")
	r.PathLen = putLong(r.Path[:], "/items/7")
	r.QueryLen = putLong(r.Query[:], "a=b")
	r.RouteLen = put(r.Route[:], "POST /items/{id}")
	r.RemoteAddrLen = put(r.RemoteAddr[:], "10.0.0.1:5555")
	r.TracestateLen = put(r.Tracestate[:], "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
	r.UserAgentLen = put(r.UserAgent[:], "curl/8.5.0")
	r.Cut = 4
	copy(r.Path[r.PathLen:], "left over from an earlier record")

	ev, err := DecodeRecord(record(t, r), trace.SpanKindServer)
	require.NoError(t, err)
	assert.Equal(t, httpconv.HTTPEvent{
		Kind:         trace.SpanKindServer,
		Start:        uprobe.WallTime(1_000_000_000),
		End:          uprobe.WallTime(1_000_250_000),
		TraceID:      trace.TraceID(r.TraceId),
		SpanID:       trace.SpanID(r.SpanId),
		ParentSpanID: trace.SpanID(r.ParentSpanId),
		Method:       "POST",
		Scheme:       "https",
		Host:         "example.com:8080",
		Path:         "/items/7",
		Query:        "a=b",
		Route:        "POST /items/{id}",
		RemoteAddr:   "10.0.0.1:5555",
		TraceState:   "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
		ProtoMajor:   1,
		ProtoMinor:   1,
		StatusCode:   404,
		BodySize:     10 << 20,
		UserAgent:    "curl/8.5.0",
		UserAgentCut: true,
	}, ev)
}

// A request whose caller did not sample its trace (trace-flags 00, or the
// sampler's decision) decodes as unsampled: its span is not exported.
func TestDecodeRecordReadsTheSampledFlag(t *testing.T) {
	for flags, unsampled := range map[uint8]bool{0: true, 1: false, 2: true, 3: false} {
		ev, err := DecodeRecord(record(t, serverHttpEvent{Kind: 1, Flags: flags}), trace.SpanKindServer)
		require.NoError(t, err)
		assert.Equal(t, unsampled, ev.Unsampled, "flags %02x", flags)
	}
}

// A record's outcome (OUTCOME_* of bpf/nethttp.h) decodes as Panicked or
// Hijacked.
func TestDecodeRecordReadsTheOutcome(t *testing.T) {
	for outcome, want := range map[uint8][2]bool{0: {false, false}, 1: {true, false}, 2: {false, true}} {
		ev, err := DecodeRecord(record(t, serverHttpEvent{Kind: 1, Outcome: outcome}), trace.SpanKindServer)
		require.NoError(t, err)
		assert.Equal(t, want, [2]bool{ev.Panicked, ev.Hijacked}, "outcome %d", outcome)
	}
}

// Path and query are 1 KiB with 16-bit lengths; a value cut by the BPF
// programs decodes cut and marked so.
func TestDecodeRecordReadsLongPathAndQuery(t *testing.T) {
	long := strings.Repeat("/segment", 128) // 1024 bytes
	r := serverHttpEvent{Kind: 1, Cut: 2}
	r.PathLen = putLong(r.Path[:], long)
	r.QueryLen = putLong(r.Query[:], "q="+strings.Repeat("x", 1100))
	ev, err := DecodeRecord(record(t, r), trace.SpanKindServer)
	require.NoError(t, err)
	assert.Equal(t, long, ev.Path)
	assert.Len(t, ev.Query, 1024)
	assert.False(t, ev.PathCut)
	assert.True(t, ev.QueryCut)

	r.PathLen, r.QueryLen, r.Cut = 65535, 0, 3
	ev, err = DecodeRecord(record(t, r), trace.SpanKindServer)
	require.NoError(t, err)
	assert.Equal(t, long, ev.Path, "a length beyond the buffer")
	assert.True(t, ev.PathCut && ev.QueryCut)
}

func TestDecodeRecordToleratesLengthsBeyondBuffers(t *testing.T) {
	r := serverHttpEvent{Kind: 1, MethodLen: 255}
	copy(r.Method[:], "GETGETGETGETGETG")
	ev, err := DecodeRecord(record(t, r), trace.SpanKindServer)
	require.NoError(t, err)
	assert.Equal(t, "GETGETGETGETGETG", ev.Method)
}

func TestDecodeRecordRejectsShortRecord(t *testing.T) {
	_, err := DecodeRecord([]byte{1, 1, 1}, trace.SpanKindServer)
	assert.ErrorContains(t, err, "record of 3 bytes")
}

// panicRecord encodes a struct panic_event (server.c): the span's event,
// then what server_panic read of the panic.
func panicRecord(t *testing.T, ev serverHttpEvent, x serverHttpException) []byte {
	t.Helper()
	var e serverPanicScratchEntry
	e.Rec.Ev, e.Rec.Exc = ev, x
	b, err := binary.Append(nil, binary.NativeEndian, &e.Rec)
	require.NoError(t, err)
	require.Len(t, b, panicRecordSize)
	return b
}

// A panicked span's record carries the stack trace, cut at its buffer and
// marked so; with no type word, or a process whose binary cannot be read,
// there is no type, and then no message: only a type says the value is a
// string. A span record without the panic part, or not panicked, has no
// exception.
func TestDecodeRecordReadsThePanic(t *testing.T) {
	x := serverHttpException{StackLen: 5000, StackCopied: 4096, ValueLen: 4, ValueCopied: 4}
	stack := "goroutine 1 [running]:\n" + strings.Repeat("f()\n", 1100)
	copy(x.Stack[:], stack)
	copy(x.Value[:], "boom")
	for _, typ := range []uint64{0, 0x4a0000} {
		x.Type = typ
		ev, err := DecodeRecord(panicRecord(t, serverHttpEvent{Kind: 1, Outcome: 1, Pid: 0}, x), trace.SpanKindServer)
		require.NoError(t, err)
		require.NotNil(t, ev.Exception)
		assert.Equal(t, httpconv.Exception{Stacktrace: stack[:4096], StacktraceCut: true}, *ev.Exception, "type word %#x", typ)
	}

	x.StackLen, x.StackCopied = 30, 65535 // a length beyond the buffer
	ev, err := DecodeRecord(panicRecord(t, serverHttpEvent{Kind: 1, Outcome: 1}, x), trace.SpanKindServer)
	require.NoError(t, err)
	assert.Len(t, ev.Exception.Stacktrace, 4096)

	ev, err = DecodeRecord(panicRecord(t, serverHttpEvent{Kind: 1}, x), trace.SpanKindServer)
	require.NoError(t, err)
	assert.Nil(t, ev.Exception, "not panicked")
	ev, err = DecodeRecord(record(t, serverHttpEvent{Kind: 1, Outcome: 1}), trace.SpanKindServer)
	require.NoError(t, err)
	assert.Nil(t, ev.Exception, "a panic not logged (http.ErrAbortHandler over HTTP/2)")
}
