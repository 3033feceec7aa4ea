// Package server instruments net/http servers: one server span per request
// a net/http.Server handles, over HTTP/1.x or HTTP/2.
//
// It probes net/http.serverHandler.ServeHTTP, through which every request of
// every net/http.Server passes, with the BPF programs of server.c: the
// request is read at the function's entry, the matched route and the
// response status at each of its RET instructions. A handler that panics
// never reaches a RET: its span ends where net/http logs the recovered
// panic ((*Server).logf, or the HTTP/2 server's logf), with error status. While the handler runs
// the span is the goroutine's active span (bpf/context.h), so that client
// instrumentations (net/http, gRPC) make the handler's outgoing calls its
// children.
//
// Requirements on the target: Go 1.12+ (both calling conventions,
// bpf/go_abi.h). The route is the template the innermost router matched,
// which the router instrumentations (package routes) and this one's
// ServeMux probe (Go 1.22+) leave by goroutine; without one, the pattern
// in the Request the server holds (Request.pat, then Request.Pattern from
// 1.23). The status only for
// HTTP/1.x, where the ResponseWriter is a *net/http.response: 200 for a
// handler that wrote nothing (net/http's answer), none for one that
// hijacked the connection — both known only when net/http.conn.hijackedv
// resolves, from the target's DWARF until it is in the database.
package server

import (
	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/gomap"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
)

// The BPF objects, compiled for both targets and committed, come from
// server.c and the shared headers in bpf/; the build needs clang and
// libbpf-dev.
//go:generate go tool bpf2go -tags linux -target amd64,arm64 -type http_event server server.c -- -I../../../../bpf -O2 -mcpu=v3 -Wall -Werror -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu

// Symbol is the function the instrumentation probes.
const Symbol = "net/http.serverHandler.ServeHTTP"

// Instrumentation returns the declaration of the net/http server
// instrumentation, for uprobe.Attach. Each call returns a new copy.
func Instrumentation() uprobe.Instrumentation {
	return uprobe.Instrumentation{
		Name: "net/http server",
		Probes: []uprobe.Probe{
			{Symbol: Symbol, Entry: "server_entry", Return: "server_return", StackABI: true},
			// A handler that panicked never returns: net/http recovers the
			// panic on the handler's goroutine and logs it with one of
			// these, where server_panic submits the span with its outcome.
			{Symbol: "net/http.(*Server).logf", Entry: "server_panic", Optional: true, StackABI: true},
			{Symbol: "net/http.(*http2serverConn).logf", Entry: "server_panic", Versions: "<go1.27", Optional: true, StackABI: true}, // bundled HTTP/2
			{Symbol: "net/http/internal/http2.(*serverConn).logf", Entry: "server_panic", Versions: ">=go1.27", Optional: true},
			// The pattern each ServeMux matched, from findHandler's
			// results: also the one a mux behind r.WithContext
			// middleware or another mux matched (bpf/route.h).
			{Symbol: "net/http.(*ServeMux).findHandler", Return: "servemux_return", Versions: ">=go1.22", Optional: true},
		},
		Fields: append([]uprobe.Field{
			{ID: offsets.MustParseFieldID("runtime.g.goid"), Const: "off_g_goid"},
			{ID: offsets.MustParseFieldID("net/http.Request.Method"), Const: "off_Request_Method"},
			{ID: offsets.MustParseFieldID("net/http.Request.URL"), Const: "off_Request_URL"},
			{ID: offsets.MustParseFieldID("net/http.Request.Host"), Const: "off_Request_Host"},
			{ID: offsets.MustParseFieldID("net/http.Request.Header"), Const: "off_Request_Header", IfResolved: true}, // incoming trace context
			{ID: offsets.MustParseFieldID("net/http.Request.RemoteAddr"), Const: "off_Request_RemoteAddr"},
			{ID: offsets.MustParseFieldID("net/http.Request.ProtoMajor"), Const: "off_Request_ProtoMajor"},
			{ID: offsets.MustParseFieldID("net/http.Request.ProtoMinor"), Const: "off_Request_ProtoMinor"},
			{ID: offsets.MustParseFieldID("net/http.Request.Pattern"), Const: "off_Request_Pattern", Optional: true}, // Go 1.23+
			{ID: offsets.MustParseFieldID("net/http.Request.pat"), Const: "off_Request_pat", Optional: true},         // Go 1.22+
			{ID: offsets.MustParseFieldID("net/http.pattern.str"), Const: "off_pattern_str", Optional: true},         // Go 1.22+
			{ID: offsets.MustParseFieldID("net/url.URL.Path"), Const: "off_URL_Path"},
			{ID: offsets.MustParseFieldID("net/url.URL.RawQuery"), Const: "off_URL_RawQuery"},
			{ID: offsets.MustParseFieldID("net/http.response.status"), Const: "off_response_status"},
			// Whether a handler that wrote nothing got net/http's 200 or
			// hijacked the connection; without them (conn.hijackedv is in
			// fieldset/std.pending: DWARF only) such a request has no status.
			{ID: offsets.MustParseFieldID("net/http.response.conn"), Const: "off_response_conn", IfResolved: true},
			{ID: offsets.MustParseFieldID("net/http.conn.hijackedv"), Const: "off_conn_hijackedv", IfResolved: true},
		}, gomap.Fields()...),
		// The route the innermost router matched (package routes).
		SharedMaps: []string{"route_templates"},
		Spec:       spec,
		Decode:     decode,
	}
}
