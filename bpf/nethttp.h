/* SPDX-License-Identifier: (MIT OR GPL-2.0-only) */
/*
 * nethttp.h: the record the net/http server and client instrumentations
 * share, and the readers for net/http values.
 *
 * The server (tracer/instrumentation/nethttp/server/server.c) and client
 * (.../client/client.c) are separate BPF objects so that either can be
 * loaded and attached alone; the client finds the server span it was made
 * for through the generic active-span context of context.h, not through
 * the server's own state.
 */
#ifndef OFFSETDB_NETHTTP_H
#define OFFSETDB_NETHTTP_H

#include "runtime.h"
#include "context.h"
#include "gomap.h"

/*
 * Sizes of the string buffers in struct http_event; longer values are cut
 * (the path and query say so in http_event.cut). Path and query are what
 * users filter on, so they get most of the record: 1 KiB each, with 16-bit
 * lengths. The record is 2872 bytes, and each LRU map of requests in
 * progress (server_spans, client_spans) preallocates 8192 of them: ~24 MiB
 * of kernel memory per map and target (14.4 MiB with 512-byte path and
 * query), most of it the path and query.
 */
#define METHOD_LEN 16
#define SCHEME_LEN 8
#define HOST_LEN 128
#define PATH_LEN 1024
#define QUERY_LEN 1024
#define ROUTE_LEN 128
#define REMOTE_ADDR_LEN 64
#define TRACESTATE_LEN 255
#define USER_AGENT_LEN 128

/* How a server request ended (http_event.outcome). */
#define OUTCOME_RETURNED 0 /* the handler returned */
#define OUTCOME_PANIC 1    /* the handler panicked; net/http recovered it and logged "panic serving" */
#define OUTCOME_HIJACKED 2 /* the handler returned having hijacked the connection: no status */

/* Which values were longer than their buffer (http_event.cut). */
#define CUT_PATH 1
#define CUT_QUERY 2
#define CUT_USER_AGENT 4

/* What became of the trace context of a client request (http_event.context_out). */
#define CONTEXT_OUT_NONE 0    /* not written: propagation is off */
#define CONTEXT_OUT_QUEUED 1  /* handed to the socket-layer writer (tracer/propagation) */
#define CONTEXT_OUT_APP 2     /* the request carried the application's own traceparent: left alone */
#define CONTEXT_OUT_TLS 3     /* https: the bytes leave the process encrypted, nothing can be added */

/*
 * One finished HTTP request. Strings are not NUL-terminated: *_len says how
 * many bytes of each buffer are valid. Times are bpf_ktime_get_ns()
 * (CLOCK_MONOTONIC). A zero status means unknown.
 */
struct http_event {
	__u8 kind; /* event_kind of the submitting object */
	__u8 proto_major;
	__u8 proto_minor;
	__u8 method_len;
	__u8 scheme_len;
	__u8 host_len;
	__u8 route_len;
	__u8 remote_addr_len;
	__u16 status;
	__u8 flags;         /* W3C trace-flags of the span */
	__u8 remote_parent; /* server: the parent came in a traceparent header */
	__u8 context_out;   /* client: CONTEXT_OUT_* */
	__u8 tracestate_len;
	__u8 outcome;       /* server: OUTCOME_* */
	__u8 cut;           /* CUT_*: path or query longer than its buffer */
	__u16 path_len;
	__u16 query_len;
	__u32 pid; /* thread group id of the traced process */
	__s64 body_size; /* server: Request.ContentLength, -1 when unknown */
	__u64 goid;
	__u64 start_ns;
	__u64 end_ns;
	__u8 trace_id[16];
	__u8 span_id[8];
	__u8 parent_span_id[8]; /* all zero for a root span */
	__u8 method[METHOD_LEN];
	__u8 scheme[SCHEME_LEN];
	__u8 host[HOST_LEN];
	__u8 path[PATH_LEN];
	__u8 query[QUERY_LEN];
	__u8 route[ROUTE_LEN];
	__u8 remote_addr[REMOTE_ADDR_LEN];
	__u8 tracestate[TRACESTATE_LEN + 1]; /* server: the tracestate header that came with the traceparent */
	__u8 user_agent_len;
	__u8 user_agent[USER_AGENT_LEN]; /* server: the first User-Agent header */
};

