//go:build linux && (amd64 || arm64)

package server

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"github.com/cilium/ebpf"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/tracer/instrumentation/nethttp/httpconv"
	"github.com/offsetdb/offsetdb/tracer/spans"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
)

// spec returns the BPF objects of server.c, embedded by bpf2go.
func spec() (*ebpf.CollectionSpec, error) {
	return loadServer()
}

// decode is the instrumentation's uprobe.Instrumentation.Decode.
func decode(record []byte, out *spans.Span) error {
	ev, err := DecodeRecord(record, trace.SpanKindServer)
	if err != nil {
		return err
	}
	return httpconv.Describe(&ev, out)
}

// RecordPIDAt is where struct http_event holds the thread group id of the process that
// submitted it (uprobe.Instrumentation.PIDAt).
var RecordPIDAt = int(unsafe.Offsetof(serverHttpEvent{}.Pid))

// recordSize is the size of struct http_event.
var recordSize = int(unsafe.Sizeof(serverHttpEvent{}))

// Where each field of struct http_event sits in a record, taken from the
// bpf2go type (which mirrors the C struct with the host's layout) rather
// than typed by hand, so a change to the C struct cannot silently shift
// them. Reading at fixed offsets avoids binary.Decode's reflection, about
// two thirds of the per-event cost.
var (
	offProtoMajor = unsafe.Offsetof(serverHttpEvent{}.ProtoMajor)
	offProtoMinor = unsafe.Offsetof(serverHttpEvent{}.ProtoMinor)
	offStatus     = unsafe.Offsetof(serverHttpEvent{}.Status)
	offStartNs    = unsafe.Offsetof(serverHttpEvent{}.StartNs)
	offEndNs      = unsafe.Offsetof(serverHttpEvent{}.EndNs)
	offTraceID    = unsafe.Offsetof(serverHttpEvent{}.TraceId)
	offSpanID     = unsafe.Offsetof(serverHttpEvent{}.SpanId)
	offParentID   = unsafe.Offsetof(serverHttpEvent{}.ParentSpanId)
	offFlags      = unsafe.Offsetof(serverHttpEvent{}.Flags)
	offOutcome    = unsafe.Offsetof(serverHttpEvent{}.Outcome)
	offCut        = unsafe.Offsetof(serverHttpEvent{}.Cut)
	offBodySize   = unsafe.Offsetof(serverHttpEvent{}.BodySize)
	// Each string: where its length is (one byte; two for path and
	// query), where its buffer starts, and the buffer's size.
	strMethod     = recordString(unsafe.Offsetof(serverHttpEvent{}.MethodLen), unsafe.Offsetof(serverHttpEvent{}.Method), len(serverHttpEvent{}.Method))
	strScheme     = recordString(unsafe.Offsetof(serverHttpEvent{}.SchemeLen), unsafe.Offsetof(serverHttpEvent{}.Scheme), len(serverHttpEvent{}.Scheme))
	strHost       = recordString(unsafe.Offsetof(serverHttpEvent{}.HostLen), unsafe.Offsetof(serverHttpEvent{}.Host), len(serverHttpEvent{}.Host))
	strPath       = recordLongString(unsafe.Offsetof(serverHttpEvent{}.PathLen), unsafe.Offsetof(serverHttpEvent{}.Path), len(serverHttpEvent{}.Path))
	strQuery      = recordLongString(unsafe.Offsetof(serverHttpEvent{}.QueryLen), unsafe.Offsetof(serverHttpEvent{}.Query), len(serverHttpEvent{}.Query))
	strRoute      = recordString(unsafe.Offsetof(serverHttpEvent{}.RouteLen), unsafe.Offsetof(serverHttpEvent{}.Route), len(serverHttpEvent{}.Route))
	strRemoteAddr = recordString(unsafe.Offsetof(serverHttpEvent{}.RemoteAddrLen), unsafe.Offsetof(serverHttpEvent{}.RemoteAddr), len(serverHttpEvent{}.RemoteAddr))
	strTraceState = recordString(unsafe.Offsetof(serverHttpEvent{}.TracestateLen), unsafe.Offsetof(serverHttpEvent{}.Tracestate), len(serverHttpEvent{}.Tracestate))
	strUserAgent  = recordString(unsafe.Offsetof(serverHttpEvent{}.UserAgentLen), unsafe.Offsetof(serverHttpEvent{}.UserAgent), len(serverHttpEvent{}.UserAgent))
)

// The OUTCOME_ values of bpf/nethttp.h that decode into an HTTPEvent.
const (
	outcomePanic    = 1 // the handler panicked
	outcomeHijacked = 2 // the handler hijacked the connection
)

// The CUT_ bits of bpf/nethttp.h: which values were longer than their buffer.
const (
	cutPath      = 1
	cutQuery     = 2
	cutUserAgent = 4
)

// stringField locates one length-prefixed string buffer of a record.
type stringField struct {
	lenAt, at, size int
	wide            bool // a __u16 length, else a __u8
}

func recordString(lenAt, at uintptr, size int) stringField {
	return stringField{int(lenAt), int(at), size, false}
}

func recordLongString(lenAt, at uintptr, size int) stringField {
	return stringField{int(lenAt), int(at), size, true}
}

// read returns the valid bytes of the buffer as a string; the rest of a
// buffer is left over from earlier records.
func (f stringField) read(record []byte) string {
	n := int(record[f.lenAt])
	if f.wide {
		n = int(binary.NativeEndian.Uint16(record[f.lenAt:]))
	}
	n = min(n, f.size)
	return string(record[f.at : f.at+n])
}

