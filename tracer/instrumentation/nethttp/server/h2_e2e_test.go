//go:build linux && (amd64 || arm64)

package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/offsetdb/offsetdb"
	"github.com/offsetdb/offsetdb/gobinary"
	"github.com/offsetdb/offsetdb/goversion"
	"github.com/offsetdb/offsetdb/offsetgen/toolchain"
	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/nethttp/client"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/nethttp/httpconv"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/nethttp/server"
	"github.com/offsetdb/offsetdb/tracer/resolve"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// h2Target is one build of testdata/h2svc: a Go release, an x/net release
// (empty: net/http only, no h2c) and whether it is stripped.
type h2Target struct {
	Go, XNet string
	Stripped bool
	PIE      bool // -buildmode=pie
}

func (t h2Target) String() string {
	s := t.Go
	if t.XNet != "" {
		s += "/x-net-" + t.XNet
	}
	if t.Stripped {
		s += "-stripped"
	}
	if t.PIE {
		s += "-pie"
	}
	return s
}

// h2Matrix spans what the instrumentation covers: the oldest Go release
// the tracer supports (stack calling convention, bundled HTTP/2), 1.22,
// 1.26 (the last bundled HTTP/2) and 1.27 (net/http/internal/http2), with
// the first x/net release of the database (v0.1.0, its own HTTP/2 server
// with every Go release) and the newest (v0.62.0: on Go 1.27 a wrapper of
// net/http's server); 1.12, 1.22 and 1.27 also stripped, read from the
// database alone (1.27 with v0.62.0: x/net's requests come through
// net/http/internal/http2.ServerRequest).
var h2Matrix = []h2Target{
	{Go: "go1.12.17"},
	{Go: "go1.12.17", Stripped: true},
	{Go: "go1.17.13", XNet: "v0.1.0"},
	{Go: "go1.22.12", XNet: "v0.1.0"},
	{Go: "go1.22.12", XNet: "v0.1.0", Stripped: true},
	{Go: "go1.26.11", XNet: "v0.62.0"},
	{Go: "go1.27.4", XNet: "v0.1.0", Stripped: true},
	{Go: "go1.27.4", XNet: "v0.62.0"},
	{Go: "go1.27.4", XNet: "v0.62.0", Stripped: true},
}

// buildH2svc builds testdata/h2svc for t into a temporary directory, with
// the toolchain and modules from the module proxy (cached in
// <user cache dir>/offsetdb-test like the other end-to-end tests).
func buildH2svc(tb testing.TB, t h2Target) string {
	tb.Helper()
	base, err := os.UserCacheDir()
	require.NoError(tb, err)
	base = filepath.Join(base, "offsetdb-test")
	v := goversion.MustParse(t.Go)
	cache := &toolchain.Cache{Dir: filepath.Join(base, "toolchains"),
		Proxy: &toolchain.Proxy{URL: toolchain.ProxyURLFromEnv(), ConfigDir: filepath.Join(base, "sumdb")}}
	goroot, _, err := cache.Toolchain(context.Background(), v)
	if errors.Is(err, toolchain.ErrUnreachable) {
		tb.Skipf("SKIPPED: module proxy unreachable, cannot fetch %s: %v", v, err)
	}
	require.NoError(tb, err)

	src := tb.TempDir()
	files := []string{"main.go", "protocols.go"} // protocols.go: Go 1.24+ only
	gomod := "module example.com/h2svc\n\ngo 1.12\n"
	if t.XNet != "" {
		files = append(files, "h2c.go")
		gomod = "module example.com/h2svc\n\ngo 1.17\n\nrequire golang.org/x/net " + t.XNet + "\n"
	}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join("testdata", "h2svc", f))
		require.NoError(tb, err)
		require.NoError(tb, os.WriteFile(filepath.Join(src, f), data, 0o644))
	}
	require.NoError(tb, os.WriteFile(filepath.Join(src, "go.mod"), []byte(gomod), 0o644))
	bin := filepath.Join(tb.TempDir(), "h2svc")
	ldflags := ""
	if t.Stripped {
		ldflags = "-s -w"
	}
	args := []string{"build", "-ldflags=" + ldflags, "-o", bin}
	if t.PIE {
		args = append(args, "-buildmode=pie")
	}
	cmd := exec.Command(filepath.Join(goroot, "bin", "go"), append(args, ".")...)
	cmd.Dir = src
	cmd.Env = []string{"PATH=" + filepath.Join(goroot, "bin") + ":/usr/bin:/bin", "HOME=" + src, "GOROOT=" + goroot,
		"GOPATH=" + filepath.Join(src, "gopath"), "GOMODCACHE=" + filepath.Join(base, "gomodcache"),
		"GOCACHE=" + filepath.Join(base, "gocache-"+v.String()), "GOTOOLCHAIN=local", "GO111MODULE=on",
		"CGO_ENABLED=0", "GOENV=off", "GOPROXY=" + proxyFromEnv()}
	if t.XNet != "" {
		cmd.Env = append(cmd.Env, "GOFLAGS=-mod=mod")
	} else {
		cmd.Env = append(cmd.Env, "GOFLAGS=", "GOPROXY=off")
	}
	for _, k := range []string{"GOSUMDB", "GONOSUMDB", "GOPRIVATE", "GONOPROXY", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR"} {
		if val, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+val)
		}
	}
	out, err := cmd.CombinedOutput()
	require.NoError(tb, err, "build h2svc %s: %s", t, out)
	return bin
}

