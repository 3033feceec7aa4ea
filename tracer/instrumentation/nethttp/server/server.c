//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * server.c: one event per request handled by a net/http server, over
 * HTTP/1.x, net/http's HTTP/2, or golang.org/x/net/http2 (h2c).
 *
 * Every HTTP/1.x request and every request of net/http's own HTTP/2 goes
 * through net/http.serverHandler.ServeHTTP:
 *
 *     func (sh serverHandler) ServeHTTP(rw ResponseWriter, req *Request)
 *
 * Arguments (register ABI): sh (1 word), rw (itab, data), req.
 * server_entry runs at the function's entry and starts the span
 * (server_start: trace context, request, active span of the goroutine for
 * client instrumentations). server_return runs at every RET instruction of
 * the function (not as a uretprobe, which breaks when Go moves a
 * goroutine's stack): for HTTP/1.x it reads what the handler decided
 * (route, status) and submits the event.
 *
 * HTTP/2 streams end later, at the RET of the HTTP/2 server's runHandler
 * (h2_run_return), which writes the 200 of a handler that wrote nothing
 * after the handler returned; their status is the first final code passed
 * to the server's writeHeader (h2_write_header). golang.org/x/net/http2's
 * server calls the user's handler directly: its spans start at its
 * runHandler (h2_run_entry_xnet). When h2c takes a connection over inside
 * a handler (prior knowledge: the "PRI *" preface; Upgrade: h2c), that
 * HTTP/1.x request gets no span (server_start, h2_serve_conn).
 *
 * url.scheme: tls_handshake marks the goroutine of a server TLS handshake,
 * which serves the connection's HTTP/1.x requests; h2_serve carries the
 * mark to an HTTP/2 connection and h2_run_entry* to its streams.
 *
 * A handler that panics never returns: server_panic ends its span where
 * net/http logs the recovered panic; conn_serve_return ends that of an
 * HTTP/1.x handler that panicked with http.ErrAbortHandler, which net/http
 * recovers without logging, when the connection's (*conn).serve returns.
 *
 * The HTTP/1.x status is read from *net/http.response, which rw is for
 * HTTP/1.x only: 200 when the handler wrote nothing, none when it hijacked
 * the connection (server_hijack, at the entry of (*response).Hijack).
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
volatile const __u64 off_Request_ContentLength = OFFSET_ABSENT; /* net/http.Request.ContentLength */
volatile const __u64 off_Request_Pattern = OFFSET_ABSENT;     /* net/http.Request.Pattern, Go 1.23+ */
volatile const __u64 off_Request_pat = OFFSET_ABSENT;         /* net/http.Request.pat, Go 1.22+ */
volatile const __u64 off_pattern_str = OFFSET_ABSENT;         /* net/http.pattern.str, Go 1.22+ */
volatile const __u64 off_URL_Path = OFFSET_ABSENT;            /* net/url.URL.Path */
volatile const __u64 off_URL_RawQuery = OFFSET_ABSENT;        /* net/url.URL.RawQuery */
volatile const __u64 off_response_status = OFFSET_ABSENT;     /* net/http.response.status */
volatile const __u64 off_response_conn = OFFSET_ABSENT;       /* net/http.response.conn */
volatile const __u64 off_conn_rwc = OFFSET_ABSENT;            /* net/http.conn.rwc */
volatile const __u64 off_http2serverConn_conn = OFFSET_ABSENT; /* net/http.http2serverConn.conn (Go <= 1.26) */
volatile const __u64 off_internal_serverConn_conn = OFFSET_ABSENT; /* net/http/internal/http2.serverConn.conn (Go 1.27+) */

/*
 * The itab of *crypto/tls.Conn for net.Conn (symbol go:itab.*crypto/tls.Conn,net.Conn,
 * go.itab... before Go 1.20), when the binary's symbol table has it (server.go,
 * tlsItabConsts): its distance from the entry of serverHandler.ServeHTTP and from
 * that of the bundled HTTP/2 server's runHandler, so that the programs there find
 * its address in the process, PIE or not (tls_itab_at).
 */
volatile const __u64 tls_itab_known = 0;
volatile const __u64 tls_itab_from_handler = 0;
volatile const __u64 tls_itab_from_h2_run = 0;

/* net/http/internal/http2.ServerRequest (Go 1.27+) */
volatile const __u64 off_ServerRequest_Method = OFFSET_ABSENT;
volatile const __u64 off_ServerRequest_URL = OFFSET_ABSENT;
volatile const __u64 off_ServerRequest_Host = OFFSET_ABSENT;
volatile const __u64 off_ServerRequest_Header = OFFSET_ABSENT;
volatile const __u64 off_ServerRequest_RemoteAddr = OFFSET_ABSENT;
volatile const __u64 off_ServerRequest_ProtoMajor = OFFSET_ABSENT;
volatile const __u64 off_ServerRequest_ProtoMinor = OFFSET_ABSENT;
volatile const __u64 off_ServerRequest_ContentLength = OFFSET_ABSENT;

/*
 * Offsets of the fields of a request that the programs read: of
 * *net/http.Request, or of *net/http/internal/http2.ServerRequest (Go
 * 1.27+) which has the same fields under the same names.
 */
struct request_offsets {
	__u64 method, url, host, header, remote_addr, proto_major, proto_minor, content_length;
};

static __always_inline void request_offsets(struct request_offsets *o)
{
	o->method = off_Request_Method;
	o->url = off_Request_URL;
	o->host = off_Request_Host;
	o->header = off_Request_Header;
	o->remote_addr = off_Request_RemoteAddr;
	o->proto_major = off_Request_ProtoMajor;
	o->proto_minor = off_Request_ProtoMinor;
	o->content_length = off_Request_ContentLength;
}

static __always_inline void server_request_offsets(struct request_offsets *o)
{
	o->method = off_ServerRequest_Method;
	o->url = off_ServerRequest_URL;
	o->host = off_ServerRequest_Host;
	o->header = off_ServerRequest_Header;
	o->remote_addr = off_ServerRequest_RemoteAddr;
	o->proto_major = off_ServerRequest_ProtoMajor;
	o->proto_minor = off_ServerRequest_ProtoMinor;
	o->content_length = off_ServerRequest_ContentLength;
}

/* Who started a span (server_span.started_by). */
#define STARTED_BY_HANDLER 0        /* serverHandler.ServeHTTP (HTTP/1.x, or the std HTTP/2 server) */
#define STARTED_BY_RUNHANDLER 1     /* x/net's runHandler: req is a *net/http.Request */
#define STARTED_BY_SERVER_REQUEST 2 /* internal/http2's runHandler (Go 1.27+): req is a *ServerRequest */

/* A server request being handled: its event so far, and what the later probes need. */
struct server_span {
	struct http_event ev;
	__u64 req; /* *net/http.Request (or *ServerRequest, see started_by) */
	__u64 rw;  /* data word of the ResponseWriter: *net/http.response for HTTP/1.x */
	struct span_context saved; /* the goroutine's active span before this one */
	__u64 had_saved;
	/*
	 * An HTTP/2 stream: the span ends at the RET of the HTTP/2 server's
	 * runHandler, after the 200 it writes for a handler that wrote
	 * nothing; its status comes from the writeHeader probes.
	 */
	__u8 h2;
	__u8 started_by;       /* STARTED_BY_* */
	__u8 handler_returned; /* serverHandler.ServeHTTP returned */
	/*
	 * No request: the HTTP/1.x request through which h2c took the
	 * connection over. Kept, inactive, so that its RET finds it and
	 * deletes it silently rather than counting a lost span.
	 */
	__u8 dropped;
	__u8 pad[4];
};

/*
 * Server requests in progress, by goroutine. LRU, so that entries whose
 * end no probe saw (a handler that called runtime.Goexit: its goroutine
 * never returns from (*conn).serve; an optional probe that did not
 * attach) are evicted rather than filling the map; the cost is that
 * beyond 8192 requests in progress at once the oldest lose their span. LRU
 * maps are preallocated: 23.6 MiB (2.9 KiB an entry, most of it the
 * 1 KiB path and query buffers; TestServerMapsKernelMemory).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct goroutine);
	__type(value, struct server_span);
} server_spans SEC(".maps");

/* Where server_start builds an event too large for the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct server_span);
} server_scratch SEC(".maps");

/*
 * Goroutines serving a connection over TLS: those that ran a server TLS
 * handshake (tls_handshake; HTTP/1.x serves the connection's requests on
 * that goroutine), and the goroutines of the HTTP/2 streams of a TLS
 * connection (h2_run_entry). Read when a span starts, for url.scheme.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct goroutine);
	__type(value, __u8);
} tls_goroutines SEC(".maps");

/* A connection of a process: a *crypto/tls.Conn, or an HTTP/2 *serverConn. */
#define CONN_TLS 1    /* a *tls.Conn that ran a handshake (tls_handshake) */
#define CONN_H2_TLS 2 /* an HTTP/2 *serverConn over TLS (h2_serve) */
struct conn_key {
	__u32 tgid;
	__u32 kind; /* CONN_* */
	__u64 ptr;
};

/* TLS connections: those that ran a handshake, and HTTP/2 connections over one. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct conn_key);
	__type(value, __u8);
} tls_conns SEC(".maps");

static __always_inline int conn_is(__u32 tgid, __u32 kind, __u64 ptr)
{
	struct conn_key k = {.tgid = tgid, .kind = kind, .ptr = ptr};
	__u8 *v = bpf_map_lookup_elem(&tls_conns, &k);
	return v && *v;
}

static __always_inline int goroutine_tls(struct goroutine *g)
{
	__u8 *v = bpf_map_lookup_elem(&tls_goroutines, g);
	return v && *v;
}

/* An HTTP/1.x *net/http.response of a process. */
struct response_key {
	__u32 tgid;
	__u32 pad;
	__u64 ptr;
};

/*
 * The HTTP/1.x responses whose handler hijacked the connection
 * (server_hijack), by response, with when (bpf_ktime_get_ns): the response
 * may be hijacked on another goroutine than the handler's. server_finish
 * takes the entry of its response out; one left by a request whose span
 * ended elsewhere (h2c, which hijacks to take the connection over; a
 * request lost) is evicted, and is older than any request a reused address
 * later serves. As many entries as server_spans.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct response_key);
	__type(value, __u64);
} hijacked_responses SEC(".maps");

/*
 * response_hijacked reports whether the HTTP/1.x response rw of process
 * tgid, whose request started at start_ns, was hijacked, and forgets it.
 */
static __always_inline int response_hijacked(__u32 tgid, __u64 rw, __u64 start_ns)
{
	struct response_key k = {.tgid = tgid, .ptr = rw};
	__u64 *at = bpf_map_lookup_elem(&hijacked_responses, &k);
	if (!at)
		return 0;
	int hijacked = *at >= start_ns;
	bpf_map_delete_elem(&hijacked_responses, &k);
	return hijacked;
}

/*
 * The itab of *crypto/tls.Conn for net.Conn each process uses, learnt when
 * the binary does not name it (stripped, or Go 1.27+ which names no itab):
 * the type word of the net.Conn of the first connection seen through its
 * TLS handshake (netconn_tls).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32); /* tgid */
	__type(value, __u64);
} tls_itabs SEC(".maps");

