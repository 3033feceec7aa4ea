/* SPDX-License-Identifier: (MIT OR GPL-2.0-only) */
/*
 * runtime.h: what every instrumentation's BPF object shares, whatever the
 * library it instruments: the ring buffer records go to, the drop counter,
 * the record tag, the goroutine key, and readers for Go values.
 *
 * Each instrumentation is its own BPF object (tracer/instrumentation/...),
 * so that any can be loaded and attached alone. All declare the maps below
 * identically; tracer/uprobe creates them once per traced binary and hands
 * the same maps to every collection (CollectionOptions.MapReplacements).
 *
 * Struct field offsets are `volatile const __u64` globals named
 * off_<Struct>_<Field>, rewritten at load time from the instrumentation's Go
 * declaration. A field that does not exist in the traced release is left at
 * OFFSET_ABSENT, which the code checks (field_addr) before using it.
 */
#ifndef OFFSETDB_RUNTIME_H
#define OFFSETDB_RUNTIME_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "go_abi.h"

/* The offset of a field that the traced release does not have. */
#define OFFSET_ABSENT 0xffffffffffffffffULL

/*
 * The first byte of every record an object submits to "events", which tells
 * user space which instrumentation it comes from. Written at load time by
 * tracer/uprobe, which assigns each instrumentation of a session its tag.
 */
volatile const __u8 event_kind = 0;

/*
 * A goroutine of a process. goids are only unique within a process, and one
 * probe can see every process running the binary.
 */
struct goroutine {
	__u32 tgid;
	__u32 pad;
	__u64 goid;
};

/* Finished spans, for user space. Shared by all objects of a target. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

/*
 * Spans lost in BPF, per CPU and reason (LOST_*). Shared by all objects of
 * a target.
 */
#define LOST_RING_BUFFER_FULL 0 /* the record did not fit in "events" */
#define LOST_IN_FLIGHT 1        /* a return probe found no start: evicted from an LRU in-flight map, begun before attach, or its entry run skipped */
#define LOST_REASONS 2
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LOST_REASONS);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

/* count_lost counts one span lost for reason (LOST_*). */
static __always_inline void count_lost(__u32 reason)
{
	__u64 *n = bpf_map_lookup_elem(&drops, &reason);
	if (n)
		__sync_fetch_and_add(n, 1);
}

/* read_u64 returns the 8 bytes at addr in the traced process, or 0. */
static __always_inline __u64 read_u64(__u64 addr)
{
	__u64 v = 0;
	bpf_probe_read_user(&v, sizeof(v), (const void *)addr);
	return v;
}

/*
 * read_go_u32 reads the 4 bytes at addr into *v; false when unreadable.
 */
static __always_inline int read_go_u32(__u64 addr, __u32 *v)
{
	return addr != 0 && bpf_probe_read_user(v, sizeof(*v), (const void *)addr) == 0;
}

/*
 * read_go_ptr reads the pointer at addr into *v; false when unreadable or nil.
 */
static __always_inline int read_go_ptr(__u64 addr, __u64 *v)
{
	*v = 0;
	return addr != 0 && bpf_probe_read_user(v, sizeof(*v), (const void *)addr) == 0 && *v != 0;
}

/*
 * copy_go_string copies at most size bytes of the Go string with data ptr
 * and length len into dst and returns how many it copied. size must be a
 * constant of at most 255.
 */
static __always_inline __u8 copy_go_string(void *dst, __u32 size, __u64 ptr, __s64 len)
{
	if (ptr == 0 || len <= 0)
		return 0;
	__u32 n = len > size ? size : (__u32)len;
	if (n > size) /* restated for the verifier */
		return 0;
	if (bpf_probe_read_user(dst, n, (const void *)ptr) != 0)
		return 0;
	return n;
}

/*
 * read_go_string is copy_go_string for the Go string whose header is at
 * addr in the traced process.
 */
static __always_inline __u8 read_go_string(void *dst, __u32 size, __u64 addr)
{
	struct go_string s = {};
	if (bpf_probe_read_user(&s, sizeof(s), (const void *)addr) != 0)
		return 0;
	return copy_go_string(dst, size, s.ptr, s.len);
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

/*
 * The tracer's pid namespace: device and inode of its /proc/self/ns/pid,
 * set by tracer/uprobe (0: not known). Records carry the submitting
 * process's tgid as the tracer sees it (record_tgid), by which it hands
 * each record to its process.
 */
volatile const __u64 pidns_dev = 0;
volatile const __u64 pidns_ino = 0;

/*
 * record_tgid returns the calling process's tgid in the tracer's pid
 * namespace when the process's own namespace is that one, else tgid (the
 * kernel's, in the initial namespace). A tracer in a pod's shared process
 * namespace (a sidecar) sees the app as, say, pid 7, while the kernel's
 * tgid is the host's; a tracer on the host sees host pids, which is what
 * the helper fails over to for processes in child namespaces.
 */
static __always_inline __u32 record_tgid(__u32 tgid)
{
	if (pidns_ino != 0) {
		struct bpf_pidns_info ns = {};
		if (bpf_get_ns_current_pid_tgid(pidns_dev, pidns_ino, &ns, sizeof(ns)) == 0)
			return ns.tgid;
	}
	return tgid;
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
 * short timer (tracer/uprobe), so a lone record waits at most that long.
 * Waking it for every record cost a context switch per span or two.
 */
#define WAKEUP_BYTES (64 << 10)

/*
 * submit hands the record of size bytes at rec to user space, counting it
 * as lost (LOST_RING_BUFFER_FULL) if the ring buffer is full. size must be
 * a constant.
 */
static __always_inline void submit(void *rec, __u64 size)
{
	__u64 flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= WAKEUP_BYTES ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_output(&events, rec, size, flags) == 0)
		return;
	count_lost(LOST_RING_BUFFER_FULL);
}

char __license[] SEC("license") = "Dual MIT/GPL";

#endif /* OFFSETDB_RUNTIME_H */
