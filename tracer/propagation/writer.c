//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * writer.c: adds a W3C traceparent header to HTTP/1.x requests as their
 * bytes leave a traced process, without writing into the process.
 *
 * track_sockets (sock_ops, attached to the cgroup v2 root) notes the TCP
 * sockets a traced process connects (traced_processes, filled by the
 * net/http client's uprobes) and, once established, puts them into
 * "sockets". inject_traceparent (sk_msg, attached to "sockets") then sees
 * every write on them: when the writing thread has a request queued in
 * outgoing_requests (bpf/propagation.h) and the bytes start with that
 * request's line, it opens a gap after the request line and fills it with
 *
 *     traceparent: 00-<trace-id>-<span-id>-<flags>\r\n
 *
 * Everything else passes unchanged. A write is changed only when the
 * request line is complete in it and ends in " HTTP/1.x\r\n"; if the
 * kernel cannot fill the gap it opened, the gap is closed again, so a
 * request is either sent as the application wrote it or with exactly one
 * well-formed header more.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "propagation.h"

/* A request written later than this after net/http began writing it is another's. */
#define STALE_NS (200ULL * 1000 * 1000)
/*
 * A HEADERS frame the connection writer encoded this long ago: gRPC's
 * writer batches frames and may yield before it flushes them.
 */
#define H2_STALE_NS (1000ULL * 1000 * 1000)
/* The request line must end within this many bytes of the write's start. */
#define LINE_MAX 2048
/* "traceparent: " + 55 + "\r\n" */
#define HEADER_LEN 70

/* Sockets connected by traced processes, by socket cookie, until established. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);
} connecting SEC(".maps");

/* The established sockets inject_traceparent watches, by socket cookie. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} sockets SEC(".maps");

/* Where inject_traceparent keeps its copy of the queued request. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct outgoing_request);
} scratch SEC(".maps");

SEC("sockops")
int track_sockets(struct bpf_sock_ops *skops)
{
	__u64 cookie;
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB: {
		/* connect(2) runs on the connecting process's thread. */
		__u32 tgid = bpf_get_current_pid_tgid() >> 32;
		if (!bpf_map_lookup_elem(&traced_processes, &tgid))
			break;
		cookie = bpf_get_socket_cookie(skops);
		__u8 one = 1;
		bpf_map_update_elem(&connecting, &cookie, &one, BPF_ANY);
		break;
	}
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		cookie = bpf_get_socket_cookie(skops);
		if (!bpf_map_lookup_elem(&connecting, &cookie))
			break;
		bpf_map_delete_elem(&connecting, &cookie);
		bpf_sock_hash_update(skops, &sockets, &cookie, BPF_NOEXIST);
		break;
	}
	return 1;
}

static __always_inline __u8 hex_digit(__u8 v)
{
	return v < 10 ? '0' + v : 'a' + v - 10;
}

/* format_header writes the header line for o into h (HEADER_LEN bytes). */
static __always_inline void format_header(__u8 *h, const struct outgoing_request *o)
{
	const char name[] = "traceparent: 00-";
#pragma unroll
	for (int i = 0; i < 16; i++)
		h[i] = name[i];
	int p = 16;
#pragma unroll
	for (int i = 0; i < 16; i++) {
		h[p++] = hex_digit(o->trace_id[i] >> 4);
		h[p++] = hex_digit(o->trace_id[i] & 15);
	}
	h[p++] = '-';
#pragma unroll
	for (int i = 0; i < 8; i++) {
		h[p++] = hex_digit(o->span_id[i] >> 4);
		h[p++] = hex_digit(o->span_id[i] & 15);
	}
	h[p++] = '-';
	h[p++] = hex_digit(o->flags >> 4);
	h[p++] = hex_digit(o->flags & 15);
	h[p++] = '\r';
	h[p++] = '\n';
}

/*
 * msg_byte returns the byte at offset i (< LINE_MAX) of the pulled part of
 * msg, or -1 past its end. A global function, so that the verifier checks
 * the packet access once whatever the caller computed i from.
 */
