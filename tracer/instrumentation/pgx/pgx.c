//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * pgx.c: one event per query and exec a pgx v5 connection makes, through
 * pgx.Conn or a pgxpool.Pool (whose calls go through pgx.Conn), and
 * through pgx's database/sql driver (stdlib), where the database/sql span
 * is the parent.
 *
 * Probes (register ABI; the signatures have not changed in v5):
 *
 *   (*Conn).Query(ctx, sql string, args ...any) (Rows, error)
 *   (*Conn).Exec(ctx, sql string, arguments ...any) (pgconn.CommandTag, error)
 *       pgx_query / pgx_exec start the span at entry, a child of the
 *       goroutine's active span, with the SQL text and the server from the
 *       connection's config; pgx_return submits it at each RET with the
 *       error returned (the third result word: Rows and CommandTag are two
 *       words each). A call made while another is in progress on the
 *       goroutine (from a QueryTracer or a hook that queries) counts a
 *       level and has no span of its own. Rows are read after Query
 *       returns: the span does not cover them.
 *   (*Conn).CopyFrom(ctx, tableName Identifier, columnNames []string, rowSrc) (int64, error)
 *       pgx_copy / pgx_copy_return: one span per COPY, with the table (the
 *       Identifier's last part) in place of the text; the rows are never
 *       read.
 *   (*Conn).SendBatch(ctx, b *Batch) BatchResults
 *       pgx_batch / pgx_batch_return: one span per batch (pgx_batch says
 *       what it reads). The queries run while SendBatch sends them
 *       (pipelined with their prepares); their results are read after it
 *       returns, through the BatchResults: the span ends at the return, and
 *       is failed when the server answered with an error while it ran.
 *   (*pgproto3.ErrorResponse).Decode(src []byte) error
 *       pgx_error: the server's error response, decoded on the goroutine of
 *       the call it answers, gives that call's span its SQLSTATE
 *       (db_pg_error; the message is not read). A response decoded while no
 *       call is in progress (an error read with the rows, after Query
 *       returned) gives none.
 */
#define DB_PG_ERRORS
#include "db.h"

/* Field offsets, rewritten at load time; OFFSET_ABSENT if absent. */
volatile const __u64 off_g_goid = OFFSET_ABSENT;          /* runtime.g.goid */
volatile const __u64 off_Conn_pgConn = OFFSET_ABSENT;     /* pgx/v5.Conn.pgConn */
volatile const __u64 off_PgConn_config = OFFSET_ABSENT;   /* pgx/v5/pgconn.PgConn.config */
volatile const __u64 off_Config_Host = OFFSET_ABSENT;     /* pgx/v5/pgconn.Config.Host */
volatile const __u64 off_Config_Port = OFFSET_ABSENT;     /* pgx/v5/pgconn.Config.Port */
volatile const __u64 off_Config_Database = OFFSET_ABSENT; /* pgx/v5/pgconn.Config.Database */
/* A batch's queries: exported from v5.5.3, unexported before; one of each pair is absent. */
volatile const __u64 off_Batch_QueuedQueries = OFFSET_ABSENT; /* pgx/v5.Batch.QueuedQueries */
volatile const __u64 off_Batch_queuedQueriesOld = OFFSET_ABSENT; /* pgx/v5.Batch.queuedQueries */
volatile const __u64 off_QueuedQuery_SQL = OFFSET_ABSENT;     /* pgx/v5.QueuedQuery.SQL */
volatile const __u64 off_QueuedQuery_query = OFFSET_ABSENT;   /* pgx/v5.QueuedQuery.query */

struct pgx_call {
	__u32 depth;
	__u32 pad;
	struct db_entry entry; /* see db_reentered */
	struct db_event ev;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct goroutine);
	__type(value, struct pgx_call);
} pgx_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pgx_call);
} pgx_scratch SEC(".maps");

/* read_string copies the Go string whose header is at addr (0: none) into dst (mask+1 bytes). */
static __always_inline __u8 read_string(void *dst, __u32 mask, __u64 addr)
{
	struct go_string s = {};
	if (addr == 0 || bpf_probe_read_user(&s, sizeof(s), (const void *)addr) != 0)
		return 0;
	return read_masked(dst, mask, s.ptr, s.len);
}

