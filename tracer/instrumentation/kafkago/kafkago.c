//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * kafkago.c: one event per batch a segmentio/kafka-go Writer sends and per
 * message a Reader fetches.
 *
 * Probes (register ABI; the signatures are those of every release from
 * v0.1.0):
 *
 *   (*Writer).WriteMessages(ctx, msgs ...Message) error
 *       kafka_produce starts a producer span at entry, a child of the
 *       goroutine's active span, with the Writer's topic (Writer.Topic from
 *       v0.4.1, its config's before; else the first message's) and the
 *       message count; with a writer of trace context (context_writer),
 *       it lists the fingerprint of each message (kafka_outgoing,
 *       bpf/propagation.h) with the span's context, and the writer adds a
 *       traceparent header to the records of the Produce request that
 *       carries them (tracer/propagation/writer.c);
 *       kafka_produce_return submits it at each RET with the error.
 *   (*Reader).FetchMessage(ctx) (Message, error)
 *       (ReadMessage calls it.) kafka_fetch starts a consumer span at
 *       entry with the reader's group and topic; kafka_fetch_return reads
 *       the Message returned, which the register ABI leaves on the stack
 *       (19 words do not fit in the result registers; the error does, in
 *       the first two), at 8(SP) on both amd64 and arm64, as there are no
 *       stack-assigned arguments: topic, partition, offset, and a valid
 *       W3C traceparent header, which the span then continues.
 */
#include "runtime.h"
#include "context.h"
#include "propagation.h"

/* Whether a socket-layer writer of trace context runs (tracer/propagation); set at load time. */
volatile const __u8 context_writer = 0;

/* Field offsets, rewritten at load time; OFFSET_ABSENT if absent. */
volatile const __u64 off_g_goid = OFFSET_ABSENT;            /* runtime.g.goid */
volatile const __u64 off_Message_Topic = OFFSET_ABSENT;     /* kafka-go.Message.Topic */
volatile const __u64 off_Message_Partition = OFFSET_ABSENT; /* kafka-go.Message.Partition */
volatile const __u64 off_Message_Offset = OFFSET_ABSENT;    /* kafka-go.Message.Offset */
volatile const __u64 off_Message_Headers = OFFSET_ABSENT;   /* kafka-go.Message.Headers, from v0.2.0 */
volatile const __u64 off_Message_Key = OFFSET_ABSENT;       /* kafka-go.Message.Key */
volatile const __u64 off_Message_Value = OFFSET_ABSENT;     /* kafka-go.Message.Value */
volatile const __u64 off_Message_Time = OFFSET_ABSENT;      /* kafka-go.Message.Time, the last field from v0.2.1 */
volatile const __u64 off_Writer_Topic = OFFSET_ABSENT;      /* kafka-go.Writer.Topic, from v0.4.1 */
volatile const __u64 off_Writer_config_Topic = OFFSET_ABSENT; /* kafka-go.Writer.config.Topic, before v0.4.1 */
volatile const __u64 off_Reader_GroupID = OFFSET_ABSENT;    /* kafka-go.Reader.config.GroupID */
volatile const __u64 off_Reader_Topic = OFFSET_ABSENT;      /* kafka-go.Reader.config.Topic */

#define KAFKA_TOPIC_LEN 128
#define KAFKA_GROUP_LEN 64

/* op of struct kafka_event. */
#define KAFKA_OP_SEND 1
#define KAFKA_OP_RECEIVE 2

/*
 * A Header is {Key string; Value []byte} in every release (protocol.Header
 * from v0.4.0, an alias): 5 words. How many headers are searched for a
 * traceparent.
 */
#define KAFKA_HEADER_SIZE 40
#define KAFKA_MAX_HEADERS 8