__noinline int msg_byte(struct sk_msg_md *msg, __u32 i)
{
	__u8 *data = msg->data, *end = msg->data_end;
	__u8 *p = data + (i & (LINE_MAX - 1));
	if (p + 1 > end)
		return -1;
	return *p;
}

/* byte_at reads the byte at offset i of the pulled part of msg into *c; false past its end. */
static __always_inline int byte_at(struct sk_msg_md *msg, __u32 i, __u8 *c)
{
	int v = msg_byte(msg, i);
	if (v < 0)
		return 0;
	*c = (__u8)v;
	return 1;
}

/* A TCP connection, as an sk_msg program sees it. */
struct conn_key {
	__u32 tgid;
	__u32 local_port;
	__u32 remote_port;
	__u32 remote_ip[4]; /* IPv4 in [0] */
};

/*
 * The connection writer of each socket (a *persistConn for HTTP/1.x, a
 * *loopyWriter for gRPC), learnt from the first request or frame matched
 * by thread: outgoing_by_conn and outgoing_h2_streams are keyed by it.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct conn_key);
	__type(value, __u64);
} conns SEC(".maps");

/* conn_of fills ck with the connection msg is written on, by the process of id. */
static __always_inline void conn_of(struct sk_msg_md *msg, __u64 id, struct conn_key *ck)
{
	__builtin_memset(ck, 0, sizeof(*ck));
	ck->tgid = id >> 32;
	ck->local_port = msg->local_port;
	ck->remote_port = msg->remote_port;
	if (msg->family == 2 /* AF_INET */) {
		ck->remote_ip[0] = msg->remote_ip4;
	} else {
		ck->remote_ip[0] = msg->remote_ip6[0];
		ck->remote_ip[1] = msg->remote_ip6[1];
		ck->remote_ip[2] = msg->remote_ip6[2];
		ck->remote_ip[3] = msg->remote_ip6[3];
	}
}

