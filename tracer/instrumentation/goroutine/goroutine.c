//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * goroutine.c: a goroutine started while its parent has an active span
 * (bpf/context.h) inherits that context, so that the calls it makes (a
 * handler's fan-out with `go`, errgroup, a worker started for the request)
 * are children of the request's span. It submits no records.
 *
 * Probes runtime.newproc1, which every `go` statement reaches on the
 * system stack of the calling thread:
 *
 *     Go 1.12-1.14: func newproc1(fn *funcval, argp unsafe.Pointer, narg int32, callergp *g, callerpc uintptr)
 *     Go 1.15-1.17: func newproc1(fn *funcval, argp unsafe.Pointer, narg int32, callergp *g, callerpc uintptr) *g
 *     Go 1.18+:     func newproc1(fn *funcval, callergp *g, callerpc uintptr[, parked bool, waitreason waitReason]) *g
 *
 * newproc_entry (callergp in the 2nd word) or newproc_entry_117 (4th word)
 * notes the calling goroutine by thread, as the function runs on g0;
 * newproc_return reads the new g from the result and copies the caller's
 * active span to it, marked with the goroutine it came from
 * (span_context.origin_goid). span_start honours such a context only while
 * that goroutine still has the span active, so a goroutine that outlives
 * its request, or a pooled worker started during an earlier one, never
 * parents its calls to a span that has ended.
 *
 * Before Go 1.15 newproc1 returns nothing: newproc_queue takes the new g
 * at newproc1's own call runqput(_p_, newg, true), a uprobe on that CALL
 * instruction (not on runqput, which the scheduler calls for every
 * goroutine it wakes), and newproc_return_114 only forgets the caller.
 */
#include "context.h"

/* Field offsets, rewritten at load time; OFFSET_ABSENT if absent. */
volatile const __u64 off_g_goid = OFFSET_ABSENT; /* runtime.g.goid */

/* The calling goroutine of a newproc1 in progress, by thread. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);   /* pid_tgid */
	__type(value, __u64); /* callergp */
} starting SEC(".maps");

static __always_inline int note_caller(__u64 callergp)
{
	__u64 tid = bpf_get_current_pid_tgid();
	bpf_map_update_elem(&starting, &tid, &callergp, BPF_ANY);
	return 0;
}

SEC("uprobe/runtime_newproc1")
int newproc_entry(void *ctx)
{
	struct go_regs *regs = ctx;
	return note_caller(GO_REG2(regs));
}

SEC("uprobe/runtime_newproc1_go117")
int newproc_entry_117(void *ctx)
{
	struct go_regs *regs = ctx;
	return note_caller(GO_REG4(regs));
}

/*
 * inherit gives newg, just created by the thread's newproc1 in progress,
 * the active span of that newproc1's caller, if it has one.
 */
static __always_inline int inherit(__u64 newg)
{
	__u64 tid = bpf_get_current_pid_tgid();
	__u64 *callergp = bpf_map_lookup_elem(&starting, &tid);
	if (!callergp)
		return 0;
	struct goroutine parent = {.tgid = tid >> 32};
	__u64 a = field_addr(*callergp, off_g_goid);
	bpf_map_delete_elem(&starting, &tid);
	if (a == 0 || (parent.goid = read_u64(a)) == 0)
		return 0;
	struct span_context *sc = bpf_map_lookup_elem(&active_spans, &parent);
	if (!sc)
		return 0;
	struct goroutine child = {.tgid = parent.tgid};
	if ((a = field_addr(newg, off_g_goid)) == 0 || (child.goid = read_u64(a)) == 0)
		return 0;
	struct span_context inherited = *sc;
	if (inherited.origin_goid == 0)
		inherited.origin_goid = parent.goid;
	bpf_map_update_elem(&active_spans, &child, &inherited, BPF_ANY);
	return 0;
}

SEC("uprobe/runtime_newproc1_return")
int newproc_return(void *ctx)
{
	struct go_regs *regs = ctx;
	return inherit(GO_RESULT1(regs));
}

/*
 * At newproc1's call of runqput(_p_ *p, gp *g, next bool), Go 1.12-1.14:
 * gp, the new goroutine, is the call's second argument word.
 */
SEC("uprobe/runtime_newproc1_runqput")
int newproc_queue(void *ctx)
{
	struct go_regs *regs = ctx;
	return inherit(GO_CALLARG2(regs));
}

SEC("uprobe/runtime_newproc1_return_go114")
int newproc_return_114(void *ctx)
{
	__u64 tid = bpf_get_current_pid_tgid();
	bpf_map_delete_elem(&starting, &tid);
	return 0;
}
