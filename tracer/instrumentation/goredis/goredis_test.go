//go:build linux && (amd64 || arm64)

package goredis

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/tracer/spans"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

type cmd struct {
	name string
	argc uint8 // the name included; 255: more than 254
}

// The record is goredis' generated type, decoded through package
// databasesql: the test also checks that both objects share one layout.
func record(t *testing.T, op, failed uint8, addr string, db int32, total uint8, cmds ...cmd) []byte {
	r := goredisDbEvent{Kind: 7, Op: op, Failed: failed, Flags: 1, DbIndex: db, Ncmds: total,
		TraceId: [16]uint8{1}, SpanId: [8]uint8{2}, ParentSpanId: [8]uint8{3}}
	r.AddrLen = uint8(copy(r.Addr[:], addr))
	for i, c := range cmds {
		r.CmdLen[i] = uint8(copy(r.Cmds[i][:], c.name))
		r.CmdArgc[i] = c.argc
	}
	b, err := binary.Append(nil, binary.NativeEndian, &r)
	require.NoError(t, err)
	return b
}

func TestInstrumentationDecodesRedisRecords(t *testing.T) {
	want := func(name string) spans.Span {
		return spans.Span{Name: name, Kind: trace.SpanKindClient, TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, ParentSpanID: trace.SpanID{3}}
	}
	uprobetest.CheckInstrumentation(t, Instrumentation(), []uprobetest.DecodeCase{
		{
			Name:   "a command: its name and a ? per argument",
			Record: record(t, 7, 0, "127.0.0.1:6379", 0, 1, cmd{"set", 5}),
			Want:   want("SET"),
			WantAttrs: map[string]any{"db.system.name": "redis", "db.operation.name": "SET", "db.query.text": "SET ? ? ? ?",
				"db.namespace": "0", "server.address": "127.0.0.1", "server.port": int64(6379)},
		},
		{
			Name:   "redis.Nil is not a failure",
			Record: record(t, 7, 2, "cache:6380", 3, 1, cmd{"get", 2}),
			Want:   want("GET"),
			WantAttrs: map[string]any{"db.system.name": "redis", "db.operation.name": "GET", "db.query.text": "GET ?",
				"db.namespace": "3", "server.address": "cache", "server.port": int64(6380)},
		},
		{
			Name:   "a failed command",
			Record: record(t, 7, 1, "127.0.0.1:6379", 0, 1, cmd{"incr", 2}),
			Want:   want("INCR"),
			WantAttrs: map[string]any{"db.system.name": "redis", "db.operation.name": "INCR", "db.query.text": "INCR ?",
				"db.namespace": "0", "server.address": "127.0.0.1", "server.port": int64(6379), "error.type": "_OTHER"},
			WantStatus: codes.Error,
		},
		{
			Name:   "a pipeline of different commands",
			Record: record(t, 8, 0, "127.0.0.1:6379", 0, 3, cmd{"set", 3}, cmd{"incr", 2}, cmd{"expire", 3}),
			Want:   want("BATCH"),
			WantAttrs: map[string]any{"db.system.name": "redis", "db.operation.name": "BATCH", "db.operation.batch.size": int64(3),
				"db.query.text": "SET ? ?; INCR ?; EXPIRE ? ?", "db.namespace": "0", "server.address": "127.0.0.1", "server.port": int64(6379)},
		},
		{
			Name:   "a pipeline of one command repeated, longer than the record holds",
			Record: record(t, 8, 0, "", -1, 9, cmd{"get", 2}, cmd{"get", 2}, cmd{"get", 2}, cmd{"get", 2}, cmd{"get", 2}, cmd{"get", 2}, cmd{"get", 2}, cmd{"get", 255}),
			Want:   want("BATCH"),
			WantAttrs: map[string]any{"db.system.name": "redis", "db.operation.name": "BATCH", "db.operation.batch.size": int64(9),
				"db.query.text": "GET ?; GET ?; GET ?; GET ?; GET ?; GET ?; GET ?; GET ...; ..."},
		},
		{
			Name:      "a pipeline of the same command",
			Record:    record(t, 8, 0, "", -1, 2, cmd{"get", 2}, cmd{"get", 2}),
			Want:      want("BATCH GET"),
			WantAttrs: map[string]any{"db.system.name": "redis", "db.operation.name": "BATCH GET", "db.operation.batch.size": int64(2), "db.query.text": "GET ?; GET ?"},
		},
		{
			Name:      "a command whose name was not seen",
			Record:    record(t, 7, 0, "", -1, 0),
			Want:      want("redis"),
			WantAttrs: map[string]any{"db.system.name": "redis"},
		},
	})
}
