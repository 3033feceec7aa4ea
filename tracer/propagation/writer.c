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
 * HTTP/2 HEADERS frames of gRPC calls (inject_h2) and the records of
 * kafka-go's Kafka Produce requests (inject_kafka) get theirs too.
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

/*
 * format_traceparent writes the traceparent value
 * 00-<trace-id>-<span-id>-<flags> into h (55 bytes).
 */
static __always_inline void format_traceparent(__u8 *h, const __u8 *trace_id, const __u8 *span_id, __u8 flags)
{
	int p = 0;
	h[p++] = '0';
	h[p++] = '0';
	h[p++] = '-';
#pragma unroll
	for (int i = 0; i < 16; i++) {
		h[p++] = hex_digit(trace_id[i] >> 4);
		h[p++] = hex_digit(trace_id[i] & 15);
	}
	h[p++] = '-';
#pragma unroll
	for (int i = 0; i < 8; i++) {
		h[p++] = hex_digit(span_id[i] >> 4);
		h[p++] = hex_digit(span_id[i] & 15);
	}
	h[p++] = '-';
	h[p++] = hex_digit(flags >> 4);
	h[p++] = hex_digit(flags & 15);
}

/* format_header writes the header line for o into h (HEADER_LEN bytes). */
static __always_inline void format_header(__u8 *h, const struct outgoing_request *o)
{
	const char name[] = "traceparent: ";
#pragma unroll
	for (int i = 0; i < 13; i++)
		h[i] = name[i];
	format_traceparent(h + 13, o->trace_id, o->span_id, o->flags);
	h[68] = '\r';
	h[69] = '\n';
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
	format_traceparent(h + 14, st->trace_id, st->span_id, st->flags);
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

/*
 * Kafka Produce requests (segmentio/kafka-go's Writer): each record of the
 * request whose fingerprint a WriteMessages call listed (kafka_outgoing,
 * bpf/propagation.h) gets a header
 *
 *     traceparent: 00-<trace-id>-<span-id>-<flags>
 *
 * appended to its headers. Only a request whole in one write, of at most
 * KAFKA_BUF bytes, with Produce version 3 to 8 (not flexible: what
 * kafka-go sends), one topic, one partition and one uncompressed record
 * batch of magic 2 is changed; the request is copied into a map, rebuilt
 * there with the headers added and every length that covers them (record
 * length, batch length, records size, request size) and the batch's
 * CRC-32C fixed, and copied back over the write after it grew by the
 * difference. A request that cannot be rebuilt goes out as written.
 */
#define KAFKA_BUF 32768
#define KAFKA_MASK (KAFKA_BUF - 1)
/* The header appended: key length (varint 11), "traceparent", value length (varint 55), value. */
#define KAFKA_HDR_LEN (1 + 11 + 1 + 55)
#define KAFKA_MAX_RECORDS 128
/* A record with more headers leaves its request alone (the header count stays a 1-byte varint). */
#define KAFKA_MAX_HEADERS 32
_Static_assert(KAFKA_MAX_HEADERS <= 63, "a header count up to KAFKA_MAX_HEADERS is a 1-byte zigzag varint");
/* A record written later than this after its WriteMessages call began is not its. */
#define KAFKA_STALE_NS (10ULL * 1000 * 1000 * 1000)
/* Offsets in a record batch (v2). */
#define RB_LENGTH 8
#define RB_MAGIC 16
#define RB_CRC 17
#define RB_ATTRIBUTES 21
#define RB_COUNT 57
#define RB_RECORDS 61

/* crc32c_tables, the CRC-32C slicing-by-8 tables (generated by crc32cgen). */
#include "crc32c_table.h"

struct kafka_buf {
	__u8 in[KAFKA_BUF];  /* the request as written */
	__u8 out[KAFKA_BUF]; /* the request rebuilt */
	struct kafka_fp_input fp;
	__u32 busy; /* a program is using this buffer (inject_kafka) */
	__u32 pad;
};

/*
 * One kafka_buf per CPU, by CPU number: too large for a per-CPU array's
 * value (32 KiB). Start sizes it to the possible CPUs. A program runs to
 * its end on one CPU (migration is disabled), and sk_msg programs do not
 * nest.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kafka_buf);
} kafka_bufs SEC(".maps");

/* kafka_buf_of_cpu returns this CPU's kafka_buf. */
static __always_inline struct kafka_buf *kafka_buf_of_cpu(void)
{
	__u32 cpu = bpf_get_smp_processor_id();
	return bpf_map_lookup_elem(&kafka_bufs, &cpu);
}

/* kmsg_byte returns the byte at offset i (< KAFKA_BUF) of the pulled part of msg, or -1 past its end. */
__noinline int kmsg_byte(struct sk_msg_md *msg, __u32 i)
{
	__u8 *data = msg->data, *end = msg->data_end;
	__u8 *p = data + (i & KAFKA_MASK);
	if (p + 1 > end)
		return -1;
	return *p;
}

static __always_inline __u32 kin8(struct kafka_buf *kb, __u32 i)
{
	return kb->in[i & KAFKA_MASK];
}

static __always_inline __u32 kin16(struct kafka_buf *kb, __u32 i)
{
	return kin8(kb, i) << 8 | kin8(kb, i + 1);
}

static __always_inline __u32 kin32(struct kafka_buf *kb, __u32 i)
{
	return kin8(kb, i) << 24 | kin8(kb, i + 1) << 16 | kin8(kb, i + 2) << 8 | kin8(kb, i + 3);
}

static __always_inline void kout32(struct kafka_buf *kb, __u32 i, __u32 v)
{
	kb->out[i & KAFKA_MASK] = v >> 24;
	kb->out[(i + 1) & KAFKA_MASK] = v >> 16;
	kb->out[(i + 2) & KAFKA_MASK] = v >> 8;
	kb->out[(i + 3) & KAFKA_MASK] = v;
}

/* A varint read: its value and the offset after it. */
struct kvar {
	__s64 v;
	__u32 next;
	__u32 pad;
};

/*
 * kvarint reads the zigzag varint (Kafka's varint and varlong) at offset
 * at of kb->in, which must end before end, into *out; 0 if it does not. A
 * global function: the verifier checks it once, not at every varint.
 */
__noinline int kvarint(struct kafka_buf *kb, __u32 at, __u32 end, struct kvar *out)
{
	if (!kb || !out)
		return 0;
	__u64 x = 0;
	for (int k = 0; k < 10; k++) {
		if (at >= end)
			return 0;
		__u8 c = kb->in[at & KAFKA_MASK];
		at++;
		x |= (__u64)(c & 0x7f) << (7 * k);
		if (!(c & 0x80)) {
			out->v = (__s64)(x >> 1) ^ -(__s64)(x & 1);
			out->next = at;
			return 1;
		}
	}
	return 0;
}

/* kin_varint reads the varint at *p of kb->in, before end, into *v and moves *p past it; 0 if it does not end before end. */
static __always_inline int kin_varint(struct kafka_buf *kb, __u32 *p, __u32 end, __s64 *v)
{
	struct kvar r = {};
	if (!kvarint(kb, *p, end, &r))
		return 0;
	*v = r.v;
	*p = r.next;
	return 1;
}

/* kout_varint_at writes v as a zigzag varint at offset at of kb->out and returns the offset after it. */
__noinline __u32 kout_varint_at(struct kafka_buf *kb, __u32 at, __s64 v)
{
	if (!kb)
		return at;
	__u64 z = (__u64)(v << 1) ^ (__u64)(v >> 63);
	for (int k = 0; k < 10; k++) {
		if (z < 0x80) {
			kb->out[at & KAFKA_MASK] = z;
			return at + 1;
		}
		kb->out[at & KAFKA_MASK] = (z & 0x7f) | 0x80;
		at++;
		z >>= 7;
	}
	return at;
}

static __always_inline void kout_varint(struct kafka_buf *kb, __u32 *p, __s64 v)
{
	*p = kout_varint_at(kb, *p, v);
}

struct kcopy {
	struct kafka_buf *kb;
	__u32 from;   /* in kb->in */
	__u32 to;     /* in kb->out */
	__u32 words;  /* 8-byte words first, */
	__u32 pad;
};

static long kcopy_step(__u64 i, void *ctx)
{
	struct kcopy *c = ctx;
	__u32 k = (__u32)i;
	if (k < c->words) {
		__u32 at = k * 8;
		*(__u64 *)&c->kb->out[(c->to + at) & KAFKA_MASK] = *(__u64 *)&c->kb->in[(c->from + at) & KAFKA_MASK];
	} else {
		__u32 at = c->words * 8 + (k - c->words); /* then the bytes left */
		c->kb->out[(c->to + at) & KAFKA_MASK] = c->kb->in[(c->from + at) & KAFKA_MASK];
	}
	return 0;
}

/*
 * kcopy copies n bytes from kb->in at from to kb->out at to, 8 at a time
 * (a word read or written past the end of in or out stays within the map
 * value: out follows in, fp follows out).
 */
static __always_inline void kcopy(struct kafka_buf *kb, __u32 from, __u32 to, __u32 n)
{
	struct kcopy c = {.kb = kb, .from = from, .to = to, .words = n / 8};
	bpf_loop(n / 8 + n % 8, kcopy_step, &c, 0);
}

/* The state of a walk over a batch's records or a record's headers. */
struct kwalk {
	struct kafka_buf *kb;
	__u64 now;
	__u64 topic_hash; /* kafka_fp_hash of the topic's part of the fingerprint */
	__u32 tgid;
	__u32 ip;  /* next byte of kb->in */
	__u32 op;  /* next byte of kb->out */
	__u32 end; /* the end of the batch (records) or of the record (headers) in kb->in */
	__u32 records; /* walked */
	__u32 written;
	__u32 app_set;
	__u32 unmatched;
	__u32 found; /* headers: a traceparent key seen */
	int bad;     /* not a record batch this walk understands: leave the request alone */
	int full;    /* the rebuilt request would not fit in KAFKA_BUF */
};

static long header_step(__u64 i, void *ctx)
{
	struct kwalk *w = ctx;
	struct kafka_buf *kb = w->kb;
	__s64 kl, vl;
	if (!kin_varint(kb, &w->ip, w->end, &kl) || kl < 0 || kl > KAFKA_BUF) {
		w->bad = 1;
		return 1;
	}
	if (kl == 11) {
		const char name[] = "traceparent";
		int same = 1;
		for (int k = 0; k < 11; k++)
			if (kin8(kb, w->ip + k) != (__u8)name[k])
				same = 0;
		if (same)
			w->found = 1;
	}
	w->ip += kl;
	if (!kin_varint(kb, &w->ip, w->end, &vl) || vl < -1 || vl > KAFKA_BUF) {
		w->bad = 1;
		return 1;
	}
	if (vl > 0)
		w->ip += vl;
	if (w->ip > w->end) {
		w->bad = 1;
		return 1;
	}
	return 0;
}

static __always_inline void format_kafka_header(struct kafka_buf *kb, __u32 at, const struct kafka_outgoing *o)
{
	const char name[] = "traceparent";
	kb->out[at & KAFKA_MASK] = 22; /* zigzag(11) */
	at++;
	for (int i = 0; i < 11; i++)
		kb->out[(at + i) & KAFKA_MASK] = name[i];
	at += 11;
	kb->out[at & KAFKA_MASK] = 110; /* zigzag(55) */
	at++;
	/* Within out: the rebuilt request fits in KAFKA_BUF (krecord). */
	format_traceparent(&kb->out[at & KAFKA_MASK], o->trace_id, o->span_id, o->flags);
}

/*
 * krecord rebuilds the record at w->ip of kb->in into kb->out at
 * w->op: unchanged, or with a traceparent header appended when a
 * WriteMessages call of the process listed its fingerprint; 1 ends the
 * walk. A global function, so the verifier checks it once: it finds the
 * buffers itself (w->kb is not a pointer it may use).
 */
__noinline int krecord(struct kwalk *w)
{
	struct kafka_buf *kb = kafka_buf_of_cpu();
	if (!w || !kb)
		return 1;
	__u32 start = w->ip, p = w->ip;
	__s64 len, v, kl, vl, hc;
	if (!kin_varint(kb, &p, w->end, &len) || len < 6 || len > KAFKA_BUF) {
		w->bad = 1;
		return 1;
	}
	__u32 body = p, end = p + (__u32)len;
	if (end > w->end) {
		w->bad = 1;
		return 1;
	}
	p++; /* attributes */
	if (!kin_varint(kb, &p, end, &v) || !kin_varint(kb, &p, end, &v) || !kin_varint(kb, &p, end, &kl) || kl < -1 || kl > KAFKA_BUF) {
		w->bad = 1;
		return 1;
	}
	__u32 key = p;
	if (kl > 0)
		p += kl;
	if (!kin_varint(kb, &p, end, &vl) || vl < -1 || vl > KAFKA_BUF) {
		w->bad = 1;
		return 1;
	}
	__u32 value = p;
	if (vl > 0)
		p += vl;
	__u32 hc_at = p;
	if (!kin_varint(kb, &p, end, &hc) || hc < 0 || hc >= KAFKA_MAX_HEADERS) {
		w->bad = 1;
		return 1;
	}
	__u32 hdrs = p;
	struct kwalk hw = {.kb = kb, .ip = hdrs, .end = end};
	bpf_loop((__u32)hc, header_step, &hw, 0);
	if (hw.bad || hw.ip != end) {
		w->bad = 1;
		return 1;
	}

	/* The fingerprint: the topic is in kb->fp already. */
	__builtin_memset(kb->fp.key, 0, sizeof(kb->fp.key));
	__builtin_memset(kb->fp.value, 0, sizeof(kb->fp.value));
	kb->fp.key_len = kl > 0 ? kl : 0;
	kb->fp.value_len = vl > 0 ? vl : 0;
	for (__u32 k = 0; k < KAFKA_FP_KEY; k++)
		if (k < kb->fp.key_len)
			kb->fp.key[k] = kb->in[(key + k) & KAFKA_MASK];
	for (__u32 k = 0; k < KAFKA_FP_VALUE; k++)
		if (k < kb->fp.value_len)
			kb->fp.value[k] = kb->in[(value + k) & KAFKA_MASK];
	__u64 h = kafka_fp_hash_part(&kb->fp, w->topic_hash, KAFKA_FP_MESSAGE_PART, sizeof(kb->fp));
	struct kafka_fp_key fk = {.tgid = w->tgid, .hash = h};
	struct kafka_outgoing *o = bpf_map_lookup_elem(&kafka_outgoing, &fk);
	if (o && w->now - o->queued_ns > KAFKA_STALE_NS)
		o = 0;

	w->records++;
	__u32 rec = end - start; /* the record's bytes, length included */
	if (!o || hw.found) {
		if (!o)
			w->unmatched++;
		else
			w->app_set++;
		if (w->op + rec > KAFKA_BUF) {
			w->full = 1;
			w->bad = 1;
			return 1;
		}
		kcopy(kb, start, w->op, rec);
		w->op += rec;
		w->ip = end;
		return w->ip >= w->end;
	}
	/* hc < KAFKA_MAX_HEADERS: the new count, hc + 1, is a 1-byte varint. */
	__u32 nhc = 1, ohc = hdrs - hc_at;
	__s64 nlen = len + KAFKA_HDR_LEN + nhc - ohc;
	if (w->op + rec + KAFKA_HDR_LEN + 2 + nhc > KAFKA_BUF) {
		w->full = 1;
		w->bad = 1;
		return 1;
	}
	__u32 op = w->op;
	kout_varint(kb, &op, nlen);
	kcopy(kb, body, op, hc_at - body);
	op += hc_at - body;
	kout_varint(kb, &op, hc + 1);
	kcopy(kb, hdrs, op, end - hdrs);
	op += end - hdrs;
	format_kafka_header(kb, op, o);
	op += KAFKA_HDR_LEN;
	w->op = op;
	w->ip = end;
	w->written++;
	return w->ip >= w->end;
}

static long record_step(__u64 i, void *ctx)
{
	return krecord(ctx) ? 1 : 0;
}

struct kcrc {
	struct kafka_buf *kb;
	__u32 from;
	__u32 crc;
	__u32 words; /* 8-byte words first, then bytes */
	__u32 pad;
};

static long crc_step(__u64 i, void *ctx)
{
	struct kcrc *c = ctx;
	__u32 k = (__u32)i, crc = c->crc;
	if (k < c->words) {
		/* Slicing-by-8: eight bytes, read little-endian, per step. */
		__u64 v = *(__u64 *)&c->kb->out[(c->from + k * 8) & KAFKA_MASK];
		__u32 lo = (__u32)v ^ crc, hi = (__u32)(v >> 32);
		crc = crc32c_tables[7][lo & 0xff] ^ crc32c_tables[6][(lo >> 8) & 0xff] ^ crc32c_tables[5][(lo >> 16) & 0xff] ^
		      crc32c_tables[4][lo >> 24] ^ crc32c_tables[3][hi & 0xff] ^ crc32c_tables[2][(hi >> 8) & 0xff] ^
		      crc32c_tables[1][(hi >> 16) & 0xff] ^ crc32c_tables[0][hi >> 24];
	} else {
		__u8 b = c->kb->out[(c->from + c->words * 8 + (k - c->words)) & KAFKA_MASK];
		crc = crc32c_tables[0][(crc ^ b) & 0xff] ^ (crc >> 8);
	}
	c->crc = crc;
	return 0;
}

/* kcrc32c returns the CRC-32C of n bytes of kb->out from offset from. */
static __always_inline __u32 kcrc32c(struct kafka_buf *kb, __u32 from, __u32 n)
{
	struct kcrc c = {.kb = kb, .from = from, .crc = 0xffffffff, .words = n / 8};
	bpf_loop(n / 8 + n % 8, crc_step, &c, 0);
	return c.crc ^ 0xffffffff;
}

/*
 * kmsg_word copies 8 bytes (or 1, with one set) at offset off between the
 * pulled part of msg and kb: into kb->in, or with out set from kb->out over
 * msg's; -1 past the end of msg.
 */
__noinline int kmsg_word(struct sk_msg_md *msg, struct kafka_buf *kb, __u32 off, int one, int out)
{
	if (!msg || !kb)
		return -1;
	__u8 *data = msg->data, *end = msg->data_end;
	__u8 *p = data + (off & KAFKA_MASK);
	__u8 *q = out ? &kb->out[off & KAFKA_MASK] : &kb->in[off & KAFKA_MASK];
	if (one) {
		if (p + 1 > end)
			return -1;
		if (out)
			*p = *q;
		else
			*q = *p;
		return 0;
	}
	if (p + 8 > end)
		return -1;
	if (out)
		*(__u64 *)p = *(__u64 *)q;
	else
		*(__u64 *)q = *(__u64 *)p;
	return 0;
}

struct kmsg_copy {
	struct sk_msg_md *msg;
	struct kafka_buf *kb;
	__u32 words;
	int out; /* from kb->out to msg, not from msg to kb->in */
	int bad;
	int pad;
};

static long kmsg_copy_step(__u64 i, void *ctx)
{
	struct kmsg_copy *c = ctx;
	__u32 k = (__u32)i;
	int one = k >= c->words;
	__u32 off = one ? c->words * 8 + (k - c->words) : k * 8;
	if (kmsg_word(c->msg, c->kb, off, one, c->out) < 0) {
		c->bad = 1;
		return 1;
	}
	return 0;
}

/*
 * is_produce reports whether msg starts like a Kafka Produce request of a
 * version kafka-go writes (3 to 8): a request size, api key 0, the version.
 */
static __always_inline int is_produce(struct sk_msg_md *msg)
{
	if (msg->size < 12 || bpf_msg_pull_data(msg, 0, 8, 0) != 0)
		return 0;
	int k0 = kmsg_byte(msg, 4), k1 = kmsg_byte(msg, 5), v0 = kmsg_byte(msg, 6), v1 = kmsg_byte(msg, 7);
	int s0 = kmsg_byte(msg, 0);
	return s0 == 0 && k0 == 0 && k1 == 0 && v0 == 0 && v1 >= 3 && v1 <= 8;
}

/*
 * kafka_rebuild rebuilds the Produce request msg holds (see above), in kb,
 * this CPU's kafka_buf; is_produce has pulled its first 8 bytes.
 */
__noinline int kafka_rebuild(struct sk_msg_md *msg, struct kafka_buf *kb)
{
	if (!msg || !kb)
		return 0;
	__u32 size = msg->size;
	if (size > KAFKA_BUF) {
		context_count(CONTEXT_KAFKA_TOO_LARGE);
		return 1;
	}
	__u32 frame = (__u32)kmsg_byte(msg, 1) << 16 | (__u32)kmsg_byte(msg, 2) << 8 | (__u32)kmsg_byte(msg, 3);
	if (frame + 4 != size) {
		context_count(CONTEXT_KAFKA_TOO_LARGE); /* not whole in this write, or several in one */
		return 1;
	}
	if (bpf_msg_pull_data(msg, 0, size, 0) != 0) {
		context_count(CONTEXT_KAFKA_WRITE_FAILED);
		return 1;
	}
	struct kmsg_copy mc = {.msg = msg, .kb = kb, .words = size / 8};
	bpf_loop(size / 8 + size % 8, kmsg_copy_step, &mc, 0);
	if (mc.bad) {
		context_count(CONTEXT_KAFKA_WRITE_FAILED);
		return 1;
	}

	/* Request header (v1): api key, version, correlation id, client id. */
	__u32 p = 12;
	__s32 n = (__s16)kin16(kb, p);
	p += 2 + (n > 0 ? n : 0);
	n = (__s16)kin16(kb, p); /* transactional id */
	p += 2 + (n > 0 ? n : 0);
	p += 2 + 4; /* acks, timeout */
	if (p + 4 > size || kin32(kb, p) != 1)
		goto unsupported; /* one topic */
	p += 4;
	__u32 tl = kin16(kb, p);
	p += 2;
	if (tl == 0 || tl >= KAFKA_FP_TOPIC || p + tl > size)
		goto unsupported;
	__builtin_memset(&kb->fp, 0, sizeof(kb->fp));
	for (__u32 i = 0; i < KAFKA_FP_TOPIC; i++) {
		if (i >= tl)
			break;
		kb->fp.topic[i & (KAFKA_FP_TOPIC - 1)] = kin8(kb, p + i);
	}
	kb->fp.topic_len = tl;
	p += tl;
	if (p + 12 > size || kin32(kb, p) != 1)
		goto unsupported; /* one partition */
	p += 8; /* count, partition */
	__u32 rs_at = p;
	__u32 rs = kin32(kb, p);
	p += 4;
	__u32 b = p;
	if (rs < RB_RECORDS || b + rs != size || kin32(kb, b + RB_LENGTH) + 12 != rs || kin8(kb, b + RB_MAGIC) != 2 ||
	    (kin16(kb, b + RB_ATTRIBUTES) & 0x27) != 0)
		goto unsupported; /* one batch, magic 2, not compressed, not a control batch */
	__u32 count = kin32(kb, b + RB_COUNT);
	if (count == 0 || count > KAFKA_MAX_RECORDS)
		goto unsupported;

	kcopy(kb, 0, 0, b + RB_RECORDS);
	struct kwalk w = {.kb = kb, .now = bpf_ktime_get_ns(), .tgid = bpf_get_current_pid_tgid() >> 32,
			  .ip = b + RB_RECORDS, .op = b + RB_RECORDS, .end = size,
			  .topic_hash = kafka_fp_hash_part(&kb->fp, KAFKA_FNV_OFFSET, 0, KAFKA_FP_MESSAGE_PART)};
	bpf_loop(count, record_step, &w, 0);
	if (w.full) {
		context_count(CONTEXT_KAFKA_TOO_LARGE);
		return 1;
	}
	if (w.bad || w.ip != size || w.records != count)
		goto unsupported;
	context_add(CONTEXT_KAFKA_APP_SET, w.app_set);
	context_add(CONTEXT_KAFKA_UNMATCHED, w.unmatched);
	if (w.written == 0)
		return 1;
	__u32 grow = w.op - size;
	kout32(kb, 0, frame + grow);
	kout32(kb, rs_at, rs + grow);
	kout32(kb, b + RB_LENGTH, rs - 12 + grow);
	kout32(kb, b + RB_CRC, kcrc32c(kb, b + RB_ATTRIBUTES, w.op - (b + RB_ATTRIBUTES)));

	if (bpf_msg_push_data(msg, size, grow, 0) != 0) {
		context_count(CONTEXT_KAFKA_WRITE_FAILED);
		return 1;
	}
	if (bpf_msg_pull_data(msg, 0, w.op, 0) != 0 || msg->size != w.op || kmsg_byte(msg, w.op - 1) < 0)
		goto undo; /* then kmsg_copy_step cannot fail half way */
	mc.bad = 0;
	mc.out = 1;
	mc.words = w.op / 8;
	bpf_loop(w.op / 8 + w.op % 8, kmsg_copy_step, &mc, 0);
	if (mc.bad)
		goto undo;
	context_add(CONTEXT_KAFKA_WRITTEN, w.written);
	context_count(CONTEXT_KAFKA_REQUESTS);
	return 1;

undo:
	/* Nothing of the request was overwritten: close the gap. */
	bpf_msg_pop_data(msg, size, grow, 0);
	context_count(CONTEXT_KAFKA_WRITE_FAILED);
	return 1;

unsupported:
	context_count(CONTEXT_KAFKA_UNSUPPORTED);
	return 1;
}

/*
 * inject_queued handles a write of an HTTP/1.x request queued by thread
 * or by connection (inject_http1); it returns 0 when there is none. A
 * global function, so that its stack does not add to inject_kafka's.
 */
__noinline int inject_queued(struct sk_msg_md *msg)
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
	if (!q)
		return 0;
	inject_http1(msg, id, q);
	return 1;
}

