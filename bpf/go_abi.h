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
 * See https://go.dev/s/regabi and src/cmd/compile/abi-internal.md.
 */
#ifndef OFFSETDB_GO_ABI_H
#define OFFSETDB_GO_ABI_H

#include <linux/types.h>

#if defined(__TARGET_ARCH_x86)

/* struct pt_regs, arch/x86/include/uapi/asm/ptrace.h (!__KERNEL__). */
struct go_regs {
	__u64 r15, r14, r13, r12, bp, bx, r11, r10, r9, r8;
	__u64 ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};

#define GO_REG1(r) ((r)->ax)
#define GO_REG2(r) ((r)->bx)
#define GO_REG3(r) ((r)->cx)
#define GO_REG4(r) ((r)->di)
#define GO_REG5(r) ((r)->si)
#define GO_REG6(r) ((r)->r8)
#define GO_REG7(r) ((r)->r9)
#define GO_REG8(r) ((r)->r10)
#define GO_REG9(r) ((r)->r11)
#define GO_G(r) ((r)->r14)

#elif defined(__TARGET_ARCH_arm64)

/* struct user_pt_regs, arch/arm64/include/uapi/asm/ptrace.h. */
struct go_regs {
	__u64 regs[31];
	__u64 sp, pc, pstate;
};

#define GO_REG1(r) ((r)->regs[0])
#define GO_REG2(r) ((r)->regs[1])
#define GO_REG3(r) ((r)->regs[2])
#define GO_REG4(r) ((r)->regs[3])
#define GO_REG5(r) ((r)->regs[4])
#define GO_REG6(r) ((r)->regs[5])
#define GO_REG7(r) ((r)->regs[6])
#define GO_REG8(r) ((r)->regs[7])
#define GO_REG9(r) ((r)->regs[8])
#define GO_G(r) ((r)->regs[28])

#else
#error "go_abi.h: define __TARGET_ARCH_x86 or __TARGET_ARCH_arm64 (bpf2go -target amd64,arm64 does)"
#endif

/*
 * Results come back in the argument registers: GO_RESULTn is GO_REGn, read
 * at a RET instruction.
 */
#define GO_RESULT1(r) GO_REG1(r)
#define GO_RESULT2(r) GO_REG2(r)
#define GO_RESULT3(r) GO_REG3(r)

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