/*
 * tls_itab_at returns the address of the *tls.Conn itab in the process, from
 * pc, the entry of the probed function it is known from (delta), in a
 * probe attached there; 0 when the binary does not name it. A uprobe reports
 * the probed instruction (one byte past it is rounded off: itabs are
 * word-aligned).
 */
static __always_inline __u64 tls_itab_at(__u64 pc, __u64 delta)
{
	return tls_itab_known ? (pc + delta) & ~7ULL : 0;
}

/*
 * netconn_tls reports whether the net.Conn interface value at address c,
 * read on goroutine g, holds a *crypto/tls.Conn: one known TLS through its
 * handshake (handshook), or one whose type word is the itab (itab, from the
 * binary; else the one learnt for g's process, netconn_learn). The type
 * word tells connections whose handshake ran before the tracer attached.
 */
static __always_inline int netconn_tls(struct goroutine *g, __u64 c, __u64 itab, int handshook)
{
	__u64 tab = read_u64(c);
	if (handshook || tab == 0)
		return handshook;
	if (itab)
		return tab == itab;
	__u64 *learnt = bpf_map_lookup_elem(&tls_itabs, &g->tgid);
	return learnt && *learnt == tab;
}

/*
 * netconn_learn remembers the type word of net.Conn c, known TLS through
 * its handshake, as the *tls.Conn itab of g's process. Every such request
 * writes it again, so that a wrong value (a stale tls_conns entry whose
 * address a plain connection reuses) does not last. A function of its
 * own: inlined, its stack slot would push server_entry's frame, near
 * 512 bytes, over clang's bound.
 */
