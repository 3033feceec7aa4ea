// Package server instruments net/http servers: one server span per request
// a net/http.Server handles, over HTTP/1.x or HTTP/2 (net/http's own, and
// golang.org/x/net/http2's, as served through golang.org/x/net/http2/h2c).
//
// It probes net/http.serverHandler.ServeHTTP, through which every request of
// every net/http.Server passes, with the BPF programs of server.c: the
// request is read at the function's entry, the matched route and the
// HTTP/1.x response status at each of its RET instructions. HTTP/2 streams
// end at the RET of the HTTP/2 server's runHandler, after the 200 it sends
// for a handler that wrote nothing, and take their status from the first
// final code passed to the server's (*responseWriterState).writeHeader (an
// int argument: no field offsets). golang.org/x/net/http2's server calls
// the handler itself, not through serverHandler: its spans start at its
// runHandler, from the *net/http.Request it passes (std offsets). A
// connection h2c takes over (the "PRI *" preface of prior knowledge, an
// Upgrade: h2c request) is no request and gets no span; the upgraded
// request is traced as HTTP/2 stream 1.
//
// A handler that panics never reaches a RET: its span ends where net/http
// logs the recovered panic ((*Server).logf, or the HTTP/2 servers' logf),
// with error status and an "exception" event: the stack trace net/http
// logged and the panic value's type word, read from logf's arguments
// through the Go ABI alone; user space names the type from the binary
// (symbols and DWARF) and keeps a string value as the message. A panic
// with http.ErrAbortHandler is recovered without logging: its span ends,
// with error status and no exception, at the RET of the HTTP/2 server's
// runHandler, or over HTTP/1.x at that of the connection's (*conn).serve,
// on the handler's goroutine. While the handler runs the span is the goroutine's
// active span (bpf/context.h), so that client instrumentations (net/http,
// gRPC) make the handler's outgoing calls its children.
//
// url.scheme is https when the connection went through a server TLS
// handshake (crypto/tls's handshake function, probed on the goroutine that
// serves the connection, and carried to HTTP/2 streams through their
// *serverConn), or when its net.Conn (conn.rwc; the std HTTP/2
// server's serverConn.conn) holds a *crypto/tls.Conn: its type word is the
// itab the symbol table names (tlsItabConsts), or the one learnt per
// process from a connection whose handshake was seen: so for connections
// from before the tracer attached too. Else http.
//
// Requirements on the target: Go 1.12+ (both calling conventions,
// bpf/go_abi.h). The route is the template the innermost router matched,
// which the router instrumentations (package routes) and this one's
// ServeMux probe (Go 1.22+) leave by goroutine; without one, the pattern
// in the Request the server holds (Request.pat, then Request.Pattern from
// 1.23). The HTTP/1.x status is
// read from *net/http.response: 200 for a handler that wrote nothing
// (net/http's answer), none for one that hijacked the connection, which a
// probe on (*response).Hijack tells (a function, no field offsets: also in
// a stripped binary). From Go 1.27 and x/net v0.54.0 on, x/net's
// HTTP/2 server is net/http's (net/http/internal/http2) and calls the
// user's handler without serverHandler: those requests get spans from the
// fields of net/http/internal/http2.ServerRequest (in the database for
// every Go 1.27 release).
package server

import (
	"github.com/offsetdb/offsetdb/gobinary"
	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/gomap"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
)

// The BPF objects, compiled for both targets and committed, come from
// server.c and the shared headers in bpf/; the build needs clang and
// libbpf-dev.
//go:generate go tool bpf2go -tags linux -target amd64,arm64 -type http_event -type http_exception server server.c -- -I../../../../bpf -O2 -mcpu=v3 -Wall -Werror -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu

// Symbol is the function the instrumentation probes.
const Symbol = "net/http.serverHandler.ServeHTTP"

// xnetHTTP2 is the package of golang.org/x/net's HTTP/2 server. Its probes
// have no version bound: the signatures they read (runHandler's req
// argument, writeHeader's code, the receivers) are the same in every x/net
// release from 2017 to v0.62.0. From v0.54.0 on, built with Go 1.27+, its
// server is net/http's and these functions are not in the binary.
const xnetHTTP2 = "golang.org/x/net/http2"

// panicLogf are the functions net/http's recovery paths log a handler's
// panic with, where server_panic runs: (*Server).logf (HTTP/1.x), the
// bundled HTTP/2 server's (Go <= 1.26), net/http/internal/http2's (Go
// 1.27+) and golang.org/x/net/http2's.
var panicLogf = [...]string{
	"net/http.(*Server).logf",
	"net/http.(*http2serverConn).logf",
	"net/http/internal/http2.(*serverConn).logf",
	xnetHTTP2 + ".(*serverConn).logf",
}

