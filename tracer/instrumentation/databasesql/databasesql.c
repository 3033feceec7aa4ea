//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * databasesql.c: one event per query, statement execution, commit and
 * rollback a database/sql client makes, whatever its driver.
 *
 * Probes (register ABI, Go 1.17+; the signatures have not changed since):
 *
 *   sql.Open(driverName, dataSourceName string) (*DB, error)
 *       sql_open saves the driver's name and the server part of the DSN
 *       (what follows its last '@', else all of it) by goroutine;
 *       sql_open_return keeps them by the *DB returned, for every span of
 *       that DB. A DB opened before the probes were attached, or with
 *       sql.OpenDB, has neither.
 *   (*DB).query(ctx, query string, args, strategy) (*Rows, error)
 *   (*DB).exec(ctx, query string, args, strategy) (Result, error)
 *   (*Conn).QueryContext / (*Tx).QueryContext(ctx, query string, args...) (*Rows, error)
 *   (*Conn).ExecContext / (*Tx).ExecContext(ctx, query string, args...) (Result, error)
 *       every Query and Exec of a DB, Conn or Tx: the callers of queryDC
 *       and execDC, so that a call that fails to get its connection has its
 *       span too. The span starts at entry with the query text and ends at
 *       each RET with the error returned. While the driver runs it is the
 *       goroutine's active span, so that the spans of an instrumented
 *       driver (pgx's stdlib) are its children.
 *   (*Stmt).QueryContext(ctx, args...) (*Rows, error)
 *   (*Stmt).ExecContext(ctx, args...) (Result, error)
 *       a prepared statement's executions, with Stmt.query as the text.
 *   (*DB).begin(ctx, opts *TxOptions, strategy) (*Tx, error)
 *   (*Conn).BeginTx(ctx, opts *TxOptions) (*Tx, error)
 *       sql_begin / sql_conn_begin: a BEGIN span for each attempt of a
 *       DB's BeginTx (its connection's acquisition included, as for a
 *       query) and for a Conn's BeginTx, ended by sql_return2.
 *   (*DB).beginDC(ctx, dc, release, opts) (*Tx, error)
 *       sql_begin_return keeps every transaction begun, by its *Tx.
 *   (*Tx).Commit() error and (*Tx).rollback(discardConn bool) error
 *       a span for the commit or explicit rollback (discardConn false: what
 *       Tx.Rollback calls) of a transaction sql_begin_return saw; a Tx
 *       already ended (ErrTxDone, the usual deferred Rollback after Commit)
 *       makes none.
 *
 *   github.com/go-sql-driver/mysql (*mysqlConn).handleErrorPacket(data []byte) error
 *   github.com/jackc/pgx/v5/pgproto3 (*ErrorResponse).Decode(src []byte) error
 *   github.com/lib/pq parseError(r *readBuf[, q string]) *Error
 *       sql_mysql_error / sql_pg_error / sql_pq_error: a server's error response, read
 *       by the driver on the goroutine of the call it answers, gives that
 *       call's span its error number or SQLSTATE (db_mysql_error,
 *       db_pg_error; never the message).
 *
 * Arguments are never read: only the query text as the application wrote it.
 */
#define DB_PG_ERRORS
#include "db.h"

/* Field offsets, rewritten at load time; OFFSET_ABSENT if absent. */
volatile const __u64 off_g_goid = OFFSET_ABSENT;     /* runtime.g.goid */
volatile const __u64 off_Stmt_query = OFFSET_ABSENT; /* database/sql.Stmt.query */
volatile const __u64 off_Stmt_db = OFFSET_ABSENT;    /* database/sql.Stmt.db */
volatile const __u64 off_Tx_db = OFFSET_ABSENT;      /* database/sql.Tx.db */
volatile const __u64 off_Conn_db = OFFSET_ABSENT;    /* database/sql.Conn.db */

/* How much of a DSN is searched for its last '@', plus one (a power of two). */
#define DSN_SCAN 128

/* What sql.Open was given, less the credentials: the driver and the server. */
struct sql_db {
	__u8 system_len;
	__u8 addr_len;
	__u8 pad[6];
	__u8 system[DB_SYSTEM_LEN];
	__u8 addr[DB_ADDR_LEN];
};

/* A *DB or *Tx of a process. */
struct sql_ref {
	__u32 tgid;
	__u32 pad;
	__u64 ptr;
};

/* sql.Open calls in progress, by goroutine. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct goroutine);
	__type(value, struct sql_db);
} sql_opening SEC(".maps");

/* Every DB sql.Open returned since attach. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct sql_ref);
	__type(value, struct sql_db);
} sql_dbs SEC(".maps");

/* Transactions in progress: *Tx -> its *DB. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct sql_ref);
	__type(value, __u64);
} sql_txs SEC(".maps");

/*
 * A call in progress: its span, which is the goroutine's active span while
 * the driver runs (a driver that is itself instrumented, such as pgx's
 * stdlib, makes its spans children of it), and the span it replaced.
 */
