//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * goredis.c: one event per command and per pipeline a go-redis v9 client
 * sends, with the command names and argument counts, never the values.
 *
 * Probes (register ABI; the signatures have not changed in v9):
 *
 *   (*baseClient).process(ctx, cmd Cmder) error (before v9.23.0)
 *   (*baseClient).processStartingAt(ctx, cmd Cmder, startAttempt int, start time.Time) error (v9.23.0+)
 *   (*baseClient).processPipeline(ctx, cmds []Cmder) error
 *   (*baseClient).processTxPipeline(ctx, cmds []Cmder) error
 *       redis_command / redis_pipeline start the span at entry, a child
 *       of the goroutine's active span, with the server from the client's
 *       Options; redis_return submits it at each RET with the error
 *       returned (redis.Nil, a missing key, is no failure). A call made
 *       while another is in progress on the goroutine (the HELLO, AUTH and
 *       SELECT of a new connection, made by a nested client) only counts
 *       a level: the outer call's span covers it.
 *   proto.(*Writer).WriteArgs(args []interface{}) error
 *       redis_write_args names, in the goroutine's outermost call, each
 *       command it writes: args[0], a string, and len(args).
 */
#include "db.h"

/* Field offsets, rewritten at load time; OFFSET_ABSENT if absent. */
volatile const __u64 off_g_goid = OFFSET_ABSENT;          /* runtime.g.goid */
volatile const __u64 off_baseClient_opt = OFFSET_ABSENT;  /* go-redis/v9.baseClient.opt */
volatile const __u64 off_Options_Addr = OFFSET_ABSENT;    /* go-redis/v9.Options.Addr */
volatile const __u64 off_Options_DB = OFFSET_ABSENT;      /* go-redis/v9.Options.DB */

/* A call in progress on a goroutine, and how many calls deep it is. */
struct redis_call {
	__u32 depth;
	__u32 pad;
	struct db_entry entry; /* see db_reentered */
	struct db_event ev;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct goroutine);
	__type(value, struct redis_call);
} redis_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct redis_call);
} redis_scratch SEC(".maps");

static __always_inline int start(struct go_regs *regs, __u8 op, __u64 key)
{
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	struct db_entry e = {.caller = go_caller(regs), .recv = GO_REG1(regs), .key = key};
	struct redis_call *outer = bpf_map_lookup_elem(&redis_calls, &g);
	if (outer) {
		/* The same call started again (stack growth, preemption), or a nested one. */
		if (!db_reentered(&outer->entry, &e))
			__sync_fetch_and_add(&outer->depth, 1);
		return 0;
	}
	__u32 zero = 0;
	struct redis_call *c = bpf_map_lookup_elem(&redis_scratch, &zero);
	if (!c)
		return 0;
	__builtin_memset(c, 0, sizeof(*c));
	c->depth = 1;
	c->entry = e;
	db_begin(&c->ev, &g, op);
	__u64 opt = 0;
	if (read_go_ptr(field_addr(GO_REG1(regs), off_baseClient_opt), &opt)) {
		__u64 a = field_addr(opt, off_Options_Addr);
		if (a) {
			struct go_string s = {};
			if (bpf_probe_read_user(&s, sizeof(s), (const void *)a) == 0)
				c->ev.addr_len = read_masked(c->ev.addr, DB_ADDR_LEN - 1, s.ptr, s.len);
		}
		__u64 db = 0;
		__u64 d = field_addr(opt, off_Options_DB);
		if (d && bpf_probe_read_user(&db, sizeof(db), (const void *)d) == 0 && (__s64)db >= 0 && db < 0x7fffffff)
			c->ev.db_index = (__s32)db;
	}
	bpf_map_update_elem(&redis_calls, &g, c, BPF_ANY);
	return 0;
}

SEC("uprobe/goredis_baseClient_process")
int redis_command(void *ctx)
{
	return start(ctx, DB_OP_REDIS_CMD, GO_REG5((struct go_regs *)ctx)); /* the Cmder's data word */
}

SEC("uprobe/goredis_baseClient_processPipeline")
int redis_pipeline(void *ctx)
{
	return start(ctx, DB_OP_REDIS_PIPELINE, GO_REG4((struct go_regs *)ctx)); /* the []Cmder's array */
}

/* is_nil reports whether the error whose data word is p is redis.Nil: the RedisError string "redis: nil". */
static __always_inline int is_nil(__u64 p)
{
	struct go_string s = {};
	if (p == 0 || bpf_probe_read_user(&s, sizeof(s), (const void *)p) != 0 || s.len != 10 || s.ptr == 0)
		return 0;
	char b[10] = {};
	if (bpf_probe_read_user(b, sizeof(b), (const void *)s.ptr) != 0)
		return 0;
	const char want[10] = "redis: nil";
#pragma unroll
	for (int i = 0; i < 10; i++)
		if (b[i] != want[i])
			return 0;
	return 1;
}

SEC("uprobe/goredis_return")
int redis_return(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	struct redis_call *c = bpf_map_lookup_elem(&redis_calls, &g);
	if (!c) {
		count_lost(LOST_IN_FLIGHT);
		return 0;
	}
	if (c->depth > 1) {
		__sync_fetch_and_add(&c->depth, -1);
		return 0;
	}
	c->ev.end_ns = bpf_ktime_get_ns();
	if (GO_RESULT1(regs) != 0) /* the error's itab */
		c->ev.failed = is_nil(GO_RESULT2(regs)) ? DB_NOT_FOUND : DB_FAILED;
	submit(&c->ev, sizeof(c->ev));
	bpf_map_delete_elem(&redis_calls, &g);
	return 0;
}

SEC("uprobe/goredis_proto_Writer_WriteArgs")
int redis_write_args(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	struct redis_call *c = bpf_map_lookup_elem(&redis_calls, &g);
	if (!c || c->depth != 1)
		return 0;
	__u8 n = c->ev.ncmds;
	if (c->ev.op == DB_OP_REDIS_CMD && n > 0)
		return 0; /* a retry writes the command again */
	if (n == 255)
		return 0;
	c->ev.ncmds = n + 1;
	if (n >= DB_MAX_CMDS)
		return 0;
	__u64 args = GO_REG2(regs);
	__s64 argc = (__s64)GO_REG3(regs);
	if (args == 0 || argc <= 0)
		return 0;
	c->ev.cmd_argc[n & (DB_MAX_CMDS - 1)] = argc > 254 ? 255 : (__u8)argc;
	/* args[0] is an interface{} holding a string: its data word points to the string header. */
	__u64 data = 0;
	struct go_string s = {};
	if (!read_go_ptr(args + 8, &data) || bpf_probe_read_user(&s, sizeof(s), (const void *)data) != 0)
		return 0;
	c->ev.cmd_len[n & (DB_MAX_CMDS - 1)] = read_masked(c->ev.cmds[n & (DB_MAX_CMDS - 1)], DB_CMD_LEN - 1, s.ptr, s.len);
	return 0;
}
