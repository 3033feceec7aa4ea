/* SPDX-License-Identifier: (MIT OR GPL-2.0-only) */
/*
 * propagation.h: what the net/http client instrumentation hands to the
 * socket-layer writer of trace context (tracer/propagation/writer.c), and
 * the counters both keep.
 *
 * The kernel in lockdown=integrity refuses bpf_probe_write_user, and
 * allocating memory in a target is unsafe, so the traceparent header is
 * not written into the Go request. It is added to the request's bytes as
 * they leave the process: an sk_msg program sees each write on the
 * sockets the traced processes connect, and inserts the header after the
 * request line. The client's uprobes know the span, the sk_msg program
 * the bytes; what they share is the thread, because a Go goroutine stays on
 * its thread from net/http.(*Request).write to the write(2) that sends the
 * request (nothing in between blocks), and the record is checked against
 * the bytes (method, path) before anything is written.
 *
 * The maps are declared identically in both objects; tracer/uprobe hands
 * the writer's maps to every client object (uprobe.Options.Shared), so a
 * client object loaded without a writer fills maps nobody reads.
 */
#ifndef OFFSETDB_PROPAGATION_H
#define OFFSETDB_PROPAGATION_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define OUTGOING_METHOD_LEN 16
#define OUTGOING_PATH_LEN 32

/* A request about to be written by a thread of a traced process. */
struct outgoing_request {
	__u8 trace_id[16];
	__u8 span_id[8]; /* the client span: the parent of the next service's span */
	__u8 flags;      /* W3C trace-flags */
	__u8 method_len;
	__u8 path_len; /* 0: do not check the path (it has bytes the request line escapes) */
	__u8 pad[5];
	__u64 queued_ns; /* bpf_ktime_get_ns() when the write began */
	__u64 conn;      /* the connection's writer (net/http: its *persistConn) */
	__u64 req;       /* the *net/http.Request written */
	__u8 method[OUTGOING_METHOD_LEN];
	__u8 path[OUTGOING_PATH_LEN];
};

/* Requests being written, by the pid_tgid of the writing thread. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct outgoing_request);
} outgoing_requests SEC(".maps");

/*
 * The same requests by connection writer, for a write on another thread
 * than the one that queued it (the goroutine moved): an HTTP/1.x
 * connection carries one request at a time. The writer learns which
 * connection writer a socket belongs to from the first request it matches
 * by thread.
 */
struct conn_ref {
	__u32 tgid;
	__u32 pad;
	__u64 conn;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct conn_ref);
	__type(value, struct outgoing_request);
} outgoing_by_conn SEC(".maps");

/*
 * Requests the writer has seen leave (with the header, or counted why
 * not), by process and *net/http.Request: the client instrumentation
 * counts a request it queued, got a response for, and finds missing here
 * as missed.
 */
struct request_seen_ref {
	__u32 tgid;
	__u32 pad;
	__u64 req;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct request_seen_ref);
	__type(value, __u8);
} outgoing_seen SEC(".maps");

/*
 * Processes whose client requests are traced (tgid → 1): the sockets they
 * connect are the ones the writer watches.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} traced_processes SEC(".maps");

/*
 * HTTP/2 (gRPC): the HEADERS frames a thread is about to write, by stream
 * ID. A gRPC client's loopy writer encodes the headers of several streams
 * before it flushes them in one write, so a thread holds up to
 * H2_PENDING of them; the writer appends a traceparent header field to
 * each HEADERS frame of a listed stream.
 */
#define H2_PENDING 8

struct h2_stream {
	__u32 stream_id; /* 0: free slot */
	__u8 flags;      /* W3C trace-flags */
	__u8 pad[3];
	__u64 queued_ns;
	__u64 conn; /* the connection's writer (gRPC: its *loopyWriter) */
	__u8 trace_id[16];
	__u8 span_id[8];
};

/*
 * The same HEADERS frames by connection writer and stream ID, for a write
 * on another thread than the one that encoded them (the writer goroutine
 * moved): the sk_msg program learns which connection writer a socket
 * belongs to from the first frame it matches by thread (h2_conns).
 */
struct h2_stream_ref {
	__u32 tgid;
	__u32 stream_id;
	__u64 conn;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct h2_stream_ref);
	__type(value, struct h2_stream);
} outgoing_h2_streams SEC(".maps");

struct h2_pending {
	struct h2_stream streams[H2_PENDING];
};

/* HEADERS frames being written, by the pid_tgid of the writing thread. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct h2_pending);
} outgoing_h2 SEC(".maps");

/*
 * Which connection writer last listed a stream ID in a process, for a
 * socket whose connection the writer does not know yet: a new connection's
 * first frames, flushed on another thread. Used only when unambiguous (no
 * other connection of the process listed that stream ID within a second).
 */
struct h2_sid_ref {
	__u32 tgid;
	__u32 stream_id;
};

struct h2_sid_owner {
	__u64 conn;
	__u64 queued_ns;
	__u64 ambiguous; /* another connection listed the same stream ID */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct h2_sid_ref);
	__type(value, struct h2_sid_owner);
} outgoing_h2_sids SEC(".maps");