/*
 * prepare builds, in the scratch record, the span of a call of kind op
 * whose text (the SQL, or CopyFrom's table) is the Go string
 * text/text_len, and returns it with its goroutine in *gp; 0 when the
 * call has no span of its own (a restart, or nested in one in progress).
 */
static __always_inline struct pgx_call *prepare(struct go_regs *regs, struct goroutine *gp, __u8 op, __u64 key, __u64 text, __s64 text_len)
{
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	*gp = g;
	struct db_entry e = {.caller = go_caller(regs), .recv = GO_REG1(regs), .key = key};
	struct pgx_call *outer = bpf_map_lookup_elem(&pgx_calls, &g);
	if (outer) {
		/* The same call started again (stack growth, preemption), or a nested one. */
		if (!db_reentered(&outer->entry, &e))
			__sync_fetch_and_add(&outer->depth, 1);
		return 0;
	}
	__u32 zero = 0;
	struct pgx_call *c = bpf_map_lookup_elem(&pgx_scratch, &zero);
	if (!c)
		return 0;
	__builtin_memset(c, 0, sizeof(*c));
	c->depth = 1;
	c->entry = e;
	db_begin(&c->ev, &g, op);
	db_query(&c->ev, text, text_len);
	__u64 pg = 0, cfg = 0;
	if (read_go_ptr(field_addr(GO_REG1(regs), off_Conn_pgConn), &pg) && read_go_ptr(field_addr(pg, off_PgConn_config), &cfg)) {
		c->ev.addr_len = read_string(c->ev.addr, DB_ADDR_LEN - 1, field_addr(cfg, off_Config_Host));
		c->ev.namespace_len = read_string(c->ev.namespace, DB_NAMESPACE_LEN - 1, field_addr(cfg, off_Config_Database));
		__u64 p = field_addr(cfg, off_Config_Port);
		if (p)
			bpf_probe_read_user(&c->ev.port, sizeof(c->ev.port), (const void *)p);
	}
	return c;
}

/*
 * start keeps, by goroutine, the span of a call of kind op whose text
 * (the SQL, or CopyFrom's table) is the Go string text/text_len.
 */
static __always_inline int start(struct go_regs *regs, __u8 op, __u64 key, __u64 text, __s64 text_len)
{
	struct goroutine g;
	struct pgx_call *c = prepare(regs, &g, op, key, text, text_len);
	if (c)
		bpf_map_update_elem(&pgx_calls, &g, c, BPF_ANY);
	return 0;
}

SEC("uprobe/pgx_Conn_Query")
int pgx_query(void *ctx)
{
	struct go_regs *regs = ctx;
	return start(regs, DB_OP_PGX_QUERY, GO_REG4(regs), GO_REG4(regs), (__s64)GO_REG5(regs)); /* the SQL text */
}

SEC("uprobe/pgx_Conn_Exec")
int pgx_exec(void *ctx)
{
	struct go_regs *regs = ctx;
	return start(regs, DB_OP_PGX_EXEC, GO_REG4(regs), GO_REG4(regs), (__s64)GO_REG5(regs));
}

/*
 * CopyFrom(ctx, tableName Identifier, columnNames []string, rowSrc): the
 * table is the last part of the Identifier ([]string: schema, table).
 */
SEC("uprobe/pgx_Conn_CopyFrom")
int pgx_copy(void *ctx)
{
	struct go_regs *regs = ctx;
	__u64 parts = GO_REG4(regs);
	__s64 n = (__s64)GO_REG5(regs);
	struct go_string t = {};
	if (parts != 0 && n > 0 && n < 16)
		bpf_probe_read_user(&t, sizeof(t), (const void *)(parts + (__u64)(n - 1) * sizeof(t)));
	return start(regs, DB_OP_PGX_COPY, parts, t.ptr, t.len);
}

/* queued_sql reads the SQL text of the *QueuedQuery at addr (a pointer to one) into *s. */
static __always_inline int queued_sql(__u64 addr, struct go_string *s)
{
	__u64 qq = 0, off = off_QueuedQuery_SQL != OFFSET_ABSENT ? off_QueuedQuery_SQL : off_QueuedQuery_query;
	if (!read_go_ptr(addr, &qq))
		return 0;
	__u64 a = field_addr(qq, off);
	return a != 0 && bpf_probe_read_user(s, sizeof(*s), (const void *)a) == 0;
}

