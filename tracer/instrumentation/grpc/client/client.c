//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * client.c: one event per RPC a grpc-go client makes, unary or streaming.
 *
 * Probes (either calling convention, bpf/go_abi.h; see client.go for the
 * versions of each symbol):
 *
 *   (*ClientConn).Invoke(ctx, method string, args, reply, opts...) error
 *   (grpc.Invoke before v1.8.0): client_invoke / client_invoke_pkg start the
 *       span at entry, a child of the goroutine's active span (bpf/context.h);
 *       client_invoke_return submits it at each RET with the status of the
 *       error returned.
 *   (*ClientConn).NewStream(ctx, desc, method string, opts...) (ClientStream, error)
 *   (grpc.NewClientStream before v1.8.0): client_stream / client_stream_pkg
 *       start the span; client_stream_return submits it if the stream could
 *       not be created, else keeps it by the stream's *clientStream.
 *   (*clientStream).finish(err error): client_finish submits a stream's
 *       span, the first time the stream finishes, with the status of err
 *       (nil or io.EOF: OK).
 */
#include "grpc.h"
#include "propagation.h"

/* Field offsets, rewritten at load time; OFFSET_ABSENT if absent. */
volatile const __u64 off_g_goid = OFFSET_ABSENT;          /* runtime.g.goid */
volatile const __u64 off_ClientConn_target = OFFSET_ABSENT; /* grpc.ClientConn.target */
volatile const __u64 off_wrapper_ClientStream = OFFSET_ABSENT; /* grpc.clientStreamWrapper.ClientStream, >= v1.84.0 */
volatile const __u64 off_Error_s = OFFSET_ABSENT;         /* grpc/internal/status.Error.s, >= v1.40.0 */
volatile const __u64 off_Error_e = OFFSET_ABSENT;         /* grpc/internal/status.Error.e, v1.30.0 to v1.39.x */
volatile const __u64 off_iStatus_s = OFFSET_ABSENT;       /* grpc/internal/status.Status.s, >= v1.29.0 */
volatile const __u64 off_Status_s = OFFSET_ABSENT;        /* grpc/status.Status.s, v1.3.0 to v1.28.x */
volatile const __u64 off_spb_Code = OFFSET_ABSENT;        /* genproto/googleapis/rpc/status.Status.Code */

/* Unary calls and streams being created, by goroutine. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct goroutine);
	__type(value, struct grpc_event);
} client_spans SEC(".maps");

/* Streams in progress; LRU, so that streams never finished are evicted. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct stream_ref);
	__type(value, struct grpc_event);
} stream_spans SEC(".maps");

/* Where the entry programs build an event too large for the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct grpc_event);
} client_scratch SEC(".maps");

/* start builds the span of a call of method on the ClientConn cc and keeps it by goroutine. */
static __always_inline int start(struct go_regs *regs, __u64 cc, __u64 method_ptr, __s64 method_len, __u8 streaming)
{
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	__u32 zero = 0;
	struct grpc_event *ev = bpf_map_lookup_elem(&client_scratch, &zero);
	if (!ev)
		return 0;
	__builtin_memset(ev, 0, sizeof(*ev) - GRPC_METHOD_LEN - GRPC_TARGET_LEN);
	ev->kind = event_kind;
	ev->pid = record_tgid(g.tgid);
	ev->streaming = streaming;
	ev->start_ns = bpf_ktime_get_ns();
	ev->flags = span_start(&g, ev->trace_id, ev->span_id, ev->parent_span_id);
	ev->method_len = copy_go_string(ev->method, GRPC_METHOD_LEN, method_ptr, method_len);
	__u64 a;
	if ((a = field_addr(cc, off_ClientConn_target)))
		ev->target_len = read_go_string(ev->target, GRPC_TARGET_LEN, a);
	bpf_map_update_elem(&client_spans, &g, ev, BPF_ANY);
	return 0;
}

/*
 * set_error_status fills the status of ev from the error whose data word is
 * p (its dynamic type is the status error of the traced grpc-go version).
 */
