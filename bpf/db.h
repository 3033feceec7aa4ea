/* SPDX-License-Identifier: (MIT OR GPL-2.0-only) */
/*
 * db.h: what the database client instrumentations (database/sql, go-redis,
 * pgx) share: the span record they submit and the reader of an error's result
 * words. Each is its own BPF object; they share no state but the generic
 * active-span context of context.h, which makes each call a child of the
 * span the calling goroutine works for (an HTTP or gRPC request).
 */
#ifndef OFFSETDB_DB_H
#define OFFSETDB_DB_H

#include "runtime.h"
#include "context.h"

/* Sizes of the buffers of struct db_event; longer values are cut. */
#define DB_QUERY_LEN 255
#define DB_SYSTEM_LEN 16
#define DB_ADDR_LEN 128 /* a power of two: read_masked copies up to DB_ADDR_LEN - 1 */
#define DB_MAX_CMDS 8
#define DB_CMD_LEN 16
#define DB_NAMESPACE_LEN 64

/* op of struct db_event. */
#define DB_OP_QUERY 1      /* database/sql: DB, Conn or Tx Query */
#define DB_OP_EXEC 2       /* database/sql: DB, Conn or Tx Exec */
#define DB_OP_STMT_QUERY 3 /* database/sql: a prepared statement's Query */
#define DB_OP_STMT_EXEC 4  /* database/sql: a prepared statement's Exec */
#define DB_OP_COMMIT 5     /* database/sql: Tx.Commit */
#define DB_OP_ROLLBACK 6   /* database/sql: Tx.Rollback */
#define DB_OP_REDIS_CMD 7  /* go-redis: one command */
#define DB_OP_REDIS_PIPELINE 8 /* go-redis: a pipeline (or MULTI/EXEC transaction) */
#define DB_OP_PGX_QUERY 9  /* pgx: Conn.Query (and QueryRow, and a pool's) */
#define DB_OP_PGX_EXEC 10  /* pgx: Conn.Exec */
#define DB_OP_PGX_COPY 11  /* pgx: Conn.CopyFrom; query holds the table name */
#define DB_OP_BEGIN 12     /* database/sql: an attempt of DB.BeginTx, or Conn.BeginTx */
#define DB_OP_PGX_BATCH 13 /* pgx: Conn.SendBatch; query holds the first query's text, cmds each query's start */

/* status_kind of struct db_event: what status holds. */
#define DB_STATUS_NONE 0     /* no error response from the server seen during the call */
#define DB_STATUS_SQLSTATE 1 /* PostgreSQL: the SQLSTATE, 5 characters */
#define DB_STATUS_NUMBER 2   /* MySQL: the error number, a little-endian __u16 */
#define DB_STATUS_LEN 8

/* Bits of cut of struct db_event. */
#define DB_CUT_QUERY 1 /* the query text is longer than DB_QUERY_LEN bytes */

/* failed of struct db_event. */
#define DB_OK 0
#define DB_FAILED 1
#define DB_NOT_FOUND 2 /* go-redis: redis.Nil, a key that does not exist: not an error */

/*
 * One finished database call. Strings are not NUL-terminated: *_len says how
 * many bytes of each buffer are valid. Times are bpf_ktime_get_ns().
 */