/*
 * Kafka (segmentio/kafka-go): the records a Writer serializes are matched
 * to the WriteMessages call that contributed them by a fingerprint: the
 * process, the topic, the key and value lengths and their first bytes. The
 * call's uprobe lists each of its messages' fingerprints with the
 * producer span's context; the writer looks each record of an outgoing
 * Produce request up. Identical messages (same topic, key and value
 * prefix, lengths) from concurrent calls are told apart by nothing: the
 * record gets the context of the call that listed it last.
 */
#define KAFKA_FP_TOPIC 128
#define KAFKA_FP_KEY 16
#define KAFKA_FP_VALUE 32

/* What a fingerprint is a hash of; zeroed, then filled, on both sides. */
struct kafka_fp_input {
	__u8 topic[KAFKA_FP_TOPIC];
	__u32 topic_len;
	__u32 key_len; /* KAFKA_FP_MESSAGE_PART */
	__u32 value_len;
	__u32 pad;
	__u8 key[KAFKA_FP_KEY];
	__u8 value[KAFKA_FP_VALUE];
};

struct kafka_fp_key {
	__u32 tgid;
	__u32 pad;
	__u64 hash;
};

struct kafka_outgoing {
	__u8 trace_id[16];
	__u8 span_id[8]; /* the producer span */
	__u8 flags;
	__u8 pad[7];
	__u64 queued_ns;
};

/* Messages being produced, by fingerprint. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct kafka_fp_key);
	__type(value, struct kafka_outgoing);
} kafka_outgoing SEC(".maps");

/*
 * Processes with a kafka-go Writer (tgid → 1): only their writes are
 * looked at as Kafka requests.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} kafka_producers SEC(".maps");

#define KAFKA_FNV_OFFSET 0xcbf29ce484222325ULL
/* Where the per-message part of struct kafka_fp_input begins: the topic's part is hashed once per request. */
#define KAFKA_FP_MESSAGE_PART 132

_Static_assert(__builtin_offsetof(struct kafka_fp_input, key_len) == KAFKA_FP_MESSAGE_PART, "KAFKA_FP_MESSAGE_PART");

/* kafka_fp_hash_part continues FNV-1a (64-bit) h over in's bytes [from, to). */
static __always_inline __u64 kafka_fp_hash_part(const struct kafka_fp_input *in, __u64 h, int from, int to)
{
	const __u8 *b = (const __u8 *)in;
	for (int i = from; i < to; i++) {
		h ^= b[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* kafka_fp_hash is FNV-1a (64-bit) over in's bytes. */
static __always_inline __u64 kafka_fp_hash(const struct kafka_fp_input *in)
{
	return kafka_fp_hash_part(in, KAFKA_FNV_OFFSET, 0, sizeof(*in));
}

/* What became of each client request's trace context; indexes of context_stats. */
enum context_stat {
	CONTEXT_WRITTEN = 0,      /* traceparent added to the request's bytes */
	CONTEXT_APP_SET,          /* the application set its own traceparent: left alone */
	CONTEXT_TLS,              /* https: encrypted before it leaves the process */
	CONTEXT_STALE,            /* the request was not written within STALE_NS of its queueing (another thread wrote it) */
	CONTEXT_LINE_TOO_LONG,    /* no end of the request line within the bytes the writer looks at */
	CONTEXT_NOT_HTTP1,        /* the bytes after the method are not an HTTP/1.x request line */
	CONTEXT_WRITE_FAILED,     /* the kernel refused to grow or expose the message */
	CONTEXT_H2_WRITTEN,       /* HTTP/2: traceparent header field appended to a HEADERS frame */
	CONTEXT_H2_NOT_WRITTEN,   /* HTTP/2: the HEADERS frame was not found, split, padded or full */
	CONTEXT_MISSED,           /* written on another thread than the one that queued it, before the connection was known (HTTP/1.x: a request answered but never seen leaving; HTTP/2: a HEADERS frame without context) */
	CONTEXT_KAFKA_WRITTEN,    /* Kafka: traceparent header added to a record of a Produce request */
	CONTEXT_KAFKA_APP_SET,    /* Kafka: the record had its own traceparent header: left alone */
	CONTEXT_KAFKA_UNMATCHED,  /* Kafka: a record no WriteMessages call of the process listed (within KAFKA_STALE_NS) */
	CONTEXT_KAFKA_UNSUPPORTED, /* Kafka: a Produce request left alone: compressed batch, magic != 2, several topics, partitions or batches, too many records or headers */
	CONTEXT_KAFKA_TOO_LARGE,  /* Kafka: a Produce request not whole in one write, or larger than KAFKA_BUF with its headers added */
	CONTEXT_KAFKA_REQUESTS,   /* Kafka: Produce requests rewritten (one or more records given a traceparent) */
	CONTEXT_KAFKA_WRITE_FAILED, /* Kafka: a Produce request left alone because the kernel refused to grow or expose it, or the per-CPU buffer was taken */
	CONTEXT_STAT_COUNT,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CONTEXT_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} context_stats SEC(".maps");

/* context_add adds n to context_stats[stat]. */
static __always_inline void context_add(__u32 stat, __u64 n)
{
	__u64 *c = bpf_map_lookup_elem(&context_stats, &stat);
	if (c)
		*c += n;
}

static __always_inline void context_count(__u32 stat)
{
	context_add(stat, 1);
}

#endif /* OFFSETDB_PROPAGATION_H */