static __noinline void netconn_learn(struct goroutine *g, __u64 c)
{
	__u64 tab = read_u64(c);
	if (tab != 0)
		bpf_map_update_elem(&tls_itabs, &g->tgid, &tab, BPF_ANY);
}

/*
 * server_start starts the span of the request req (read with the offsets
 * o) on goroutine g: it continues the caller's trace when the request
 * carries a valid W3C traceparent header, reads the request, stores it in
 * server_spans and makes it the goroutine's active span (bpf/context.h),
 * where client instrumentations find their parent. The HTTP/2 connection
 * preface of cleartext HTTP/2 with prior knowledge ("PRI *", which
 * net/http hands to the handler so that h2c can take the connection over)
 * is no request: it gets no span.
 */
static __always_inline void server_start(struct goroutine *g, __u64 req, __u64 rw, const struct request_offsets *o, __u8 started_by, __u64 tls_itab)
{
	__u32 zero = 0;
	struct server_span *s = bpf_map_lookup_elem(&server_scratch, &zero);
	if (!s)
		return;
	struct http_event *ev = &s->ev;
	reset_event(ev);
	ev->pid = record_tgid(g->tgid);
	ev->goid = g->goid;
	ev->start_ns = bpf_ktime_get_ns();
	s->rw = rw;
	s->req = req;
	s->started_by = started_by;
	s->h2 = started_by != STARTED_BY_HANDLER;
	s->handler_returned = 0;
	s->dropped = 0;
	s->had_saved = 0;

	__u64 a;
	if ((a = field_addr(req, o->method)))
		ev->method_len = read_go_string(ev->method, METHOD_LEN, a);
	if ((a = field_addr(req, o->url)))
		read_url(ev, read_u64(a), 0, OFFSET_ABSENT, OFFSET_ABSENT, off_URL_Path, off_URL_RawQuery);
	if (ev->method_len == 3 && ev->method[0] == 'P' && ev->method[1] == 'R' && ev->method[2] == 'I' &&
	    ev->path_len == 1 && ev->path[0] == '*') {
		s->dropped = 1;
		bpf_map_update_elem(&server_spans, g, s, BPF_ANY);
		return;
	}

	/*
	 * The caller's trace context, from a valid traceparent header (else a
	 * new trace), and the User-Agent.
	 */
	struct span_context remote = {};
	if ((a = field_addr(req, o->header))) {
		struct gomap_offsets mo;
		header_map_offsets(&mo);
		__u64 hdr = read_u64(a);
		if (propagate_tracecontext && header_traceparent(hdr, &mo, &remote)) {
			ev->remote_parent = 1;
			header_tracestate(hdr, &mo, ev);
		}
		header_user_agent(hdr, &mo, ev);
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

	if ((a = field_addr(req, o->host)))
		ev->host_len = read_go_string(ev->host, HOST_LEN, a);
	if ((a = field_addr(req, o->remote_addr)))
		ev->remote_addr_len = read_go_string(ev->remote_addr, REMOTE_ADDR_LEN, a);
	if ((a = field_addr(req, o->proto_major)))
		ev->proto_major = read_u64(a);
	if ((a = field_addr(req, o->proto_minor)))
		ev->proto_minor = read_u64(a);
	if ((a = field_addr(req, o->content_length)))
		ev->body_size = (__s64)read_u64(a);
	if (ev->proto_major == 2)
		s->h2 = 1;
	if (started_by != STARTED_BY_HANDLER) {
		/* Served over HTTP/2, also the HTTP/1.1 request of an Upgrade: h2c (stream 1). */
		ev->proto_major = 2;
		ev->proto_minor = 0;
	}
	/*
	 * TLS: the goroutine ran a server handshake (or is a stream of an
	 * HTTP/2 connection that did). For HTTP/1.x, whose handler runs on
	 * that goroutine and may make TLS calls of its own there (a database
	 * driver's handshake), the request's connection (response.conn.rwc)
	 * must be a *tls.Conn: one that ran the handshake, or one whose type
	 * word is the *tls.Conn itab (tls_itab, else the process's learnt one),
	 * also when its handshake ran before the tracer attached.
	 */
	int tls = goroutine_tls(g);
	__u64 c;
	if (started_by == STARTED_BY_HANDLER && ev->proto_major == 1 &&
	    (c = field_addr(rw, off_response_conn)) && (c = field_addr(read_u64(c), off_conn_rwc))) {
		int handshook = tls && conn_is(g->tgid, CONN_TLS, read_u64(c + 8)); /* the data word of the net.Conn */
		if (handshook && !tls_itab)
			netconn_learn(g, c);
		tls = netconn_tls(g, c, tls_itab, handshook);
	}
	if (tls) {
		__builtin_memcpy(ev->scheme, "https", 5);
		ev->scheme_len = 5;
	} else {
		__builtin_memcpy(ev->scheme, "http", 4);
		ev->scheme_len = 4;
	}

	s->had_saved = span_activate(g, ev->trace_id, ev->span_id, ev->flags, &s->saved);
	route_forget(g); /* what routers recorded outside any request */
	bpf_map_update_elem(&server_spans, g, s, BPF_ANY);
}

SEC("uprobe/net_http_serverHandler_ServeHTTP")
int server_entry(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	__u64 req = GO_REG4(regs), rw = GO_REG3(regs);
	/*
	 * On Go 1.27+ the HTTP/2 stream's span may have begun in the
	 * HTTP/2 server's runHandler from its ServerRequest: it continues,
	 * with the *net/http.Request the handler sees (for the route).
	 */
	struct server_span *cur = bpf_map_lookup_elem(&server_spans, &g);
	if (cur && cur->started_by == STARTED_BY_SERVER_REQUEST) {
		cur->started_by = STARTED_BY_HANDLER;
		cur->req = req;
		cur->rw = rw;
		return 0;
	}
	struct request_offsets o;
	request_offsets(&o);
	server_start(&g, req, rw, &o, STARTED_BY_HANDLER, tls_itab_at(GO_PC(regs), tls_itab_from_handler));
	return 0;
}

/*
 * A panicked span's record: its event, then what server_panic read of the
 * panic (bpf/nethttp.h). Built in panic_scratch (one per CPU, 7.4 KiB)
 * rather than in server_spans, whose every entry it would grow.
 */
struct panic_event {
	struct http_event ev;
	struct http_exception exc;
};

struct panic_scratch_entry {
	struct panic_event rec;
	/* The goroutine whose panic rec.exc holds, until server_finish submits it. */
	struct goroutine pending;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct panic_scratch_entry);
} panic_scratch SEC(".maps");