static __always_inline void set_error_status(struct grpc_event *ev, __u64 p)
{
	__u64 spb = 0;
	int ok = 0;
	if (off_Error_s != OFFSET_ABSENT) { /* >= v1.40.0: *Error{s *Status{s *spb.Status}} */
		__u64 st = 0;
		ok = read_go_ptr(field_addr(p, off_Error_s), &st) && read_go_ptr(field_addr(st, off_iStatus_s), &spb);
	} else if (off_Error_e != OFFSET_ABSENT) { /* v1.30.0 to v1.39.x: *Error{e *spb.Status} */
		ok = read_go_ptr(field_addr(p, off_Error_e), &spb);
	} else if (off_iStatus_s != OFFSET_ABSENT || off_Status_s != OFFSET_ABSENT) {
		/* v1.3.0 to v1.29.x: the error is the *spb.Status itself. */
		spb = p;
		ok = 1;
	}
	__u32 code = 0;
	if (ok && spb_code(spb, off_spb_Code, &code)) {
		ev->status_state = GRPC_STATUS_SET;
		ev->status = code;
	} else {
		ev->status_state = GRPC_STATUS_ERROR;
	}
}

/*
 * end_call submits the span of a call that ended with the error whose data
 * word is err (0: nil), or with io.EOF when eof: both are status OK.
 */
static __always_inline void end_call(struct grpc_event *ev, __u64 err, int eof)
{
	ev->end_ns = bpf_ktime_get_ns();
	if (err == 0 || eof) {
		ev->status_state = GRPC_STATUS_SET;
		ev->status = 0;
	} else {
		set_error_status(ev, err);
	}
	submit(ev, sizeof(*ev));
}

SEC("uprobe/grpc_ClientConn_Invoke")
int client_invoke(void *ctx)
{
	struct go_regs *regs = ctx;
	return start(regs, GO_REG1(regs), GO_REG4(regs), (__s64)GO_REG5(regs), 0);
}

SEC("uprobe/grpc_Invoke")
int client_invoke_pkg(void *ctx)
{
	struct go_regs *regs = ctx;
	return start(regs, GO_REG9(regs), GO_REG3(regs), (__s64)GO_REG4(regs), 0);
}

SEC("uprobe/grpc_ClientConn_Invoke_return")
int client_invoke_return(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	struct grpc_event *ev = bpf_map_lookup_elem(&client_spans, &g);
	if (!ev) {
		count_lost(LOST_IN_FLIGHT);
		return 0;
	}
	end_call(ev, GO_RESULT2(regs), 0); /* the error's data word */
	bpf_map_delete_elem(&client_spans, &g);
	return 0;
}

SEC("uprobe/grpc_ClientConn_NewStream")
int client_stream(void *ctx)
{
	struct go_regs *regs = ctx;
	return start(regs, GO_REG1(regs), GO_REG5(regs), (__s64)GO_REG6(regs), 1);
}

SEC("uprobe/grpc_NewClientStream")
int client_stream_pkg(void *ctx)
{
	struct go_regs *regs = ctx;
	return start(regs, GO_REG4(regs), GO_REG5(regs), (__s64)GO_REG6(regs), 1);
}

SEC("uprobe/grpc_ClientConn_NewStream_return")
int client_stream_return(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	struct grpc_event *ev = bpf_map_lookup_elem(&client_spans, &g);
	if (!ev)
		return 0;
	__u64 stream = GO_RESULT2(regs); /* data word of the ClientStream */
	if (GO_RESULT3(regs) != 0 || stream == 0) { /* not created: the span ends here */
		end_call(ev, GO_RESULT4(regs) ? GO_RESULT4(regs) : 1, 0); /* the error's data word */
		bpf_map_delete_elem(&client_spans, &g);
		return 0;
	}
	if (off_wrapper_ClientStream != OFFSET_ABSENT) {
		/* >= v1.84.0: a *clientStreamWrapper; its embedded interface's data word. */
		__u64 inner = 0;
		if (!read_go_ptr(field_addr(stream, off_wrapper_ClientStream) + 8, &inner)) {
			bpf_map_delete_elem(&client_spans, &g);
			return 0;
		}
		stream = inner;
	}
	struct stream_ref ref = {.tgid = g.tgid, .stream = stream};
	bpf_map_update_elem(&stream_spans, &ref, ev, BPF_ANY);
	bpf_map_delete_elem(&client_spans, &g);
	return 0;
}

