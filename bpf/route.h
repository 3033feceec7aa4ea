// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * route.h: the route template a router matched, by goroutine, from the
 * router instrumentations (tracer/instrumentation/routes, and the net/http
 * server's own ServeMux probe) to the net/http server span, which reads it
 * when the request ends (route_take).
 *
 * A router runs on the goroutine of the server request it routes, between
 * the server span's start and end, so the goroutine is the key. Routers
 * nest (a ServeMux in front of gin, a chi router mounted in another, a
 * gorilla/mux subrouter): each one records when it has matched, and a
 * later record replaces an earlier one, so the innermost router's template
 * wins — except chi, whose levels add up to one pattern as
 * chi.Context.RoutePattern joins them (chi.c). A router that matched nothing
 * records an empty template: the request has no route.
 *
 * Routers whose matching function leaves the template only in memory that
 * its arguments point to (gin's Context, echo's context, gorilla/mux's
 * RouteMatch, chi's Context) note that address at the function's entry
 * (route_enter) and read it at its RETs (route_returning); gin calls the
 * handlers before its function returns, so when a handler panics the
 * server span reads the noted address itself (route_take).
 */
#ifndef OFFSETDB_ROUTE_H
#define OFFSETDB_ROUTE_H

#include "runtime.h"

/* The longest template kept; longer ones are cut (the span says so only by length). */
#define ROUTE_TEMPLATE_LEN 128

/* The router a record or a noted address comes from. */
#define ROUTER_NONE 0
#define ROUTER_SERVEMUX 1
#define ROUTER_GIN 2
#define ROUTER_ECHO 3
#define ROUTER_CHI 4
#define ROUTER_GORILLA_MUX 5

struct route {
	__u8 set;      /* a router recorded a template (maybe empty: no route) */
	__u8 by;       /* ROUTER_* of the template */
	__u8 len;      /* bytes of template */
	__u8 pending;  /* ROUTER_* whose entry noted addr; ROUTER_NONE for none */
	__u32 pad;
	__u64 addr;    /* noted at a router's entry: where its template will be */
	__u64 aux;     /* noted beside addr (echo: the request path's data pointer) */
	/* The kept length plus 256: an append of up to 255 bytes (as the
	 * verifier bounds it) at an offset below ROUTE_TEMPLATE_LEN stays inside. */
	char template[ROUTE_TEMPLATE_LEN + 256];
};

/*
 * Templates by goroutine (struct goroutine). Shared between the server
 * and router objects of a target (uprobe.Instrumentation.SharedMaps). LRU,
 * so that records of routers that ran outside any server span (a test
 * calling ServeHTTP itself) are evicted rather than filling the map.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct goroutine);
	__type(value, struct route);
} route_templates SEC(".maps");

/* Where a new record is built: struct route is too large for the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct route);
} route_scratch SEC(".maps");

/* route_get returns g's record, creating an empty one; NULL if the map refused. */
static __always_inline struct route *route_get(struct goroutine *g)
{
	struct route *r = bpf_map_lookup_elem(&route_templates, g);
	if (r)
		return r;
	__u32 zero = 0;
	struct route *s = bpf_map_lookup_elem(&route_scratch, &zero);
	if (!s)
		return 0;
	s->set = 0;
	s->by = ROUTER_NONE;
	s->len = 0;
	s->pending = ROUTER_NONE;
	s->addr = 0;
	s->aux = 0;
	bpf_map_update_elem(&route_templates, g, s, BPF_ANY);
	return bpf_map_lookup_elem(&route_templates, g);
}

/* route_note notes, at a router's entry, where its template will be. */
static __always_inline void route_note(struct goroutine *g, __u8 by, __u64 addr, __u64 aux)
{
	struct route *r = route_get(g);
	if (!r)
		return;
	r->pending = by;
	r->addr = addr;
	r->aux = aux;
}

/*
 * route_enter is a router's entry program after reading its arguments: it
 * notes, for the current goroutine, where router by will leave its
 * template (addr, 0: nothing to note) and what to keep beside it (aux).
 */
static __always_inline int route_enter(struct go_regs *regs, __u64 off_g_goid, __u8 by, __u64 addr, __u64 aux)
{
	struct goroutine g;
	if (addr && current_goroutine(regs, off_g_goid, &g))
		route_note(&g, by, addr, aux);
	return 0;
}

/*
 * route_returning is the start of a router's return program: the current
 * goroutine's record when router by noted an address on it (r->addr,
 * r->aux), NULL when it noted nothing: its entry ran before the probes
 * were attached, or an inner call of the same router already took it.
 * With forget, the note is taken (the outer calls of a recursive router
 * that keep it for themselves pass 0).
 */
static __always_inline struct route *route_returning(struct go_regs *regs, __u64 off_g_goid, __u8 by, int forget)
{
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	struct route *r = bpf_map_lookup_elem(&route_templates, &g);
	if (!r || r->pending != by)
		return 0;
	if (forget)
		r->pending = ROUTER_NONE;
	return r;
}

/* route_last returns the router of r's template, ROUTER_NONE when none is recorded. */
static __always_inline __u8 route_last(struct route *r)
{
	return r->set ? r->by : ROUTER_NONE;
}

/*
 * route_record makes the Go string with data ptr and length len router
 * by's template in r, written from byte off (0: it replaces the previous
 * template; a router that joins levels, as chi does, passes the length it
 * keeps). It returns the template's length.
 */
static __always_inline __u32 route_record(struct route *r, __u8 by, __u32 off, __u64 ptr, __s64 len)
{
	r->set = 1;
	r->by = by;
	if (off >= ROUTE_TEMPLATE_LEN) {
		r->len = ROUTE_TEMPLATE_LEN;
		return ROUTE_TEMPLATE_LEN;
	}
	off &= ROUTE_TEMPLATE_LEN - 1;
	__u32 n = 0;
	if (ptr != 0 && len > 0) {
		n = len > ROUTE_TEMPLATE_LEN - off ? ROUTE_TEMPLATE_LEN - off : (__u32)len;
		n &= 0xff; /* for the verifier: n is at most ROUTE_TEMPLATE_LEN already */
		if (n > 0 && bpf_probe_read_user(&r->template[off], n, (const void *)ptr) != 0)
			n = 0;
	}
	__u32 total = off + n;
	r->len = total > ROUTE_TEMPLATE_LEN ? ROUTE_TEMPLATE_LEN : total;
	return r->len;
}

/* route_record_string is route_record (from byte 0) for the Go string whose header is at addr. */
static __always_inline void route_record_string(struct route *r, __u8 by, __u64 addr)
{
	struct go_string s = {};
	if (addr != 0 && bpf_probe_read_user(&s, sizeof(s), (const void *)addr) != 0)
		s.ptr = 0;
	route_record(r, by, 0, addr ? s.ptr : 0, addr ? s.len : 0);
}

/* route_set records the template of router by, the Go string (ptr, len), for g. */
static __always_inline void route_set(struct goroutine *g, __u8 by, __u64 ptr, __s64 len)
{
	struct route *r = route_get(g);
	if (r)
		route_record(r, by, 0, ptr, len);
}

/*
 * route_servemux records the pattern a net/http.ServeMux matched (Go
 * 1.22+), at each RET of
 *
 *     func (mux *ServeMux) findHandler(r *Request) (h Handler, patStr string, _ *pattern, matches []string)
 *
 * which ServeMux.ServeHTTP calls before the handler. The pattern is read
 * from the result registers (words 3 and 4), not from the Request: a
 * middleware that calls r.WithContext hands the mux a copy, and the copy
 * is what the mux writes the pattern into. Each mux of a nest records in
 * turn, the innermost last. patStr is the pattern as registered
 * ("GET /users/{id}"; user space keeps its path); "" (no match) records
 * no route. The net/http server object holds the program.
 */
static __always_inline int route_servemux(struct go_regs *regs, __u64 off_g_goid)
{
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	route_set(&g, ROUTER_SERVEMUX, GO_RESULT3(regs), GO_RESULT4(regs));
	return 0;
}

/* route_forget drops g's record: a server request starts. */
static __always_inline void route_forget(struct goroutine *g)
{
	bpf_map_delete_elem(&route_templates, g);
}

/*
 * route_take copies g's template into dst (size bytes, a constant of at
 * most ROUTE_TEMPLATE_LEN) and drops the record: a server request ends. It
 * returns the length copied, or -1 when no router recorded anything (the
 * server then uses what net/http knows). A gin handler that panicked left
 * its template only at the noted address, which is read here: the Context
 * it belongs to is not back in gin's pool, as the panic unwound past that.
 */
static __always_inline int route_take(struct goroutine *g, void *dst, __u32 size)
{
	struct route *r = bpf_map_lookup_elem(&route_templates, g);
	if (!r)
		return -1;
	if (r->pending == ROUTER_GIN) {
		__u8 n = read_go_string(dst, size, r->addr);
		bpf_map_delete_elem(&route_templates, g);
		return n;
	}
	int n = -1;
	if (r->set) {
		/* The whole buffer (a constant size), then the length. */
		__u32 len = r->len;
		__u32 max = size < ROUTE_TEMPLATE_LEN ? size : ROUTE_TEMPLATE_LEN;
		bpf_probe_read_kernel(dst, max, r->template);
		n = len < max ? len : max;
	}
	bpf_map_delete_elem(&route_templates, g);
	return n;
}

#endif /* OFFSETDB_ROUTE_H */
