//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * server.c: one event per RPC a grpc-go server handles, unary or streaming.
 *
 * Probes (either calling convention, bpf/go_abi.h; see server.go for the
 * versions of each symbol):
 *
 *   (*http2Server).operateHeaders(frame *http2.MetaHeadersFrame, ...)
 *       on the connection's reader goroutine, for every request's headers:
 *       server_headers (frame in the 2nd word, before v1.60.0) or
 *       server_headers_ctx (3 words later, after a context.Context) keeps a
 *       valid W3C traceparent from the metadata by (transport, stream ID).
 *   (*Server).handleStream(t ServerTransport, stream *Stream, ...)
 *       on the goroutine that runs the handler: server_entry starts the
 *       span (continuing the traceparent of its headers, if any), makes it
 *       the goroutine's active span and keeps it by stream; server_return
 *       submits it and restores the goroutine's context.
 *   (*http2Server).WriteStatus / writeStatus(s *Stream, st *status.Status)
 *       server_status records the first status written for the stream
 *       (st.s.Code); server_status_code the same for grpc before v1.3.0,
 *       which passed the code itself.
 */
#include "grpc.h"

/* Field offsets, rewritten at load time; OFFSET_ABSENT if absent. */
volatile const __u64 off_g_goid = OFFSET_ABSENT;               /* runtime.g.goid */
volatile const __u64 off_tStream_id = OFFSET_ABSENT;           /* grpc/transport.Stream.id, < v1.14.0 */
volatile const __u64 off_tStream_method = OFFSET_ABSENT;       /* grpc/transport.Stream.method, < v1.14.0 */
volatile const __u64 off_Stream_id = OFFSET_ABSENT;            /* grpc/internal/transport.Stream.id, >= v1.14.0 */
volatile const __u64 off_Stream_method = OFFSET_ABSENT;        /* grpc/internal/transport.Stream.method, >= v1.14.0 */
volatile const __u64 off_ServerStream_Stream = OFFSET_ABSENT;  /* ...ServerStream.Stream, >= v1.69.0 (a pointer before v1.77.0) */
volatile const __u64 off_ServerStream_id = OFFSET_ABSENT;      /* ...ServerStream.Stream.id, >= v1.77.0 */
volatile const __u64 off_ServerStream_method = OFFSET_ABSENT;  /* ...ServerStream.Stream.method, >= v1.77.0 */
volatile const __u64 off_MetaHeadersFrame_HeadersFrame = OFFSET_ABSENT; /* x/net/http2.MetaHeadersFrame.HeadersFrame */
volatile const __u64 off_MetaHeadersFrame_Fields = OFFSET_ABSENT;       /* x/net/http2.MetaHeadersFrame.Fields */
volatile const __u64 off_HeadersFrame_StreamID = OFFSET_ABSENT;         /* x/net/http2.HeadersFrame.FrameHeader.StreamID */
volatile const __u64 off_HeaderField_Name = OFFSET_ABSENT;              /* x/net/http2/hpack.HeaderField.Name */
volatile const __u64 off_HeaderField_Value = OFFSET_ABSENT;             /* x/net/http2/hpack.HeaderField.Value */
volatile const __u64 off_iStatus_s = OFFSET_ABSENT;            /* grpc/internal/status.Status.s, >= v1.29.0 */
volatile const __u64 off_Status_s = OFFSET_ABSENT;             /* grpc/status.Status.s, v1.3.0 to v1.28.x */
volatile const __u64 off_spb_Code = OFFSET_ABSENT;             /* genproto/googleapis/rpc/status.Status.Code */
volatile const __u64 off_http2Server_peer = OFFSET_ABSENT;      /* grpc/internal/transport.http2Server.peer, >= v1.60.0 */
volatile const __u64 off_http2Server_remoteAddr = OFFSET_ABSENT; /* grpc/internal/transport.http2Server.remoteAddr, v1.14.0 to v1.59.x */
volatile const __u64 off_thttp2Server_remoteAddr = OFFSET_ABSENT; /* grpc/transport.http2Server.remoteAddr, < v1.14.0 */
volatile const __u64 off_Peer_Addr = OFFSET_ABSENT;             /* grpc/peer.Peer.Addr */
volatile const __u64 off_TCPAddr_IP = OFFSET_ABSENT;            /* net.TCPAddr.IP */
volatile const __u64 off_TCPAddr_Port = OFFSET_ABSENT;          /* net.TCPAddr.Port */