func proxyFromEnv() string {
	if p := os.Getenv("GOPROXY"); p != "" {
		return p
	}
	return "https://proxy.golang.org"
}

// resolveLikeTheTracer resolves the fields of the server and client
// instrumentations for bin as the tracer does: the embedded database
// first, then the binary's DWARF (none when stripped). Unresolved fields
// are left out: the instrumentations declare them IfResolved or Optional.
func resolveLikeTheTracer(t *testing.T, path string) map[offsets.FieldID]offsets.Value {
	t.Helper()
	db, err := offsets.Open(offsetdb.Data())
	require.NoError(t, err)
	bin, err := gobinary.Open(path)
	require.NoError(t, err)
	defer bin.Close()
	r := &resolve.Resolver{DBs: []*offsets.DB{db}}
	values := make(map[offsets.FieldID]offsets.Value)
	for id, f := range r.Resolve(bin, uprobe.Fields(server.Instrumentation(), client.Instrumentation())) {
		if f.Status == resolve.Resolved {
			values[id] = f.Value
		}
	}
	return values
}

// h2Transport is how a test client reaches h2svc.
type h2Transport string

const (
	viaHTTP1      h2Transport = "HTTP/1.1"
	viaHTTP1TLS   h2Transport = "HTTP/1.1 over TLS"
	viaHTTP2TLS   h2Transport = "HTTP/2 over TLS"
	viaXNetTLS    h2Transport = "x/net HTTP/2 over TLS"
	viaH2CPrior   h2Transport = "h2c prior knowledge"
	viaH2CUpgrade h2Transport = "h2c Upgrade"
)

func (tr h2Transport) scheme() string {
	if tr == viaHTTP1TLS || tr == viaHTTP2TLS || tr == viaXNetTLS {
		return "https"
	}
	return "http"
}

func (tr h2Transport) protoMajor() int {
	if tr == viaHTTP1 || tr == viaHTTP1TLS {
		return 1
	}
	return 2
}

// h2Case is a kind of request and what its server span must say.
type h2Case struct {
	name   string
	method string
	path   string // the id is appended to it
	status int    // http.response.status_code of the span; 0: none
	panics bool
	// The handler panics with http.ErrAbortHandler, which net/http
	// recovers without logging: the span ends as a panic, without an
	// exception event. Not sent to x/net's HTTP/2 server, where such a
	// span ends as if the handler had returned (docs/tracer.md).
	aborts bool
	// The handler takes an HTTP/1.x connection over (http.Hijacker) and
	// answers status itself: the span has no status and is marked
	// hijacked. An HTTP/2 stream answers status as usual.
	hijacks bool
	calls   bool  // the handler calls BACKEND: one client span, child of the server span
	body    int64 // request body size sent (Content-Length)
	gaveUp  bool  // the client gives up before the answer
	long    bool  // path and query longer than 1 KiB
}

var h2Cases = []h2Case{
	{name: "ok", method: "GET", path: "/ok/", status: 200},
	{name: "empty handler", method: "GET", path: "/empty/", status: 200},
	{name: "headers only", method: "GET", path: "/headers/", status: 202},
	{name: "double WriteHeader", method: "GET", path: "/double/", status: 201},
	{name: "5xx", method: "GET", path: "/fail/", status: 503},
	{name: "client call", method: "GET", path: "/call/", status: 200, calls: true},
	{name: "panic", method: "GET", path: "/panic/", panics: true, calls: true},
	{name: "abort (http.ErrAbortHandler)", method: "GET", path: "/abort/", panics: true, aborts: true, calls: true},
	// The status the handler wrote never left (the stream is reset, the
	// HTTP/1.x connection closed): the span has none.
	{name: "write then panic", method: "GET", path: "/writepanic/", panics: true},
	{name: "long path", method: "GET", path: "/long/", status: 200, long: true},
	{name: "10 MB streamed body", method: "POST", path: "/upload/", status: 200, body: 10 << 20},
	{name: "client gives up", method: "GET", path: "/slow/", status: 504, gaveUp: true},
	{name: "hijack", method: "GET", path: "/hijack/", status: 204, hijacks: true},
	{name: "hijack on another goroutine", method: "GET", path: "/hijack-elsewhere/", status: 204, hijacks: true},
}

