//go:build linux && (amd64 || arm64)

package databasesql

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/tracer/spans"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

func record(t *testing.T, op uint8, driver, addr, query string, failed uint8) []byte {
	r := databasesqlDbEvent{Kind: 6, Op: op, Failed: failed, Flags: 1, DbIndex: -1,
		TraceId: [16]uint8{1}, SpanId: [8]uint8{2}, ParentSpanId: [8]uint8{3}}
	r.SystemLen = uint8(copy(r.System[:], driver))
	r.AddrLen = uint8(copy(r.Addr[:], addr))
	r.QueryLen = uint8(copy(r.Query[:], query))
	b, err := binary.Append(nil, binary.NativeEndian, &r)
	require.NoError(t, err)
	return b
}

func TestInstrumentationDecodesSQLRecords(t *testing.T) {
	want := func(name string) spans.Span {
		return spans.Span{Name: name, Kind: trace.SpanKindClient, TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, ParentSpanID: trace.SpanID{3}}
	}
	uprobetest.CheckInstrumentation(t, Instrumentation(), []uprobetest.DecodeCase{
		{
			Name:   "lib/pq query, URL DSN",
			Record: record(t, 1, "postgres", "127.0.0.1:5432/shop?sslmode=disable", "SELECT name FROM items WHERE id = $1", 0),
			Want:   want("SELECT items"),
			WantAttrs: map[string]any{"db.system.name": "postgresql", "db.query.text": "SELECT name FROM items WHERE id = $1",
				"db.query.summary": "SELECT items", "db.namespace": "shop", "server.address": "127.0.0.1", "server.port": int64(5432)},
		},
		{
			Name:   "pgx stdlib exec, keyword/value DSN: only host, port and dbname are read",
			Record: record(t, 2, "pgx", "host=db.internal port=6432 user=app password=secret dbname=shop", "insert into hits (req) values ($1)", 0),
			Want:   want("INSERT hits"),
			WantAttrs: map[string]any{"db.system.name": "postgresql", "db.query.text": "insert into hits (req) values ($1)",
				"db.query.summary": "INSERT hits", "db.namespace": "shop", "server.address": "db.internal", "server.port": int64(6432)},
		},
		{
			Name:   "mysql prepared statement that failed",
			Record: record(t, 4, "mysql", "tcp(10.0.0.5:3306)/shop?parseTime=true", "UPDATE items SET n = n + 1 WHERE id = ?", 1),
			Want:   want("UPDATE items"),
			WantAttrs: map[string]any{"db.system.name": "mysql", "db.query.text": "UPDATE items SET n = n + 1 WHERE id = ?",
				"db.query.summary": "UPDATE items", "db.namespace": "shop", "server.address": "10.0.0.5", "server.port": int64(3306),
				"error.type": "_OTHER"},
			WantStatus: codes.Error,
		},
		{
			Name: "mysql query that failed on the server's error 1146: its number is error.type",
			Record: func() []byte {
				b := record(t, 1, "mysql", "tcp(127.0.0.1:3306)/shop", "SELECT * FROM no_such_table", 1)
				b[offStatKind] = statusNumber
				binary.NativeEndian.PutUint16(b[offStatus:], 1146)
				return b
			}(),
			Want: want("SELECT no_such_table"),
			WantAttrs: map[string]any{"db.system.name": "mysql", "db.query.text": "SELECT * FROM no_such_table",
				"db.query.summary": "SELECT no_such_table", "db.namespace": "shop", "server.address": "127.0.0.1", "server.port": int64(3306),
				"error.type": "1146", "db.response.status_code": "1146"},
			WantStatus: codes.Error,
		},
		{
			Name: "an error response seen during a call that then succeeded sets nothing",
			Record: func() []byte {
				b := record(t, 2, "pgx", "host=127.0.0.1 dbname=shop", "INSERT INTO hits (req) VALUES ($1)", 0)
				b[offStatKind] = statusSQLState
				copy(b[offStatus:], "40001")
				return b
			}(),
			Want: want("INSERT hits"),
			WantAttrs: map[string]any{"db.system.name": "postgresql", "db.query.text": "INSERT INTO hits (req) VALUES ($1)",
				"db.query.summary": "INSERT hits", "db.namespace": "shop", "server.address": "127.0.0.1"},
		},
		{
			Name:      "begin of a transaction: no text, named by the operation",
			Record:    record(t, 12, "mysql", "tcp(127.0.0.1:3306)/shop", "", 0),
			Want:      want("BEGIN"),
			WantAttrs: map[string]any{"db.system.name": "mysql", "db.operation.name": "BEGIN", "db.namespace": "shop", "server.address": "127.0.0.1", "server.port": int64(3306)},
		},
		{
			Name:       "commit of a DB opened before the probes: system unknown",
			Record:     record(t, 5, "", "", "", 0),
			Want:       want("COMMIT"),
			WantAttrs:  map[string]any{"db.system.name": "other_sql", "db.operation.name": "COMMIT"},
			WantStatus: codes.Unset,
		},
		{
			Name:      "rollback, mysql over a unix socket",
			Record:    record(t, 6, "mysql", "unix(/run/mysqld/mysqld.sock)/shop", "", 0),
			Want:      want("ROLLBACK"),
			WantAttrs: map[string]any{"db.system.name": "mysql", "db.operation.name": "ROLLBACK", "db.namespace": "shop", "server.address": "/run/mysqld/mysqld.sock"},
		},
		{
			Name:      "a query whose table is a subquery keeps the keyword alone",
			Record:    record(t, 1, "sqlite3", "file:test.db", "select count(*) from (select 1)", 0),
			Want:      want("SELECT"),
			WantAttrs: map[string]any{"db.system.name": "sqlite", "db.query.text": "select count(*) from (select 1)", "db.query.summary": "SELECT"},
		},
		{
			Name: "a query text longer than the record holds is cut there and says so",
			Record: func() []byte {
				long := "SELECT name FROM items WHERE id IN (" + strings.Repeat("$1,", 100)
				b := record(t, 1, "postgres", "127.0.0.1:5432/shop", long[:255], 0) // what the BPF program copies

				b[offCut] = cutQuery
				return b
			}(),
			Want: want("SELECT items"),
			WantAttrs: map[string]any{"db.system.name": "postgresql", "db.query.summary": "SELECT items",
				"db.query.text":      ("SELECT name FROM items WHERE id IN (" + strings.Repeat("$1,", 100))[:255],
				"offsetdb.truncated": []string{"db.query.text"},
				"db.namespace":       "shop", "server.address": "127.0.0.1", "server.port": int64(5432)},
		},
		{
			Name:    "short record",
			Record:  []byte{1, 2, 3},
			WantErr: "record of 3 bytes",
		},
	})
}
