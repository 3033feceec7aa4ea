/* SPDX-License-Identifier: (MIT OR GPL-2.0-only) */
/*
 * go_abi.h: how a uprobe on a Go function sees the function's arguments,
 * results and current goroutine.
 *
 * A uprobe program's context is the user-space register file saved at the
 * probed instruction, laid out as the kernel's UAPI describes it: struct
 * pt_regs in arch/x86/include/uapi/asm/ptrace.h for x86_64 and struct
 * user_pt_regs in arch/arm64/include/uapi/asm/ptrace.h for arm64. Both
 * layouts are restated here as struct go_regs, so that compiling for either
 * target needs no architecture-specific system header.
 *
 * Go functions compiled for the register-based calling convention
 * (ABIInternal: Go 1.17+ on amd64, Go 1.18+ on arm64) receive their
 * integer and pointer arguments, word by word, in
 *   amd64: RAX, RBX, RCX, RDI, RSI, R8, R9, R10, R11
 *   arm64: X0 .. X15
 * and return their results in the same registers in the same order. A
 * string is two words (pointer, length), an interface two words (itab or
 * type, data), a value receiver as many words as its struct. The current
 * goroutine's g is kept in R14 (amd64) or X28 (arm64) for the whole body of
 * an ABIInternal function, including at its RET instructions.
 *
 * Go functions compiled for the stack-based calling convention (ABI0: every
 * function before Go 1.17 on amd64 and 1.18 on arm64) receive the same
 * words in the caller's frame instead: at the function's first instruction
 * the stack pointer points at the return address (amd64) or at the word
 * the caller reserved for it (arm64, where the return address is in LR),
 * and argument word n is at SP + 8*n. The results follow the arguments, the
 * first one aligned to a word; at a RET instruction the frame is popped
 * (amd64: ADDQ $framesize, SP; arm64: ADD $framesize, RSP, RSP after
 * reloading LR), so SP is what it was at entry and result word n is at
 * SP + 8 + (size of arguments) + 8*(n-1). Checked on `go tool objdump` of
 * net/http.(*Transport).roundTrip built by go1.12.17 and go1.15.15
 * (amd64, arm64). The current goroutine's g is in X28 on arm64 in both
 * conventions; on amd64 before Go 1.17 it is in thread-local storage, at a
 * fixed offset from the FS base (-8 in the binaries checked, internal and
 * external linking, PIE too; the exact offset is read from each binary's
 * code by gobinary.GoTLSOffset).
 *
 * GO_REGn, GO_RESULTn and GO_G read either convention: tracer/uprobe sets
 * go_stack_abi (and, on amd64, go_tls_g) at load time for the traced
 * binary, and gives each RET uprobe of a stack-ABI target the offset from
 * SP of the function's first result as its BPF cookie, from the function's
 * argument size in the Go function table (_func.args) and the size of the
 * results the probe declares (uprobe.Probe.StackResults). The verifier
 * drops the branch a target does not take, so what only ABI0 needs
 * (bpf_get_attach_cookie, Linux 5.15; the task_struct read, CO-RE against
 * the kernel's BTF) is never checked for register-ABI targets: their
 * objects load without kernel BTF (tracer/uprobe poisons those
 * relocations), which TestRegisterABINeedsNoKernelBTF checks; a kernel
 * without the cookie helper was not available to test.
 * Argument word n is the same value in both conventions as long as the
 * arguments before it are word-sized (pointers, ints, strings, slices,
 * interfaces); a probe is marked as checked for the stack convention
 * (uprobe.Probe.StackABI) only if its programs read nothing else, or
 * branch on go_stack_abi where the layouts differ (gRPC's writeHeader,
 * kafka-go's FetchMessage result).
 *
 * See https://go.dev/s/regabi, src/cmd/compile/abi-internal.md and, for
 * ABI0, https://go.dev/doc/asm.
 */
#ifndef OFFSETDB_GO_ABI_H
#define OFFSETDB_GO_ABI_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

/*
 * Set at load time by tracer/uprobe for the traced binary: 1 when it was
 * compiled for the stack-based calling convention, and then, on amd64,
 * the offset of g from the FS base (two's complement).
 */
volatile const __u8 go_stack_abi = 0;
volatile const __u64 go_tls_g = 0;

/* go_stack_word returns the 8 bytes at addr in the traced process, or 0. */
static __always_inline __u64 go_stack_word(__u64 addr)
{
	__u64 v = 0;
	bpf_probe_read_user(&v, sizeof(v), (const void *)addr);
	return v;
}

#if defined(__TARGET_ARCH_x86)

/* struct pt_regs, arch/x86/include/uapi/asm/ptrace.h (!__KERNEL__). */
struct go_regs {
	__u64 r15, r14, r13, r12, bp, bx, r11, r10, r9, r8;
	__u64 ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};

#define GO_IREG1(r) ((r)->ax)
#define GO_IREG2(r) ((r)->bx)
#define GO_IREG3(r) ((r)->cx)
#define GO_IREG4(r) ((r)->di)
#define GO_IREG5(r) ((r)->si)
#define GO_IREG6(r) ((r)->r8)
#define GO_IREG7(r) ((r)->r9)
#define GO_IREG8(r) ((r)->r10)
#define GO_IREG9(r) ((r)->r11)
#define GO_SP(r) ((r)->sp)
#define GO_PC(r) ((r)->ip) /* at an entry uprobe: the probed instruction */