// sentRequest is one request sent, with what its span must say.
type sentRequest struct {
	tr                     h2Transport
	c                      h2Case
	path, query, userAgent string
}

// TestAttachTracesEveryServerProtocol sends every case of h2Cases over
// every transport h2svc serves (HTTP/1.1 plain and over TLS, HTTP/2 over
// TLS by net/http's server and by x/net's, h2c with prior knowledge and
// after Upgrade: h2c) to each build of
// h2Matrix, and checks each request's server span attribute by attribute
// (method, path, query, user agent, scheme, protocol, status, body size,
// error, parent of the handler's client call). It logs the table of requests sent, spans
// correct and spans wrong per case.
func TestAttachTracesEveryServerProtocol(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: downloads Go toolchains and modules")
	}
	type tally struct{ sent, correct, wrong int }
	table := map[string]*tally{}
	for _, target := range h2Matrix {
		t.Run(target.String(), func(t *testing.T) {
			bin := buildH2svc(t, target)
			values := resolveLikeTheTracer(t, bin)
			addrs, wait := tracedWithin(t, bin, values)
			fields := strings.Fields(addrs)
			transports := []h2Transport{viaHTTP1, viaHTTP1TLS, viaHTTP2TLS}
			if target.XNet != "" {
				require.Len(t, fields, 4, "h2svc with x/net prints PLAIN TLS BACKEND XTLS")
				transports = append(transports, viaH2CPrior, viaH2CUpgrade, viaXNetTLS)
			} else {
				require.Len(t, fields, 3, "h2svc prints PLAIN TLS BACKEND")
			}
			plain, tlsAddr := fields[0], fields[1]
			var sent []sentRequest
			id := 0
			for _, tr := range transports {
				for _, c := range h2Cases {
					if tr == viaH2CUpgrade && (c.body > 0 || c.gaveUp || c.panics) {
						continue // one GET per upgraded connection, answered
					}
					if c.aborts && (tr == viaXNetTLS || tr == viaH2CPrior) {
						continue // x/net's server: see h2Case.aborts
					}
					id++
					r := sentRequest{tr: tr, c: c, path: c.path + strconv.Itoa(id), query: "id=" + strconv.Itoa(id), userAgent: "h2svc-test/" + strconv.Itoa(id)}
					if c.long {
						r.path += "/" + strings.Repeat("p", 1100)
						r.query += "&pad=" + strings.Repeat("q", 1100)
						r.userAgent += " " + strings.Repeat("u", 200)
					}
					addr := plain
					switch tr {
					case viaHTTP1TLS, viaHTTP2TLS:
						addr = tlsAddr
					case viaXNetTLS:
						addr = fields[3]
					}
					sendH2Case(t, tr, addr, r)
					sent = append(sent, r)
				}
			}
			calls := 0
			for _, r := range sent {
				if r.c.calls {
					calls++
				}
			}
			// Per request its server span; per call, a client span and
			// the backend's server span.
			evs, _ := wait(len(sent)+2*calls, 30*time.Second)
			servers := map[string][]httpconv.HTTPEvent{}
			children := map[trace.SpanID][]httpconv.HTTPEvent{}
			for _, ev := range evs {
				switch {
				case ev.Kind == trace.SpanKindClient:
					children[ev.ParentSpanID] = append(children[ev.ParentSpanID], ev)
				case ev.Path != "/backend":
					q, _, _ := strings.Cut(ev.Query, "&")
					servers[q] = append(servers[q], ev)
				}
			}
			for _, r := range sent {
				row := fmt.Sprintf("%s | %s", r.tr, r.c.name)
				if table[row] == nil {
					table[row] = &tally{}
				}
				table[row].sent++
				id, _, _ := strings.Cut(r.query, "&")
				got := servers[id]
				ok := assert.Len(t, got, 1, "%s %s %s: one server span", r.tr, r.c.name, id)
				if ok {
					ok = checkServerSpan(t, target, r, got[0], children[got[0].SpanID])
				}
				if ok {
					table[row].correct++
				} else {
					table[row].wrong++
				}
			}
			assert.Len(t, servers, len(sent), "no server span for a request not sent (the h2c preface, the upgrade's HTTP/1.1 request)")
		})
	}
	keys := make([]string, 0, len(table))
	for k := range table {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-50s %5s %8s %6s\n", "transport | case", "sent", "correct", "wrong")
	for _, k := range keys {
		fmt.Fprintf(&b, "%-50s %5d %8d %6d\n", k, table[k].sent, table[k].correct, table[k].wrong)
	}
	t.Log(b.String())
}