// serverRequestFields are the fields of the request net/http/internal/http2
// (Go 1.27+) passes to its runHandler, the same as net/http.Request's: the
// requests of x/net's HTTP/2 server on Go 1.27+, which do not go through
// serverHandler.ServeHTTP, get spans only with them.
func serverRequestFields() []uprobe.Field {
	var fs []uprobe.Field
	for _, name := range []string{"Method", "URL", "Host", "Header", "RemoteAddr", "ProtoMajor", "ProtoMinor", "ContentLength"} {
		fs = append(fs, uprobe.Field{ID: offsets.MustParseFieldID("net/http/internal/http2.ServerRequest." + name), Const: "off_ServerRequest_" + name, IfResolved: true})
	}
	return fs
}

// Instrumentation returns the declaration of the net/http server
// instrumentation, for uprobe.Attach. Each call returns a new copy.
func Instrumentation() uprobe.Instrumentation {
	return uprobe.Instrumentation{
		Name: "net/http server",
		Probes: []uprobe.Probe{
			{Symbol: Symbol, Entry: "server_entry", Return: "server_return", StackABI: true},
			// An HTTP/1.x handler taking the connection over: its span
			// gets no status, rather than the 200 of a handler that
			// wrote nothing. Not in a binary that never calls Hijack.
			{Symbol: "net/http.(*response).Hijack", Entry: "server_hijack", Optional: true, StackABI: true},
			// url.scheme: the server's TLS handshake, and HTTP/2
			// connections and streams inheriting it.
			{Symbol: "crypto/tls.(*Conn).Handshake", Entry: "tls_handshake", Versions: "<go1.17", Optional: true, StackABI: true},
			{Symbol: "crypto/tls.(*Conn).handshakeContext", Entry: "tls_handshake", Versions: ">=go1.17", Optional: true, StackABI: true},
			{Symbol: "net/http.(*http2serverConn).serve", Entry: "h2_serve", Versions: "<go1.27", Optional: true, StackABI: true},
			{Symbol: "net/http/internal/http2.(*serverConn).serve", Entry: "h2_serve", Versions: ">=go1.27", Optional: true},
			{Symbol: xnetHTTP2 + ".(*serverConn).serve", Entry: "h2_serve", Optional: true, StackABI: true},
			// HTTP/2 streams: their start (x/net; internal/http2 when
			// ServerRequest resolves), status and end.
			{Symbol: "net/http.(*http2serverConn).runHandler", Entry: "h2_run_entry", Return: "h2_run_return", Versions: "<go1.27", Optional: true, StackABI: true},
			{Symbol: "net/http/internal/http2.(*serverConn).runHandler", Entry: "h2_run_entry_internal", Return: "h2_run_return", Versions: ">=go1.27", Optional: true},
			{Symbol: xnetHTTP2 + ".(*serverConn).runHandler", Entry: "h2_run_entry_xnet", Return: "h2_run_return", Optional: true, StackABI: true},
			{Symbol: "net/http.(*http2responseWriterState).writeHeader", Entry: "h2_write_header", Versions: "<go1.27", Optional: true, StackABI: true},
			{Symbol: "net/http/internal/http2.(*responseWriterState).writeHeader", Entry: "h2_write_header", Versions: ">=go1.27", Optional: true},
			{Symbol: xnetHTTP2 + ".(*responseWriterState).writeHeader", Entry: "h2_write_header", Optional: true, StackABI: true},
			// h2c taking a connection over inside a handler: ServeConn,
			// or serveConn where ServeConn is inlined (x/net v0.54.0+).
			{Symbol: xnetHTTP2 + ".(*Server).ServeConn", Entry: "h2_serve_conn", Optional: true, StackABI: true},
			{Symbol: xnetHTTP2 + ".(*Server).serveConn", Entry: "h2_serve_conn", Optional: true, StackABI: true},
			{Symbol: "net/http/internal/http2.(*Server).ServeConn", Entry: "h2_serve_conn", Versions: ">=go1.27", Optional: true},
			{Symbol: "net/http/internal/http2.(*Server).serveConn", Entry: "h2_serve_conn", Versions: ">=go1.27", Optional: true},
			// A handler that panicked never returns: net/http recovers the
			// panic on the handler's goroutine and logs it with one of
			// these, where server_panic submits the span with its outcome.
			{Symbol: panicLogf[0], Entry: "server_panic", Optional: true, StackABI: true},
			{Symbol: panicLogf[1], Entry: "server_panic", Versions: "<go1.27", Optional: true, StackABI: true}, // bundled HTTP/2
			{Symbol: panicLogf[2], Entry: "server_panic", Versions: ">=go1.27", Optional: true},
			{Symbol: panicLogf[3], Entry: "server_panic", Optional: true, StackABI: true},
			// A handler that panicked with http.ErrAbortHandler, which
			// net/http recovers without logging: its HTTP/1.x span ends
			// when the connection's goroutine leaves (*conn).serve.
			{Symbol: "net/http.(*conn).serve", Return: "conn_serve_return", Optional: true, StackABI: true},
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
			{ID: offsets.MustParseFieldID("net/http.Request.ContentLength"), Const: "off_Request_ContentLength", IfResolved: true}, // http.request.body.size
			{ID: offsets.MustParseFieldID("net/http.Request.Pattern"), Const: "off_Request_Pattern", Optional: true},               // Go 1.23+
			{ID: offsets.MustParseFieldID("net/http.Request.pat"), Const: "off_Request_pat", Optional: true},                       // Go 1.22+
			{ID: offsets.MustParseFieldID("net/http.pattern.str"), Const: "off_pattern_str", Optional: true},                       // Go 1.22+
			{ID: offsets.MustParseFieldID("net/url.URL.Path"), Const: "off_URL_Path"},
			{ID: offsets.MustParseFieldID("net/url.URL.RawQuery"), Const: "off_URL_RawQuery"},
			{ID: offsets.MustParseFieldID("net/http.response.status"), Const: "off_response_status"},
			// url.scheme of HTTP/1.x: whether the request's connection
			// (response.conn.rwc) is a *tls.Conn that ran a server
			// handshake (without them, the handshake's goroutine alone
			// says so).
			{ID: offsets.MustParseFieldID("net/http.response.conn"), Const: "off_response_conn", IfResolved: true},
			{ID: offsets.MustParseFieldID("net/http.conn.rwc"), Const: "off_conn_rwc", IfResolved: true},
			// url.scheme of net/http's HTTP/2 streams (bundled server up to
			// Go 1.26, net/http/internal/http2 from 1.27) on connections
			// whose handshake the tracer did not see.
			{ID: offsets.MustParseFieldID("net/http.http2serverConn.conn"), Const: "off_http2serverConn_conn", IfResolved: true},
			{ID: offsets.MustParseFieldID("net/http/internal/http2.serverConn.conn"), Const: "off_internal_serverConn_conn", IfResolved: true},
		}, append(serverRequestFields(), gomap.Fields()...)...),
		BinaryConsts: tlsItabConstNames,
		BinaryValues: tlsItabConsts,
		// The route the innermost router matched (package routes).
		SharedMaps: []string{"route_templates"},
		Spec:       spec,
		PIDAt:      RecordPIDAt,
		Decode:     decode,
	}
}