struct sql_call {
	struct db_event ev;
	struct span_context saved;
	struct db_entry entry; /* see db_reentered */
	__u32 had_saved;
	__u32 pad;
};

/* Calls in progress, by goroutine. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct goroutine);
	__type(value, struct sql_call);
} sql_calls SEC(".maps");

/* Where the entry programs build records too large for the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sql_call);
} sql_scratch SEC(".maps");

struct dsn_buf {
	__u8 b[DSN_SCAN];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dsn_buf);
} sql_dsn_scratch SEC(".maps");

SEC("uprobe/database_sql_Open")
int sql_open(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	struct sql_db d = {};
	d.system_len = copy_go_string(d.system, DB_SYSTEM_LEN, GO_REG1(regs), (__s64)GO_REG2(regs));

	__u64 dsn = GO_REG3(regs);
	__s64 len = (__s64)GO_REG4(regs);
	__u32 zero = 0;
	struct dsn_buf *buf = bpf_map_lookup_elem(&sql_dsn_scratch, &zero);
	if (!buf)
		return 0;
	__u32 n = read_masked(buf->b, DSN_SCAN - 1, dsn, len);
	/* The last '@', searched from the end so that the verifier sees one path. */
	__u32 at = 0;
	for (__u32 i = 1; i <= DSN_SCAN; i++) {
		if (i > n)
			break;
		__u32 j = (n - i) & (DSN_SCAN - 1);
		if (buf->b[j] == '@') {
			at = j + 1;
			break;
		}
	}
	d.addr_len = read_masked(d.addr, DB_ADDR_LEN - 1, dsn + at, len - at);
	bpf_map_update_elem(&sql_opening, &g, &d, BPF_ANY);
	return 0;
}

SEC("uprobe/database_sql_Open_return")
int sql_open_return(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	struct sql_db *d = bpf_map_lookup_elem(&sql_opening, &g);
	if (!d)
		return 0;
	__u64 db = GO_RESULT1(regs);
	if (db != 0) {
		struct sql_ref ref = {.tgid = g.tgid, .ptr = db};
		bpf_map_update_elem(&sql_dbs, &ref, d, BPF_ANY);
	}
	bpf_map_delete_elem(&sql_opening, &g);
	return 0;
}

/*
 * start keeps, by goroutine, the span of a call of kind op on the DB db
 * with the query text at query_ptr (0: none).
 */
static __always_inline int start(struct go_regs *regs, __u8 op, __u64 db, __u64 query_ptr, __s64 query_len, __u64 key)
{
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	struct db_entry e = {.caller = go_caller(regs), .recv = GO_REG1(regs), .key = key};
	struct sql_call *cur = bpf_map_lookup_elem(&sql_calls, &g);
	if (cur && db_reentered(&cur->entry, &e))
		return 0; /* the same call, started again after its stack grew or it was preempted */
	__u32 zero = 0;
	struct sql_call *c = bpf_map_lookup_elem(&sql_scratch, &zero);
	if (!c)
		return 0;
	__builtin_memset(c, 0, sizeof(*c));
	c->entry = e;
	struct db_event *ev = &c->ev;
	db_begin(ev, &g, op);
	c->had_saved = span_activate(&g, ev->trace_id, ev->span_id, ev->flags, &c->saved);
	db_query(ev, query_ptr, query_len);
	struct sql_ref ref = {.tgid = g.tgid, .ptr = db};
	struct sql_db *d = db ? bpf_map_lookup_elem(&sql_dbs, &ref) : 0;
	if (d) {
		ev->system_len = d->system_len;
		ev->addr_len = d->addr_len;
		__builtin_memcpy(ev->system, d->system, DB_SYSTEM_LEN);
		__builtin_memcpy(ev->addr, d->addr, DB_ADDR_LEN);
	}
	bpf_map_update_elem(&sql_calls, &g, c, BPF_ANY);
	return 0;
}

/* end submits the goroutine's call, failed if the error's itab word is not nil. */
static __always_inline int end(struct go_regs *regs, __u64 err_itab)
{
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	struct sql_call *c = bpf_map_lookup_elem(&sql_calls, &g);
	if (!c) {
		count_lost(LOST_IN_FLIGHT);
		return 0;
	}
	if (c->ev.op == 0) { /* a transaction end that makes no span (see tx_end) */
		bpf_map_delete_elem(&sql_calls, &g);
		return 0;
	}
	c->ev.end_ns = bpf_ktime_get_ns();
	c->ev.failed = err_itab != 0 ? DB_FAILED : DB_OK;
	span_deactivate(&g, c->had_saved, &c->saved);
	submit(&c->ev, sizeof(c->ev));
	bpf_map_delete_elem(&sql_calls, &g);
	return 0;
}