/* How many header fields of a request are searched for traceparent. */
#define MAX_HEADER_FIELDS 32
/* The longest traceparent value read: version 00 is 55 bytes. */
#define TRACEPARENT_MAX 64

/* A stream of a server transport, as the reader goroutine sees it. */
struct stream_key {
	__u32 tgid;
	__u32 stream_id;
	__u64 transport; /* *http2Server */
};

/*
 * What operateHeaders saw of a request whose handler has not started yet:
 * its valid traceparent, if any, and that its transport is an *http2Server
 * (handleStream also serves ServeHTTP's transport, a different type).
 */
struct incoming_request {
	struct span_context sc;
	__u64 has_context;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct stream_key);
	__type(value, struct incoming_request);
} incoming SEC(".maps");

/* A server RPC in progress. */
struct server_span {
	struct grpc_event ev;
	struct span_context saved; /* the goroutine's active span before this one */
	__u64 had_saved;
};

/* RPCs in progress by stream; LRU, so that RPCs whose return probe never ran are evicted. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct stream_ref);
	__type(value, struct server_span);
} server_spans SEC(".maps");

/* The stream each handler goroutine is serving, for the return probe. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct goroutine);
	__type(value, __u64);
} server_goroutines SEC(".maps");

/* Where server_entry builds an event too large for the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct server_span);
} server_scratch SEC(".maps");

/* Where server_headers reads a header value. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u8[TRACEPARENT_MAX]);
} value_scratch SEC(".maps");

/*
 * stream_fields returns the address of the stream's id and method fields,
 * in whichever transport package and stream type the traced version has.
 */
static __always_inline void stream_fields(__u64 stream, __u64 *id, __u64 *method)
{
	*id = 0;
	*method = 0;
	if (off_ServerStream_method != OFFSET_ABSENT) { /* >= v1.77.0: Stream embedded */
		*id = field_addr(stream, off_ServerStream_id);
		*method = field_addr(stream, off_ServerStream_method);
		return;
	}
	if (off_ServerStream_Stream != OFFSET_ABSENT) { /* v1.69.0 to v1.76.x: *Stream embedded */
		__u64 inner = 0;
		if (!read_go_ptr(field_addr(stream, off_ServerStream_Stream), &inner))
			return;
		stream = inner;
	}
	if (off_Stream_method != OFFSET_ABSENT) {
		*id = field_addr(stream, off_Stream_id);
		*method = field_addr(stream, off_Stream_method);
	} else {
		*id = field_addr(stream, off_tStream_id);
		*method = field_addr(stream, off_tStream_method);
	}
}

/* is_traceparent reports whether the 11 bytes at name spell "traceparent". */
static __always_inline int is_traceparent(const __u8 *n)
{
	return n[0] == 't' && n[1] == 'r' && n[2] == 'a' && n[3] == 'c' && n[4] == 'e' && n[5] == 'p' &&
	       n[6] == 'a' && n[7] == 'r' && n[8] == 'e' && n[9] == 'n' && n[10] == 't';
}

/*
 * find_traceparent looks for the request's traceparent among the header
 * fields of the frame at frame and parses it into sc; it returns whether
 * there is exactly one, valid. A request with more than one traceparent
 * field, or an invalid one, is left without: its span starts a new trace.
 */
