//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * httpserver.c: one event per request handled by a net/http server.
 *
 * Probes net/http.serverHandler.ServeHTTP, which every HTTP/1.x and HTTP/2
 * request of a net/http.Server goes through:
 *
 *     func (sh serverHandler) ServeHTTP(rw ResponseWriter, req *Request)
 *
 * Arguments (register ABI): sh (1 word), rw (itab, data), req.
 * server_entry runs at the function's entry: it starts the span (continuing
 * the caller's trace when the request carries a valid W3C traceparent
 * header), reads the request, stores it in server_spans by goroutine and
 * makes it the goroutine's active span (bpf/context.h), where client
 * instrumentations find their parent. server_return runs at every RET instruction of the
 * function (not as a uretprobe, which breaks when Go moves a goroutine's
 * stack): it reads what the handler decided (route, status) and submits
 * the event.
 *
 * A handler that panics never returns: server_panic ends its span where
 * net/http logs the recovered panic.
 *
 * The status is read from *net/http.response, which rw is for HTTP/1.x
 * only (200 when the handler wrote nothing, none when it hijacked the
 * connection); for HTTP/2 (ProtoMajor 2) rw is another type and the status is
 * left 0 (unknown).
 */
#include "nethttp.h"
#include "route.h"

/* Field offsets, rewritten at load time; OFFSET_ABSENT if absent. */
volatile const __u64 off_g_goid = OFFSET_ABSENT;              /* runtime.g.goid */
volatile const __u64 off_Request_Method = OFFSET_ABSENT;      /* net/http.Request.Method */
volatile const __u64 off_Request_URL = OFFSET_ABSENT;         /* net/http.Request.URL */
volatile const __u64 off_Request_Host = OFFSET_ABSENT;        /* net/http.Request.Host */
volatile const __u64 off_Request_Header = OFFSET_ABSENT;       /* net/http.Request.Header */
volatile const __u64 off_Request_RemoteAddr = OFFSET_ABSENT;  /* net/http.Request.RemoteAddr */
volatile const __u64 off_Request_ProtoMajor = OFFSET_ABSENT;  /* net/http.Request.ProtoMajor */
volatile const __u64 off_Request_ProtoMinor = OFFSET_ABSENT;  /* net/http.Request.ProtoMinor */
volatile const __u64 off_Request_Pattern = OFFSET_ABSENT;     /* net/http.Request.Pattern, Go 1.23+ */
volatile const __u64 off_Request_pat = OFFSET_ABSENT;         /* net/http.Request.pat, Go 1.22+ */
volatile const __u64 off_pattern_str = OFFSET_ABSENT;         /* net/http.pattern.str, Go 1.22+ */
volatile const __u64 off_URL_Path = OFFSET_ABSENT;            /* net/url.URL.Path */
volatile const __u64 off_URL_RawQuery = OFFSET_ABSENT;        /* net/url.URL.RawQuery */
volatile const __u64 off_response_status = OFFSET_ABSENT;     /* net/http.response.status */
volatile const __u64 off_response_conn = OFFSET_ABSENT;       /* net/http.response.conn */
volatile const __u64 off_conn_hijackedv = OFFSET_ABSENT;      /* net/http.conn.hijackedv (std.pending: DWARF only) */

/* A server request being handled: its event so far, and what the return probe needs. */
struct server_span {
	struct http_event ev;
	__u64 req; /* *net/http.Request */
	__u64 rw;  /* data word of the ResponseWriter: *net/http.response for HTTP/1.x */
	struct span_context saved; /* the goroutine's active span before this one */
	__u64 had_saved;
};