/*
 * What server.c reads of a recovered handler panic, from the arguments of
 * the logf call net/http makes ("http: panic serving %v: %v\n%s",
 * remoteAddr, the panic value, the stack trace): a record of a panicked
 * span is a struct http_event followed by this (struct panic_event,
 * server.c), built in a per-CPU scratch so that no map of requests in
 * progress grows. Only the Go ABI is read: the interface's two words, a
 * string's and a slice's header. 4.5 KiB.
 */
#define EXC_VALUE_LEN 512  /* bytes of the panic value read as a string */
#define EXC_STACK_LEN 4096 /* bytes of the stack trace (debug.Stack output) */
struct http_exception {
	__u64 type;      /* the panic value's type word: address of its runtime type descriptor */
	__u64 data;      /* the panic value's data word */
	__u64 probe_ip;  /* where the probe ran: the entry of the logf function (the load bias of a PIE) */
	__s64 value_len; /* length of the string at data, if the value is a string (user space decides) */
	/*
	 * Where that string's bytes are. When they could not be read
	 * (value_copied 0: a page of the binary's data not yet mapped in,
	 * which BPF cannot fault in), user space reads them.
	 */
	__u64 value_ptr;
	__s64 stack_len; /* length of the stack trace */
	__u16 value_copied;
	__u16 stack_copied;
	__u8 pad[4];
	__u8 value[EXC_VALUE_LEN];
	__u8 stack[EXC_STACK_LEN];
};

/*
 * read_long_go_string copies at most size bytes (a constant, at most 65535)
 * of the Go string whose header is at addr into dst and returns how many it
 * copied; it sets the bit cut in *cut_bits when the string was longer.
 */
static __always_inline __u16 read_long_go_string(void *dst, __u32 size, __u64 addr, __u8 *cut_bits, __u8 cut)
{
	struct go_string s = {};
	if (bpf_probe_read_user(&s, sizeof(s), (const void *)addr) != 0 || s.ptr == 0 || s.len <= 0)
		return 0;
	__u32 n = s.len > size ? size : (__u32)s.len;
	if (n > size) /* restated for the verifier */
		return 0;
	if (bpf_probe_read_user(dst, n, (const void *)s.ptr) != 0)
		return 0;
	if (s.len > size)
		*cut_bits |= cut;
	return n;
}

/*
 * read_url fills the path and query of ev (and scheme and host when
 * with_origin) from the *net/url.URL at url.
 */
static __always_inline void read_url(struct http_event *ev, __u64 url, int with_origin,
				     __u64 off_scheme, __u64 off_host, __u64 off_path, __u64 off_query)
{
	__u64 a;
	ev->path_len = 0;
	ev->query_len = 0;
	ev->cut = 0;
	if ((a = field_addr(url, off_path)))
		ev->path_len = read_long_go_string(ev->path, PATH_LEN, a, &ev->cut, CUT_PATH);
	if ((a = field_addr(url, off_query)))
		ev->query_len = read_long_go_string(ev->query, QUERY_LEN, a, &ev->cut, CUT_QUERY);
	if (!with_origin)
		return;
	ev->scheme_len = 0;
	ev->host_len = 0;
	if ((a = field_addr(url, off_scheme)))
		ev->scheme_len = read_go_string(ev->scheme, SCHEME_LEN, a);
	if ((a = field_addr(url, off_host)))
		ev->host_len = read_go_string(ev->host, HOST_LEN, a);
}

/* Every event field that is not a string buffer, zeroed. */
static __always_inline void reset_event(struct http_event *ev)
{
	ev->kind = event_kind;
	ev->proto_major = 0;
	ev->proto_minor = 0;
	ev->method_len = 0;
	ev->scheme_len = 0;
	ev->host_len = 0;
	ev->path_len = 0;
	ev->query_len = 0;
	ev->route_len = 0;
	ev->remote_addr_len = 0;
	ev->status = 0;
	ev->flags = 0;
	ev->remote_parent = 0;
	ev->context_out = CONTEXT_OUT_NONE;
	ev->tracestate_len = 0;
	ev->user_agent_len = 0;
	ev->outcome = OUTCOME_RETURNED;
	ev->cut = 0;
	ev->pid = 0;
	ev->body_size = -1;
	ev->goid = 0;
	ev->start_ns = 0;
	ev->end_ns = 0;
	__builtin_memset(ev->trace_id, 0, sizeof(ev->trace_id));
	__builtin_memset(ev->span_id, 0, sizeof(ev->span_id));
	__builtin_memset(ev->parent_span_id, 0, sizeof(ev->parent_span_id));
}

