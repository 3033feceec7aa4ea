// Package databasesql instruments database/sql clients, whatever their
// driver: one client span per query, statement execution, transaction
// begin, commit and rollback.
//
// It probes, with the BPF programs of databasesql.c, the standard
// library's (*DB).query and (*DB).exec (each attempt of a DB's Query or
// Exec) and the QueryContext and ExecContext of *Conn and *Tx: the callers
// of queryDC and execDC, through which every query reaches the driver, so
// that a call that fails to get its connection ((*DB).conn: the server
// refused or is down, the context ended while waiting for the pool, the
// DB is closed; a Conn's or Tx's grabConn) has its failed span too, at the
// same two uprobe hits per call. Also (*Stmt).QueryContext and
// (*Stmt).ExecContext (prepared statements), (*DB).begin (each attempt of
// a DB's BeginTx) and (*Conn).BeginTx (a BEGIN span each, whose children
// are the instrumented driver's own, pgx's "begin"), (*Tx).Commit and
// (*Tx).rollback, and sql.Open and (*DB).beginDC to know each DB's driver
// and server and each transaction.
// Their signatures are the same in every Go release the tracer supports
// (1.12+; both calling conventions, bpf/go_abi.h).
//
// A span is a child of the calling goroutine's active span (the HTTP or
// gRPC request being handled), else the root of a new trace. It carries
// the query text as the application passed it (cut at 255 bytes, and then
// listed in offsetdb.truncated), never the arguments. db.system.name comes
// from the name the driver registered ("postgres", "pgx": postgresql;
// "mysql": mysql; ...) and server.address, server.port and db.namespace
// from the part of the DSN after its credentials, for a DB opened with
// sql.Open while the probes were attached; for any other DB they are
// unknown (db.system.name other_sql).
//
// A call that fails on an error response of a MySQL server (through
// go-sql-driver/mysql) or a PostgreSQL one (through lib/pq or pgx's
// stdlib) has the response's error number or SQLSTATE as error.type and
// db.response.status_code, read from the response message as the driver
// gets it: the protocol's layout, no struct offsets, never the message.
// Other drivers' failures have error.type _OTHER.
package databasesql

import (
	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
)

// The BPF objects, compiled for both targets and committed, come from
// databasesql.c and the shared headers in bpf/; the build needs clang and
// libbpf-dev.
//go:generate go tool bpf2go -tags linux -target amd64,arm64 -type db_event databasesql databasesql.c -- -I../../../bpf -O2 -mcpu=v3 -Wall -Werror -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu

// Symbols the instrumentation probes.
const (
	Query            = "database/sql.(*DB).query"
	Exec             = "database/sql.(*DB).exec"
	ConnQueryContext = "database/sql.(*Conn).QueryContext"
	ConnExecContext  = "database/sql.(*Conn).ExecContext"
	TxQueryContext   = "database/sql.(*Tx).QueryContext"
	TxExecContext    = "database/sql.(*Tx).ExecContext"
	StmtQueryContext = "database/sql.(*Stmt).QueryContext"
	StmtExecContext  = "database/sql.(*Stmt).ExecContext"
	Open             = "database/sql.Open"
	Begin            = "database/sql.(*DB).begin"
	ConnBeginTx      = "database/sql.(*Conn).BeginTx"
	BeginDC          = "database/sql.(*DB).beginDC"
	Commit           = "database/sql.(*Tx).Commit"
	Rollback         = "database/sql.(*Tx).rollback"

	// Drivers' readers of the server's error responses, on the goroutine
	// of the call they answer: their code becomes the span's error.type
	// and db.response.status_code.
	MySQLHandleErrorPacket = "github.com/go-sql-driver/mysql.(*mysqlConn).handleErrorPacket"
	PgErrorResponseDecode  = "github.com/jackc/pgx/v5/pgproto3.(*ErrorResponse).Decode"
	PqParseError           = "github.com/lib/pq.parseError"
)

// Instrumentation returns the declaration of the database/sql
// instrumentation, for uprobe.Attach. Each call returns a new copy.
//
// The DB's query and exec are required; the others are optional, so that
// a program that never uses a Conn, prepares a statement or opens a
// transaction (the linker then drops those functions) still gets its
// query spans.
func Instrumentation() uprobe.Instrumentation {
	f := offsets.MustParseFieldID
	return uprobe.Instrumentation{
		Name: "database/sql",
		Probes: []uprobe.Probe{
			{Symbol: Query, Entry: "sql_query", Return: "sql_return2", StackABI: true, StackResults: 24},
			{Symbol: Exec, Entry: "sql_exec", Return: "sql_return3", StackABI: true, StackResults: 32},
			{Symbol: ConnQueryContext, Entry: "sql_conn_query", Return: "sql_return2", Optional: true, StackABI: true, StackResults: 24},
			{Symbol: ConnExecContext, Entry: "sql_conn_exec", Return: "sql_return3", Optional: true, StackABI: true, StackResults: 32},
			{Symbol: TxQueryContext, Entry: "sql_tx_query", Return: "sql_return2", Optional: true, StackABI: true, StackResults: 24},
			{Symbol: TxExecContext, Entry: "sql_tx_exec", Return: "sql_return3", Optional: true, StackABI: true, StackResults: 32},
			{Symbol: StmtQueryContext, Entry: "sql_stmt_query", Return: "sql_return2", Optional: true, StackABI: true, StackResults: 24},
			{Symbol: StmtExecContext, Entry: "sql_stmt_exec", Return: "sql_return3", Optional: true, StackABI: true, StackResults: 32},
			{Symbol: Open, Entry: "sql_open", Return: "sql_open_return", Optional: true, StackABI: true, StackResults: 24},
			{Symbol: Begin, Entry: "sql_begin", Return: "sql_return2", Optional: true, StackABI: true, StackResults: 24},
			{Symbol: ConnBeginTx, Entry: "sql_conn_begin", Return: "sql_return2", Optional: true, StackABI: true, StackResults: 24},
			{Symbol: BeginDC, Return: "sql_begin_return", Optional: true, StackABI: true, StackResults: 24},
			{Symbol: Commit, Entry: "sql_commit", Return: "sql_return1", Optional: true, StackABI: true, StackResults: 16},
			{Symbol: Rollback, Entry: "sql_rollback", Return: "sql_return1", Optional: true, StackABI: true, StackResults: 16},
			{Symbol: MySQLHandleErrorPacket, Entry: "sql_mysql_error", Optional: true, StackABI: true},
			{Symbol: PgErrorResponseDecode, Entry: "sql_pg_error", Optional: true},
			{Symbol: PqParseError, Entry: "sql_pq_error", Optional: true, StackABI: true},
		},
		Fields: []uprobe.Field{
			{ID: f("runtime.g.goid"), Const: "off_g_goid"},
			{ID: f("database/sql.Stmt.query"), Const: "off_Stmt_query"},
			{ID: f("database/sql.Stmt.db"), Const: "off_Stmt_db"},
			{ID: f("database/sql.Tx.db"), Const: "off_Tx_db"},
			{ID: f("database/sql.Conn.db"), Const: "off_Conn_db"},
		},
		Spec:   spec,
		PIDAt:  RecordPIDAt,
		Decode: decode,
	}
}
