//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * adopt.c: puts TCP sockets that existed before the writer started into
 * its sockhash, so that a traced process's kept-alive connections carry
 * trace context too (track_sockets in writer.c only sees connections made
 * after it was attached).
 *
 * adopt_sockets is a BPF iterator over the kernel's TCP sockets; user space
 * fills "adopt" with the inode numbers of the sockets a traced process
 * holds (from /proc/PID/fd) and reads the iterator once. Each established
 * socket whose inode is listed joins "sockets", the writer's sockhash
 * (shared at load time).
 *
 * The kernel types are declared with only the fields read here; CO-RE
 * relocates them against the running kernel's BTF.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct inode {
	unsigned long i_ino;
} __attribute__((preserve_access_index));

struct file {
	struct inode *f_inode;
} __attribute__((preserve_access_index));

struct socket {
	struct file *file;
} __attribute__((preserve_access_index));

struct sock_common {
	unsigned char skc_state;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
	struct socket *sk_socket;
} __attribute__((preserve_access_index));

struct tcp_sock {
	__u32 rcv_nxt;
} __attribute__((preserve_access_index));

struct bpf_iter_meta {
	void *seq;
	__u64 session_id;
	__u64 seq_num;
} __attribute__((preserve_access_index));

struct bpf_iter__tcp {
	struct bpf_iter_meta *meta;
	struct sock_common *sk_common;
	__u32 uid;
} __attribute__((preserve_access_index));

#define TCP_ESTABLISHED 1

/* Inode numbers of the sockets to adopt, filled by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u8);
} adopt SEC(".maps");

/* The writer's sockhash (writer.c); replaced by it at load time. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} sockets SEC(".maps");

/* How many sockets the last run adopted. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} adopted SEC(".maps");

SEC("iter/tcp")
int adopt_sockets(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	if (!skc)
		return 0;
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0;
	struct sock *sk = (struct sock *)tp;
	if (sk->__sk_common.skc_state != TCP_ESTABLISHED)
		return 0;
	struct socket *so = sk->sk_socket;
	if (!so)
		return 0;
	struct file *f = so->file;
	if (!f)
		return 0;
	struct inode *in = f->f_inode;
	if (!in)
		return 0;
	__u64 ino = in->i_ino;
	if (!bpf_map_lookup_elem(&adopt, &ino))
		return 0;
	__u64 cookie = bpf_get_socket_cookie(sk);
	if (bpf_map_update_elem(&sockets, &cookie, sk, BPF_NOEXIST) == 0) {
		__u32 zero = 0;
		__u64 *n = bpf_map_lookup_elem(&adopted, &zero);
		if (n)
			__sync_fetch_and_add(n, 1);
	}
	return 0;
}

char __license[] SEC("license") = "Dual MIT/GPL";