/* The kernel's task_struct, as far as the FS base (CO-RE, kernel BTF). */
struct thread_struct___go {
	unsigned long fsbase;
} __attribute__((preserve_access_index));
struct task_struct___go {
	struct thread_struct___go thread;
} __attribute__((preserve_access_index));

/*
 * go_tls_goroutine returns g of a stack-ABI amd64 target: the word at
 * go_tls_g from the thread's FS base. The base is the one the kernel keeps
 * for the task (thread.fsbase), which is current: Go sets it with
 * arch_prctl(ARCH_SET_FS) and glibc through clone(CLONE_SETTLS), both of
 * which store it there; neither uses WRFSBASE.
 */
static __always_inline __u64 go_tls_goroutine(void)
{
	struct task_struct___go *t = (void *)bpf_get_current_task();
	__u64 fsbase = BPF_CORE_READ(t, thread.fsbase);
	if (fsbase == 0)
		return 0;
	return go_stack_word(fsbase + go_tls_g);
}

#define GO_G(r) (go_stack_abi ? go_tls_goroutine() : (r)->r14)

#elif defined(__TARGET_ARCH_arm64)

/* struct user_pt_regs, arch/arm64/include/uapi/asm/ptrace.h. */
struct go_regs {
	__u64 regs[31];
	__u64 sp, pc, pstate;
};

#define GO_IREG1(r) ((r)->regs[0])
#define GO_IREG2(r) ((r)->regs[1])
#define GO_IREG3(r) ((r)->regs[2])
#define GO_IREG4(r) ((r)->regs[3])
#define GO_IREG5(r) ((r)->regs[4])
#define GO_IREG6(r) ((r)->regs[5])
#define GO_IREG7(r) ((r)->regs[6])
#define GO_IREG8(r) ((r)->regs[7])
#define GO_IREG9(r) ((r)->regs[8])
#define GO_SP(r) ((r)->sp)
#define GO_PC(r) ((r)->pc) /* at an entry uprobe: the probed instruction */
#define GO_G(r) ((r)->regs[28])

#else
#error "go_abi.h: define __TARGET_ARCH_x86 or __TARGET_ARCH_arm64 (bpf2go -target amd64,arm64 does)"
#endif

/*
 * GO_REGn is argument word n at a function's entry, in either convention.
 */
#define GO_ARG(r, n, ireg) (go_stack_abi ? go_stack_word(GO_SP(r) + 8 * (n)) : (ireg))
#define GO_REG1(r) GO_ARG(r, 1, GO_IREG1(r))
#define GO_REG2(r) GO_ARG(r, 2, GO_IREG2(r))
#define GO_REG3(r) GO_ARG(r, 3, GO_IREG3(r))
#define GO_REG4(r) GO_ARG(r, 4, GO_IREG4(r))
#define GO_REG5(r) GO_ARG(r, 5, GO_IREG5(r))
#define GO_REG6(r) GO_ARG(r, 6, GO_IREG6(r))
#define GO_REG7(r) GO_ARG(r, 7, GO_IREG7(r))
#define GO_REG8(r) GO_ARG(r, 8, GO_IREG8(r))
#define GO_REG9(r) GO_ARG(r, 9, GO_IREG9(r))

/*
 * GO_CALLARGn is argument word n of a direct call, at the call
 * instruction (uprobe.Probe.CallsTo): in the argument registers, or in
 * the caller's outgoing argument area, which starts at SP on amd64 (the
 * CALL has not pushed the return address yet) and at SP+8 on arm64 (the
 * word at SP is the callee's slot for LR; BL does not move SP).
 */
#if defined(__TARGET_ARCH_x86)
#define GO_CALLARG_OFF(n) (8 * ((n) - 1))
#else
#define GO_CALLARG_OFF(n) (8 * (n))
#endif
#define GO_CALLARG(r, n, ireg) (go_stack_abi ? go_stack_word(GO_SP(r) + GO_CALLARG_OFF(n)) : (ireg))
#define GO_CALLARG2(r) GO_CALLARG(r, 2, GO_IREG2(r))

/*
 * go_stack_result returns result word n at a RET of a stack-ABI function:
 * the cookie of the uprobe is the offset of the first result from SP, or 0
 * when the probe declared no results (then every result reads as 0).
 */
static __always_inline __u64 go_stack_result(void *ctx, __u64 sp, int n)
{
	__u64 off = bpf_get_attach_cookie(ctx);
	if (off == 0)
		return 0;
	return go_stack_word(sp + off + 8 * (n - 1));
}

/*
 * Results come back in the argument registers (ABIInternal) or after the
 * arguments (ABI0): GO_RESULTn is result word n, read at a RET instruction.
 */
#define GO_RESULT(r, n, ireg) (go_stack_abi ? go_stack_result(r, GO_SP(r), n) : (ireg))
#define GO_RESULT1(r) GO_RESULT(r, 1, GO_IREG1(r))
#define GO_RESULT2(r) GO_RESULT(r, 2, GO_IREG2(r))
#define GO_RESULT3(r) GO_RESULT(r, 3, GO_IREG3(r))
#define GO_RESULT4(r) GO_RESULT(r, 4, GO_IREG4(r))

/* A Go string header: pointer to the bytes, length in bytes. */
struct go_string {
	__u64 ptr;
	__s64 len;
};

/* A Go slice header: pointer to the first element, length, capacity. */
struct go_slice {
	__u64 ptr;
	__s64 len;
	__s64 cap;
};

#endif /* OFFSETDB_GO_ABI_H */
