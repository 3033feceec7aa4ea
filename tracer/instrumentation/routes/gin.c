//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * gin.c: the route template gin matched (bpf/route.h). It submits no
 * records.
 *
 * Probes github.com/gin-gonic/gin v1.5.0+:
 *
 *     func (engine *Engine) handleHTTPRequest(c *Context)
 *
 * which finds the route, sets c.fullPath (what Context.FullPath returns,
 * "/users/:id"; "" when nothing matched) and calls the handlers before it
 * returns. gin_entry notes where c.fullPath is; gin_return reads it at each
 * RET, before Engine.ServeHTTP puts c back into its pool. A handler that
 * panics never reaches a RET: the server span reads the noted address.
 */
#include "route.h"

/* Field offsets, rewritten at load time; OFFSET_ABSENT if absent. */
volatile const __u64 off_g_goid = OFFSET_ABSENT;           /* runtime.g.goid */
volatile const __u64 off_Context_fullPath = OFFSET_ABSENT; /* github.com/gin-gonic/gin.Context.fullPath */

SEC("uprobe/gin_Engine_handleHTTPRequest")
int gin_entry(void *ctx)
{
	struct go_regs *regs = ctx;
	return route_enter(regs, off_g_goid, ROUTER_GIN, field_addr(GO_REG2(regs), off_Context_fullPath), 0);
}

SEC("uprobe/gin_Engine_handleHTTPRequest_return")
int gin_return(void *ctx)
{
	struct route *r = route_returning(ctx, off_g_goid, ROUTER_GIN, 1);
	if (r)
		route_record_string(r, ROUTER_GIN, r->addr);
	return 0;
}
