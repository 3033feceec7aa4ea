/* SPDX-License-Identifier: (MIT OR GPL-2.0-only) */
/*
 * context.h: the span each goroutine is working for, shared by every
 * instrumentation of a target, whatever its protocol.
 *
 * A server-side instrumentation (net/http server, gRPC server, later a
 * message consumer) makes its span the goroutine's active span while the
 * handler runs (span_activate at entry, span_deactivate at return); a
 * client-side one (net/http client, gRPC client, database calls) makes its
 * span a child of the goroutine's active span (span_start). No
 * instrumentation needs to know which other one set the context, so any
 * can parent to and be parented by any other.
 *
 * tracer/uprobe shares "active_spans" between every object of a target,
 * like "events" and "drops".
 */
#ifndef OFFSETDB_CONTEXT_H
#define OFFSETDB_CONTEXT_H

#include "runtime.h"

/* W3C trace-flags: the sampled bit. */
#define TRACE_FLAG_SAMPLED 0x01

/*
 * The sampler (OTEL_TRACES_SAMPLER), set at load time by tracer/uprobe. The
 * decision is made here, when a span starts, so that the trace-flags it
 * propagates to its children and to the next service carry it; user space
 * exports only sampled spans.
 */
#define SAMPLER_PARENTBASED_ALWAYS_ON 0
#define SAMPLER_PARENTBASED_ALWAYS_OFF 1
#define SAMPLER_PARENTBASED_TRACEIDRATIO 2
#define SAMPLER_ALWAYS_ON 3
#define SAMPLER_ALWAYS_OFF 4
#define SAMPLER_TRACEIDRATIO 5
volatile const __u8 sampler = SAMPLER_PARENTBASED_ALWAYS_ON;
/*
 * traceidratio: a trace is sampled when the last 8 bytes of its ID, read
 * big-endian and shifted right by one, are below this bound (ratio * 2^63),
 * which is the rule of the OpenTelemetry SDKs' TraceIDRatioBased sampler,
 * so that they and this tracer agree on every trace.
 */
volatile const __u64 sampler_bound = 0;

/*
 * Whether the W3C tracecontext propagator is on (OTEL_PROPAGATORS): a
 * server span continues an incoming traceparent, a client request is
 * handed its own. Set at load time.
 */
volatile const __u8 propagate_tracecontext = 1;

/* ratio_sampled applies the traceidratio rule to trace_id (16 bytes). */
static __always_inline int ratio_sampled(const __u8 *trace_id)
{
	__u64 x = 0;
#pragma unroll
	for (int i = 8; i < 16; i++)
		x = x << 8 | trace_id[i];
	return (x >> 1) < sampler_bound;
}

/*
 * sample returns the W3C trace-flags of a new span of trace trace_id: with
 * a parent (local, or remote from a traceparent), parent_flags are the
 * parent's. The parent-based samplers follow the parent's sampled bit; the
 * others decide alone. Other bits of a parent's flags are kept (a parsed
 * traceparent has none: only sampled is defined by version 00).
 */
static __always_inline __u8 sample(const __u8 *trace_id, int has_parent, __u8 parent_flags)
{
	__u8 rest = has_parent ? parent_flags & (__u8)~TRACE_FLAG_SAMPLED : 0;
	int on;
	switch (sampler) {
	case SAMPLER_ALWAYS_ON:
		on = 1;
		break;
	case SAMPLER_ALWAYS_OFF:
		on = 0;
		break;
	case SAMPLER_TRACEIDRATIO:
		on = ratio_sampled(trace_id);
		break;
	default:
		if (has_parent)
			return parent_flags;
		on = sampler == SAMPLER_PARENTBASED_ALWAYS_ON ? 1 : sampler == SAMPLER_PARENTBASED_ALWAYS_OFF ? 0 : ratio_sampled(trace_id);
	}
	return rest | (on ? TRACE_FLAG_SAMPLED : 0);
}

/* The identity of a span: what a child or the next service needs of it. */
struct span_context {
	__u8 trace_id[16];
	__u8 span_id[8];
	__u8 flags; /* W3C trace-flags */
	__u8 pad[7];
	/*
	 * Zero for a span the goroutine itself made active. For a context a
	 * goroutine inherited when it was started (the goroutine
	 * instrumentation), the goroutine whose active span it is: valid only
	 * while that goroutine still has this span active.
	 */
	__u64 origin_goid;
};

/*
 * The active span of each goroutine. LRU, so that the entry of a handler
 * whose return probe never ran (it panicked, or the target died) is evicted
 * rather than filling the map; beyond 8192 handlers in progress at once the
 * oldest lose their children's parent.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct goroutine);
	__type(value, struct span_context);
} active_spans SEC(".maps");

/*
 * origin_active reports whether the goroutine an inherited context came
 * from still has that span active: a goroutine that outlives the request
 * that started it, or a pooled worker started during an earlier request,
 * must not parent its calls to a span that has ended.
 */
static __always_inline int origin_active(__u32 tgid, struct span_context *sc)
{
	struct goroutine og = {.tgid = tgid, .goid = sc->origin_goid};
	struct span_context *o = bpf_map_lookup_elem(&active_spans, &og);
	if (!o)
		return 0;
	__u64 a, b;
	__builtin_memcpy(&a, o->span_id, sizeof(a));
	__builtin_memcpy(&b, sc->span_id, sizeof(b));
	return a == b;
}