static __always_inline int find_traceparent(__u64 frame, struct span_context *sc)
{
	if (off_HeaderField_Name == OFFSET_ABSENT || off_HeaderField_Value == OFFSET_ABSENT)
		return 0;
	struct go_slice fields = {};
	__u64 a = field_addr(frame, off_MetaHeadersFrame_Fields);
	if (a == 0 || bpf_probe_read_user(&fields, sizeof(fields), (const void *)a) != 0 || fields.ptr == 0)
		return 0;
	/* hpack.HeaderField is {Name, Value string; Sensitive bool}: Value, then a padded bool. */
	__u64 stride = off_HeaderField_Value + sizeof(struct go_string) + 8;

	__u32 zero = 0;
	__u8 *value = bpf_map_lookup_elem(&value_scratch, &zero);
	if (!value)
		return 0;
	int found = 0;
	__u32 value_len = 0;
	for (int i = 0; i < MAX_HEADER_FIELDS; i++) {
		if (i >= fields.len)
			break;
		__u64 elem = fields.ptr + i * stride;
		struct go_string name = {};
		if (bpf_probe_read_user(&name, sizeof(name), (const void *)(elem + off_HeaderField_Name)) != 0)
			return 0;
		if (name.len != 11 || name.ptr == 0)
			continue;
		__u8 n[11] = {};
		if (bpf_probe_read_user(n, sizeof(n), (const void *)name.ptr) != 0 || !is_traceparent(n))
			continue;
		if (++found > 1)
			return 0; /* duplicated: invalid */
		struct go_string v = {};
		if (bpf_probe_read_user(&v, sizeof(v), (const void *)(elem + off_HeaderField_Value)) != 0)
			return 0;
		if (v.ptr == 0 || v.len < TRACEPARENT_LEN || v.len > TRACEPARENT_MAX)
			return 0;
		value_len = (__u32)v.len;
		if (bpf_probe_read_user(value, TRACEPARENT_MAX, (const void *)v.ptr) != 0 &&
		    bpf_probe_read_user(value, TRACEPARENT_LEN, (const void *)v.ptr) != 0)
			return 0;
	}
	return found && parse_traceparent(value, value_len, sc);
}

/*
 * headers notes the request whose headers frame is at frame, received on
 * the *http2Server t: its traceparent, and that the transport is one.
 */
static __always_inline int headers(__u64 t, __u64 frame)
{
	__u64 hf = 0;
	if (!read_go_ptr(field_addr(frame, off_MetaHeadersFrame_HeadersFrame), &hf))
		return 0;
	struct stream_key key = {.tgid = bpf_get_current_pid_tgid() >> 32, .transport = t};
	if (!read_go_u32(field_addr(hf, off_HeadersFrame_StreamID), &key.stream_id))
		return 0;
	struct incoming_request in = {};
	in.has_context = find_traceparent(frame, &in.sc);
	bpf_map_update_elem(&incoming, &key, &in, BPF_ANY);
	return 0;
}

SEC("uprobe/grpc_http2Server_operateHeaders")
int server_headers(void *ctx)
{
	struct go_regs *regs = ctx;
	return headers(GO_REG1(regs), GO_REG2(regs));
}

SEC("uprobe/grpc_http2Server_operateHeaders_ctx")
int server_headers_ctx(void *ctx)
{
	struct go_regs *regs = ctx;
	return headers(GO_REG1(regs), GO_REG4(regs));
}

/*
 * read_peer fills the client's address of ev from the *http2Server t: its
 * peer.Addr (v1.60.0+) or remoteAddr, a net.Addr whose dynamic type is
 * *net.TCPAddr for TCP. Another type (a Unix socket's *net.UnixAddr) fails
 * the checks on the IP slice and leaves the address unknown.
 */
static __always_inline void read_peer(struct grpc_event *ev, __u64 t)
{
	__u64 iface;
	if (off_http2Server_peer != OFFSET_ABSENT)
		iface = field_addr(field_addr(t, off_http2Server_peer), off_Peer_Addr);
	else if (off_http2Server_remoteAddr != OFFSET_ABSENT)
		iface = field_addr(t, off_http2Server_remoteAddr);
	else
		iface = field_addr(t, off_thttp2Server_remoteAddr);
	__u64 addr = 0;
	if (!iface || !read_go_ptr(iface + 8, &addr)) /* the interface's data word */
		return;
	struct go_slice ip = {};
	__u64 a = field_addr(addr, off_TCPAddr_IP);
	if (!a || bpf_probe_read_user(&ip, sizeof(ip), (const void *)a) != 0 || ip.ptr == 0)
		return;
	if ((ip.len != 4 && ip.len != 16) || ip.cap < ip.len || ip.cap > 64)
		return;
	__u64 port = read_u64(field_addr(addr, off_TCPAddr_Port));
	if (port == 0 || port > 65535)
		return;
	if (bpf_probe_read_user(ev->peer_ip, ip.len == 4 ? 4 : 16, (const void *)ip.ptr) != 0)
		return;
	ev->peer_ip_len = ip.len;
	ev->peer_port = port;
}