/*
 * Every Query and Exec reaches the driver through queryDC or execDC, but a
 * DB's may fail before, getting its connection ((*DB).conn: the server
 * refuses or is down, the context ends while the call waits for the pool,
 * the DB is closed), and a Conn's or Tx's grabbing theirs. So the spans
 * start at the callers of queryDC and execDC — (*DB).query and (*DB).exec
 * (each attempt of a DB's call: database/sql retries one that got a bad
 * connection), (*Conn).QueryContext/ExecContext, (*Tx).QueryContext/
 * ExecContext — which cost the same two uprobe hits per call and see
 * those failures too. All take (receiver, ctx, query string, ...).
 */
SEC("uprobe/database_sql_DB_query")
int sql_query(void *ctx)
{
	struct go_regs *regs = ctx;
	return start(regs, DB_OP_QUERY, GO_REG1(regs), GO_REG4(regs), (__s64)GO_REG5(regs), GO_REG4(regs));
}

SEC("uprobe/database_sql_DB_exec")
int sql_exec(void *ctx)
{
	struct go_regs *regs = ctx;
	return start(regs, DB_OP_EXEC, GO_REG1(regs), GO_REG4(regs), (__s64)GO_REG5(regs), GO_REG4(regs));
}

/* owner_start starts a span of a Conn's or Tx's call, whose DB is at off. */
static __always_inline int owner_start(struct go_regs *regs, __u8 op, __u64 off)
{
	__u64 db = 0;
	read_go_ptr(field_addr(GO_REG1(regs), off), &db);
	return start(regs, op, db, GO_REG4(regs), (__s64)GO_REG5(regs), GO_REG4(regs));
}

SEC("uprobe/database_sql_Conn_QueryContext")
int sql_conn_query(void *ctx)
{
	return owner_start(ctx, DB_OP_QUERY, off_Conn_db);
}

SEC("uprobe/database_sql_Conn_ExecContext")
int sql_conn_exec(void *ctx)
{
	return owner_start(ctx, DB_OP_EXEC, off_Conn_db);
}

SEC("uprobe/database_sql_Tx_QueryContext")
int sql_tx_query(void *ctx)
{
	return owner_start(ctx, DB_OP_QUERY, off_Tx_db);
}

SEC("uprobe/database_sql_Tx_ExecContext")
int sql_tx_exec(void *ctx)
{
	return owner_start(ctx, DB_OP_EXEC, off_Tx_db);
}

/* (*Rows, error): the error's itab is the second word. */
SEC("uprobe/database_sql_return2")
int sql_return2(void *ctx)
{
	struct go_regs *regs = ctx;
	return end(regs, GO_RESULT2(regs));
}

/* (Result, error): the error's itab is the third word. */
SEC("uprobe/database_sql_return3")
int sql_return3(void *ctx)
{
	struct go_regs *regs = ctx;
	return end(regs, GO_RESULT3(regs));
}

/* error: the error's itab is the first word. */
SEC("uprobe/database_sql_return1")
int sql_return1(void *ctx)
{
	struct go_regs *regs = ctx;
	return end(regs, GO_RESULT1(regs));
}

/* stmt_start starts the span of an execution of the prepared statement stmt. */
static __always_inline int stmt_start(struct go_regs *regs, __u8 op)
{
	__u64 stmt = GO_REG1(regs);
	__u64 db = 0;
	struct go_string q = {};
	__u64 a = field_addr(stmt, off_Stmt_query);
	if (a == 0 || bpf_probe_read_user(&q, sizeof(q), (const void *)a) != 0)
		return 0;
	read_go_ptr(field_addr(stmt, off_Stmt_db), &db);
	return start(regs, op, db, q.ptr, q.len, 0);
}

SEC("uprobe/database_sql_Stmt_QueryContext")
int sql_stmt_query(void *ctx)
{
	return stmt_start(ctx, DB_OP_STMT_QUERY);
}

SEC("uprobe/database_sql_Stmt_ExecContext")
int sql_stmt_exec(void *ctx)
{
	return stmt_start(ctx, DB_OP_STMT_EXEC);
}

SEC("uprobe/database_sql_DB_begin")
int sql_begin(void *ctx)
{
	struct go_regs *regs = ctx;
	return start(regs, DB_OP_BEGIN, GO_REG1(regs), 0, 0, 0);
}