/* lower returns c in lower case, for ASCII letters. */
static __always_inline __u8 lower(__u8 c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* name_at reports whether "traceparent:" (any case) is at offset at of msg. */
__noinline int name_at(struct sk_msg_md *msg, __u32 at)
{
	const char name[] = "traceparent:";
	for (__u32 k = 0; k < 12; k++) {
		int c = msg_byte(msg, at + k);
		if (c < 0 || lower((__u8)c) != name[k])
			return 0;
	}
	return 1;
}

/* The state of a scan of msg's bytes with bpf_loop. */
struct scan {
	struct sk_msg_md *msg;
	__u32 from;       /* first offset */
	__u32 found;      /* the answer: an offset, or 1 for yes */
	__u8 line_start;  /* has_traceparent: at the start of a header line */
	__u8 done;
};

static long traceparent_step(__u64 i, void *ctx)
{
	struct scan *sc = ctx;
	__u32 at = sc->from + (__u32)i;
	int c = msg_byte(sc->msg, at);
	if (c < 0 || at >= LINE_MAX - 12)
		return 1;
	if (sc->line_start) {
		if (c == '\r')
			return 1; /* the blank line that ends the headers */
		if ((c == 't' || c == 'T') && name_at(sc->msg, at)) {
			sc->found = 1;
			return 1;
		}
	}
	sc->line_start = c == '\n';
	return 0;
}

/*
 * has_traceparent reports whether a header line "traceparent:" (any case)
 * starts at or after offset from (the start of a line), before the end of
 * the headers, within the pulled part of msg (LINE_MAX bytes).
 */
static __always_inline int has_traceparent(struct sk_msg_md *msg, __u32 from)
{
	struct scan sc = {.msg = msg, .from = from, .line_start = 1};
	bpf_loop(LINE_MAX, traceparent_step, &sc, 0);
	return sc.found;
}

static long eol_step(__u64 i, void *ctx)
{
	struct scan *sc = ctx;
	__u32 at = sc->from + (__u32)i;
	int c = msg_byte(sc->msg, at);
	if (c < 0 || at >= LINE_MAX - 1)
		return 1;
	if (c == '\r' && msg_byte(sc->msg, at + 1) == '\n') {
		sc->found = at;
		return 1;
	}
	return 0;
}

/* find_eol returns the offset of the first CRLF at or after from, or 0. */
static __always_inline __u32 find_eol(struct sk_msg_md *msg, __u32 from)
{
	struct scan sc = {.msg = msg, .from = from};
	bpf_loop(LINE_MAX, eol_step, &sc, 0);
	return sc.found;
}

/*
 * forget removes the queued request o, by thread (if still its) and by
 * connection, and notes that it was seen leaving (bpf/propagation.h,
 * outgoing_seen).
 */
static __always_inline void forget(__u64 id, struct outgoing_request *o)
{
	struct request_seen_ref seen = {.tgid = id >> 32, .req = o->req};
	__u8 one = 1;
	bpf_map_update_elem(&outgoing_seen, &seen, &one, BPF_ANY);
	struct outgoing_request *by_thread = bpf_map_lookup_elem(&outgoing_requests, &id);
	if (by_thread && by_thread->queued_ns == o->queued_ns)
		bpf_map_delete_elem(&outgoing_requests, &id);
	struct conn_ref cref = {.tgid = id >> 32, .conn = o->conn};
	bpf_map_delete_elem(&outgoing_by_conn, &cref);
}

/* inject_http1 adds the traceparent of the request q queued for thread id. */
static __always_inline int inject_http1(struct sk_msg_md *msg, __u64 id, struct outgoing_request *q)
{
	__u32 zero = 0;
	struct outgoing_request *op = bpf_map_lookup_elem(&scratch, &zero);
	if (!op)
		return SK_PASS;
	__builtin_memcpy(op, q, sizeof(*op));
	if (bpf_ktime_get_ns() - op->queued_ns > STALE_NS) {
		forget(id, op);
		context_count(CONTEXT_STALE);
		return SK_PASS;
	}

	__u32 n = msg->size < LINE_MAX ? msg->size : LINE_MAX;
	if (n < 16 || bpf_msg_pull_data(msg, 0, n, 0) != 0)
		return SK_PASS;

	/* Is this the queued request? Its method, a space, and its path. */
	if (op->method_len == 0 || op->method_len > OUTGOING_METHOD_LEN)
		return SK_PASS;
	__u8 c;
	for (__u32 i = 0; i < OUTGOING_METHOD_LEN; i++) {
		if (i >= op->method_len)
			break;
		if (!byte_at(msg, i, &c) || c != op->method[i])
			return SK_PASS; /* another write (a response, another protocol): keep waiting */
	}
	__u32 t = op->method_len; /* the space before the request target */
	if (!byte_at(msg, t, &c) || c != ' ')
		return SK_PASS;
	if (byte_at(msg, t + 1, &c) && c == '/') {
		for (__u32 i = 0; i < OUTGOING_PATH_LEN; i++) {
			if (i >= op->path_len)
				break;
			if (!byte_at(msg, t + 1 + i, &c) || c != op->path[i])
				return SK_PASS;
		}
	}
	/* Taken: forget it, and learn the socket's connection. */
	forget(id, op);
	if (op->conn) {
		struct conn_key ck;
		conn_of(msg, id, &ck);
		bpf_map_update_elem(&conns, &ck, &op->conn, BPF_ANY);
	}

	/* The end of the request line, which must be an HTTP/1.x one. */
	/* "GET / HTTP/1.1": the shortest line ends 11 bytes after the method's space. */
	__u32 eol = find_eol(msg, t + 11);
	if (eol == 0) {
		context_count(CONTEXT_LINE_TOO_LONG);
		return SK_PASS;
	}
	const char version[] = " HTTP/1.";
	for (__u32 i = 0; i < 8; i++) {
		if (!byte_at(msg, eol - 9 + i, &c) || c != version[i]) {
			context_count(CONTEXT_NOT_HTTP1);
			return SK_PASS;
		}
	}

	/*
	 * A traceparent already among the headers (the application's own,
	 * which the client uprobe could not see: a stripped binary, whose
	 * header map fields are not known) is left alone: one header only.
	 */
	if (has_traceparent(msg, eol + 2)) {
		context_count(CONTEXT_APP_SET);
		return SK_PASS;
	}

	__u32 at = eol + 2;
	if (bpf_msg_push_data(msg, at, HEADER_LEN, 0) != 0) {
		context_count(CONTEXT_WRITE_FAILED);
		return SK_PASS;
	}
	if (bpf_msg_pull_data(msg, at, at + HEADER_LEN, 0) != 0)
		goto undo;
	__u8 *data = msg->data, *end = msg->data_end;
	if (data + HEADER_LEN > end)
		goto undo;
	format_header(data, op);
	context_count(CONTEXT_WRITTEN);
	return SK_PASS;

undo:
	/* Close the gap: the request goes out as the application wrote it. */
	bpf_msg_pop_data(msg, at, HEADER_LEN, 0);
	context_count(CONTEXT_WRITE_FAILED);
	return SK_PASS;
}

/* An HPACK literal header field without indexing, new name: 0x00, name, value. */
#define H2_FIELD_LEN (1 + 1 + 11 + 1 + 55)
/* The default SETTINGS_MAX_FRAME_SIZE: a frame never grows past it. */
#define H2_MAX_FRAME 16384
/* Frames looked at per write. */
#define H2_MAX_FRAMES 128

/*
 * For each HTTP/2 socket, how many bytes of its last write's final frame
 * were not in that write: the next write starts inside that frame.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct conn_key);
	__type(value, __u32);
} h2_carry SEC(".maps");

/*
 * HTTP/2 sockets: the connection writer (a gRPC *loopyWriter) of each, or
 * H2_WRITER_UNKNOWN for one whose client preface was seen but whose writer
 * is not known yet. Frames are looked for only on these sockets, or on
 * a thread with HEADERS frames pending.
 */
#define H2_WRITER_UNKNOWN 1
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct conn_key);
	__type(value, __u64);
} h2_conns SEC(".maps");

