/* SPDX-License-Identifier: (MIT OR GPL-2.0-only) */
/*
 * grpc.h: the record the grpc-go server and client instrumentations share,
 * and the reader for the status a gRPC error carries.
 *
 * The server (tracer/instrumentation/grpc/server/server.c) and client
 * (.../client/client.c) are separate BPF objects; they share no state but
 * the generic active-span context of context.h.
 */
#ifndef OFFSETDB_GRPC_H
#define OFFSETDB_GRPC_H

#include "runtime.h"
#include "context.h"

/* Sizes of the string buffers in struct grpc_event; longer values are cut. */
#define GRPC_METHOD_LEN 128
#define GRPC_TARGET_LEN 128

/* status_state of struct grpc_event. */
#define GRPC_STATUS_UNKNOWN 0 /* no status was seen */
#define GRPC_STATUS_SET 1     /* status holds the gRPC status code */
#define GRPC_STATUS_ERROR 2   /* the call failed, with a status the programs could not read */

/* The largest gRPC status code (UNAUTHENTICATED). */
#define GRPC_MAX_CODE 16

/*
 * One finished RPC. Strings are not NUL-terminated: *_len says how many
 * bytes of each buffer are valid. Times are bpf_ktime_get_ns().
 */
struct grpc_event {
	__u8 kind;          /* event_kind of the submitting object */
	__u8 status_state;  /* GRPC_STATUS_* */
	__u8 method_len;
	__u8 target_len;
	__u8 flags;         /* W3C trace-flags of the span */
	__u8 remote_parent; /* the parent came in with the request's metadata */
	__u8 streaming;     /* client: started by NewStream */
	__u8 peer_ip_len;   /* server: 4 or 16 when peer_ip holds the client's IP, else 0 */
	__u32 status;       /* gRPC status code when status_state is GRPC_STATUS_SET */
	__u32 pid;
	__u16 peer_port;    /* server: the client's TCP port, 0 if unknown */
	__u8 pad[6];
	__u64 start_ns;
	__u64 end_ns;
	__u8 trace_id[16];
	__u8 span_id[8];
	__u8 parent_span_id[8]; /* all zero for a root span */
	__u8 peer_ip[16];
	__u8 method[GRPC_METHOD_LEN]; /* "/package.Service/Method" */
	__u8 target[GRPC_TARGET_LEN]; /* client: the ClientConn's dial target */
};

/* A stream of a process, by its transport stream or *clientStream pointer. */
struct stream_ref {
	__u32 tgid;
	__u32 pad;
	__u64 stream;
};

/*
 * spb_code reads the code of the *google.golang.org/genproto/googleapis/rpc/status.Status
 * at spb into *code; false when it is unreadable or not a gRPC code.
 */
static __always_inline int spb_code(__u64 spb, __u64 off_code, __u32 *code)
{
	if (!read_go_u32(field_addr(spb, off_code), code))
		return 0;
	return *code <= GRPC_MAX_CODE;
}

#endif /* OFFSETDB_GRPC_H */