/* http_status returns v if it is a plausible HTTP status code, else 0. */
static __always_inline __u16 http_status(__u64 v)
{
	return v >= 100 && v <= 999 ? (__u16)v : 0;
}

/*
 * Offsets of the net/http.Header map's runtime fields (gomap.h), rewritten
 * at load time like the off_ constants of each object.
 */
volatile const __u64 off_hmap_B = OFFSET_ABSENT;                      /* runtime.hmap.B */
volatile const __u64 off_hmap_buckets = OFFSET_ABSENT;                /* runtime.hmap.buckets */
volatile const __u64 off_hmap_oldbuckets = OFFSET_ABSENT;             /* runtime.hmap.oldbuckets */
volatile const __u64 off_Map_dirPtr = OFFSET_ABSENT;                  /* internal/runtime/maps.Map.dirPtr */
volatile const __u64 off_Map_dirLen = OFFSET_ABSENT;                  /* internal/runtime/maps.Map.dirLen */
volatile const __u64 off_table_groups = OFFSET_ABSENT;                /* internal/runtime/maps.table.groups */
volatile const __u64 off_groupsReference_data = OFFSET_ABSENT;        /* internal/runtime/maps.groupsReference.data */
volatile const __u64 off_groupsReference_lengthMask = OFFSET_ABSENT;  /* internal/runtime/maps.groupsReference.lengthMask */

static __always_inline void header_map_offsets(struct gomap_offsets *o)
{
	o->hmap_B = off_hmap_B;
	o->hmap_buckets = off_hmap_buckets;
	o->hmap_oldbuckets = off_hmap_oldbuckets;
	o->map_dirPtr = off_Map_dirPtr;
	o->map_dirLen = off_Map_dirLen;
	o->table_groups = off_table_groups;
	o->groups_data = off_groupsReference_data;
	o->groups_lengthMask = off_groupsReference_lengthMask;
}

/*
 * header_traceparent reads the W3C traceparent of the net/http.Header map
 * hdr into *sc. It returns 1 for exactly one valid value; 0 when there is
 * none, more than one (the W3C spec makes a repeated traceparent invalid),
 * or it is invalid (parse_traceparent).
 */
static __always_inline int header_traceparent(__u64 hdr, const struct gomap_offsets *o, struct span_context *sc)
{
	struct go_strings v = {};
	if (!gomap_find_header(hdr, o, GOMAP_KEY_TRACEPARENT, &v) || v.len != 1)
		return 0;
	struct go_string s = {};
	if (bpf_probe_read_user(&s, sizeof(s), (const void *)v.ptr) != 0 || s.len < TRACEPARENT_LEN || s.len > 255)
		return 0;
	__u8 buf[TRACEPARENT_LEN + 1] = {};
	__u32 n = s.len > TRACEPARENT_LEN ? TRACEPARENT_LEN + 1 : TRACEPARENT_LEN;
	if (bpf_probe_read_user(buf, n, (const void *)s.ptr) != 0)
		return 0;
	return parse_traceparent(buf, (__u32)s.len, sc);
}

/*
 * header_tracestate copies the first tracestate value of the
 * net/http.Header map hdr into ev (cut at TRACESTATE_LEN bytes).
 */
static __always_inline void header_tracestate(__u64 hdr, const struct gomap_offsets *o, struct http_event *ev)
{
	struct go_strings v = {};
	if (!gomap_find_header(hdr, o, GOMAP_KEY_TRACESTATE, &v) || v.len < 1)
		return;
	ev->tracestate_len = read_go_string(ev->tracestate, TRACESTATE_LEN, v.ptr);
}

/*
 * header_user_agent copies the first User-Agent value of the
 * net/http.Header map hdr into ev (cut at USER_AGENT_LEN bytes, marked
 * CUT_USER_AGENT).
 */
static __always_inline void header_user_agent(__u64 hdr, const struct gomap_offsets *o, struct http_event *ev)
{
	struct go_strings v = {};
	if (!gomap_find_header(hdr, o, GOMAP_KEY_USER_AGENT, &v) || v.len < 1)
		return;
	struct go_string s = {};
	if (bpf_probe_read_user(&s, sizeof(s), (const void *)v.ptr) != 0)
		return;
	ev->user_agent_len = copy_go_string(ev->user_agent, USER_AGENT_LEN, s.ptr, s.len);
	if (s.len > USER_AGENT_LEN)
		ev->cut |= CUT_USER_AGENT;
}

#endif /* OFFSETDB_NETHTTP_H */