SEC("uprobe/database_sql_Conn_BeginTx")
int sql_conn_begin(void *ctx)
{
	struct go_regs *regs = ctx;
	__u64 db = 0;
	read_go_ptr(field_addr(GO_REG1(regs), off_Conn_db), &db);
	return start(regs, DB_OP_BEGIN, db, 0, 0, 0);
}

SEC("uprobe/database_sql_DB_beginDC_return")
int sql_begin_return(void *ctx)
{
	struct go_regs *regs = ctx;
	__u64 tx = GO_RESULT1(regs), db = 0;
	if (tx == 0 || GO_RESULT2(regs) != 0)
		return 0;
	read_go_ptr(field_addr(tx, off_Tx_db), &db);
	struct sql_ref ref = {.tgid = bpf_get_current_pid_tgid() >> 32, .ptr = tx};
	bpf_map_update_elem(&sql_txs, &ref, &db, BPF_ANY);
	return 0;
}

/*
 * no_span keeps, by goroutine, a call that makes no span, so that its
 * return probe finds the start it expects: a return probe that finds none
 * counts a span lost in flight.
 */
static __always_inline int no_span(struct go_regs *regs)
{
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	struct db_entry e = {.caller = go_caller(regs), .recv = GO_REG1(regs), .key = 0};
	struct sql_call *cur = bpf_map_lookup_elem(&sql_calls, &g);
	if (cur && db_reentered(&cur->entry, &e))
		return 0;
	__u32 zero = 0;
	struct sql_call *c = bpf_map_lookup_elem(&sql_scratch, &zero);
	if (!c)
		return 0;
	__builtin_memset(c, 0, sizeof(*c)); /* ev.op 0: no span */
	c->entry = e;
	bpf_map_update_elem(&sql_calls, &g, c, BPF_ANY);
	return 0;
}

/*
 * tx_end starts the span of the end of the transaction tx, if it was seen
 * begun and span is set; else it keeps a call without span (no_span).
 */
static __always_inline int tx_end(struct go_regs *regs, __u8 op, int span)
{
	struct sql_ref ref = {.tgid = bpf_get_current_pid_tgid() >> 32, .ptr = GO_REG1(regs)};
	__u64 *db = bpf_map_lookup_elem(&sql_txs, &ref);
	if (!db)
		return no_span(regs);
	__u64 d = *db;
	bpf_map_delete_elem(&sql_txs, &ref);
	if (!span)
		return no_span(regs);
	return start(regs, op, d, 0, 0, 0);
}

SEC("uprobe/database_sql_Tx_Commit")
int sql_commit(void *ctx)
{
	return tx_end(ctx, DB_OP_COMMIT, 1);
}

SEC("uprobe/database_sql_Tx_rollback")
int sql_rollback(void *ctx)
{
	struct go_regs *regs = ctx;
	/* discardConn is true when the transaction's context ended, not Rollback. */
	return tx_end(regs, DB_OP_ROLLBACK, (GO_REG2(regs) & 0xff) == 0);
}

/* call_in_progress returns the goroutine's call with a span, if any. */
static __always_inline struct sql_call *call_in_progress(struct go_regs *regs)
{
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	struct sql_call *c = bpf_map_lookup_elem(&sql_calls, &g);
	if (!c || c->ev.op == 0)
		return 0;
	return c;
}

/* handleErrorPacket(data []byte): the ERR packet is the second and third words. */
SEC("uprobe/mysql_handleErrorPacket")
int sql_mysql_error(void *ctx)
{
	struct go_regs *regs = ctx;
	struct sql_call *c = call_in_progress(regs);
	if (c)
		db_mysql_error(&c->ev, GO_REG2(regs), (__s64)GO_REG3(regs));
	return 0;
}

/* ErrorResponse.Decode(src []byte): the message body is the second and third words. */
SEC("uprobe/pgx_ErrorResponse_Decode")
int sql_pg_error(void *ctx)
{
	struct go_regs *regs = ctx;
	struct sql_call *c = call_in_progress(regs);
	if (c)
		db_pg_error(&c->ev, GO_REG2(regs), (__s64)GO_REG3(regs));
	return 0;
}

/* parseError(r *readBuf, ...): *r is the message body, a []byte. */
SEC("uprobe/pq_parseError")
int sql_pq_error(void *ctx)
{
	struct go_regs *regs = ctx;
	struct sql_call *c = call_in_progress(regs);
	struct go_slice body = {};
	if (!c || GO_REG1(regs) == 0 || bpf_probe_read_user(&body, sizeof(body), (const void *)GO_REG1(regs)) != 0)
		return 0;
	db_pg_error(&c->ev, body.ptr, body.len);
	return 0;
}
