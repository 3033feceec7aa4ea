//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * httpclient.c: one event per request sent by a net/http.Transport.
 *
 * Probes net/http.(*Transport).roundTrip, which every request of an
 * http.Client with the default or any *http.Transport goes through, once
 * per redirect hop and for HTTP/1.x and HTTP/2 alike:
 *
 *     func (t *Transport) roundTrip(req *Request) (*Response, error)
 *
 * Arguments (register ABI): t, req. Results: resp, err (itab, data).
 * client_entry runs at the function's entry and starts the span: when the
 * goroutine has an active span (bpf/context.h: a server request it is
 * handling, over HTTP or gRPC), the client span joins its trace as its
 * child; otherwise it starts a new trace. client_return runs at
 * every RET instruction and submits the event with Response.StatusCode
 * (0 when roundTrip returned no response).
 */
#include "nethttp.h"
#include "propagation.h"

/* Field offsets, rewritten at load time; OFFSET_ABSENT if absent. */
volatile const __u64 off_g_goid = OFFSET_ABSENT;               /* runtime.g.goid */
volatile const __u64 off_Request_Method = OFFSET_ABSENT;       /* net/http.Request.Method */
volatile const __u64 off_Request_URL = OFFSET_ABSENT;          /* net/http.Request.URL */
volatile const __u64 off_Request_Header = OFFSET_ABSENT;       /* net/http.Request.Header */
volatile const __u64 off_URL_Scheme = OFFSET_ABSENT;           /* net/url.URL.Scheme */
volatile const __u64 off_URL_Host = OFFSET_ABSENT;             /* net/url.URL.Host */
volatile const __u64 off_URL_Path = OFFSET_ABSENT;             /* net/url.URL.Path */
volatile const __u64 off_URL_RawQuery = OFFSET_ABSENT;         /* net/url.URL.RawQuery */
volatile const __u64 off_Response_StatusCode = OFFSET_ABSENT;  /* net/http.Response.StatusCode */

/*
 * Set at load time when a socket-layer writer (tracer/propagation) reads
 * outgoing_requests: only then are requests handed to it.
 */
volatile const __u8 context_writer = 0;

/* A request in progress, for the thread that writes it. */
struct request_ref {
	__u32 tgid;
	__u32 pad;
	__u64 req; /* *net/http.Request */
};

/*
 * The trace context of each request in progress whose bytes should carry
 * it, from client_entry to client_return; request_write hands it to the
 * writer when a persistConn's writeLoop goroutine starts writing it.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct request_ref);
	__type(value, struct outgoing_request);
} requests_to_write SEC(".maps");

/* A client request in progress: its event so far, and its *net/http.Request. */
struct client_span {
	struct http_event ev;
	__u64 req;
};

/* Client requests in progress, by goroutine; LRU like server_spans. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct goroutine);
	__type(value, struct client_span);
} client_spans SEC(".maps");

/* Where client_entry builds an event too large for the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct client_span);
} client_scratch SEC(".maps");

/* is_path_byte reports whether c appears unescaped in a request line's path. */
static __always_inline int is_path_byte(__u8 c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '/' || c == '-' || c == '.' || c == '_' || c == '~';
}

/*
 * queue_context records what the writer needs to add a traceparent for
 * ev's span to the request req, and counts the requests it cannot.
 */