/*
 * Server requests in progress, by goroutine. LRU, so that entries whose
 * return probe never ran (a handler that panicked with http.ErrAbortHandler)
 * are evicted rather than filling the map; the cost is that beyond 8192
 * requests in progress at once the oldest lose their span. LRU maps are preallocated: about 15 MiB
 * (1.7 KiB an entry, most of it the 512-byte path and query buffers).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct goroutine);
	__type(value, struct server_span);
} server_spans SEC(".maps");

/* Where server_entry builds an event too large for the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct server_span);
} server_scratch SEC(".maps");

SEC("uprobe/net_http_serverHandler_ServeHTTP")
int server_entry(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;

	__u32 zero = 0;
	struct server_span *s = bpf_map_lookup_elem(&server_scratch, &zero);
	if (!s)
		return 0;
	struct http_event *ev = &s->ev;
	reset_event(ev);
	ev->pid = g.tgid;
	ev->goid = g.goid;
	ev->start_ns = bpf_ktime_get_ns();

	__u64 req = GO_REG4(regs);
	s->rw = GO_REG3(regs);
	s->req = req;

	/* The caller's trace context, from a valid traceparent header; else a new trace. */
	__u64 a;
	struct span_context remote = {};
	if (propagate_tracecontext && (a = field_addr(req, off_Request_Header))) {
		struct gomap_offsets mo;
		header_map_offsets(&mo);
		__u64 hdr = read_u64(a);
		if (header_traceparent(hdr, &mo, &remote)) {
			ev->remote_parent = 1;
			header_tracestate(hdr, &mo, ev);
		}
	}
	if (ev->remote_parent) {
		__builtin_memcpy(ev->trace_id, remote.trace_id, sizeof(ev->trace_id));
		__builtin_memcpy(ev->parent_span_id, remote.span_id, sizeof(ev->parent_span_id));
		ev->flags = sample(ev->trace_id, 1, remote.flags);
	} else {
		random_id(ev->trace_id, sizeof(ev->trace_id));
		ev->flags = sample(ev->trace_id, 0, 0);
	}
	random_id(ev->span_id, sizeof(ev->span_id));

	if ((a = field_addr(req, off_Request_Method)))
		ev->method_len = read_go_string(ev->method, METHOD_LEN, a);
	if ((a = field_addr(req, off_Request_Host)))
		ev->host_len = read_go_string(ev->host, HOST_LEN, a);
	if ((a = field_addr(req, off_Request_RemoteAddr)))
		ev->remote_addr_len = read_go_string(ev->remote_addr, REMOTE_ADDR_LEN, a);
	if ((a = field_addr(req, off_Request_ProtoMajor)))
		ev->proto_major = read_u64(a);
	if ((a = field_addr(req, off_Request_ProtoMinor)))
		ev->proto_minor = read_u64(a);
	if ((a = field_addr(req, off_Request_URL)))
		read_url(ev, read_u64(a), 0, OFFSET_ABSENT, OFFSET_ABSENT, off_URL_Path, off_URL_RawQuery);

	s->had_saved = span_activate(&g, ev->trace_id, ev->span_id, ev->flags, &s->saved);
	route_forget(&g); /* what routers recorded outside any request */
	bpf_map_update_elem(&server_spans, &g, s, BPF_ANY);
	return 0;
}

/*
 * server_finish reads what the handler decided (route, status), submits the
 * event and restores the goroutine's active span.
 */
