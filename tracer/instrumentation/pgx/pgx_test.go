//go:build linux && (amd64 || arm64)

package pgx

import (
	"encoding/binary"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/tracer/spans"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// The record is pgx's generated type, decoded through package
// databasesql: the test also checks that both objects share one layout.
func record(t *testing.T, op, failed uint8, host string, port uint16, db, query string) []byte {
	r := pgxDbEvent{Kind: 8, Op: op, Failed: failed, Flags: 1, DbIndex: -1, Port: port,
		TraceId: [16]uint8{1}, SpanId: [8]uint8{2}, ParentSpanId: [8]uint8{3}}
	r.AddrLen = uint8(copy(r.Addr[:], host))
	r.NamespaceLen = uint8(copy(r.Namespace[:], db))
	r.QueryLen = uint8(copy(r.Query[:], query))
	b, err := binary.Append(nil, binary.NativeEndian, &r)
	require.NoError(t, err)
	return b
}

// batch is a SendBatch record of n queries whose first text is query and
// whose recorded starts are starts.
func batch(t *testing.T, n int, same bool, query string, starts ...string) []byte {
	r := pgxDbEvent{Kind: 8, Op: 13, Flags: 1, DbIndex: -1, Port: 5432, Ncmds: uint8(n),
		TraceId: [16]uint8{1}, SpanId: [8]uint8{2}, ParentSpanId: [8]uint8{3}}
	if same {
		r.SameText = 1
	}
	r.AddrLen = uint8(copy(r.Addr[:], "127.0.0.1"))
	r.QueryLen = uint8(copy(r.Query[:], query))
	for i, st := range starts {
		r.CmdLen[i] = uint8(copy(r.Cmds[i][:len(r.Cmds[i])-1], st))
	}
	b, err := binary.Append(nil, binary.NativeEndian, &r)
	require.NoError(t, err)
	return b
}

func TestInstrumentationDecodesPgxRecords(t *testing.T) {
	want := func(name string) spans.Span {
		return spans.Span{Name: name, Kind: trace.SpanKindClient, TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, ParentSpanID: trace.SpanID{3}}
	}
	uprobetest.CheckInstrumentation(t, Instrumentation(), []uprobetest.DecodeCase{
		{
			Name:   "a query",
			Record: record(t, 9, 0, "127.0.0.1", 5432, "shop", "SELECT name FROM items WHERE id = $1"),
			Want:   want("SELECT items"),
			WantAttrs: map[string]any{"db.system.name": "postgresql", "db.query.text": "SELECT name FROM items WHERE id = $1",
				"db.query.summary": "SELECT items", "db.namespace": "shop", "server.address": "127.0.0.1", "server.port": int64(5432)},
		},
		{
			Name:   "a failed exec",
			Record: record(t, 10, 1, "/var/run/postgresql", 5432, "shop", "SELECT * FROM no_such_table"),
			Want:   want("SELECT no_such_table"),
			WantAttrs: map[string]any{"db.system.name": "postgresql", "db.query.text": "SELECT * FROM no_such_table",
				"db.query.summary": "SELECT no_such_table", "db.namespace": "shop", "server.address": "/var/run/postgresql",
				"server.port": int64(5432), "error.type": "_OTHER"},
			WantStatus: codes.Error,
		},
		{
			Name: "a failed exec with the server's SQLSTATE",
			Record: func() []byte {
				r := record(t, 10, 1, "127.0.0.1", 5432, "shop", "SELECT * FROM no_such_table")
				r[unsafe.Offsetof(pgxDbEvent{}.StatusKind)] = 1 // DB_STATUS_SQLSTATE
				copy(r[unsafe.Offsetof(pgxDbEvent{}.Status):], "42P01")
				return r
			}(),
			Want: want("SELECT no_such_table"),
			WantAttrs: map[string]any{"db.system.name": "postgresql", "db.query.text": "SELECT * FROM no_such_table",
				"db.query.summary": "SELECT no_such_table", "db.namespace": "shop", "server.address": "127.0.0.1",
				"server.port": int64(5432), "error.type": "42P01", "db.response.status_code": "42P01"},
			WantStatus: codes.Error,
		},
		{
			Name:   "a batch of one text: its summary after BATCH, the text, the size",
			Record: batch(t, 3, true, "INSERT INTO hits (req) VALUES ($1)", "INSERT INTO hits (req)", "INSERT INTO hits (req)", "INSERT INTO hits (req)"),
			Want:   want("BATCH INSERT hits"),
			WantAttrs: map[string]any{"db.system.name": "postgresql", "db.operation.name": "BATCH INSERT", "db.operation.batch.size": int64(3),
				"db.query.text": "INSERT INTO hits (req) VALUES ($1)", "db.query.summary": "BATCH INSERT hits",
				"server.address": "127.0.0.1", "server.port": int64(5432)},
		},
		{
			Name: "a failed batch of different texts of one operation: no text",
			Record: func() []byte {
				r := batch(t, 2, false, "SELECT name FROM items WHERE id = $1", "SELECT name FROM items", "SELECT * FROM no_such_table")
				r[unsafe.Offsetof(pgxDbEvent{}.Failed)] = 1
				r[unsafe.Offsetof(pgxDbEvent{}.StatusKind)] = 1
				copy(r[unsafe.Offsetof(pgxDbEvent{}.Status):], "42P01")
				return r
			}(),
			Want: want("BATCH SELECT"),
			WantAttrs: map[string]any{"db.system.name": "postgresql", "db.operation.name": "BATCH SELECT", "db.operation.batch.size": int64(2),
				"server.address": "127.0.0.1", "server.port": int64(5432), "error.type": "42P01", "db.response.status_code": "42P01"},
			WantStatus: codes.Error,
		},
		{
			Name:   "a batch of more queries than the record names, or of a keyword cut by it: BATCH",
			Record: batch(t, 12, false, "UPDATE items SET n = 1", "UPDATE items", "UPDATE items", "UPDATE items", "UPDATE items", "UPDATE items", "UPDATE items", "UPDATE items", "UPDATE items"),
			Want:   want("BATCH"),
			WantAttrs: map[string]any{"db.system.name": "postgresql", "db.operation.name": "BATCH", "db.operation.batch.size": int64(12),
				"server.address": "127.0.0.1", "server.port": int64(5432)},
		},
		{
			Name:   "a batch of one query is that query",
			Record: batch(t, 1, true, "INSERT INTO hits (req) VALUES ($1)", "INSERT INTO hits (req)"),
			Want:   want("INSERT hits"),
			WantAttrs: map[string]any{"db.system.name": "postgresql", "db.query.text": "INSERT INTO hits (req) VALUES ($1)", "db.query.summary": "INSERT hits",
				"server.address": "127.0.0.1", "server.port": int64(5432)},
		},
		{
			Name:      "the commit of a transaction, config unknown",
			Record:    record(t, 10, 0, "", 0, "", "commit"),
			Want:      want("COMMIT"),
			WantAttrs: map[string]any{"db.system.name": "postgresql", "db.query.text": "commit", "db.query.summary": "COMMIT"},
		},
		{
			Name:   "a CopyFrom: the table, no query text",
			Record: record(t, 11, 0, "127.0.0.1", 5432, "shop", "hits"),
			Want:   want("COPY hits"),
			WantAttrs: map[string]any{"db.system.name": "postgresql", "db.operation.name": "COPY", "db.collection.name": "hits",
				"db.query.summary": "COPY hits", "db.namespace": "shop", "server.address": "127.0.0.1", "server.port": int64(5432)},
		},
		{
			Name:       "a failed CopyFrom whose table could not be read",
			Record:     record(t, 11, 1, "127.0.0.1", 5432, "shop", ""),
			Want:       want("COPY"),
			WantAttrs:  map[string]any{"db.system.name": "postgresql", "db.operation.name": "COPY", "db.namespace": "shop", "server.address": "127.0.0.1", "server.port": int64(5432), "error.type": "_OTHER"},
			WantStatus: codes.Error,
		},
	})
}