/* One finished send or receive. Strings are not NUL-terminated. */
struct kafka_event {
	__u8 kind;          /* event_kind of the submitting object */
	__u8 op;            /* KAFKA_OP_* */
	__u8 failed;        /* the call returned an error */
	__u8 flags;         /* W3C trace-flags of the span */
	__u8 remote_parent; /* the parent came in a traceparent header */
	__u8 topic_len;
	__u8 group_len;
	__u8 has_message;   /* receive: partition and offset are those of the message fetched */
	__u32 pid;
	__s32 partition;
	__s64 offset;
	__u64 count;        /* send: messages in the batch */
	__u64 start_ns;
	__u64 end_ns;
	__u8 trace_id[16];
	__u8 span_id[8];
	__u8 parent_span_id[8]; /* all zero for a root span */
	__u8 topic[KAFKA_TOPIC_LEN];
	__u8 group[KAFKA_GROUP_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct goroutine);
	__type(value, struct kafka_event);
} kafka_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kafka_event);
} kafka_scratch SEC(".maps");

/* read_masked copies min(len, mask) bytes at ptr to dst (mask+1 bytes); mask is 2^n-1. */
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

/* read_string copies the Go string whose header is at addr (0: none) into dst (mask+1 bytes). */
static __always_inline __u8 read_string(void *dst, __u32 mask, __u64 addr)
{
	struct go_string s = {};
	if (addr == 0 || bpf_probe_read_user(&s, sizeof(s), (const void *)addr) != 0)
		return 0;
	return read_masked(dst, mask, s.ptr, s.len);
}

static __always_inline struct kafka_event *start(struct go_regs *regs, struct goroutine *g, __u8 op)
{
	if (!current_goroutine(regs, off_g_goid, g))
		return 0;
	__u32 zero = 0;
	struct kafka_event *ev = bpf_map_lookup_elem(&kafka_scratch, &zero);
	if (!ev)
		return 0;
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->kind = event_kind;
	ev->op = op;
	ev->pid = record_tgid(g->tgid);
	ev->start_ns = bpf_ktime_get_ns();
	ev->flags = span_start(g, ev->trace_id, ev->span_id, ev->parent_span_id);
	return ev;
}

/* Messages of one WriteMessages call whose fingerprints are listed. */
#define KAFKA_MAX_LISTED 256

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kafka_fp_input);
} kafka_fp_scratch SEC(".maps");

struct list_walk {
	struct kafka_event *ev;
	struct kafka_fp_input *fp;
	__u64 msgs;
	__u64 stride;
	__u32 tgid;
	struct kafka_outgoing out;
};

/* read_prefix copies the first bytes (up to size, a power of two) of the []byte at addr into dst; it returns the slice's length. */
static __always_inline __u32 read_prefix(void *dst, __u32 size, __u64 addr)
{
	struct go_slice sl = {};
	if (addr == 0 || bpf_probe_read_user(&sl, sizeof(sl), (const void *)addr) != 0 || sl.len <= 0 || sl.ptr == 0)
		return 0;
	__u32 n = sl.len < size ? (__u32)sl.len : size;
	asm volatile("" : "+r"(n));
	if (n > size)
		n = size;
	if (n > 0)
		bpf_probe_read_user(dst, n, (const void *)sl.ptr);
	return sl.len > 0x7fffffff ? 0x7fffffff : (__u32)sl.len;
}

static long list_step(__u64 i, void *ctx)
{
	struct list_walk *w = ctx;
	struct kafka_fp_input *fp = w->fp;
	__u64 m = w->msgs + i * w->stride;
	__builtin_memset(fp, 0, sizeof(*fp));
	/* The message's topic, else the Writer's (a Writer's messages name none). */
	fp->topic_len = read_string(fp->topic, KAFKA_FP_TOPIC - 1, field_addr(m, off_Message_Topic));
	if (fp->topic_len == 0) {
		fp->topic_len = w->ev->topic_len & (KAFKA_FP_TOPIC - 1);
		__builtin_memcpy(fp->topic, w->ev->topic, KAFKA_FP_TOPIC);
		for (int k = 0; k < KAFKA_FP_TOPIC; k++)
			if (k >= fp->topic_len)
				fp->topic[k] = 0;
	}
	fp->key_len = read_prefix(fp->key, KAFKA_FP_KEY, field_addr(m, off_Message_Key));
	fp->value_len = read_prefix(fp->value, KAFKA_FP_VALUE, field_addr(m, off_Message_Value));
	struct kafka_fp_key k = {.tgid = w->tgid, .hash = kafka_fp_hash(fp)};
	bpf_map_update_elem(&kafka_outgoing, &k, &w->out, BPF_ANY);
	return 0;
}

