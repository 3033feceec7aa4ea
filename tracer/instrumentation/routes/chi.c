//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * chi.c: the route pattern chi v5 matched (bpf/route.h). It submits no
 * records.
 *
 * Probes github.com/go-chi/chi/v5:
 *
 *     func (n *node) FindRoute(rctx *Context, method methodTyp, path string) (*node, endpoints, http.Handler)
 *
 * which each router level (a router mounted in another matches the rest
 * of the path) calls before it calls the handler, leaving the pattern it
 * matched in rctx.routePattern ("" when nothing matched). chi_entry notes
 * where that field is; chi_return reads it at each RET and adds it to the
 * levels before (route_record): "/api/" "*" then "/users/{id}" record
 * "/api/users/{id}", as chi.Context.RoutePattern says.
 */
#include "route.h"

/* Field offsets, rewritten at load time; OFFSET_ABSENT if absent. */
volatile const __u64 off_g_goid = OFFSET_ABSENT;               /* runtime.g.goid */
volatile const __u64 off_Context_routePattern = OFFSET_ABSENT; /* github.com/go-chi/chi/v5.Context.routePattern */

SEC("uprobe/chi_node_FindRoute")
int chi_entry(void *ctx)
{
	struct go_regs *regs = ctx;
	return route_enter(regs, off_g_goid, ROUTER_CHI, field_addr(GO_REG2(regs), off_Context_routePattern), 0);
}

SEC("uprobe/chi_node_FindRoute_return")
int chi_return(void *ctx)
{
	struct route *r = route_returning(ctx, off_g_goid, ROUTER_CHI, 1);
	if (!r)
		return 0;
	struct go_string s = {};
	if (bpf_probe_read_user(&s, sizeof(s), (const void *)r->addr) != 0)
		return 0;
	/*
	 * A level that matched nothing leaves chi's levels before as they are
	 * (RoutePattern keeps "/api/" "*"), and the request without a route
	 * when chi had matched nothing yet (an outer ServeMux's "/" is not it).
	 */
	int joined = route_last(r) == ROUTER_CHI;
	if (s.len == 0 && joined)
		return 0;
	__u32 off = 0;
	if (joined) {
		/* A trailing wildcard segment ("/" "*") is the mounted router's part. */
		off = r->len;
		if (off >= 2 && off <= ROUTE_TEMPLATE_LEN && r->template[(off - 1) & (ROUTE_TEMPLATE_LEN - 1)] == '*' &&
		    r->template[(off - 2) & (ROUTE_TEMPLATE_LEN - 1)] == '/')
			off -= 2;
	}
	__u32 total = route_record(r, ROUTER_CHI, off, s.ptr, s.len);
	/* RoutePattern drops a trailing "/" other than the whole pattern. */
	if (total > 1 && total <= ROUTE_TEMPLATE_LEN && r->template[(total - 1) & (ROUTE_TEMPLATE_LEN - 1)] == '/')
		r->len = total - 1;
	return 0;
}
