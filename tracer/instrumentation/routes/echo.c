//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * echo.c: the route template echo v4 matched (bpf/route.h). It submits no
 * records.
 *
 * Probes github.com/labstack/echo/v4:
 *
 *     func (r *Router) Find(method, path string, c Context)
 *
 * Arguments (register ABI): r, method (ptr, len), path (ptr, len), c
 * (itab, data: an *echo.context). Find stores the matched route in the
 * context's path (what Context.Path returns, "/users/:id"), and returns
 * before Echo.ServeHTTP calls the handler. echo_entry notes where that
 * field is and the request path's data pointer; echo_return reads the
 * field at each RET. Releases before v4.10.2 first store the request path
 * itself there and leave it when nothing matched: a value that still
 * points at the request path is no template, and records no route.
 */
#include "route.h"

/* Field offsets, rewritten at load time; OFFSET_ABSENT if absent. */
volatile const __u64 off_g_goid = OFFSET_ABSENT;       /* runtime.g.goid */
volatile const __u64 off_context_path = OFFSET_ABSENT; /* github.com/labstack/echo/v4.context.path */

SEC("uprobe/echo_Router_Find")
int echo_entry(void *ctx)
{
	struct go_regs *regs = ctx;
	return route_enter(regs, off_g_goid, ROUTER_ECHO, field_addr(GO_REG7(regs), off_context_path), GO_REG4(regs));
}

SEC("uprobe/echo_Router_Find_return")
int echo_return(void *ctx)
{
	struct route *r = route_returning(ctx, off_g_goid, ROUTER_ECHO, 1);
	if (!r)
		return 0;
	struct go_string s = {};
	if (bpf_probe_read_user(&s, sizeof(s), (const void *)r->addr) != 0 || (s.ptr == r->aux && s.ptr != 0))
		s.ptr = 0;
	route_record(r, ROUTER_ECHO, 0, s.ptr, s.len);
	return 0;
}
