//go:build linux && (amd64 || arm64)

package server_test

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/goversion"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// keepAlive is a client of one keep-alive connection to h2svc: HTTP/1.1
// (plain or over TLS) or HTTP/2 over TLS.
type keepAlive struct {
	c      *http.Client
	scheme string
	addr   string
}

func newKeepAlive(tr h2Transport, addr string) *keepAlive {
	insecure := &tls.Config{InsecureSkipVerify: true}
	rt := &http.Transport{MaxConnsPerHost: 1}
	switch tr {
	case viaHTTP1TLS:
		rt.TLSClientConfig = insecure
		rt.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	case viaHTTP2TLS, viaXNetTLS:
		rt.TLSClientConfig = insecure
		rt.ForceAttemptHTTP2 = true
	}
	return &keepAlive{c: &http.Client{Transport: rt}, scheme: tr.scheme(), addr: addr}
}

// get sends GET path and reports whether it went over a connection used
// before.
func (k *keepAlive) get(t *testing.T, path string) (reused bool) {
	t.Helper()
	req, err := http.NewRequest("GET", k.scheme+"://"+k.addr+path, nil)
	require.NoError(t, err)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused },
	}))
	resp, err := k.c.Do(req)
	require.NoError(t, err, path)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, path)
	return reused
}

// url.scheme is https for the requests of TLS connections whose handshake
// ran before the tracer attached (a service traced with --pid), over
// HTTP/1.1 and the std HTTP/2 server, and stays http for a
// cleartext connection: through the *tls.Conn itab the binary names, or,
// stripped (and on Go 1.27+, whose binaries name no itab), the one learnt
// from the first TLS connection whose handshake the tracer saw. Before
// that, a stripped binary's old TLS connections say http.
func TestAttachSchemeOfTLSConnectionsFromBeforeAttach(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: downloads Go toolchains")
	}
	for _, target := range []h2Target{
		{Go: "go1.12.17"},                  // go.itab.* symbol, stack calling convention
		{Go: "go1.17.13"},                  // go.itab.* symbol
		{Go: "go1.26.11", XNet: "v0.62.0"}, // go:itab.* symbol
		{Go: "go1.26.11", PIE: true},
		{Go: "go1.26.11", Stripped: true},
		{Go: "go1.27.4"}, // no itab symbol
		{Go: "go1.27.4", Stripped: true},
	} {
		t.Run(target.String(), func(t *testing.T) {
			bin := buildH2svc(t, target)
			addrs, attach := untraced(t, bin)
			fields := strings.Fields(addrs)
			require.GreaterOrEqual(t, len(fields), 3)
			plain, tlsAddr := fields[0], fields[1]
			// Two HTTP/1.1 connections over TLS: crypto/tls marks a
			// connection the tracer saw at its next Read (which calls
			// handshakeContext), so only a connection's first request
			// after attach tells whether its scheme comes from the itab
			// (b's, after a's taught it).
			h1 := newKeepAlive(viaHTTP1, plain)
			a := newKeepAlive(viaHTTP1TLS, tlsAddr)
			b := newKeepAlive(viaHTTP1TLS, tlsAddr)
			h2tls := newKeepAlive(viaHTTP2TLS, tlsAddr)
			conns := []*keepAlive{h1, a, b, h2tls}
			// x/net's HTTP/2 server over TLS: its serverConn.conn is not
			// in the database, its streams from before attach stay http.
			var xtls *keepAlive
			if target.XNet != "" {
				require.Len(t, fields, 4)
				xtls = newKeepAlive(viaXNetTLS, fields[3])
				conns = append(conns, xtls)
			}
			for _, k := range conns {
				defer k.c.CloseIdleConnections()
				k.get(t, "/ok/before") // the connection is made untraced
			}
			wait := attach(resolveLikeTheTracer(t, bin))

			// The itab is known from the symbol table, else learnt from
			// a connection whose handshake the tracer sees.
			learns := target.Stripped || !goversion.MustParse(target.Go).Less(goversion.MustParse("go1.27"))
			type want struct{ path, scheme string }
			var wants []want
			if learns {
				require.True(t, a.get(t, "/ok/unlearnt"))
				wants = append(wants, want{"/ok/unlearnt", "http"}) // the documented limit
				fresh := newKeepAlive(viaHTTP1TLS, tlsAddr)
				require.False(t, fresh.get(t, "/ok/fresh"))
				fresh.c.CloseIdleConnections()
				wants = append(wants, want{"/ok/fresh", "https"})
			}
			// The std HTTP/2 server's connection: net/http.http2serverConn.conn
			// up to Go 1.26, net/http/internal/http2.serverConn.conn from 1.27.
			h2scheme := "https"
			for _, p := range []string{"/ok/after1", "/ok/after2"} {
				for _, c := range []struct {
					k      *keepAlive
					name   string
					scheme string
				}{{b, "-b", "https"}, {a, "-a", "https"}, {h2tls, "-h2tls", h2scheme}, {h1, "-h1", "http"}, {xtls, "-xtls", "http"}} {
					if c.k == nil {
						continue
					}
					require.True(t, c.k.get(t, p+c.name), "%s%s: the connection from before attach", p, c.name)
					wants = append(wants, want{p + c.name, c.scheme})
				}
			}
			evs, ok := wait(len(wants), 30*time.Second)
			assert.True(t, ok, "got %d of %d spans", len(evs), len(wants))
			for _, w := range wants {
				got := byPath(evs, trace.SpanKindServer, w.path)
				if assert.Len(t, got, 1, w.path) {
					ev := got[0]
					assert.Equal(t, w.scheme, ev.Scheme, "%s: url.scheme", w.path)
					assert.Equal(t, "GET", ev.Method, w.path)
					assert.Equal(t, http.StatusOK, ev.StatusCode, w.path)
					wantMajor := 1
					if strings.HasSuffix(w.path, "-h2tls") || strings.HasSuffix(w.path, "-xtls") {
						wantMajor = 2
					}
					assert.Equal(t, wantMajor, ev.ProtoMajor, "%s: protocol", w.path)
				}
			}
		})
	}
}