/* Where inject_h2 keeps its copy of the thread's list. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct h2_pending);
} h2_scratch SEC(".maps");

/* format_h2_field writes the traceparent header field for st into h (H2_FIELD_LEN bytes). */
static __always_inline void format_h2_field(__u8 *h, const struct h2_stream *st)
{
	const char name[] = "traceparent";
	h[0] = 0x00; /* literal header field without indexing, new name */
	h[1] = 11;   /* name length, not Huffman-coded */
#pragma unroll
	for (int i = 0; i < 11; i++)
		h[2 + i] = name[i];
	h[13] = 55; /* value length */
	int p = 14;
	h[p++] = '0';
	h[p++] = '0';
	h[p++] = '-';
#pragma unroll
	for (int i = 0; i < 16; i++) {
		h[p++] = hex_digit(st->trace_id[i] >> 4);
		h[p++] = hex_digit(st->trace_id[i] & 15);
	}
	h[p++] = '-';
#pragma unroll
	for (int i = 0; i < 8; i++) {
		h[p++] = hex_digit(st->span_id[i] >> 4);
		h[p++] = hex_digit(st->span_id[i] & 15);
	}
	h[p++] = '-';
	h[p++] = hex_digit(st->flags >> 4);
	h[p++] = hex_digit(st->flags & 15);
}

/*
 * h2_frame looks at the HTTP/2 frame at offset off of msg: a HEADERS frame
 * of a stream with trace context gets a traceparent header field appended
 * and its length grown by as much. It returns the bytes the frame now
 * takes (header included), or 0 when there is no whole frame header at
 * off. A global function: the verifier checks it once, not per frame.
 */