/*
 * submit_server_event submits ev, the event of goroutine g's request:
 * with the panic server_panic read for it just before, if any.
 */
static __always_inline void submit_server_event(struct goroutine *g, struct http_event *ev)
{
	__u32 zero = 0;
	struct panic_scratch_entry *p;
	if (ev->outcome == OUTCOME_PANIC && (p = bpf_map_lookup_elem(&panic_scratch, &zero)) &&
	    p->pending.goid == g->goid && p->pending.tgid == g->tgid) {
		p->pending.goid = 0;
		if (bpf_probe_read_kernel(&p->rec.ev, sizeof(p->rec.ev), ev) == 0) {
			submit(&p->rec, sizeof(p->rec));
			return;
		}
	}
	submit(ev, sizeof(*ev));
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
	 * Request.Pattern (Go 1.23+), else Request.pat.str (Go 1.22); the
	 * Request's pattern not for a request known only as a ServerRequest.
	 */
	__u64 a;
	__u64 req = s->started_by == STARTED_BY_SERVER_REQUEST ? 0 : s->req;
	int route_len = route_take(g, ev->route, ROUTE_LEN);
	if (route_len >= 0) {
		ev->route_len = route_len;
	} else if ((a = field_addr(req, off_Request_Pattern))) {
		ev->route_len = read_go_string(ev->route, ROUTE_LEN, a);
	} else if ((a = field_addr(req, off_Request_pat))) {
		if ((a = field_addr(read_u64(a), off_pattern_str)))
			ev->route_len = read_go_string(ev->route, ROUTE_LEN, a);
	}

	/*
	 * rw is a *response only for HTTP/1.x. After a panic the status is left
	 * unknown: net/http closes the connection, and the client received a
	 * status only if the handler had flushed one. A handler that hijacked
	 * the connection (server_hijack) answered (or not) on its own: no
	 * status. A handler that wrote nothing gets the 200 net/http writes
	 * after ServeHTTP returns. A binary without (*response).Hijack (the
	 * linker drops it when nothing calls Hijack) cannot hijack. Over
	 * HTTP/2 too a panic leaves it unknown: the status writeHeader took
	 * may never have left (the stream is reset), as over HTTP/1.x.
	 */
	if (ev->outcome == OUTCOME_PANIC && s->h2)
		ev->status = 0;
	int http1 = !s->h2 && ev->proto_major == 1;
	if (http1 && response_hijacked(g->tgid, s->rw, ev->start_ns)) {
		if (ev->outcome == OUTCOME_RETURNED)
			ev->outcome = OUTCOME_HIJACKED;
	} else if (http1 && ev->outcome == OUTCOME_RETURNED) {
		if ((a = field_addr(s->rw, off_response_status)))
			ev->status = http_status(read_u64(a));
		if (ev->status == 0)
			ev->status = 200;
	}

	submit_server_event(g, ev);
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
	if (s->dropped) {
		if (!s->h2)
			response_hijacked(g.tgid, s->rw, 0); /* h2c hijacked it to take the connection over */
		bpf_map_delete_elem(&server_spans, &g);
		return 0;
	}
	if (s->h2) {
		/* The HTTP/2 server writes the status of a silent handler later: h2_run_return ends the span. */
		s->handler_returned = 1;
		return 0;
	}
	server_finish(&g, s);
	return 0;
}