// DecodeRecord decodes a struct http_event record (bpf/nethttp.h), the
// format the net/http server and client BPF objects share, as a request of
// the given kind. Strings cut by the fixed-size buffers of the record stay
// cut; for the path, query and user agent, PathCut, QueryCut and
// UserAgentCut say so.
func DecodeRecord(record []byte, kind trace.SpanKind) (httpconv.HTTPEvent, error) {
	if len(record) < recordSize {
		return httpconv.HTTPEvent{}, fmt.Errorf("record of %d bytes, want %d", len(record), recordSize)
	}
	ne := binary.NativeEndian
	ev := httpconv.HTTPEvent{
		Kind:         kind,
		Start:        uprobe.WallTime(ne.Uint64(record[offStartNs:])),
		End:          uprobe.WallTime(ne.Uint64(record[offEndNs:])),
		Method:       strMethod.read(record),
		Scheme:       strScheme.read(record),
		Host:         strHost.read(record),
		Path:         strPath.read(record),
		Query:        strQuery.read(record),
		Route:        strRoute.read(record),
		RemoteAddr:   strRemoteAddr.read(record),
		ProtoMajor:   int(record[offProtoMajor]),
		ProtoMinor:   int(record[offProtoMinor]),
		StatusCode:   int(ne.Uint16(record[offStatus:])),
		Unsampled:    record[offFlags]&1 == 0,
		TraceState:   strTraceState.read(record),
		Panicked:     record[offOutcome] == outcomePanic,
		Hijacked:     record[offOutcome] == outcomeHijacked,
		PathCut:      record[offCut]&cutPath != 0,
		QueryCut:     record[offCut]&cutQuery != 0,
		BodySize:     int64(ne.Uint64(record[offBodySize:])),
		UserAgent:    strUserAgent.read(record),
		UserAgentCut: record[offCut]&cutUserAgent != 0,
	}
	copy(ev.TraceID[:], record[offTraceID:])
	copy(ev.SpanID[:], record[offSpanID:])
	copy(ev.ParentSpanID[:], record[offParentID:])
	if ev.Panicked && len(record) >= panicRecordSize {
		ev.Exception = decodeException(record[offException:], ne.Uint32(record[offPid:]))
	}
	return ev, nil
}

// A panicked span's record is a struct panic_event (server.c): the
// struct http_event, then a struct http_exception.
var (
	offPid          = unsafe.Offsetof(serverHttpEvent{}.Pid)
	offException    = unsafe.Offsetof(serverPanicScratchEntry{}.Rec.Exc)
	panicRecordSize = int(unsafe.Sizeof(serverPanicScratchEntry{}.Rec))

	offExcType        = unsafe.Offsetof(serverHttpException{}.Type)
	offExcData        = unsafe.Offsetof(serverHttpException{}.Data)
	offExcValuePtr    = unsafe.Offsetof(serverHttpException{}.ValuePtr)
	offExcProbeIP     = unsafe.Offsetof(serverHttpException{}.ProbeIp)
	offExcValueLen    = unsafe.Offsetof(serverHttpException{}.ValueLen)
	offExcStackLen    = unsafe.Offsetof(serverHttpException{}.StackLen)
	offExcValueCopied = unsafe.Offsetof(serverHttpException{}.ValueCopied)
	offExcStackCopied = unsafe.Offsetof(serverHttpException{}.StackCopied)
	offExcValue       = unsafe.Offsetof(serverHttpException{}.Value)
	offExcStack       = unsafe.Offsetof(serverHttpException{}.Stack)
	excValueSize      = len(serverHttpException{}.Value)
	excStackSize      = len(serverHttpException{}.Stack)
)

// decodeException decodes the struct http_exception at the start of rec,
// read in process pid: the stack trace as copied, the panic value's type
// named from the binary's symbols (typeNames), and the value as a
// message when that type is a string type. A string whose bytes the BPF
// program could not read (a page of the binary's read-only data the
// process had not touched) is read from the process, if it still runs
// (typeNames.staticString).
func decodeException(rec []byte, pid uint32) *httpconv.Exception {
	ne := binary.NativeEndian
	x := &httpconv.Exception{}
	stackLen := int64(ne.Uint64(rec[offExcStackLen:]))
	n := min(int(ne.Uint16(rec[offExcStackCopied:])), excStackSize)
	x.Stacktrace = string(rec[offExcStack : offExcStack+uintptr(n)])
	x.StacktraceCut = int64(n) < stackLen
	typ := ne.Uint64(rec[offExcType:])
	if typ == 0 {
		return x
	}
	tb, _ := typeNames.binary(pid) // nil when the process is gone
	x.Type = typeNames.name(tb, pid, ne.Uint64(rec[offExcProbeIP:]), typ)
	if stringTypes[x.Type] {
		valueLen := int64(ne.Uint64(rec[offExcValueLen:]))
		n := min(int(ne.Uint16(rec[offExcValueCopied:])), excValueSize)
		value := rec[offExcValue : offExcValue+uintptr(n)]
		if n == 0 {
			value, valueLen = typeNames.staticString(tb, pid, ne.Uint64(rec[offExcData:]), ne.Uint64(rec[offExcValuePtr:]), valueLen, excValueSize)
		}
		x.Message = string(value)
		x.MessageCut = int64(len(value)) < valueLen
	}
	return x
}