/*
 * span_start gives a new span its IDs: a child of the goroutine's active
 * span when there is one (parent_span_id its span ID, same trace), else
 * the root of a new trace (parent_span_id left zero). trace_id, span_id and
 * parent_span_id point into the caller's record. It returns the span's W3C
 * trace-flags, as the sampler decides them (see sample).
 */
static __always_inline __u8 span_start(struct goroutine *g, __u8 *trace_id, __u8 *span_id, __u8 *parent_span_id)
{
	__u8 flags;
	struct span_context *parent = bpf_map_lookup_elem(&active_spans, g);
	if (parent && parent->origin_goid != 0 && !origin_active(g->tgid, parent)) {
		bpf_map_delete_elem(&active_spans, g); /* the request it came from has ended */
		parent = 0;
	}
	if (parent) {
		__builtin_memcpy(trace_id, parent->trace_id, 16);
		__builtin_memcpy(parent_span_id, parent->span_id, 8);
		flags = sample(trace_id, 1, parent->flags);
	} else {
		random_id(trace_id, 16);
		flags = sample(trace_id, 0, 0);
	}
	random_id(span_id, 8);
	return flags;
}

/*
 * span_activate makes the span with these IDs and W3C trace-flags the
 * goroutine's active span, saving the one it replaces (if any) in *saved
 * and returning whether there was one, for span_deactivate.
 */
static __always_inline int span_activate(struct goroutine *g, const __u8 *trace_id, const __u8 *span_id, __u8 flags, struct span_context *saved)
{
	int had = 0;
	struct span_context *prev = bpf_map_lookup_elem(&active_spans, g);
	if (prev) {
		__builtin_memcpy(saved, prev, sizeof(*saved));
		had = 1;
	}
	struct span_context sc = {};
	__builtin_memcpy(sc.trace_id, trace_id, 16);
	__builtin_memcpy(sc.span_id, span_id, 8);
	sc.flags = flags;
	bpf_map_update_elem(&active_spans, g, &sc, BPF_ANY);
	return had;
}

/* span_deactivate restores what span_activate replaced. */
static __always_inline void span_deactivate(struct goroutine *g, int had, struct span_context *saved)
{
	if (had)
		bpf_map_update_elem(&active_spans, g, saved, BPF_ANY);
	else
		bpf_map_delete_elem(&active_spans, g);
}

/* Length of a version-00 W3C traceparent: 00-<32 hex>-<16 hex>-<2 hex>. */
#define TRACEPARENT_LEN 55

/* hex_value returns the value of a lowercase hex digit, or -1. */
static __always_inline int hex_value(__u8 c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * parse_traceparent reads a W3C traceparent header value of len bytes at
 * buf (at least TRACEPARENT_LEN bytes readable) into sc: trace_id, span_id
 * (the caller's span: the parent of the span that continues it) and flags.
 * It returns 1 for a valid value and 0 for anything the W3C Trace Context
 * spec says to ignore: a wrong length, uppercase or non-hex digits, version
 * ff, a version-00 value with trailing data, all-zero IDs.
 */
static __always_inline int parse_traceparent(const __u8 *buf, __u32 len, struct span_context *sc)
{
	if (len < TRACEPARENT_LEN)
		return 0;
	int v0 = hex_value(buf[0]), v1 = hex_value(buf[1]);
	if (v0 < 0 || v1 < 0 || (v0 == 15 && v1 == 15))
		return 0;
	if (v0 == 0 && v1 == 0 && len != TRACEPARENT_LEN)
		return 0;
	/* A later version may append fields, after a dash. */
	if (len > TRACEPARENT_LEN && buf[TRACEPARENT_LEN] != '-')
		return 0;
	if (buf[2] != '-' || buf[35] != '-' || buf[52] != '-')
		return 0;
	__u8 any = 0;
#pragma unroll
	for (int i = 0; i < 16; i++) {
		int hi = hex_value(buf[3 + 2 * i]), lo = hex_value(buf[4 + 2 * i]);
		if (hi < 0 || lo < 0)
			return 0;
		sc->trace_id[i] = (__u8)(hi << 4 | lo);
		any |= sc->trace_id[i];
	}
	if (!any)
		return 0;
	any = 0;
#pragma unroll
	for (int i = 0; i < 8; i++) {
		int hi = hex_value(buf[36 + 2 * i]), lo = hex_value(buf[37 + 2 * i]);
		if (hi < 0 || lo < 0)
			return 0;
		sc->span_id[i] = (__u8)(hi << 4 | lo);
		any |= sc->span_id[i];
	}
	if (!any)
		return 0;
	int f0 = hex_value(buf[53]), f1 = hex_value(buf[54]);
	if (f0 < 0 || f1 < 0)
		return 0;
	/* Version 00 defines only the sampled bit; the others are not passed on. */
	sc->flags = (__u8)(f0 << 4 | f1) & TRACE_FLAG_SAMPLED;
	return 1;
}

#endif /* OFFSETDB_CONTEXT_H */
