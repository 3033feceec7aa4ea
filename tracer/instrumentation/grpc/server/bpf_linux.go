//go:build linux && (amd64 || arm64)

package server

import (
	"encoding/binary"
	"fmt"
	"net"
	"unsafe"

	"github.com/cilium/ebpf"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/tracer/instrumentation/grpc/grpcconv"
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
	return grpcconv.Describe(&ev, out)
}

// The values of grpc_event.status_state (bpf/grpc.h).
const (
	statusSet   = 1
	statusError = 2
)

// RecordPIDAt is where struct grpc_event holds the thread group id of the process that
// submitted it (uprobe.Instrumentation.PIDAt).
var RecordPIDAt = int(unsafe.Offsetof(serverGrpcEvent{}.Pid))

// recordSize is the size of struct grpc_event.
var recordSize = int(unsafe.Sizeof(serverGrpcEvent{}))

// Where each field of struct grpc_event sits in a record, from the bpf2go
// type (which mirrors the C struct), so a change to the C struct cannot
// silently shift them.
var (
	offStatusState  = unsafe.Offsetof(serverGrpcEvent{}.StatusState)
	offMethodLen    = unsafe.Offsetof(serverGrpcEvent{}.MethodLen)
	offTargetLen    = unsafe.Offsetof(serverGrpcEvent{}.TargetLen)
	offFlags        = unsafe.Offsetof(serverGrpcEvent{}.Flags)
	offRemoteParent = unsafe.Offsetof(serverGrpcEvent{}.RemoteParent)
	offStreaming    = unsafe.Offsetof(serverGrpcEvent{}.Streaming)
	offStatus       = unsafe.Offsetof(serverGrpcEvent{}.Status)
	offStartNs      = unsafe.Offsetof(serverGrpcEvent{}.StartNs)
	offEndNs        = unsafe.Offsetof(serverGrpcEvent{}.EndNs)
	offTraceID      = unsafe.Offsetof(serverGrpcEvent{}.TraceId)
	offSpanID       = unsafe.Offsetof(serverGrpcEvent{}.SpanId)
	offParentID     = unsafe.Offsetof(serverGrpcEvent{}.ParentSpanId)
	offMethod       = unsafe.Offsetof(serverGrpcEvent{}.Method)
	offPeerIPLen    = unsafe.Offsetof(serverGrpcEvent{}.PeerIpLen)
	offPeerPort     = unsafe.Offsetof(serverGrpcEvent{}.PeerPort)
	offPeerIP       = unsafe.Offsetof(serverGrpcEvent{}.PeerIp)
	offTarget       = unsafe.Offsetof(serverGrpcEvent{}.Target)
	methodSize      = len(serverGrpcEvent{}.Method)
	targetSize      = len(serverGrpcEvent{}.Target)
)

// DecodeRecord decodes a struct grpc_event record (bpf/grpc.h), the format
// the gRPC server and client BPF objects share, as an RPC of the given
// kind. Strings cut by the fixed-size buffers of the record stay cut.
func DecodeRecord(record []byte, kind trace.SpanKind) (grpcconv.Event, error) {
	if len(record) < recordSize {
		return grpcconv.Event{}, fmt.Errorf("record of %d bytes, want %d", len(record), recordSize)
	}
	ne := binary.NativeEndian
	str := func(lenAt, at uintptr, size int) string {
		n := min(int(record[lenAt]), size)
		return string(record[at : int(at)+n])
	}
	state := record[offStatusState]
	ev := grpcconv.Event{
		Kind:         kind,
		Start:        uprobe.WallTime(ne.Uint64(record[offStartNs:])),
		End:          uprobe.WallTime(ne.Uint64(record[offEndNs:])),
		RemoteParent: record[offRemoteParent] != 0,
		Unsampled:    record[offFlags]&1 == 0,
		Method:       str(offMethodLen, offMethod, methodSize),
		Target:       str(offTargetLen, offTarget, targetSize),
		Streaming:    record[offStreaming] != 0,
		HasStatus:    state == statusSet,
		Code:         ne.Uint32(record[offStatus:]),
		Failed:       state == statusError,
	}
	if !ev.HasStatus {
		ev.Code = 0
	}
	if n := int(record[offPeerIPLen]); n == net.IPv4len || n == net.IPv6len {
		ev.PeerAddress = net.IP(record[offPeerIP : int(offPeerIP)+n]).String()
		ev.PeerPort = int(ne.Uint16(record[offPeerPort:]))
	}
	copy(ev.TraceID[:], record[offTraceID:])
	copy(ev.SpanID[:], record[offSpanID:])
	copy(ev.ParentSpanID[:], record[offParentID:])
	return ev, nil
}