static __always_inline void queue_context(struct http_event *ev, __u32 tgid, __u64 req, int app_set)
{
	if (app_set) {
		ev->context_out = CONTEXT_OUT_APP;
		context_count(CONTEXT_APP_SET);
		return;
	}
	if (ev->scheme_len == 5 && ev->scheme[0] == 'h' && ev->scheme[4] == 's') {
		ev->context_out = CONTEXT_OUT_TLS;
		context_count(CONTEXT_TLS);
		return;
	}
	struct outgoing_request o = {};
	__builtin_memcpy(o.trace_id, ev->trace_id, sizeof(o.trace_id));
	__builtin_memcpy(o.span_id, ev->span_id, sizeof(o.span_id));
	o.flags = ev->flags;
	if (ev->method_len == 0) { /* net/http sends GET for an empty Method */
		o.method[0] = 'G', o.method[1] = 'E', o.method[2] = 'T';
		o.method_len = 3;
	} else {
		__builtin_memcpy(o.method, ev->method, OUTGOING_METHOD_LEN);
		o.method_len = ev->method_len > OUTGOING_METHOD_LEN ? OUTGOING_METHOD_LEN : ev->method_len;
	}
	__u8 n = ev->path_len > OUTGOING_PATH_LEN ? OUTGOING_PATH_LEN : ev->path_len;
	__builtin_memcpy(o.path, ev->path, OUTGOING_PATH_LEN);
	o.path_len = n;
#pragma unroll
	for (int i = 0; i < OUTGOING_PATH_LEN; i++) {
		if (i < n && !is_path_byte(o.path[i]))
			o.path_len = 0;
	}
	o.req = req;
	struct request_ref ref = {.tgid = tgid, .req = req};
	bpf_map_update_elem(&requests_to_write, &ref, &o, BPF_ANY);
	__u8 one = 1;
	bpf_map_update_elem(&traced_processes, &tgid, &one, BPF_ANY);
	ev->context_out = CONTEXT_OUT_QUEUED;
}

SEC("uprobe/net_http_Transport_roundTrip")
int client_entry(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;

	__u32 zero = 0;
	struct client_span *c = bpf_map_lookup_elem(&client_scratch, &zero);
	if (!c)
		return 0;
	struct http_event *ev = &c->ev;
	reset_event(ev);
	ev->pid = record_tgid(g.tgid);
	ev->goid = g.goid;
	ev->start_ns = bpf_ktime_get_ns();

	__u64 req = GO_REG2(regs);
	c->req = req;
	__u64 a;

	/*
	 * A request that already carries a traceparent (the application's own
	 * OpenTelemetry instrumentation) is left alone, and the client span
	 * joins the trace it names, as a child of the span it names: the
	 * application's client span.
	 */
	struct span_context app = {};
	int app_set = 0;
	if (propagate_tracecontext && (a = field_addr(req, off_Request_Header))) {
		struct gomap_offsets mo;
		header_map_offsets(&mo);
		app_set = header_traceparent(read_u64(a), &mo, &app);
	}
	if (app_set) {
		__builtin_memcpy(ev->trace_id, app.trace_id, sizeof(ev->trace_id));
		__builtin_memcpy(ev->parent_span_id, app.span_id, sizeof(ev->parent_span_id));
		random_id(ev->span_id, sizeof(ev->span_id));
		ev->flags = sample(ev->trace_id, 1, app.flags);
	} else {
		ev->flags = span_start(&g, ev->trace_id, ev->span_id, ev->parent_span_id);
	}

	if ((a = field_addr(req, off_Request_Method)))
		ev->method_len = read_go_string(ev->method, METHOD_LEN, a);
	if ((a = field_addr(req, off_Request_URL)))
		read_url(ev, read_u64(a), 1, off_URL_Scheme, off_URL_Host, off_URL_Path, off_URL_RawQuery);

	if (propagate_tracecontext && context_writer)
		queue_context(ev, g.tgid, req, app_set);

	bpf_map_update_elem(&client_spans, &g, c, BPF_ANY);
	return 0;
}

/*
 * Runs at the entry of net/http.(*persistConn).roundTrip, on the calling
 * goroutine, for HTTP/1.x requests:
 *
 *     func (pc *persistConn) roundTrip(req *transportRequest) (resp *Response, err error)
 *
 * (*Transport).roundTrip may have replaced the request with a copy by then
 * (a request with a body is rewound through a copy), and the copy is what
 * the connection writes: the queued context moves to it. The copy is the
 * first field of transportRequest (an embedded *Request), at offset 0.
 */