/*
 * list_messages lists the fingerprint of each of the n messages at msgs
 * (a []Message's array) with ev's span context, for the writer. The
 * messages are Time's offset + 24 bytes apart: Time (a time.Time, 24
 * bytes) is Message's last field from v0.2.1 (before, only the first
 * message is listed right).
 */
static __always_inline void list_messages(struct kafka_event *ev, __u32 tgid, __u64 msgs, __s64 n)
{
	if (off_Message_Key == OFFSET_ABSENT || off_Message_Value == OFFSET_ABSENT || off_Message_Time == OFFSET_ABSENT)
		return;
	__u32 zero = 0;
	struct kafka_fp_input *fp = bpf_map_lookup_elem(&kafka_fp_scratch, &zero);
	if (!fp)
		return;
	struct list_walk w = {.ev = ev, .fp = fp, .msgs = msgs, .stride = off_Message_Time + 24, .tgid = tgid};
	__builtin_memcpy(w.out.trace_id, ev->trace_id, 16);
	__builtin_memcpy(w.out.span_id, ev->span_id, 8);
	w.out.flags = ev->flags;
	w.out.queued_ns = ev->start_ns;
	bpf_loop(n > KAFKA_MAX_LISTED ? KAFKA_MAX_LISTED : n, list_step, &w, 0);
	__u8 one = 1;
	bpf_map_update_elem(&kafka_producers, &tgid, &one, BPF_ANY);
	bpf_map_update_elem(&traced_processes, &tgid, &one, BPF_ANY);
}

SEC("uprobe/kafka_Writer_WriteMessages")
int kafka_produce(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	struct kafka_event *ev = start(regs, &g, KAFKA_OP_SEND);
	if (!ev)
		return 0;
	__u64 msgs = GO_REG4(regs);
	__s64 n = (__s64)GO_REG5(regs);
	ev->count = n > 0 ? n : 0;
	if (off_Writer_Topic != OFFSET_ABSENT)
		ev->topic_len = read_string(ev->topic, KAFKA_TOPIC_LEN - 1, field_addr(GO_REG1(regs), off_Writer_Topic));
	else if (off_Writer_config_Topic != OFFSET_ABSENT)
		ev->topic_len = read_string(ev->topic, KAFKA_TOPIC_LEN - 1, field_addr(GO_REG1(regs), off_Writer_config_Topic));
	if (ev->topic_len == 0 && n > 0)
		ev->topic_len = read_string(ev->topic, KAFKA_TOPIC_LEN - 1, field_addr(msgs, off_Message_Topic));
	bpf_map_update_elem(&kafka_calls, &g, ev, BPF_ANY);
	if (propagate_tracecontext && context_writer && n > 0)
		list_messages(ev, g.tgid, msgs, n);
	return 0;
}

/* end submits the goroutine's call; the error's itab is the first result word. */
static __always_inline struct kafka_event *end(struct go_regs *regs, struct goroutine *g)
{
	if (!current_goroutine(regs, off_g_goid, g))
		return 0;
	struct kafka_event *ev = bpf_map_lookup_elem(&kafka_calls, g);
	if (!ev) {
		count_lost(LOST_IN_FLIGHT);
		return 0;
	}
	ev->end_ns = bpf_ktime_get_ns();
	ev->failed = GO_RESULT1(regs) != 0;
	return ev;
}

SEC("uprobe/kafka_Writer_WriteMessages_return")
int kafka_produce_return(void *ctx)
{
	struct goroutine g;
	struct kafka_event *ev = end(ctx, &g);
	if (!ev)
		return 0;
	submit(ev, sizeof(*ev));
	bpf_map_delete_elem(&kafka_calls, &g);
	return 0;
}