SEC("uprobe/grpc_Server_handleStream")
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
	struct grpc_event *ev = &s->ev;
	__builtin_memset(ev, 0, sizeof(*ev) - GRPC_METHOD_LEN - GRPC_TARGET_LEN);
	ev->kind = event_kind;
	ev->pid = record_tgid(g.tgid);
	ev->start_ns = bpf_ktime_get_ns();

	__u64 transport = GO_REG3(regs); /* data word of the ServerTransport */
	__u64 stream = GO_REG4(regs);
	__u64 id_addr, method_addr;
	stream_fields(stream, &id_addr, &method_addr);
	if (method_addr)
		ev->method_len = read_go_string(ev->method, GRPC_METHOD_LEN, method_addr);

	struct stream_key key = {.tgid = g.tgid, .transport = transport};
	struct incoming_request *in = 0;
	if (read_go_u32(id_addr, &key.stream_id))
		in = bpf_map_lookup_elem(&incoming, &key);
	if (in)
		read_peer(ev, transport); /* an *http2Server: operateHeaders saw it */
	if (in && in->has_context) {
		__builtin_memcpy(ev->trace_id, in->sc.trace_id, sizeof(ev->trace_id));
		__builtin_memcpy(ev->parent_span_id, in->sc.span_id, sizeof(ev->parent_span_id));
		ev->flags = sample(ev->trace_id, 1, in->sc.flags);
		ev->remote_parent = 1;
		random_id(ev->span_id, sizeof(ev->span_id));
	} else {
		/* Served through ServeHTTP, or no traceparent: a child of the goroutine's span, if any. */
		ev->flags = span_start(&g, ev->trace_id, ev->span_id, ev->parent_span_id);
	}
	if (in)
		bpf_map_delete_elem(&incoming, &key);
	s->had_saved = span_activate(&g, ev->trace_id, ev->span_id, ev->flags, &s->saved);

	struct stream_ref ref = {.tgid = g.tgid, .stream = stream};
	bpf_map_update_elem(&server_spans, &ref, s, BPF_ANY);
	bpf_map_update_elem(&server_goroutines, &g, &stream, BPF_ANY);
	return 0;
}

SEC("uprobe/grpc_Server_handleStream_return")
int server_return(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	__u64 *stream = bpf_map_lookup_elem(&server_goroutines, &g);
	if (!stream) {
		count_lost(LOST_IN_FLIGHT);
		return 0;
	}
	struct stream_ref ref = {.tgid = g.tgid, .stream = *stream};
	bpf_map_delete_elem(&server_goroutines, &g);
	struct server_span *s = bpf_map_lookup_elem(&server_spans, &ref);
	if (!s) {
		count_lost(LOST_IN_FLIGHT);
		return 0;
	}
	s->ev.end_ns = bpf_ktime_get_ns();
	submit(&s->ev, sizeof(s->ev));
	span_deactivate(&g, s->had_saved, &s->saved);
	bpf_map_delete_elem(&server_spans, &ref);
	return 0;
}

/* set_status records code as the status of the RPC on stream, unless one was recorded. */
static __always_inline void set_status(__u64 stream, int state, __u32 code)
{
	struct stream_ref ref = {.tgid = bpf_get_current_pid_tgid() >> 32, .stream = stream};
	struct server_span *s = bpf_map_lookup_elem(&server_spans, &ref);
	if (!s || s->ev.status_state != GRPC_STATUS_UNKNOWN)
		return; /* only the first status reaches the wire */
	s->ev.status_state = state;
	s->ev.status = code;
}

SEC("uprobe/grpc_http2Server_WriteStatus")
int server_status(void *ctx)
{
	struct go_regs *regs = ctx;
	__u64 st = GO_REG3(regs); /* *status.Status */
	__u64 off = off_iStatus_s != OFFSET_ABSENT ? off_iStatus_s : off_Status_s;
	__u64 spb = 0;
	__u32 code = 0;
	/* Unreadable (the genproto layout unknown): the span has no status code. */
	if (read_go_ptr(field_addr(st, off), &spb) && spb_code(spb, off_spb_Code, &code))
		set_status(GO_REG2(regs), GRPC_STATUS_SET, code);
	return 0;
}

SEC("uprobe/grpc_http2Server_WriteStatus_code")
int server_status_code(void *ctx)
{
	struct go_regs *regs = ctx;
	__u32 code = (__u32)GO_REG3(regs); /* codes.Code */
	if (code <= GRPC_MAX_CODE)
		set_status(GO_REG2(regs), GRPC_STATUS_SET, code);
	return 0;
}