/* is_eof reports whether the error whose data word is p is io.EOF: an *errors.errorString "EOF". */
static __always_inline int is_eof(__u64 p)
{
	struct go_string s = {};
	if (bpf_probe_read_user(&s, sizeof(s), (const void *)p) != 0 || s.len != 3 || s.ptr == 0)
		return 0;
	__u8 b[3] = {};
	if (bpf_probe_read_user(b, sizeof(b), (const void *)s.ptr) != 0)
		return 0;
	return b[0] == 'E' && b[1] == 'O' && b[2] == 'F';
}

SEC("uprobe/grpc_clientStream_finish")
int client_finish(void *ctx)
{
	struct go_regs *regs = ctx;
	struct stream_ref ref = {.tgid = bpf_get_current_pid_tgid() >> 32, .stream = GO_REG1(regs)};
	struct grpc_event *ev = bpf_map_lookup_elem(&stream_spans, &ref);
	if (!ev)
		return 0; /* a unary call's stream, or finished before */
	__u64 err = GO_REG3(regs); /* data word of err */
	end_call(ev, err, err != 0 && is_eof(err));
	bpf_map_delete_elem(&stream_spans, &ref);
	return 0;
}

/*
 * Outgoing trace context (HTTP/2). The writer (tracer/propagation) appends
 * a traceparent header field to a call's HEADERS frame as it leaves the
 * process; these programs tell it which frame is whose:
 *
 *   (*http2Client).createHeaderFields(ctx, callHdr) ([]hpack.HeaderField, error)
 *       runs on the calling goroutine, inside Invoke or NewStream:
 *       client_header_fields keys the call's context by the slice it returns;
 *   (*loopyWriter).writeHeader(streamID uint32, endStream bool, hf []hpack.HeaderField, onWrite func()) error
 *       runs on the connection's writer goroutine: client_write_header
 *       finds the context by the same slice and lists it for the thread,
 *       by stream ID (bpf/propagation.h, outgoing_h2).
 */

/* Set at load time when the writer runs (see the net/http client). */
volatile const __u8 context_writer = 0;

/* An hpack.HeaderField: Name, Value string; Sensitive bool (40 bytes on 64-bit). */
#define HEADER_FIELD_SIZE 40

struct header_fields_ref {
	__u32 tgid;
	__u32 pad;
	__u64 ptr; /* data pointer of the []hpack.HeaderField */
};

/* Calls whose header fields are built but not yet written. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct header_fields_ref);
	__type(value, struct h2_stream);
} header_fields SEC(".maps");

/* Where client_write_header builds a thread's first list. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct h2_pending);
} pending_scratch SEC(".maps");

/* is_traceparent reports whether the Go string (ptr, len) is "traceparent". */
static __always_inline int is_traceparent(__u64 ptr, __s64 len)
{
	const char want[] = "traceparent";
	char buf[12] = {};
	if (len != 11 || bpf_probe_read_user(buf, 11, (const void *)ptr) != 0)
		return 0;
#pragma unroll
	for (int i = 0; i < 11; i++)
		if (buf[i] != want[i])
			return 0;
	return 1;
}

