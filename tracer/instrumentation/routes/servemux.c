//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * servemux.c: the pattern a net/http.ServeMux matched, Go 1.22+
 * (bpf/route.h). It submits no records.
 *
 * Probes, at each RET:
 *
 *     func (mux *ServeMux) findHandler(r *Request) (h Handler, patStr string, _ *pattern, matches []string)
 *
 * which ServeMux.ServeHTTP calls before the handler. The pattern is read
 * from the result registers (words 3 and 4), not from the Request: a
 * middleware that calls r.WithContext hands the mux a copy, and the copy
 * is what the mux writes the pattern into. Each mux of a nest records in
 * turn, the innermost last. patStr is the pattern as registered
 * ("GET /users/{id}"); user space keeps its path. "" (no match) records
 * no route.
 */
#include "route.h"

/* Field offsets, rewritten at load time; OFFSET_ABSENT if absent. */
volatile const __u64 off_g_goid = OFFSET_ABSENT; /* runtime.g.goid */

SEC("uprobe/net_http_ServeMux_findHandler_return")
int servemux_return(void *ctx)
{
	struct go_regs *regs = ctx;
	struct goroutine g;
	if (!current_goroutine(regs, off_g_goid, &g))
		return 0;
	route_set(&g, ROUTER_SERVEMUX, GO_RESULT3(regs), GO_RESULT4(regs));
	return 0;
}
