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
 * levels before (route_set): "/api/" "*" then "/users/{id}" record
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
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	__u64 a = field_addr(GO_REG2(regs), off_Context_routePattern);
	if (a)
		route_note(&g, ROUTER_CHI, a, 0);
	return 0;
}

SEC("uprobe/chi_node_FindRoute_return")
int chi_return(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	__u64 a = route_pending(&g, ROUTER_CHI, 1);
	if (!a)
		return 0;
	struct go_string s = {};
	if (bpf_probe_read_user(&s, sizeof(s), (const void *)a) != 0)
		return 0;
	/*
	 * A level that matched nothing leaves chi's levels before as they are
	 * (RoutePattern keeps "/api/" "*"), and the request without a route
	 * when chi had matched nothing yet (an outer ServeMux's "/" is not it).
	 */
	if (s.len > 0 || route_last(&g) != ROUTER_CHI)
		route_set(&g, ROUTER_CHI, s.ptr, s.len);
	return 0;
}
