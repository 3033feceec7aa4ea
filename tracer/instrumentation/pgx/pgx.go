// Package pgx instruments pgx v5 (github.com/jackc/pgx/v5), PostgreSQL's
// native Go driver: one client span per query and exec of a pgx.Conn, of
// a pgxpool.Pool (whose calls go through a pgx.Conn) and of pgx's
// database/sql driver (whose database/sql span is then the parent).
//
// It probes, with the BPF programs of pgx.c, (*Conn).Query (which QueryRow
// calls), (*Conn).Exec and (*Conn).CopyFrom, whose signatures have not
// changed in v5. The span has the SQL text as the application passed it
// (cut at 255 bytes, and then listed in offsetdb.truncated), never the
// arguments, db.query.summary ("SELECT items") as its name, and
// server.address, server.port and db.namespace from the connection's
// pgconn.Config. A call that fails on an error response of the server
// has its SQLSTATE as error.type and db.response.status_code, read from
// the response as pgproto3.(*ErrorResponse).Decode gets it (the wire
// format: no offsets; never the message). A query's span ends when Query returns: the rows read
// afterwards are not in it. A CopyFrom is one span "COPY <table>" with
// db.collection.name and no text; its rows are never read. Transactions
// are the "begin", "commit" and "rollback" Execs pgx sends (BEGIN, COMMIT
// and ROLLBACK spans). A SendBatch is one span: db.operation.name "BATCH
// INSERT" when every query starts with the same keyword, else "BATCH",
// db.operation.batch.size, and the text when every query is the same
// string ("BATCH INSERT hits", its db.query.summary, names the span);
// never the arguments. Its queries' results are read after SendBatch
// returns, where the span ends; it is failed when the server answered
// with an error while it ran (a query that could not be prepared).
package pgx

import (
	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
)

// The BPF objects, compiled for both targets and committed, come from
// pgx.c and the shared headers in bpf/; the build needs clang and
// libbpf-dev.
//go:generate go tool bpf2go -tags linux -target amd64,arm64 -type db_event pgx pgx.c -- -I../../../bpf -O2 -mcpu=v3 -Wall -Werror -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu

// Symbols the instrumentation probes.
const (
	Query     = "github.com/jackc/pgx/v5.(*Conn).Query"
	Exec      = "github.com/jackc/pgx/v5.(*Conn).Exec"
	CopyFrom  = "github.com/jackc/pgx/v5.(*Conn).CopyFrom"
	SendBatch = "github.com/jackc/pgx/v5.(*Conn).SendBatch"
	// ErrorResponseDecode decodes each error response of the server, on
	// the goroutine of the call it answers: its SQLSTATE becomes the
	// span's error.type and db.response.status_code.
	ErrorResponseDecode = "github.com/jackc/pgx/v5/pgproto3.(*ErrorResponse).Decode"
)

// Instrumentation returns the declaration of the pgx instrumentation, for
// uprobe.Attach. Each call returns a new copy.
func Instrumentation() uprobe.Instrumentation {
	f := offsets.MustParseFieldID
	return uprobe.Instrumentation{
		Name: "pgx",
		Probes: []uprobe.Probe{
			{Symbol: Query, Entry: "pgx_query", Return: "pgx_return"},
			{Symbol: Exec, Entry: "pgx_exec", Return: "pgx_return", Optional: true},
			{Symbol: CopyFrom, Entry: "pgx_copy", Return: "pgx_copy_return", Optional: true},
			{Symbol: SendBatch, Entry: "pgx_batch", Return: "pgx_batch_return", Optional: true},
			{Symbol: ErrorResponseDecode, Entry: "pgx_error", Optional: true},
		},
		Fields: []uprobe.Field{
			{ID: f("runtime.g.goid"), Const: "off_g_goid"},
			{ID: f("github.com/jackc/pgx/v5.Conn.pgConn"), Const: "off_Conn_pgConn", IfResolved: true},
			{ID: f("github.com/jackc/pgx/v5/pgconn.PgConn.config"), Const: "off_PgConn_config", IfResolved: true},
			{ID: f("github.com/jackc/pgx/v5/pgconn.Config.Host"), Const: "off_Config_Host", IfResolved: true},
			{ID: f("github.com/jackc/pgx/v5/pgconn.Config.Port"), Const: "off_Config_Port", IfResolved: true},
			{ID: f("github.com/jackc/pgx/v5/pgconn.Config.Database"), Const: "off_Config_Database", IfResolved: true},
			// A batch's queries and their texts, exported from v5.5.3: each
			// pair has one field per version. Without them a batch's span
			// has no text and no size.
			{ID: f("github.com/jackc/pgx/v5.Batch.QueuedQueries"), Const: "off_Batch_QueuedQueries", IfResolved: true},
			{ID: f("github.com/jackc/pgx/v5.Batch.queuedQueries"), Const: "off_Batch_queuedQueriesOld", IfResolved: true},
			{ID: f("github.com/jackc/pgx/v5.QueuedQuery.SQL"), Const: "off_QueuedQuery_SQL", IfResolved: true},
			{ID: f("github.com/jackc/pgx/v5.QueuedQuery.query"), Const: "off_QueuedQuery_query", IfResolved: true},
		},
		Spec:   spec,
		PIDAt:  recordPIDAt,
		Decode: decode,
	}
}
