// Package httpserver instruments net/http servers: one spans.HTTPEvent per
// request a net/http.Server handles, over HTTP/1.x or HTTP/2.
//
// It probes net/http.serverHandler.ServeHTTP, through which every request of
// every net/http.Server passes, with the BPF programs of bpf/httpserver.c:
// the request is read at the function's entry, the matched route and the
// response status at each of its RET instructions. The span is stored by
// goroutine in the shared map server_spans while the handler runs, so that
// package httpclient can make the handler's outgoing requests its children.
//
// Requirements on the target: Go 1.17+ on amd64 or 1.18+ on arm64 (the
// register calling convention). The route is recorded from Go 1.22 on
// (Request.pat, then Request.Pattern from 1.23); the status only for
// HTTP/1.x, where the ResponseWriter is a *net/http.response.
package httpserver

import (
	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
)

// The BPF objects, compiled for both targets and committed, come from
// bpf/httpserver.c; the build needs clang and libbpf-dev.
//go:generate go tool bpf2go -tags linux -target amd64,arm64 -type http_event server ../../bpf/httpserver.c -- -O2 -mcpu=v3 -Wall -Werror -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu

// Kind is the first byte of this instrumentation's ring buffer records.
const Kind uint8 = 1

// Symbol is the function the instrumentation probes.
const Symbol = "net/http.serverHandler.ServeHTTP"

// ServerSpansMap is the map, shared with package httpclient, that holds the
// server requests in progress by goroutine.
const ServerSpansMap = "server_spans"

// Instrumentation returns the declaration of the net/http server
// instrumentation, for uprobe.Attach. Each call returns a new copy.
func Instrumentation() uprobe.Instrumentation {
	return uprobe.Instrumentation{
		Name:   "net/http server",
		Module: "std",
		Kind:   Kind,
		Probes: []uprobe.Probe{
			{Symbol: Symbol, Entry: "server_entry", Return: "server_return"},
		},
		Fields: []uprobe.Field{
			{ID: offsets.MustParseFieldID("runtime.g.goid"), Const: "off_g_goid"},
			{ID: offsets.MustParseFieldID("net/http.Request.Method"), Const: "off_Request_Method"},
			{ID: offsets.MustParseFieldID("net/http.Request.URL"), Const: "off_Request_URL"},
			{ID: offsets.MustParseFieldID("net/http.Request.Host"), Const: "off_Request_Host"},
			{ID: offsets.MustParseFieldID("net/http.Request.RemoteAddr"), Const: "off_Request_RemoteAddr"},
			{ID: offsets.MustParseFieldID("net/http.Request.ProtoMajor"), Const: "off_Request_ProtoMajor"},
			{ID: offsets.MustParseFieldID("net/http.Request.ProtoMinor"), Const: "off_Request_ProtoMinor"},
			{ID: offsets.MustParseFieldID("net/http.Request.Pattern"), Const: "off_Request_Pattern", Optional: true}, // Go 1.23+
			{ID: offsets.MustParseFieldID("net/http.Request.pat"), Const: "off_Request_pat", Optional: true},         // Go 1.22+
			{ID: offsets.MustParseFieldID("net/http.pattern.str"), Const: "off_pattern_str", Optional: true},         // Go 1.22+
			{ID: offsets.MustParseFieldID("net/url.URL.Path"), Const: "off_URL_Path"},
			{ID: offsets.MustParseFieldID("net/url.URL.RawQuery"), Const: "off_URL_RawQuery"},
			{ID: offsets.MustParseFieldID("net/http.response.status"), Const: "off_response_status"},
		},
		SharedMaps: []string{ServerSpansMap},
		Spec:       spec,
		Decode:     decode,
	}
}