SEC("uprobe/kafka_Reader_FetchMessage")
int kafka_fetch(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	struct kafka_event *ev = start(regs, &g, KAFKA_OP_RECEIVE);
	if (!ev)
		return 0;
	__u64 r = GO_REG1(regs);
	ev->group_len = read_string(ev->group, KAFKA_GROUP_LEN - 1, field_addr(r, off_Reader_GroupID));
	ev->topic_len = read_string(ev->topic, KAFKA_TOPIC_LEN - 1, field_addr(r, off_Reader_Topic));
	bpf_map_update_elem(&kafka_calls, &g, ev, BPF_ANY);
	return 0;
}

/* Where a header's key or a traceparent value is compared. */
struct tp_buf {
	__u8 b[64];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tp_buf);
} kafka_tp_scratch SEC(".maps");

/* continue_traceparent makes ev continue the first valid traceparent header of the headers at hdrs. */
static __always_inline void continue_traceparent(struct kafka_event *ev, __u64 hdrs, __s64 n)
{
	__u32 zero = 0;
	struct tp_buf *buf = bpf_map_lookup_elem(&kafka_tp_scratch, &zero);
	if (!buf || hdrs == 0)
		return;
	const char key[11] = "traceparent";
#pragma unroll
	for (int i = 0; i < KAFKA_MAX_HEADERS; i++) {
		if (i >= n)
			return;
		__u64 h = hdrs + (__u64)i * KAFKA_HEADER_SIZE;
		struct go_string k = {};
		if (bpf_probe_read_user(&k, sizeof(k), (const void *)h) != 0 || k.len != 11)
			continue;
		__u8 kb[11] = {};
		if (bpf_probe_read_user(kb, sizeof(kb), (const void *)k.ptr) != 0)
			continue;
		int match = 1;
#pragma unroll
		for (int j = 0; j < 11; j++)
			if (kb[j] != key[j])
				match = 0;
		if (!match)
			continue;
		struct go_slice v = {};
		if (bpf_probe_read_user(&v, sizeof(v), (const void *)(h + 16)) != 0 || v.len < TRACEPARENT_LEN || v.len > 63)
			return;
		if (bpf_probe_read_user(buf->b, TRACEPARENT_LEN, (const void *)v.ptr) != 0)
			return;
		struct span_context sc = {};
		if (!parse_traceparent(buf->b, TRACEPARENT_LEN, &sc))
			return;
		if (v.len != TRACEPARENT_LEN && buf->b[0] == '0' && buf->b[1] == '0')
			return; /* version 00 with trailing data */
		__builtin_memcpy(ev->trace_id, sc.trace_id, 16);
		__builtin_memcpy(ev->parent_span_id, sc.span_id, 8);
		ev->flags = sc.flags;
		ev->remote_parent = 1;
		return;
	}
}

SEC("uprobe/kafka_Reader_FetchMessage_return")
int kafka_fetch_return(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	struct kafka_event *ev = end(regs, &g);
	if (!ev)
		return 0;
	if (!ev->failed) {
		/*
		 * The Message result, on the stack above the return address: in
		 * the register ABI it does not fit in the result registers and no
		 * argument is on the stack; in the stack ABI it follows the
		 * arguments, the receiver and the context (24 bytes).
		 */
		__u64 msg = GO_SP(regs) + 8 + (go_stack_abi ? 24 : 0);
		__u64 a;
		if ((a = field_addr(msg, off_Message_Topic)))
			ev->topic_len = read_string(ev->topic, KAFKA_TOPIC_LEN - 1, a) ?: ev->topic_len;
		__s64 v = 0;
		if ((a = field_addr(msg, off_Message_Partition)) && bpf_probe_read_user(&v, sizeof(v), (const void *)a) == 0)
			ev->partition = (__s32)v;
		if ((a = field_addr(msg, off_Message_Offset)) && bpf_probe_read_user(&ev->offset, sizeof(ev->offset), (const void *)a) == 0)
			ev->has_message = 1;
		struct go_slice hs = {};
		if ((a = field_addr(msg, off_Message_Headers)) && bpf_probe_read_user(&hs, sizeof(hs), (const void *)a) == 0)
			continue_traceparent(ev, hs.ptr, hs.len);
	}
	submit(ev, sizeof(*ev));
	bpf_map_delete_elem(&kafka_calls, &g);
	return 0;
}