/*
 * may_be_kafka reports whether a write could be a Kafka request: its
 * process has a kafka-go Writer, and it is not on a known HTTP/2
 * connection nor by a thread with HTTP/2 frames pending (bytes of an
 * HTTP/2 frame can look like a Produce request's header). A global
 * function: its stack does not add to kafka_rebuild's.
 */
__noinline int may_be_kafka(struct sk_msg_md *msg)
{
	if (!msg)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	if (!bpf_map_lookup_elem(&kafka_producers, &tgid) || bpf_map_lookup_elem(&outgoing_h2, &id))
		return 0;
	struct conn_key ck;
	conn_of(msg, id, &ck);
	return bpf_map_lookup_elem(&h2_conns, &ck) == 0;
}

/*
 * inject_kafka rebuilds the Produce request msg holds, if it may be one
 * (may_be_kafka) and is one; it returns 0 if not. The program can be
 * preempted by another sending task on the same CPU (only migration is
 * disabled), which would share the CPU's kafka_buf: the buffer is taken
 * with a compare-and-swap, and a request that finds it taken goes out as
 * written (kafka_write_failed).
 */
__noinline int inject_kafka(struct sk_msg_md *msg)
{
	if (!msg || !may_be_kafka(msg) || !is_produce(msg))
		return 0;
	struct kafka_buf *kb = kafka_buf_of_cpu();
	if (!kb) {
		context_count(CONTEXT_KAFKA_WRITE_FAILED);
		return 1;
	}
	if (__sync_val_compare_and_swap(&kb->busy, 0, 1) != 0) {
		context_count(CONTEXT_KAFKA_WRITE_FAILED);
		return 1;
	}
	kafka_rebuild(msg, kb);
	__sync_lock_test_and_set(&kb->busy, 0);
	return 1;
}

SEC("sk_msg")
int inject_traceparent(struct sk_msg_md *msg)
{
	if (inject_queued(msg))
		return SK_PASS;
	if (inject_kafka(msg))
		return SK_PASS;
	inject_h2(msg);
	return SK_PASS;
}

char __license[] SEC("license") = "Dual MIT/GPL";