__noinline __u32 h2_frame(struct sk_msg_md *msg, __u32 off)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 zero = 0;
	struct h2_pending *pp = bpf_map_lookup_elem(&h2_scratch, &zero);
	if (!pp || off > 0xffffff || off + 9 > msg->size)
		return 0;
	if (bpf_msg_pull_data(msg, off, off + 9, 0) != 0)
		return 0;
	__u8 *d = msg->data, *e = msg->data_end;
	if (d + 9 > e)
		return 0;
	__u32 len = (__u32)d[0] << 16 | (__u32)d[1] << 8 | d[2];
	__u8 type = d[3], fl = d[4];
	__u32 sid = ((__u32)d[5] & 0x7f) << 24 | (__u32)d[6] << 16 | (__u32)d[7] << 8 | d[8];
	if (type != 0x1 || sid == 0)
		return 9 + len;

	__u64 now = bpf_ktime_get_ns();
	struct conn_key ck;
	conn_of(msg, id, &ck);
	__u64 *known = bpf_map_lookup_elem(&h2_conns, &ck);
	__u64 conn = known && *known != H2_WRITER_UNKNOWN ? *known : 0;
	struct h2_stream *st = 0;
	int slot = -1;
	for (int i = 0; i < H2_PENDING; i++) {
		if (pp->streams[i].stream_id == sid && now - pp->streams[i].queued_ns < H2_STALE_NS) {
			slot = i;
			break;
		}
	}
	if (slot >= 0 && slot < H2_PENDING) {
		st = &pp->streams[slot];
		pp->streams[slot].stream_id = 0;
		struct h2_pending *live = bpf_map_lookup_elem(&outgoing_h2, &id);
		if (live)
			live->streams[slot].stream_id = 0; /* seen: forget it */
		if (!conn) {
			conn = st->conn;
			bpf_map_update_elem(&h2_conns, &ck, &conn, BPF_ANY);
		}
	} else {
		if (!conn && known) {
			/* A new connection's first frames: its writer, if only one listed this stream ID. */
			struct h2_sid_ref sref = {.tgid = id >> 32, .stream_id = sid};
			struct h2_sid_owner *owner = bpf_map_lookup_elem(&outgoing_h2_sids, &sref);
			if (owner && !owner->ambiguous && now - owner->queued_ns < H2_STALE_NS) {
				conn = owner->conn;
				bpf_map_update_elem(&h2_conns, &ck, &conn, BPF_ANY);
			}
		}
		/* Encoded on another thread: found by connection and stream. */
		struct h2_stream_ref ref = {.tgid = id >> 32, .stream_id = sid, .conn = conn};
		st = conn ? bpf_map_lookup_elem(&outgoing_h2_streams, &ref) : 0;
		if (st && now - st->queued_ns >= H2_STALE_NS) {
			context_count(CONTEXT_STALE);
			st = 0;
		}
	}
	if (!st) {
		/*
		 * A client stream's HEADERS frame we hold no context for: in a
		 * traced process every call has one, so it was missed (the first
		 * frames of a connection, flushed on another thread than the one
		 * that encoded them, before the connection was known).
		 */
		if (sid & 1)
			context_count(CONTEXT_MISSED);
		return 9 + len;
	}

	struct h2_stream_ref ref = {.tgid = id >> 32, .stream_id = sid, .conn = st->conn};
	__u32 at = off + 9 + len;
	if (!(fl & 0x4) || (fl & 0x8) || len + H2_FIELD_LEN > H2_MAX_FRAME || at > msg->size) {
		context_count(CONTEXT_H2_NOT_WRITTEN);
	} else if (bpf_msg_push_data(msg, at, H2_FIELD_LEN, 0) != 0) {
		context_count(CONTEXT_WRITE_FAILED);
	} else {
		int ok = 0;
		if (bpf_msg_pull_data(msg, at, at + H2_FIELD_LEN, 0) == 0) {
			__u8 *h = msg->data;
			if (h + H2_FIELD_LEN <= (__u8 *)msg->data_end) {
				format_h2_field(h, st);
				ok = 1;
			}
		}
		if (ok && bpf_msg_pull_data(msg, off, off + 9, 0) == 0) {
			__u8 *hd = msg->data;
			if (hd + 9 <= (__u8 *)msg->data_end) {
				__u32 nl = len + H2_FIELD_LEN;
				hd[0] = nl >> 16;
				hd[1] = nl >> 8;
				hd[2] = nl;
				len = nl;
				ok = 2;
			}
		}
		if (ok == 2) {
			context_count(CONTEXT_H2_WRITTEN);
		} else {
			/* Close the gap: the frame goes out as written. */
			bpf_msg_pop_data(msg, at, H2_FIELD_LEN, 0);
			context_count(CONTEXT_WRITE_FAILED);
		}
	}
	bpf_map_delete_elem(&outgoing_h2_streams, &ref);
	return 9 + len;
}