// checkServerSpan checks ev, the server span of r, and the client spans
// made under it; it reports whether all is right.
func checkServerSpan(t *testing.T, target h2Target, r sentRequest, ev httpconv.HTTPEvent, children []httpconv.HTTPEvent) bool {
	t.Helper()
	what := fmt.Sprintf("%s %s (%s)", r.tr, r.c.name, r.query)
	ok := true
	check := func(b bool) { ok = ok && b }
	path, query, ua := r.path, r.query, r.userAgent
	if r.c.long {
		path, query, ua = path[:1024], query[:1024], ua[:128]
	}
	check(assert.Equal(t, r.c.method, ev.Method, what))
	check(assert.Equal(t, path, ev.Path, what))
	check(assert.Equal(t, query, ev.Query, what))
	check(assert.Equal(t, ua, ev.UserAgent, "%s: user agent", what))
	check(assert.Equal(t, r.c.long, ev.PathCut && ev.QueryCut && ev.UserAgentCut, "%s: cut", what))
	check(assert.Equal(t, r.tr.scheme(), ev.Scheme, "%s: scheme", what))
	check(assert.Equal(t, r.tr.protoMajor(), ev.ProtoMajor, "%s: protocol", what))
	status := r.c.status
	hijacked := r.c.hijacks && r.tr.protoMajor() == 1
	if hijacked {
		status = 0 // the handler answered on its own
	}
	check(assert.Equal(t, status, ev.StatusCode, "%s: status", what))
	check(assert.Equal(t, r.c.panics, ev.Panicked, "%s: panicked", what))
	logged := r.c.panics && !r.c.aborts
	if logged {
		check(assert.NotNil(t, ev.Exception, "%s: exception", what))
	}
	if logged && ev.Exception != nil {
		// The type is named from the symbol table and DWARF; without
		// them the value cannot be told a string.
		typ, message := "string", "h2svc: handler panics"
		if target.Stripped {
			typ, message = "", ""
		}
		check(assert.Equal(t, typ, ev.Exception.Type, "%s: exception.type", what))
		check(assert.Equal(t, message, ev.Exception.Message, "%s: exception.message", what))
		check(assert.True(t, strings.HasPrefix(ev.Exception.Stacktrace, "goroutine "), "%s: exception.stacktrace %q", what, ev.Exception.Stacktrace))
	}
	if !logged {
		check(assert.Nil(t, ev.Exception, "%s: exception", what))
	}
	check(assert.Equal(t, hijacked, ev.Hijacked, "%s: hijacked", what))
	check(assert.False(t, ev.ParentSpanID.IsValid(), "%s: a root span", what))
	if r.c.body > 0 {
		check(assert.Equal(t, r.c.body, ev.BodySize, "%s: body size", what))
	}
	span, err := ev.Span()
	check(assert.NoError(t, err))
	wantError := r.c.panics || status >= 500
	check(assert.Equal(t, wantError, span.Status == codes.Error, "%s: error status", what))
	if r.c.calls {
		if check(assert.Len(t, children, 1, "%s: the handler's client call is a child", what)); len(children) == 1 {
			check(assert.Equal(t, ev.TraceID, children[0].TraceID, what))
			check(assert.Equal(t, "/backend", children[0].Path, what))
		}
	} else {
		check(assert.Empty(t, children, what))
	}
	return ok
}