/*
 * server_hijack runs at the entry of net/http's
 *
 *     func (w *response) Hijack() (rwc net.Conn, buf *bufio.ReadWriter, err error)
 *
 * the http.Hijacker of every HTTP/1.x response, which the handler calls
 * (through the interface, or http.ResponseController) to take the
 * connection over. Past its entry the connection is hijacked in every Go
 * release: (*conn).hijackLocked sets conn.hijackedv before any error it
 * returns, and ErrHijacked means an earlier call did. (Hijack called after
 * ServeHTTP returned panics before, but its request's span is over:
 * server_finish ignores a mark older than a request.) The response w is
 * marked, whichever goroutine calls it; server_finish reads the mark.
 * Neither it nor hijackLocked is inlined in any release from 1.12 to 1.27
 * (Hijack has a defer, and is called through the interface).
 */
SEC("uprobe/net_http_response_Hijack")
int server_hijack(void *ctx)
{
	struct go_regs *regs = ctx;
	struct response_key k = {.tgid = bpf_get_current_pid_tgid() >> 32, .ptr = GO_REG1(regs)};
	__u64 now = bpf_ktime_get_ns();
	bpf_map_update_elem(&hijacked_responses, &k, &now, BPF_ANY);
	return 0;
}

/*
 * tls_handshake runs at the entry of the server's TLS handshake,
 * crypto/tls.(*Conn).handshakeContext (Go 1.17+, which HandshakeContext
 * and Handshake call) or (*Conn).Handshake (before), which net/http calls
 * on the goroutine that then serves the connection. The goroutine and the
 * *tls.Conn (the receiver) are marked TLS. A client's handshake marks them
 * too: net/http.Transport runs it on a goroutine of its own, which serves
 * no request; one made on an HTTP/1.x handler's goroutine (a database
 * driver's) does not make its requests https, whose connection must be a
 * marked *tls.Conn too (server_start).
 */
SEC("uprobe/crypto_tls_Conn_handshakeContext")
int tls_handshake(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	__u8 one = 1;
	bpf_map_update_elem(&tls_goroutines, &g, &one, BPF_ANY);
	struct conn_key k = {.tgid = g.tgid, .kind = CONN_TLS, .ptr = GO_REG1(regs)};
	bpf_map_update_elem(&tls_conns, &k, &one, BPF_ANY);
	return 0;
}