SEC("uprobe/grpc_http2Client_createHeaderFields_return")
int client_header_fields(void *ctx)
{
	struct go_regs *regs = ctx;
	if (!propagate_tracecontext || !context_writer)
		return 0;
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	struct grpc_event *ev = bpf_map_lookup_elem(&client_spans, &g);
	if (!ev)
		return 0;
	__u64 ptr = GO_RESULT1(regs);
	__s64 n = (__s64)GO_RESULT2(regs);
	if (ptr == 0 || n <= 0)
		return 0;
	/* Metadata with the application's own traceparent (otelgrpc) is left alone. */
	for (int i = 0; i < 32; i++) {
		if (i >= n)
			break;
		struct go_string name = {};
		if (bpf_probe_read_user(&name, sizeof(name), (const void *)(ptr + (__u64)i * HEADER_FIELD_SIZE)) != 0)
			break;
		if (is_traceparent(name.ptr, name.len)) {
			context_count(CONTEXT_APP_SET);
			return 0;
		}
	}
	struct h2_stream st = {};
	__builtin_memcpy(st.trace_id, ev->trace_id, sizeof(st.trace_id));
	__builtin_memcpy(st.span_id, ev->span_id, sizeof(st.span_id));
	st.flags = ev->flags;
	struct header_fields_ref ref = {.tgid = g.tgid, .ptr = ptr};
	bpf_map_update_elem(&header_fields, &ref, &st, BPF_ANY);
	__u8 one = 1;
	bpf_map_update_elem(&traced_processes, &g.tgid, &one, BPF_ANY);
	return 0;
}

SEC("uprobe/grpc_loopyWriter_writeHeader")
int client_write_header(void *ctx)
{
	struct go_regs *regs = ctx;
	__u64 id = bpf_get_current_pid_tgid();
	/*
	 * hf: the 4th register (streamID and endStream take one each), but
	 * the 3rd stack word, where they share the 2nd (uint32 at 8, bool at
	 * 12, hf aligned to 16).
	 */
	struct header_fields_ref ref = {.tgid = id >> 32, .ptr = go_stack_abi ? GO_REG3(regs) : GO_REG4(regs)};
	struct h2_stream *st = bpf_map_lookup_elem(&header_fields, &ref);
	if (!st)
		return 0; /* a server's response headers, or a call without context */
	struct h2_pending *p = bpf_map_lookup_elem(&outgoing_h2, &id);
	if (!p) {
		__u32 zero = 0;
		struct h2_pending *z = bpf_map_lookup_elem(&pending_scratch, &zero);
		if (!z)
			return 0;
		__builtin_memset(z, 0, sizeof(*z));
		bpf_map_update_elem(&outgoing_h2, &id, z, BPF_NOEXIST);
		p = bpf_map_lookup_elem(&outgoing_h2, &id);
		if (!p)
			return 0;
	}
	/* A free slot, else the oldest. */
	int slot = 0;
	__u64 oldest = ~0ULL;
	for (int i = 0; i < H2_PENDING; i++) {
		if (p->streams[i].stream_id == 0) {
			slot = i;
			break;
		}
		if (p->streams[i].queued_ns < oldest) {
			oldest = p->streams[i].queued_ns;
			slot = i;
		}
	}
	if (slot < 0 || slot >= H2_PENDING)
		return 0;
	struct h2_stream *dst = &p->streams[slot];
	__builtin_memcpy(dst->trace_id, st->trace_id, sizeof(dst->trace_id));
	__builtin_memcpy(dst->span_id, st->span_id, sizeof(dst->span_id));
	dst->flags = st->flags;
	dst->queued_ns = bpf_ktime_get_ns();
	dst->stream_id = (__u32)GO_REG2(regs);
	dst->conn = GO_REG1(regs);
	struct h2_stream_ref sref = {.tgid = id >> 32, .stream_id = dst->stream_id, .conn = dst->conn};
	bpf_map_update_elem(&outgoing_h2_streams, &sref, dst, BPF_ANY);
	struct h2_sid_ref sid = {.tgid = id >> 32, .stream_id = dst->stream_id};
	struct h2_sid_owner owner = {.conn = dst->conn, .queued_ns = dst->queued_ns};
	struct h2_sid_owner *prev = bpf_map_lookup_elem(&outgoing_h2_sids, &sid);
	if (prev && prev->conn != owner.conn && owner.queued_ns - prev->queued_ns < 1000000000ULL)
		owner.ambiguous = 1;
	bpf_map_update_elem(&outgoing_h2_sids, &sid, &owner, BPF_ANY);
	bpf_map_delete_elem(&header_fields, &ref);
	return 0;
}