struct db_event {
	__u8 kind;       /* event_kind of the submitting object */
	__u8 op;         /* DB_OP_* */
	__u8 failed;     /* DB_OK, DB_FAILED, DB_NOT_FOUND */
	__u8 flags;      /* W3C trace-flags of the span */
	__u8 query_len;
	__u8 system_len;
	__u8 addr_len;
	__u8 ncmds;      /* go-redis: commands written, the first DB_MAX_CMDS named in cmds; pgx: a batch's queries (255: more) */
	__u32 pid;
	__s32 db_index;  /* go-redis: the Options.DB of the client, -1 if unknown */
	__u16 port;      /* pgx: the server's port, 0 if unknown */
	__u8 namespace_len;
	__u8 cut;        /* DB_CUT_*: values longer than their buffer, cut there */
	__u8 status_kind; /* DB_STATUS_*: the server's last error response during the call */
	__u8 same_text;   /* pgx batch: every query has the text of the first (the same string) */
	__u8 pad[2];
	__u8 status[DB_STATUS_LEN]; /* its code, never its message (see db_pg_error, db_mysql_error) */
	__u64 start_ns;
	__u64 end_ns;
	__u8 trace_id[16];
	__u8 span_id[8];
	__u8 parent_span_id[8]; /* all zero for a root span */
	__u8 cmd_len[DB_MAX_CMDS];
	__u8 cmd_argc[DB_MAX_CMDS];           /* go-redis: each command's argument count, its name included (255: more) */
	__u8 cmds[DB_MAX_CMDS][DB_CMD_LEN];   /* go-redis: command names, never arguments; pgx: the start of each batch query's text */
	__u8 system[DB_SYSTEM_LEN];           /* database/sql: the driver's registered name */
	__u8 addr[DB_ADDR_LEN];               /* the server: a DSN's part after its credentials, go-redis' Options.Addr, pgx's Config.Host */
	__u8 query[DB_QUERY_LEN + 1];         /* the query text as the application passed it */
	__u8 namespace[DB_NAMESPACE_LEN];     /* pgx: the database */
};

/*
 * read_masked copies min(len, mask) bytes of the traced process at ptr to
 * dst (at least mask bytes) and returns how many it copied. mask is a power
 * of two minus one: the verifier takes the bound from the AND, which the
 * compiler cannot drop (a min alone it may keep in a register copy the
 * verifier does not bound).
 */
static __always_inline __u32 read_masked(void *dst, __u32 mask, __u64 ptr, __s64 len)
{
	if (ptr == 0 || len <= 0)
		return 0;
	__u32 n = len > mask ? mask : (__u32)len;
	asm volatile("" : "+r"(n));
	n &= mask;
	if (n == 0 || bpf_probe_read_user(dst, n, (const void *)ptr) != 0)
		return 0;
	return n;
}

/*
 * db_query copies the query text, the Go string with data ptr and length
 * len, into ev, and marks it cut when it is longer than DB_QUERY_LEN bytes.
 */
static __always_inline void db_query(struct db_event *ev, __u64 ptr, __s64 len)
{
	ev->query_len = read_masked(ev->query, DB_QUERY_LEN, ptr, len);
	if (len > DB_QUERY_LEN && ev->query_len == DB_QUERY_LEN)
		ev->cut |= DB_CUT_QUERY;
}

/*
 * go_caller returns the return address of a Go function at its entry: on
 * amd64 the word at the stack pointer, on arm64 the link register.
 */
static __always_inline __u64 go_caller(struct go_regs *regs)
{
#if defined(__TARGET_ARCH_x86)
	return read_u64(regs->sp);
#else
	return regs->regs[30];
#endif
}

/*
 * A function whose stack must grow, or whose goroutine the scheduler wants
 * to preempt, runs its prologue, calls runtime.morestack and, once the
 * stack is copied or the goroutine runs again (any time later), starts
 * again from its first instruction with the same argument registers: an
 * entry probe sees that call twice. A nested call (go-redis' HELLO on a new
 * connection, made through the same hook code as the command that needed
 * the connection) has the same caller but another receiver and argument.
 */
/* Who made a call, to tell its restart from a nested call. */
struct db_entry {
	__u64 caller; /* return address */
	__u64 recv;   /* first argument register: the receiver */
	__u64 key;    /* an argument that differs between calls: the query, the command */
};

/*
 * db_reentered reports whether entry e is the restart (after stack growth
 * or preemption) of the call in progress that entered as prev.
 */
static __always_inline int db_reentered(struct db_entry *prev, struct db_entry *e)
{
	return prev->caller == e->caller && prev->recv == e->recv && prev->key == e->key;
}

/*
 * db_begin fills the identity of ev, a new span of the goroutine g started
 * now: a child of g's active span, if any.
 */
