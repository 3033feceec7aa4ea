//go:build linux && (amd64 || arm64)

package databasesql

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/offsetdb/offsetdb/tracer/instrumentation/databasesql/dbconv"
	"github.com/offsetdb/offsetdb/tracer/spans"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
)

// spec returns the BPF objects of databasesql.c, embedded by bpf2go.
func spec() (*ebpf.CollectionSpec, error) {
	return loadDatabasesql()
}

// decode is the instrumentation's uprobe.Instrumentation.Decode.
func decode(record []byte, out *spans.Span) error {
	ev, err := DecodeRecord(record)
	if err != nil {
		return err
	}
	dbconv.Describe(&ev, out)
	return nil
}

// The values of db_event.failed (bpf/db.h).
const (
	failed   = 1
	notFound = 2
)

// The values of db_event.status_kind (bpf/db.h DB_STATUS_*).
const (
	statusSQLState = 1
	statusNumber   = 2
)

// The bits of db_event.cut (bpf/db.h DB_CUT_*).
const cutQuery = 1

// RecordPIDAt is where struct db_event holds the thread group id of the process that
// submitted it (uprobe.Instrumentation.PIDAt).
var RecordPIDAt = int(unsafe.Offsetof(databasesqlDbEvent{}.Pid))

// recordSize is the size of struct db_event.
var recordSize = int(unsafe.Sizeof(databasesqlDbEvent{}))

// Where each field of struct db_event sits in a record, from the bpf2go
// type (which mirrors the C struct), so a change to the C struct cannot
// silently shift them.
var (
	offOp        = unsafe.Offsetof(databasesqlDbEvent{}.Op)
	offFailed    = unsafe.Offsetof(databasesqlDbEvent{}.Failed)
	offFlags     = unsafe.Offsetof(databasesqlDbEvent{}.Flags)
	offQueryLen  = unsafe.Offsetof(databasesqlDbEvent{}.QueryLen)
	offSystemLen = unsafe.Offsetof(databasesqlDbEvent{}.SystemLen)
	offAddrLen   = unsafe.Offsetof(databasesqlDbEvent{}.AddrLen)
	offNcmds     = unsafe.Offsetof(databasesqlDbEvent{}.Ncmds)
	offDBIndex   = unsafe.Offsetof(databasesqlDbEvent{}.DbIndex)
	offStartNs   = unsafe.Offsetof(databasesqlDbEvent{}.StartNs)
	offEndNs     = unsafe.Offsetof(databasesqlDbEvent{}.EndNs)
	offTraceID   = unsafe.Offsetof(databasesqlDbEvent{}.TraceId)
	offSpanID    = unsafe.Offsetof(databasesqlDbEvent{}.SpanId)
	offParentID  = unsafe.Offsetof(databasesqlDbEvent{}.ParentSpanId)
	offCmdLen    = unsafe.Offsetof(databasesqlDbEvent{}.CmdLen)
	offCmdArgc   = unsafe.Offsetof(databasesqlDbEvent{}.CmdArgc)
	offCmds      = unsafe.Offsetof(databasesqlDbEvent{}.Cmds)
	offSystem    = unsafe.Offsetof(databasesqlDbEvent{}.System)
	offAddr      = unsafe.Offsetof(databasesqlDbEvent{}.Addr)
	offQuery     = unsafe.Offsetof(databasesqlDbEvent{}.Query)
	offPort      = unsafe.Offsetof(databasesqlDbEvent{}.Port)
	offNsLen     = unsafe.Offsetof(databasesqlDbEvent{}.NamespaceLen)
	offCut       = unsafe.Offsetof(databasesqlDbEvent{}.Cut)
	offNamespace = unsafe.Offsetof(databasesqlDbEvent{}.Namespace)
	offStatKind  = unsafe.Offsetof(databasesqlDbEvent{}.StatusKind)
	offStatus    = unsafe.Offsetof(databasesqlDbEvent{}.Status)
	offSameText  = unsafe.Offsetof(databasesqlDbEvent{}.SameText)
	nsSize       = len(databasesqlDbEvent{}.Namespace)
	maxCmds      = len(databasesqlDbEvent{}.Cmds)
	cmdSize      = len(databasesqlDbEvent{}.Cmds[0])
	systemSize   = len(databasesqlDbEvent{}.System)
	addrSize     = len(databasesqlDbEvent{}.Addr)
	querySize    = len(databasesqlDbEvent{}.Query)
)

// DecodeRecord decodes a struct db_event record (bpf/db.h), the format the
// database/sql, go-redis and pgx BPF objects share. Strings cut by the
// fixed-size buffers of the record stay cut; a query text cut so says
// (QueryCut).
func DecodeRecord(record []byte) (dbconv.Event, error) {
	if len(record) < recordSize {
		return dbconv.Event{}, fmt.Errorf("record of %d bytes, want %d", len(record), recordSize)
	}
	ne := binary.NativeEndian
	str := func(n int, at uintptr, size int) string {
		n = min(n, size)
		return string(record[at : int(at)+n])
	}
	ev := dbconv.Event{
		Op:          dbconv.Op(record[offOp]),
		Start:       uprobe.WallTime(ne.Uint64(record[offStartNs:])),
		End:         uprobe.WallTime(ne.Uint64(record[offEndNs:])),
		Unsampled:   record[offFlags]&1 == 0,
		Failed:      record[offFailed] == failed,
		NotFound:    record[offFailed] == notFound,
		Driver:      str(int(record[offSystemLen]), offSystem, systemSize),
		Addr:        str(int(record[offAddrLen]), offAddr, addrSize),
		Query:       str(int(record[offQueryLen]), offQuery, querySize),
		QueryCut:    record[offCut]&cutQuery != 0,
		NumCommands: int(record[offNcmds]),
		DBIndex:     int(int32(ne.Uint32(record[offDBIndex:]))),
		Port:        int(ne.Uint16(record[offPort:])),
		Namespace:   str(int(record[offNsLen]), offNamespace, nsSize),
		SameText:    record[offSameText] != 0,
	}
	switch record[offStatKind] {
	case statusSQLState:
		ev.Status = string(record[offStatus : offStatus+5])
	case statusNumber:
		ev.Status = strconv.Itoa(int(ne.Uint16(record[offStatus:])))
	}
	for i := range min(ev.NumCommands, maxCmds) {
		c := dbconv.Command{
			Name: str(int(record[offCmdLen+uintptr(i)]), offCmds+uintptr(i*cmdSize), cmdSize),
			Args: int(record[offCmdArgc+uintptr(i)]) - 1,
		}
		if record[offCmdArgc+uintptr(i)] == 255 {
			c.Args = -1
		}
		ev.Commands = append(ev.Commands, c)
	}
	copy(ev.TraceID[:], record[offTraceID:])
	copy(ev.SpanID[:], record[offSpanID:])
	copy(ev.ParentSpanID[:], record[offParentID:])
	return ev, nil
}
