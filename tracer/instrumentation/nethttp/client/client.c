//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * httpclient.c: one event per request sent by a net/http.Transport.
 *
 * Probes net/http.(*Transport).roundTrip, which every request of an
 * http.Client with the default or any *http.Transport goes through, once
 * per redirect hop and for HTTP/1.x and HTTP/2 alike:
 *
 *     func (t *Transport) roundTrip(req *Request) (*Response, error)
 *
 * Arguments (register ABI): t, req. Results: resp, err (itab, data).
 * client_entry runs at the function's entry and starts the span: when the
 * goroutine has an active span (bpf/context.h: a server request it is
 * handling, over HTTP or gRPC), the client span joins its trace as its
 * child; otherwise it starts a new trace. client_return runs at
 * every RET instruction and submits the event with Response.StatusCode
 * (0 when roundTrip returned no response).
 */
#include "nethttp.h"

/* Field offsets, rewritten at load time; OFFSET_ABSENT if absent. */
volatile const __u64 off_g_goid = OFFSET_ABSENT;               /* runtime.g.goid */
volatile const __u64 off_Request_Method = OFFSET_ABSENT;       /* net/http.Request.Method */
volatile const __u64 off_Request_URL = OFFSET_ABSENT;          /* net/http.Request.URL */
volatile const __u64 off_URL_Scheme = OFFSET_ABSENT;           /* net/url.URL.Scheme */
volatile const __u64 off_URL_Host = OFFSET_ABSENT;             /* net/url.URL.Host */
volatile const __u64 off_URL_Path = OFFSET_ABSENT;             /* net/url.URL.Path */
volatile const __u64 off_URL_RawQuery = OFFSET_ABSENT;         /* net/url.URL.RawQuery */
volatile const __u64 off_Response_StatusCode = OFFSET_ABSENT;  /* net/http.Response.StatusCode */

/* Client requests in progress, by goroutine; LRU like server_spans. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct goroutine);
	__type(value, struct http_event);
} client_spans SEC(".maps");

/* Where client_entry builds an event too large for the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct http_event);
} client_scratch SEC(".maps");

SEC("uprobe/net_http_Transport_roundTrip")
int client_entry(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;

	__u32 zero = 0;
	struct http_event *ev = bpf_map_lookup_elem(&client_scratch, &zero);
	if (!ev)
		return 0;
	reset_event(ev);
	ev->pid = g.tgid;
	ev->goid = g.goid;
	ev->start_ns = bpf_ktime_get_ns();

	span_start(&g, ev->trace_id, ev->span_id, ev->parent_span_id);

	__u64 req = GO_REG2(regs);
	__u64 a;
	if ((a = field_addr(req, off_Request_Method)))
		ev->method_len = read_go_string(ev->method, METHOD_LEN, a);
	if ((a = field_addr(req, off_Request_URL)))
		read_url(ev, read_u64(a), 1, off_URL_Scheme, off_URL_Host, off_URL_Path, off_URL_RawQuery);

	bpf_map_update_elem(&client_spans, &g, ev, BPF_ANY);
	return 0;
}

SEC("uprobe/net_http_Transport_roundTrip_return")
int client_return(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	struct http_event *ev = bpf_map_lookup_elem(&client_spans, &g);
	if (!ev)
		return 0;
	ev->end_ns = bpf_ktime_get_ns();

	__u64 a;
	if ((a = field_addr(GO_RESULT1(regs), off_Response_StatusCode)))
		ev->status = http_status(read_u64(a));

	submit(ev, sizeof(*ev));
	bpf_map_delete_elem(&client_spans, &g);
	return 0;
}