// tlsItabSymbols are the names the linker gives the itab of
// *crypto/tls.Conn for net.Conn: "go:itab." from Go 1.20, "go.itab."
// before. Go 1.27 names no itab.
var tlsItabSymbols = [...]string{"go:itab.*crypto/tls.Conn,net.Conn", "go.itab.*crypto/tls.Conn,net.Conn"}

// h2RunHandler is the bundled HTTP/2 server's runHandler (Go <= 1.26),
// where h2_run_entry compares its connection's type word with the itab.
const h2RunHandler = "net/http.(*http2serverConn).runHandler"

// tlsItabConstNames are the BPF constants tlsItabConsts sets.
var tlsItabConstNames = []string{"tls_itab_known", "tls_itab_from_handler", "tls_itab_from_h2_run"}

// tlsItabConsts is the instrumentation's uprobe.Instrumentation.BinaryValues:
// where the *tls.Conn itab of bin is, as distances from the entries of
// the functions whose probes compare a connection's net.Conn type word
// with it (server.c, tls_itab_at), so that a PIE's load bias cancels out.
// Without the itab symbol (a stripped binary; Go 1.27+), tls_itab_known
// is 0 and the programs learn the itab from the first connection whose
// TLS handshake they see.
func tlsItabConsts(bin *gobinary.Binary) map[string]uint64 {
	consts := make(map[string]uint64, len(tlsItabConstNames))
	var itab uint64
	ok := false
	for _, name := range tlsItabSymbols {
		if itab, ok = bin.DataSymbol(name); ok {
			break
		}
	}
	handler, err := bin.Function(Symbol)
	if !ok || err != nil {
		return consts
	}
	consts["tls_itab_known"] = 1
	consts["tls_itab_from_handler"] = itab - handler.Entry
	if run, err := bin.Function(h2RunHandler); err == nil {
		consts["tls_itab_from_h2_run"] = itab - run.Entry
	}
	return consts
}