/*
 * inject_h2 walks the HTTP/2 frames of a write (h2_frame does each), when
 * the writing thread has HEADERS frames pending or the socket is a known
 * HTTP/2 connection of a traced process. Only a complete header block
 * (END_HEADERS, no CONTINUATION) without padding that stays within the
 * default maximum frame size is changed. HPACK's state is untouched: the
 * field is a literal that is not indexed.
 */
__noinline int inject_h2(struct sk_msg_md *msg)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 zero = 0;
	struct h2_pending *live = bpf_map_lookup_elem(&outgoing_h2, &id);
	struct h2_pending *pp = bpf_map_lookup_elem(&h2_scratch, &zero);
	if (!pp)
		return 0;
	struct conn_key ck;
	conn_of(msg, id, &ck);
	__u8 c;
	int preface = msg->size >= 24 && bpf_msg_pull_data(msg, 0, 24, 0) == 0 && byte_at(msg, 0, &c) && c == 'P' &&
		      byte_at(msg, 1, &c) && c == 'R' && byte_at(msg, 2, &c) && c == 'I' && byte_at(msg, 3, &c) && c == ' ';
	int h2 = bpf_map_lookup_elem(&h2_conns, &ck) != 0;
	if (preface && !h2) {
		__u64 unknown = H2_WRITER_UNKNOWN;
		bpf_map_update_elem(&h2_conns, &ck, &unknown, BPF_ANY);
		h2 = 1;
	}
	if (live) {
		__builtin_memcpy(pp, live, sizeof(*pp));
	} else {
		if (!h2)
			return 0; /* nothing pending on this thread, and not a known HTTP/2 connection */
		__builtin_memset(pp, 0, sizeof(*pp));
	}
	__u32 off = 0;
	__u32 *carry = bpf_map_lookup_elem(&h2_carry, &ck);
	if (carry) {
		off = *carry; /* the rest of a frame the last write began */
		bpf_map_delete_elem(&h2_carry, &ck);
	} else if (preface) {
		off = 24; /* the client connection preface comes first on a new connection */
	}
	for (int f = 0; f < H2_MAX_FRAMES; f++) {
		if (off >= msg->size)
			break;
		__u32 n = h2_frame(msg, off);
		if (n == 0)
			break;
		off += n;
	}
	if (off > msg->size && off - msg->size < 0x1000000) {
		__u32 rest = off - msg->size;
		bpf_map_update_elem(&h2_carry, &ck, &rest, BPF_ANY);
	}
	return 0;
}

SEC("sk_msg")
int inject_traceparent(struct sk_msg_md *msg)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct outgoing_request *q = bpf_map_lookup_elem(&outgoing_requests, &id);
	if (!q) {
		/* Queued on another thread? By the socket's connection, once known. */
		struct conn_key ck;
		conn_of(msg, id, &ck);
		__u64 *conn = bpf_map_lookup_elem(&conns, &ck);
		if (conn) {
			struct conn_ref cref = {.tgid = id >> 32, .conn = *conn};
			q = bpf_map_lookup_elem(&outgoing_by_conn, &cref);
		}
	}
	if (q)
		return inject_http1(msg, id, q);
	inject_h2(msg);
	return SK_PASS;
}

char __license[] SEC("license") = "Dual MIT/GPL";
