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
/* The request line must end within this many bytes of the write's start. */
#define LINE_MAX 1024
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
 * byte_at reads the byte at offset i (< LINE_MAX) of the pulled part of
 * msg into *c; false past its end.
 */
static __always_inline int byte_at(struct sk_msg_md *msg, __u32 i, __u8 *c)
{
	__u8 *data = msg->data, *end = msg->data_end;
	__u8 *p = data + (i & (LINE_MAX - 1));
	if (p + 1 > end)
		return 0;
	*c = *p;
	return 1;
}

SEC("sk_msg")
int inject_traceparent(struct sk_msg_md *msg)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct outgoing_request *q = bpf_map_lookup_elem(&outgoing_requests, &id);
	if (!q)
		return SK_PASS;
	__u32 zero = 0;
	struct outgoing_request *op = bpf_map_lookup_elem(&scratch, &zero);
	if (!op)
		return SK_PASS;
	__builtin_memcpy(op, q, sizeof(*op));
#define o (*op)
	if (bpf_ktime_get_ns() - o.queued_ns > STALE_NS) {
		bpf_map_delete_elem(&outgoing_requests, &id);
		context_count(CONTEXT_STALE);
		return SK_PASS;
	}

	__u32 n = msg->size < LINE_MAX ? msg->size : LINE_MAX;
	if (n < 16 || bpf_msg_pull_data(msg, 0, n, 0) != 0)
		return SK_PASS;

	/* Is this the queued request? Its method, a space, and its path. */
	if (o.method_len == 0 || o.method_len > OUTGOING_METHOD_LEN)
		return SK_PASS;
	__u8 c;
	for (__u32 i = 0; i < OUTGOING_METHOD_LEN; i++) {
		if (i >= o.method_len)
			break;
		if (!byte_at(msg, i, &c) || c != o.method[i])
			return SK_PASS; /* another write (a response, another protocol): keep waiting */
	}
	__u32 t = o.method_len; /* the space before the request target */
	if (!byte_at(msg, t, &c) || c != ' ')
		return SK_PASS;
	if (byte_at(msg, t + 1, &c) && c == '/') {
		for (__u32 i = 0; i < OUTGOING_PATH_LEN; i++) {
			if (i >= o.path_len)
				break;
			if (!byte_at(msg, t + 1 + i, &c) || c != o.path[i])
				return SK_PASS;
		}
	}
	bpf_map_delete_elem(&outgoing_requests, &id);

	/* The end of the request line, which must be an HTTP/1.x one. */
	__u32 eol = 0;
	__u8 c2;
	for (__u32 i = 16; i < LINE_MAX - 1; i++) {
		if (!byte_at(msg, i, &c) || !byte_at(msg, i + 1, &c2))
			break;
		if (c == '\r' && c2 == '\n') {
			eol = i;
			break;
		}
	}
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
#undef o
}

char __license[] SEC("license") = "Dual MIT/GPL";