static __always_inline void db_begin(struct db_event *ev, struct goroutine *g, __u8 op)
{
	ev->kind = event_kind;
	ev->op = op;
	ev->pid = record_tgid(g->tgid);
	ev->db_index = -1;
	ev->start_ns = bpf_ktime_get_ns();
	ev->flags = span_start(g, ev->trace_id, ev->span_id, ev->parent_span_id);
}

/*
 * The error code of a server's error response, read from the protocol
 * message the driver decodes, not from the Go error it makes of it: the
 * message's layout is the protocol's, the same in every driver version, and
 * needs no struct offset; the error value that reaches the application is
 * an interface whose dynamic type a probe could only tell by its itab. The
 * call the response arrived during, on the same goroutine (both drivers
 * read their connection synchronously), gets the code; only the code is
 * read, never the message.
 */

#ifdef DB_PG_ERRORS /* defined by the objects that read PostgreSQL errors, which get the map */

/* How much of a PostgreSQL ErrorResponse body is searched for its code (a power of two). */
#define DB_PG_SCAN 128

struct db_pg_buf {
	__u8 b[DB_PG_SCAN + 8];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct db_pg_buf);
} db_pg_scratch SEC(".maps");

/*
 * db_pg_error sets the status of ev to the SQLSTATE of the PostgreSQL
 * ErrorResponse (or NoticeResponse) body src/len: a list of fields, each a
 * type byte and a NUL-terminated string, ended by a zero byte; the code is
 * the field 'C', after the severities 'S' and 'V' (within the first
 * DB_PG_SCAN bytes). The codes of classes 00, 01 and 02 (success, warning,
 * no data: what a notice carries) are not errors and are skipped.
 */
static __always_inline void db_pg_error(struct db_event *ev, __u64 src, __s64 len)
{
	__u32 zero = 0;
	struct db_pg_buf *buf = bpf_map_lookup_elem(&db_pg_scratch, &zero);
	if (!buf)
		return;
	__builtin_memset(buf->b, 0, sizeof(buf->b));
	__u32 n = read_masked(buf->b, DB_PG_SCAN - 1, src, len);
	if (n == 0)
		return;
	int field = 1; /* at the type byte of a field */
	for (__u32 i = 0; i < DB_PG_SCAN - 1; i++) {
		if (i >= n)
			return;
		__u8 c = buf->b[i & (DB_PG_SCAN - 1)];
		if (!field) {
			field = c == 0;
			continue;
		}
		if (c == 0)
			return; /* the end of the fields */
		if (c != 'C') {
			field = 0;
			continue;
		}
		__u32 at = (i + 1) & (DB_PG_SCAN - 1);
		__u8 *code = &buf->b[at];
		if (at + 5 > n || code[0] == 0 || code[1] == 0 || code[2] == 0 || code[3] == 0 || code[4] == 0)
			return;
		if (code[0] == '0' && (code[1] == '0' || code[1] == '1' || code[1] == '2'))
			return;
		__builtin_memset(ev->status, 0, sizeof(ev->status));
		__builtin_memcpy(ev->status, code, 5);
		ev->status_kind = DB_STATUS_SQLSTATE;
		return;
	}
}
#endif /* DB_PG_ERRORS */

/*
 * db_mysql_error sets the status of ev to the error number of the MySQL
 * ERR packet data/len: 0xff, then the number as two little-endian bytes.
 */
static __always_inline void db_mysql_error(struct db_event *ev, __u64 data, __s64 len)
{
	__u8 head[3] = {};
	if (data == 0 || len < 3 || bpf_probe_read_user(head, sizeof(head), (const void *)data) != 0)
		return;
	if (head[0] != 0xff)
		return;
	__builtin_memset(ev->status, 0, sizeof(ev->status));
	ev->status[0] = head[1];
	ev->status[1] = head[2];
	ev->status_kind = DB_STATUS_NUMBER;
}

#endif /* OFFSETDB_DB_H */