// sendH2Case sends r over tr to addr and checks what the client got.
func sendH2Case(t *testing.T, tr h2Transport, addr string, r sentRequest) {
	t.Helper()
	url := tr.scheme() + "://" + addr + r.path + "?" + r.query
	if tr == viaH2CUpgrade {
		status, err := upgradeH2C(addr, r.path+"?"+r.query, r.userAgent)
		require.NoError(t, err, "%s %s", tr, url)
		assert.Equal(t, r.c.status, status, "%s %s", tr, url)
		return
	}
	var rt *http.Transport
	insecure := &tls.Config{InsecureSkipVerify: true}
	switch tr {
	case viaHTTP1:
		rt = &http.Transport{DisableKeepAlives: true}
	case viaHTTP1TLS:
		rt = &http.Transport{DisableKeepAlives: true, TLSClientConfig: insecure, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
	case viaHTTP2TLS, viaXNetTLS:
		rt = &http.Transport{TLSClientConfig: insecure, ForceAttemptHTTP2: true}
	case viaH2CPrior:
		var p http.Protocols
		p.SetUnencryptedHTTP2(true) // and nothing else: HTTP/2 with prior knowledge
		rt = &http.Transport{Protocols: &p}
	}
	c := &http.Client{Transport: rt}
	if r.c.gaveUp {
		c.Timeout = 300 * time.Millisecond
	}
	var body io.Reader
	if r.c.body > 0 {
		pr, pw := io.Pipe()
		go func() {
			chunk := bytes.Repeat([]byte("b"), 64<<10)
			for n := int64(0); n < r.c.body; n += int64(len(chunk)) {
				if _, err := pw.Write(chunk); err != nil {
					return
				}
			}
			pw.Close()
		}()
		body = pr
	}
	req, err := http.NewRequest(r.c.method, url, body)
	require.NoError(t, err)
	req.ContentLength = r.c.body
	req.Header.Set("User-Agent", r.userAgent)
	resp, err := c.Do(req)
	if r.c.gaveUp || r.c.panics {
		assert.Error(t, err, "%s %s: no answer", tr, url)
		if err == nil {
			resp.Body.Close()
		}
		if r.c.gaveUp {
			time.Sleep(100 * time.Millisecond) // the handler notices
		}
		return
	}
	require.NoError(t, err, "%s %s", tr, url)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	assert.Equal(t, r.c.status, resp.StatusCode, "%s %s", tr, url)
	assert.Equal(t, tr.protoMajor(), resp.ProtoMajor, "%s %s", tr, url)
	rt.CloseIdleConnections()
}

// upgradeH2C sends GET target to addr as an HTTP/1.1 request with
// Upgrade: h2c (RFC 7540 section 3.2) and the given User-Agent, and
// returns the status of the answer, which comes as HTTP/2 stream 1.
func upgradeH2C(addr, target, userAgent string) (int, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	// SETTINGS_MAX_CONCURRENT_STREAMS = 100, base64url.
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\n\r\n", target, addr, userAgent)
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil {
		return 0, err
	}
	if !strings.HasPrefix(line, "HTTP/1.1 101 ") {
		return 0, fmt.Errorf("upgrade answered %q", line)
	}
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return 0, err
		}
		if l == "\r\n" {
			break
		}
	}
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		return 0, err
	}
	fr := http2.NewFramer(conn, br)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		return 0, err
	}
	status := 0
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return status, err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 {
				status, _ = strconv.Atoi(f.PseudoValue("status"))
				if f.StreamEnded() {
					return status, nil
				}
			}
		case *http2.DataFrame:
			if f.StreamID == 1 && f.StreamEnded() {
				return status, nil
			}
		case *http2.RSTStreamFrame:
			return status, fmt.Errorf("stream reset: %v", f.ErrCode)
		case *http2.GoAwayFrame:
			return status, fmt.Errorf("goaway: %v", f.ErrCode)
		}
	}
}

// A handler that makes a TLS handshake of its own on its goroutine (as a
// database driver's client does) does not make the later requests of its
// HTTP/1.1 connection https: the connection itself must have run the
// server handshake.
func TestAttachSchemeIgnoresAHandlersOwnTLSHandshake(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: downloads Go toolchains")
	}
	for _, target := range []h2Target{{Go: "go1.22.12"}, {Go: "go1.27.4", Stripped: true}} {
		t.Run(target.String(), func(t *testing.T) {
			bin := buildH2svc(t, target)
			addrs, wait := traced(t, bin, resolveLikeTheTracer(t, bin))
			fields := strings.Fields(addrs)
			require.GreaterOrEqual(t, len(fields), 3)
			c := &http.Client{Transport: &http.Transport{}} // keep-alive: one connection, one goroutine
			defer c.CloseIdleConnections()
			paths := []string{"/tlsdial/1", "/ok/2", "/ok/3"}
			for _, p := range paths {
				resp, err := c.Get("http://" + fields[0] + p)
				require.NoError(t, err)
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				require.Equal(t, http.StatusOK, resp.StatusCode, p)
			}
			evs := wait(len(paths))
			var remotes []string
			for _, p := range paths {
				got := byPath(evs, trace.SpanKindServer, p)
				if assert.Len(t, got, 1, p) {
					assert.Equal(t, "http", got[0].Scheme, p)
					remotes = append(remotes, got[0].RemoteAddr)
				}
			}
			if len(remotes) == len(paths) {
				assert.Equal(t, remotes[0], remotes[2], "the requests shared one connection")
			}
		})
	}
}