/*
 * h2_serve runs at the entry of the HTTP/2 servers' (*serverConn).serve,
 * which runs on the goroutine that accepted the connection (after its TLS
 * handshake, if any): it notes whether the connection sc is TLS, for the
 * streams' goroutines (h2_run_entry).
 */
SEC("uprobe/http2_serverConn_serve")
int h2_serve(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	struct conn_key k = {.tgid = g.tgid, .kind = CONN_H2_TLS, .ptr = GO_REG1(regs)};
	if (goroutine_tls(&g)) {
		__u8 one = 1;
		bpf_map_update_elem(&tls_conns, &k, &one, BPF_ANY);
	} else {
		bpf_map_delete_elem(&tls_conns, &k); /* the address of an earlier connection */
	}
	return 0;
}

/*
 * h2_stream_tls marks the goroutine g of a stream of HTTP/2 connection sc
 * as TLS when sc is: one h2_serve saw over TLS, or whose net.Conn, at c
 * (0: not known), holds a *tls.Conn — also when the connection began before
 * the tracer attached (netconn_tls; itab as there, 0 for the learnt one).
 */
static __always_inline void h2_stream_tls(struct goroutine *g, __u64 sc, __u64 c, __u64 itab)
{
	int tls = conn_is(g->tgid, CONN_H2_TLS, sc);
	if (c) {
		if (tls && !itab)
			netconn_learn(g, c);
		tls = netconn_tls(g, c, itab, tls);
	}
	if (tls) {
		__u8 one = 1;
		bpf_map_update_elem(&tls_goroutines, g, &one, BPF_ANY);
	}
}

/*
 * h2_run_entry runs at the entry of the std HTTP/2 server's runHandler
 * (bundled, Go <= 1.26), on the stream's new goroutine:
 *
 *     func (sc *http2serverConn) runHandler(rw *http2responseWriter, req *Request, handler func(ResponseWriter, *Request))
 *
 * The handler it calls goes through serverHandler.ServeHTTP, where the span
 * starts: this only marks the goroutine TLS when the connection is: one
 * h2_serve saw over TLS, or whose net.Conn (sc.conn) is a *tls.Conn, also
 * when the connection began before the tracer attached (netconn_tls).
 */
SEC("uprobe/net_http_http2serverConn_runHandler")
int h2_run_entry(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	__u64 sc = GO_REG1(regs);
	h2_stream_tls(&g, sc, field_addr(sc, off_http2serverConn_conn), tls_itab_at(GO_PC(regs), tls_itab_from_h2_run));
	return 0;
}

/*
 * h2_run_entry_xnet runs at the entry of golang.org/x/net/http2's
 * runHandler, whose handler is the user's (no serverHandler.ServeHTTP):
 *
 *     func (sc *serverConn) runHandler(rw *responseWriter, req *http.Request, handler func(http.ResponseWriter, *http.Request))
 *
 * The span starts here, from the std *net/http.Request.
 */
SEC("uprobe/golang_org_x_net_http2_serverConn_runHandler")
int h2_run_entry_xnet(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	h2_stream_tls(&g, GO_REG1(regs), 0, 0); /* x/net's serverConn.conn is not in the database */
	struct request_offsets o;
	request_offsets(&o);
	server_start(&g, GO_REG3(regs), GO_REG2(regs), &o, STARTED_BY_RUNHANDLER, 0);
	return 0;
}

/*
 * h2_run_entry_internal runs at the entry of the runHandler of
 * net/http/internal/http2 (Go 1.27+), which serves net/http's HTTP/2 and,
 * from x/net v0.54.0 on, x/net's:
 *
 *     func (sc *serverConn) runHandler(rw *responseWriter, req *ServerRequest, handler func(*ResponseWriter, *ServerRequest))
 *
 * The handler of net/http's server goes through serverHandler.ServeHTTP;
 * x/net's (h2c) does not. The span starts here when the ServerRequest's
 * fields are known (the database has them for every Go 1.27 release), and
 * serverHandler.ServeHTTP continues it; without them only net/http's own
 * HTTP/2 requests get spans, from serverHandler.ServeHTTP. Go 1.27 names
 * no *tls.Conn itab: sc.conn's type word is compared with the learnt one.
 */
SEC("uprobe/net_http_internal_http2_serverConn_runHandler")
int h2_run_entry_internal(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	__u64 sc = GO_REG1(regs);
	h2_stream_tls(&g, sc, field_addr(sc, off_internal_serverConn_conn), 0);
	if (off_ServerRequest_Method == OFFSET_ABSENT || off_ServerRequest_URL == OFFSET_ABSENT)
		return 0;
	struct request_offsets o;
	server_request_offsets(&o);
	server_start(&g, GO_REG3(regs), GO_REG2(regs), &o, STARTED_BY_SERVER_REQUEST, 0);
	return 0;
}

/*
 * h2_write_header runs at the entry of the HTTP/2 servers'
 *
 *     func (rws *responseWriterState) writeHeader(code int)
 *
 * which the handler's WriteHeader and first Write call, and runHandler
 * with 200 when the handler wrote nothing. The first final status (200 or
 * more) is the one sent: later calls are superfluous (writeHeader ignores
 * them), informational ones (1xx) are not final.
 */
