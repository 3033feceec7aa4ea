/* SPDX-License-Identifier: (MIT OR GPL-2.0-only) */
/*
 * nethttp.h: what the net/http server and client programs share: the event
 * they submit, the maps they share, and the readers for Go values.
 *
 * The server (httpserver.c) and client (httpclient.c) are separate BPF
 * objects so that either can be loaded and attached alone. Both declare
 * the maps below identically; tracer/uprobe creates "events", "drops" and
 * "server_spans" once per traced binary and hands the same maps to both
 * collections (CollectionOptions.MapReplacements). Through server_spans the
 * client sees the server request that the same goroutine is handling and
 * makes its span a child of it.
 *
 * Struct field offsets are `volatile const` globals named off_<Struct>_<Field>,
 * rewritten at load time. A field that does not exist in the traced Go
 * release is left at OFFSET_ABSENT, which the code checks before using it.
 */
#ifndef OFFSETDB_NETHTTP_H
#define OFFSETDB_NETHTTP_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "go_abi.h"

/* The offset of a field that the traced Go release does not have. */
#define OFFSET_ABSENT 0xffffffffffffffffULL

/* Sizes of the string buffers in struct http_event; longer values are cut. */
#define METHOD_LEN 16
#define SCHEME_LEN 8
#define HOST_LEN 128
#define PATH_LEN 128
#define QUERY_LEN 128
#define ROUTE_LEN 128
#define REMOTE_ADDR_LEN 64

/*
 * The first byte of every record this object submits to "events", which
 * tells user space which instrumentation it comes from. Written at load
 * time by tracer/uprobe from the instrumentation's declaration.
 */
volatile const __u8 event_kind = 0;

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
	__u8 path_len;
	__u8 query_len;
	__u8 route_len;
	__u8 remote_addr_len;
	__u16 status;
	__u32 pid; /* thread group id of the traced process */
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
};

/*
 * A goroutine of a process. goids are only unique within a process, and one
 * probe can see every process running the binary.
 */
struct goroutine {
	__u32 tgid;
	__u32 pad;
	__u64 goid;
};

/* A server request being handled: its event so far, and what the return probe needs. */
struct server_span {
	struct http_event ev;
	__u64 req; /* *net/http.Request */
	__u64 rw;  /* data word of the ResponseWriter: *net/http.response for HTTP/1.x */
};

/* Finished requests, for user space. Shared by all objects of a target. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

/* Records lost because "events" was full, per CPU. Shared by all objects of a target. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

/*
 * Server requests in progress, by goroutine. Written by the server object,
 * read by the client object. LRU, so that entries whose return probe never
 * ran (a handler that panicked) are evicted rather than filling the map;
 * the cost is that beyond 8192 requests in progress at once the oldest lose
 * their span. LRU maps are preallocated: about 6 MiB.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct goroutine);
	__type(value, struct server_span);
} server_spans SEC(".maps");

/* read_u64 returns the 8 bytes at addr in the traced process, or 0. */
static __always_inline __u64 read_u64(__u64 addr)
{
	__u64 v = 0;
	bpf_probe_read_user(&v, sizeof(v), (const void *)addr);
	return v;
}

/*
 * read_go_string copies at most size bytes of the Go string whose header is
 * at addr into dst and returns how many it copied. size must be a constant
 * of at most 255.
 */
static __always_inline __u8 read_go_string(void *dst, __u32 size, __u64 addr)
{
	struct go_string s = {};
	if (bpf_probe_read_user(&s, sizeof(s), (const void *)addr) != 0)
		return 0;
	if (s.ptr == 0 || s.len <= 0)
		return 0;
	__u32 n = s.len > size ? size : (__u32)s.len;
	if (n > size) /* restated for the verifier */
		return 0;
	if (bpf_probe_read_user(dst, n, (const void *)s.ptr) != 0)
		return 0;
	return n;
}

/*
 * field_addr returns base+off, or 0 when the base pointer is nil or the
 * field is absent from the traced release.
 */
static __always_inline __u64 field_addr(__u64 base, __u64 off)
{
	if (base == 0 || off == OFFSET_ABSENT)
		return 0;
	return base + off;
}

/* current_goroutine fills g with the calling goroutine; false if unknown. */
static __always_inline int current_goroutine(struct go_regs *regs, __u64 off_g_goid, struct goroutine *g)
{
	__u64 addr = field_addr(GO_G(regs), off_g_goid);
	if (addr == 0)
		return 0;
	g->tgid = bpf_get_current_pid_tgid() >> 32;
	g->pad = 0;
	g->goid = read_u64(addr);
	return g->goid != 0;
}

/* random_id fills n bytes (a multiple of 4) with random bytes. */
static __always_inline void random_id(__u8 *dst, int n)
{
#pragma unroll
	for (int i = 0; i < n; i += 4) {
		__u32 r = bpf_get_prandom_u32();
		__builtin_memcpy(dst + i, &r, sizeof(r));
	}
}

/*
 * The reader is woken only once this much is waiting; it also reads on a
 * short timer (tracer/uprobe), so a lone event waits at most that long.
 * Waking it for every event cost a context switch per span or two.
 */
#define WAKEUP_BYTES (64 << 10)

/* submit hands ev to user space, counting it in "drops" if the ring buffer is full. */
static __always_inline void submit(struct http_event *ev)
{
	__u64 flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= WAKEUP_BYTES ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_output(&events, ev, sizeof(*ev), flags) == 0)
		return;
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&drops, &zero);
	if (n)
		__sync_fetch_and_add(n, 1);
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
	if ((a = field_addr(url, off_path)))
		ev->path_len = read_go_string(ev->path, PATH_LEN, a);
	if ((a = field_addr(url, off_query)))
		ev->query_len = read_go_string(ev->query, QUERY_LEN, a);
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
	ev->pid = 0;
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

char __license[] SEC("license") = "Dual MIT/GPL";

#endif /* OFFSETDB_NETHTTP_H */