/*
 * SendBatch(ctx, b *Batch) BatchResults: one span for the batch, with the
 * first query's text, the number of queries, the start of the first
 * DB_MAX_CMDS texts (their operations) and whether every text is the
 * first's string (same pointer and length: checked for batches of up to
 * DB_MAX_CMDS queries). Arguments are never read.
 */
SEC("uprobe/pgx_Conn_SendBatch")
int pgx_batch(void *ctx)
{
	struct go_regs *regs = ctx;
	__u64 b = GO_REG4(regs);
	__u64 off = off_Batch_QueuedQueries != OFFSET_ABSENT ? off_Batch_QueuedQueries : off_Batch_queuedQueriesOld;
	struct go_slice qs = {};
	__u64 a = field_addr(b, off);
	if (a == 0 || bpf_probe_read_user(&qs, sizeof(qs), (const void *)a) != 0 || qs.len < 0)
		qs.len = 0;
	struct go_string first = {};
	if (qs.len > 0)
		queued_sql(qs.ptr, &first);
	struct goroutine g;
	struct pgx_call *c = prepare(regs, &g, DB_OP_PGX_BATCH, b, first.ptr, first.len);
	if (!c)
		return 0;
	c->ev.ncmds = qs.len > 255 ? 255 : (__u8)qs.len;
	c->ev.same_text = qs.len > 0 && qs.len <= DB_MAX_CMDS && first.ptr != 0;
	for (__u32 i = 0; i < DB_MAX_CMDS; i++) {
		if ((__s64)i >= qs.len)
			break;
		struct go_string t = {};
		if (!queued_sql(qs.ptr + (__u64)i * 8, &t)) {
			c->ev.same_text = 0;
			continue;
		}
		if (t.ptr != first.ptr || t.len != first.len)
			c->ev.same_text = 0;
		c->ev.cmd_len[i] = read_masked(c->ev.cmds[i], DB_CMD_LEN - 1, t.ptr, t.len);
	}
	bpf_map_update_elem(&pgx_calls, &g, c, BPF_ANY);
	return 0;
}

/*
 * end submits the goroutine's call, failed if the error's itab word is not
 * nil or, for a batch (whose errors SendBatch leaves in its results), if
 * the server answered with an error while it ran.
 */
static __always_inline int end(struct go_regs *regs, __u64 err_itab)
{
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	struct pgx_call *c = bpf_map_lookup_elem(&pgx_calls, &g);
	if (!c) {
		count_lost(LOST_IN_FLIGHT);
		return 0;
	}
	if (c->depth > 1) {
		__sync_fetch_and_add(&c->depth, -1);
		return 0;
	}
	c->ev.end_ns = bpf_ktime_get_ns();
	c->ev.failed = err_itab != 0 || (c->ev.op == DB_OP_PGX_BATCH && c->ev.status_kind != DB_STATUS_NONE) ? DB_FAILED : DB_OK;
	submit(&c->ev, sizeof(c->ev));
	bpf_map_delete_elem(&pgx_calls, &g);
	return 0;
}

/* (Rows, error) and (CommandTag, error): the error's itab is the third word. */
SEC("uprobe/pgx_return")
int pgx_return(void *ctx)
{
	struct go_regs *regs = ctx;
	return end(regs, GO_RESULT3(regs));
}

/* SendBatch's BatchResults: no error (see end). */
SEC("uprobe/pgx_batch_return")
int pgx_batch_return(void *ctx)
{
	return end(ctx, 0);
}

/* CopyFrom's (int64, error): the error's itab is the second word. */
SEC("uprobe/pgx_copy_return")
int pgx_copy_return(void *ctx)
{
	struct go_regs *regs = ctx;
	return end(regs, GO_RESULT2(regs));
}

/* ErrorResponse.Decode(src []byte): src is the second and third words. */
SEC("uprobe/pgx_ErrorResponse_Decode")
int pgx_error(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	struct pgx_call *c = bpf_map_lookup_elem(&pgx_calls, &g);
	if (c)
		db_pg_error(&c->ev, GO_REG2(regs), (__s64)GO_REG3(regs));
	return 0;
}