SEC("uprobe/http2_responseWriterState_writeHeader")
int h2_write_header(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	struct server_span *s = bpf_map_lookup_elem(&server_spans, &g);
	if (!s || !s->h2 || s->ev.status != 0)
		return 0;
	__u64 code = GO_REG2(regs);
	if (code >= 200 && code <= 999)
		s->ev.status = (__u16)code;
	return 0;
}

/*
 * h2_run_return runs at every RET of the HTTP/2 servers' runHandler: the
 * handler is done and its response written. A span ended by server_panic
 * is gone. A std span whose serverHandler.ServeHTTP never returned
 * panicked without being logged (http.ErrAbortHandler): it ends as a
 * panic. The goroutine ends here: its TLS mark goes with it.
 */
SEC("uprobe/http2_serverConn_runHandler_return")
int h2_run_return(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	bpf_map_delete_elem(&tls_goroutines, &g);
	struct server_span *s = bpf_map_lookup_elem(&server_spans, &g);
	if (!s || !s->h2)
		return 0;
	if (s->started_by == STARTED_BY_HANDLER && !s->handler_returned)
		s->ev.outcome = OUTCOME_PANIC;
	server_finish(&g, s);
	return 0;
}

/*
 * conn_serve_return runs at every RET of net/http's
 *
 *     func (c *conn) serve(ctx context.Context)
 *
 * which serves an HTTP/1.x connection on its goroutine, that of the
 * connection's handlers: it returns when the connection is done. A span
 * of the goroutine still in server_spans then is the request whose
 * handler panicked with http.ErrAbortHandler: serve's deferred function
 * recovers it without logging (no server_panic), closes the connection
 * and serve returns normally. Its span ends as a panic without an
 * exception, as h2_run_return ends an HTTP/2 one, with no status (the
 * client got no answer). Every other request's span is gone by then:
 * ended by server_return (a handler that returned, also one that
 * hijacked the connection) or by server_panic (a logged panic); the
 * request through which h2c took the connection over and the "PRI *"
 * preface (dropped) are no requests: deleted without a span. An HTTP/2
 * stream's span (on another goroutine) is left to h2_run_return. The
 * goroutine ends here: its TLS mark goes with it.
 */
SEC("uprobe/net_http_conn_serve_return")
int conn_serve_return(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	bpf_map_delete_elem(&tls_goroutines, &g); /* the goroutine ends here */
	struct server_span *s = bpf_map_lookup_elem(&server_spans, &g);
	if (!s || s->h2)
		return 0;
	if (s->dropped) {
		/* Inactive already (h2_serve_conn; the preface never was). */
		response_hijacked(g.tgid, s->rw, 0);
		bpf_map_delete_elem(&server_spans, &g);
		return 0;
	}
	s->ev.outcome = OUTCOME_PANIC;
	server_finish(&g, s);
	return 0;
}

/*
 * h2_serve_conn runs at the entry of an HTTP/2 server's ServeConn (x/net's
 * (*Server).ServeConn or serveConn; internal/http2's, Go 1.27+). Called
 * inside a handler, as golang.org/x/net/http2/h2c does for a connection it
 * took over, it serves the rest of the connection: the goroutine's
 * HTTP/1.x request (an Upgrade: h2c request, whose HTTP/2 stream 1 gets
 * its own span) is no request of its own: its span is dropped (marked, for
 * server_return to delete without counting it lost).
 */
SEC("uprobe/http2_Server_ServeConn")
int h2_serve_conn(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	struct server_span *s = bpf_map_lookup_elem(&server_spans, &g);
	if (!s || s->h2 || s->dropped)
		return 0;
	span_deactivate(&g, s->had_saved, &s->saved);
	s->dropped = 1;
	return 0;
}

/* The pattern a ServeMux matched, Go 1.22+: see route_servemux in bpf/route.h. */
SEC("uprobe/net_http_ServeMux_findHandler_return")
int servemux_return(void *ctx)
{
	return route_servemux(ctx, off_g_goid);
}

/*
 * read_panic reads, for goroutine g, the panic of the logf call net/http
 * makes after recovering it (server_panic), from its variadic arguments
 * (a []any: words 4 and 5 are the slice's pointer and length), as every
 * recovery path logs it: ("...: panic serving %v: %v\n%s", remote
 * address, panic value, stack trace as []byte). Only Go ABI layouts are
 * read: interfaces (type word, data word), string and slice headers. The
 * panic value is read as a string whatever its type, which only user space
 * can name (from the binary's symbols and DWARF): it keeps the bytes for a
 * string, and names the type from the type word and the probe's address.
 */