static __always_inline void server_finish(struct goroutine *g, struct server_span *s)
{
	struct http_event *ev = &s->ev;
	ev->end_ns = bpf_ktime_get_ns();

	/*
	 * The route: the innermost router's template (bpf/route.h), else
	 * Request.Pattern (Go 1.23+), else Request.pat.str (Go 1.22).
	 */
	__u64 a;
	int route_len = route_take(g, ev->route, ROUTE_LEN);
	if (route_len >= 0) {
		ev->route_len = route_len;
	} else if ((a = field_addr(s->req, off_Request_Pattern))) {
		ev->route_len = read_go_string(ev->route, ROUTE_LEN, a);
	} else if ((a = field_addr(s->req, off_Request_pat))) {
		if ((a = field_addr(read_u64(a), off_pattern_str)))
			ev->route_len = read_go_string(ev->route, ROUTE_LEN, a);
	}

	/*
	 * rw is a *response only for HTTP/1.x. After a panic the status is left
	 * unknown: net/http closes the connection, and the client received a
	 * status only if the handler had flushed one. A handler that hijacked
	 * the connection answered (or not) on its own: no status. A handler
	 * that wrote nothing gets the 200 net/http writes after ServeHTTP
	 * returns, when the connection is known not to be hijacked (without
	 * conn.hijackedv, as in a stripped binary, the status stays unknown).
	 */
	if (ev->outcome == OUTCOME_RETURNED && ev->proto_major == 1) {
		__u8 hijacked = 2; /* unknown */
		__u64 c;
		if ((c = field_addr(s->rw, off_response_conn)) && (c = field_addr(read_u64(c), off_conn_hijackedv))) {
			hijacked = 0;
			if (bpf_probe_read_user(&hijacked, 1, (const void *)c) != 0)
				hijacked = 2;
		}
		if (hijacked == 1)
			ev->outcome = OUTCOME_HIJACKED;
		else if ((a = field_addr(s->rw, off_response_status)))
			ev->status = http_status(read_u64(a));
		if (hijacked == 0 && ev->status == 0)
			ev->status = 200;
	}

	submit(ev, sizeof(*ev));
	span_deactivate(g, s->had_saved, &s->saved);
	bpf_map_delete_elem(&server_spans, g);
}

SEC("uprobe/net_http_serverHandler_ServeHTTP_return")
int server_return(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	struct server_span *s = bpf_map_lookup_elem(&server_spans, &g);
	if (!s) {
		count_lost(LOST_IN_FLIGHT);
		return 0;
	}
	server_finish(&g, s);
	return 0;
}

/* The pattern a ServeMux matched, Go 1.22+: see route_servemux in bpf/route.h. */
SEC("uprobe/net_http_ServeMux_findHandler_return")
int servemux_return(void *ctx)
{
	return route_servemux(ctx, off_g_goid);
}

/* The first bytes of the formats net/http logs a recovered handler panic with. */
#define PANIC_PREFIX_LEN 20
static const char panic_prefix_http1[PANIC_PREFIX_LEN] = "http: panic serving ";
static const char panic_prefix_http2[PANIC_PREFIX_LEN] = "http2: panic serving";

/*
 * server_panic runs at the entry of the logf methods net/http's recovery
 * paths call when a handler panicked:
 *
 *     func (s *Server) logf(format string, args ...any)         // HTTP/1.x, in (*conn).serve
 *     func (sc *http2serverConn) logf(format string, args ...any) // bundled HTTP/2, in runHandler
 *
 * The deferred recovery runs on the handler's goroutine before the stack
 * unwinds, so the goroutine's unfinished span in server_spans is the
 * request that panicked: it is submitted as OUTCOME_PANIC. Every other
 * message these functions log (a superfluous WriteHeader, a TLS handshake
 * error, ...) is told apart by its format. A panic with
 * http.ErrAbortHandler is not logged: its span is lost, as before.
 */
SEC("uprobe/net_http_Server_logf")
int server_panic(void *ctx)
{
	struct go_regs *regs = ctx;
	__u64 fmt = GO_REG2(regs);
	if (GO_REG3(regs) < PANIC_PREFIX_LEN)
		return 0;
	char buf[PANIC_PREFIX_LEN] = {};
	if (bpf_probe_read_user(buf, sizeof(buf), (const void *)fmt) != 0)
		return 0;
	int http1 = 1, http2 = 1;
	for (int i = 0; i < PANIC_PREFIX_LEN; i++) {
		if (buf[i] != panic_prefix_http1[i])
			http1 = 0;
		if (buf[i] != panic_prefix_http2[i])
			http2 = 0;
	}
	if (!http1 && !http2)
		return 0;

	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	struct server_span *s = bpf_map_lookup_elem(&server_spans, &g);
	if (!s)
		return 0;
	s->ev.outcome = OUTCOME_PANIC;
	server_finish(&g, s);
	return 0;
}
