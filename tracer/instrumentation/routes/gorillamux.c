//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * gorillamux.c: the path template gorilla/mux matched (bpf/route.h). It
 * submits no records.
 *
 * Probes github.com/gorilla/mux:
 *
 *     func (r *Router) Match(req *http.Request, match *RouteMatch) bool
 *
 * which Router.ServeHTTP calls before the handler, and which calls itself
 * for subrouters with the same match. It leaves the matched *Route in
 * match.Route; the template (what Route.GetPathTemplate returns,
 * "/users/{id}", with the prefixes of the subrouters above) is
 * route.regexp.path.template: the group behind a pointer before v1.7.0, a
 * value inside the embedded routeConf from v1.7.0. mux_entry notes match;
 * mux_return reads it at each RET, the outermost last, so the leaf route
 * wins. A route without a path template (only a host or a MatcherFunc),
 * or no route (404), leaves the request without a route.
 */
#include "route.h"

/* Field offsets, rewritten at load time; OFFSET_ABSENT if absent. */
volatile const __u64 off_g_goid = OFFSET_ABSENT;                  /* runtime.g.goid */
volatile const __u64 off_RouteMatch_Route = OFFSET_ABSENT;        /* github.com/gorilla/mux.RouteMatch.Route */
volatile const __u64 off_Route_regexp = OFFSET_ABSENT;            /* github.com/gorilla/mux.Route.regexp, before v1.7.0 */
volatile const __u64 off_routeRegexpGroup_path = OFFSET_ABSENT;   /* github.com/gorilla/mux.routeRegexpGroup.path */
volatile const __u64 off_Route_routeConf_regexp_path = OFFSET_ABSENT; /* github.com/gorilla/mux.Route.routeConf.regexp.path, v1.7.0+ */
volatile const __u64 off_routeRegexp_template = OFFSET_ABSENT;    /* github.com/gorilla/mux.routeRegexp.template */

SEC("uprobe/mux_Router_Match")
int mux_entry(void *ctx)
{
	struct go_regs *regs = ctx;
	return route_enter(regs, off_g_goid, ROUTER_GORILLA_MUX, GO_REG3(regs), 0);
}

SEC("uprobe/mux_Router_Match_return")
int mux_return(void *ctx)
{
	/* Kept for the outer calls: they return later, with the same match. */
	struct route *r = route_returning(ctx, off_g_goid, ROUTER_GORILLA_MUX, 0);
	__u64 a;
	if (!r || !(a = field_addr(r->addr, off_RouteMatch_Route)))
		return 0;
	__u64 route = read_u64(a);
	if (route == 0) {
		/*
		 * Nothing matched (yet: an outer call may still match): the
		 * request has no route, not an outer ServeMux's "/".
		 */
		if (route_last(r) != ROUTER_GORILLA_MUX)
			route_record(r, ROUTER_GORILLA_MUX, 0, 0, 0);
		return 0;
	}
	__u64 path = 0;
	if ((a = field_addr(route, off_Route_routeConf_regexp_path))) {
		path = read_u64(a);
	} else if ((a = field_addr(route, off_Route_regexp))) {
		if ((a = field_addr(read_u64(a), off_routeRegexpGroup_path)))
			path = read_u64(a);
	}
	route_record_string(r, ROUTER_GORILLA_MUX, field_addr(path, off_routeRegexp_template));
	return 0;
}