static __always_inline void read_panic(struct go_regs *regs, struct goroutine *g)
{
	__u32 zero = 0;
	struct panic_scratch_entry *p = bpf_map_lookup_elem(&panic_scratch, &zero);
	if (!p)
		return;
	p->pending.goid = 0;
	struct http_exception *x = &p->rec.exc;
	x->type = 0;
	x->data = 0;
	x->value_len = 0;
	x->value_ptr = 0;
	x->stack_len = 0;
	x->value_copied = 0;
	x->stack_copied = 0;
	x->probe_ip = GO_PC(regs);
	__u64 args = GO_REG4(regs);
	if (GO_REG5(regs) < 3 || args == 0)
		goto done;
	__u64 words[6] = {}; /* args[0..2]: (type, data) each */
	if (bpf_probe_read_user(words, sizeof(words), (const void *)args) != 0)
		goto done;
	x->type = words[2];
	x->data = words[3];
	/*
	 * A string's bytes are often in the binary's read-only data (a
	 * literal, the runtime's own error strings), whose page the process
	 * may never have touched: the read fails, and user space reads the
	 * bytes at value_ptr (or, when the header itself could not be read,
	 * the header at data) from the process.
	 */
	struct go_string v = {};
	if (x->data && bpf_probe_read_user(&v, sizeof(v), (const void *)x->data) == 0 && v.ptr && v.len > 0) {
		x->value_len = v.len;
		x->value_ptr = v.ptr;
		__u32 n = v.len > EXC_VALUE_LEN ? EXC_VALUE_LEN : (__u32)v.len;
		if (n <= EXC_VALUE_LEN && bpf_probe_read_user(x->value, n, (const void *)v.ptr) == 0)
			x->value_copied = n;
	}
	struct go_slice b = {};
	if (words[5] && bpf_probe_read_user(&b, sizeof(b), (const void *)words[5]) == 0 && b.ptr && b.len > 0) {
		__u32 n = b.len > EXC_STACK_LEN ? EXC_STACK_LEN : (__u32)b.len;
		if (n <= EXC_STACK_LEN && bpf_probe_read_user(x->stack, n, (const void *)b.ptr) == 0) {
			x->stack_len = b.len;
			x->stack_copied = n;
		}
	}
done:
	p->pending = *g;
}

/* The first bytes of the formats net/http logs a recovered handler panic with. */
#define PANIC_PREFIX_LEN 20
static const char panic_prefix_http1[PANIC_PREFIX_LEN] = "http: panic serving ";
static const char panic_prefix_http2[PANIC_PREFIX_LEN] = "http2: panic serving";
/*
 * The lengths of those formats, "http: panic serving %v: %v\n%s" and
 * "http2: panic serving %v: %v\n%s", which no other format these logf
 * functions are called with has (Go 1.12, 1.22, 1.27; x/net v0.1.0,
 * v0.62.0).
 */
#define PANIC_FORMAT_LEN_HTTP1 29
#define PANIC_FORMAT_LEN_HTTP2 30

/*
 * server_panic runs at the entry of the logf methods net/http's recovery
 * paths call when a handler panicked:
 *
 *     func (s *Server) logf(format string, args ...any)         // HTTP/1.x, in (*conn).serve
 *     func (sc *http2serverConn) logf(format string, args ...any) // bundled HTTP/2, in runHandler
 *     func (sc *serverConn) logf(format string, args ...any)      // internal/http2 (Go 1.27+), x/net's http2
 *
 * The deferred recovery runs on the handler's goroutine before the stack
 * unwinds, so the goroutine's unfinished span in server_spans is the
 * request that panicked: it is submitted as OUTCOME_PANIC, with what
 * read_panic read of the panic (struct panic_event). Every other
 * message these functions log (a superfluous WriteHeader, a TLS handshake
 * error, ...) is told apart by its format. A panic with
 * http.ErrAbortHandler is not logged: over HTTP/1.x conn_serve_return ends
 * its span as a panic; over net/http's HTTP/2 h2_run_return does; over
 * x/net's it ends as if the handler had returned.
 */
SEC("uprobe/net_http_Server_logf")
int server_panic(void *ctx)
{
	struct go_regs *regs = ctx;
	__u64 fmt = GO_REG2(regs), fmt_len = GO_REG3(regs);
	if (fmt_len < PANIC_PREFIX_LEN)
		return 0;
	char buf[PANIC_PREFIX_LEN] = {};
	if (bpf_probe_read_user(buf, sizeof(buf), (const void *)fmt) != 0) {
		/*
		 * The format is in the binary's read-only data, in a page the
		 * process may not have mapped in yet (a BPF program cannot
		 * fault it in): its length and the three arguments tell it.
		 */
		if ((fmt_len != PANIC_FORMAT_LEN_HTTP1 && fmt_len != PANIC_FORMAT_LEN_HTTP2) || GO_REG5(regs) != 3)
			return 0;
	} else {
		int http1 = 1, http2 = 1;
		for (int i = 0; i < PANIC_PREFIX_LEN; i++) {
			if (buf[i] != panic_prefix_http1[i])
				http1 = 0;
			if (buf[i] != panic_prefix_http2[i])
				http2 = 0;
		}
		if (!http1 && !http2)
			return 0;
	}

	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	struct server_span *s = bpf_map_lookup_elem(&server_spans, &g);
	if (!s || s->dropped)
		return 0;
	s->ev.outcome = OUTCOME_PANIC;
	read_panic(regs, &g);
	server_finish(&g, s);
	return 0;
}