SEC("uprobe/net_http_persistConn_roundTrip")
int conn_round_trip(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	struct client_span *c = bpf_map_lookup_elem(&client_spans, &g);
	if (!c || c->ev.context_out != CONTEXT_OUT_QUEUED)
		return 0;
	__u64 sent = read_u64(GO_REG2(regs)); /* req.Request */
	if (sent == 0 || sent == c->req)
		return 0;
	struct request_ref from = {.tgid = g.tgid, .req = c->req};
	struct outgoing_request *o = bpf_map_lookup_elem(&requests_to_write, &from);
	if (!o)
		return 0;
	struct request_ref to = {.tgid = g.tgid, .req = sent};
	o->req = sent;
	bpf_map_update_elem(&requests_to_write, &to, o, BPF_ANY);
	bpf_map_delete_elem(&requests_to_write, &from);
	c->req = sent; /* client_return forgets it by this key */
	return 0;
}

/*
 * Requests whose bytes a goroutine (a persistConn's writeLoop) has begun
 * to write, by goroutine: request_write hands them on to conn_write.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct goroutine);
	__type(value, struct outgoing_request);
} requests_writing SEC(".maps");

/*
 * Runs at the entry of net/http.(*Request).write, on the goroutine that
 * writes the request to its connection:
 *
 *     func (r *Request) write(w io.Writer, usingProxy bool, extraHeaders Header, waitForContinue func() bool) (err error)
 *
 * It passes the request's trace context to that goroutine's next
 * connection write (conn_write).
 */
SEC("uprobe/net_http_Request_write")
int request_write(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	struct request_ref ref = {.tgid = g.tgid, .req = GO_REG1(regs)};
	struct outgoing_request *o = bpf_map_lookup_elem(&requests_to_write, &ref);
	if (o)
		bpf_map_update_elem(&requests_writing, &g, o, BPF_ANY);
	return 0;
}

/*
 * Runs at the entry of net/http.persistConnWriter.Write, through which the
 * buffered request reaches the connection, on the writing goroutine:
 *
 *     func (w persistConnWriter) Write(p []byte) (n int, err error)
 *
 * From here to the write(2) the goroutine does not block, so it stays on
 * its thread unless preempted: the request is handed to the writer
 * (bpf/propagation.h) keyed by that thread, and by the connection
 * (w.pc) for a write on another thread.
 */
SEC("uprobe/net_http_persistConnWriter_Write")
int conn_write(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	struct outgoing_request *o = bpf_map_lookup_elem(&requests_writing, &g);
	if (!o)
		return 0;
	o->queued_ns = bpf_ktime_get_ns();
	o->conn = GO_REG1(regs); /* w.pc: the receiver is a one-pointer struct */
	__u64 id = bpf_get_current_pid_tgid();
	bpf_map_update_elem(&outgoing_requests, &id, o, BPF_ANY);
	struct conn_ref cref = {.tgid = g.tgid, .conn = o->conn};
	bpf_map_update_elem(&outgoing_by_conn, &cref, o, BPF_ANY);
	bpf_map_delete_elem(&requests_writing, &g);
	return 0;
}

SEC("uprobe/net_http_Transport_roundTrip_return")
int client_return(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	struct client_span *c = bpf_map_lookup_elem(&client_spans, &g);
	if (!c) {
		count_lost(LOST_IN_FLIGHT);
		return 0;
	}
	struct http_event *ev = &c->ev;
	ev->end_ns = bpf_ktime_get_ns();

	__u64 a;
	if ((a = field_addr(GO_RESULT1(regs), off_Response_StatusCode)))
		ev->status = http_status(read_u64(a));

	submit(ev, sizeof(*ev));
	if (ev->context_out == CONTEXT_OUT_QUEUED) {
		struct request_ref ref = {.tgid = g.tgid, .req = c->req};
		bpf_map_delete_elem(&requests_to_write, &ref);
		/* Answered, so written: did the writer see it leave? */
		struct request_seen_ref seen = {.tgid = g.tgid, .req = c->req};
		if (bpf_map_lookup_elem(&outgoing_seen, &seen))
			bpf_map_delete_elem(&outgoing_seen, &seen);
		else if (ev->status != 0)
			context_count(CONTEXT_MISSED);
	}
	bpf_map_delete_elem(&client_spans, &g);
	return 0;
}
