//go:build linux && (amd64 || arm64)

package server_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/tracer/instrumentation/nethttp/httpconv"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// net/http's own cleartext HTTP/2 (Server.Protocols with
// SetUnencryptedHTTP2, Go 1.24+; no golang.org/x/net): every case of
// h2Cases sent with prior knowledge gets its server span, checked
// attribute by attribute as TestAttachTracesEveryServerProtocol does
// (method, path, query, user agent, url.scheme http, protocol 2, status,
// body size, error, the handler's client call as child), and the
// connection preface ("PRI *", which net/http reads before any request)
// gets none.
func TestAttachTracesNetHTTPCleartextHTTP2(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: downloads Go toolchains")
	}
	for _, target := range []h2Target{{Go: "go1.24.13"}, {Go: "go1.27.4", Stripped: true}} {
		t.Run(target.String(), func(t *testing.T) {
			bin := buildH2svc(t, target)
			t.Setenv("H2SVC_UNENCRYPTED_HTTP2", "1") // protocols.go
			addrs, wait := tracedWithin(t, bin, resolveLikeTheTracer(t, bin))
			fields := strings.Fields(addrs)
			require.Len(t, fields, 3, "h2svc prints PLAIN TLS BACKEND")
			var sent []sentRequest
			calls := 0
			for i, c := range h2Cases {
				id := strconv.Itoa(i + 1)
				r := sentRequest{tr: viaH2CPrior, c: c, path: c.path + id, query: "id=" + id, userAgent: "h2c-test/" + id}
				if c.long {
					r.path += "/" + strings.Repeat("p", 1100)
					r.query += "&pad=" + strings.Repeat("q", 1100)
					r.userAgent += " " + strings.Repeat("u", 200)
				}
				sendH2Case(t, viaH2CPrior, fields[0], r) // checks the answer came over HTTP/2
				sent = append(sent, r)
				if c.calls {
					calls++
				}
			}
			evs, _ := wait(len(sent)+2*calls, 30*time.Second)
			servers := map[string][]httpconv.HTTPEvent{}
			children := map[trace.SpanID][]httpconv.HTTPEvent{}
			for _, ev := range evs {
				assert.NotEqual(t, "PRI", ev.Method, "a span for the connection preface: %+v", ev)
				switch {
				case ev.Kind == trace.SpanKindClient:
					children[ev.ParentSpanID] = append(children[ev.ParentSpanID], ev)
				case ev.Path != "/backend":
					q, _, _ := strings.Cut(ev.Query, "&")
					servers[q] = append(servers[q], ev)
				}
			}
			correct := 0
			for _, r := range sent {
				id, _, _ := strings.Cut(r.query, "&")
				got := servers[id]
				if assert.Len(t, got, 1, "%s %s: one server span", r.c.name, id) && checkServerSpan(t, target, r, got[0], children[got[0].SpanID]) {
					correct++
				}
			}
			assert.Len(t, servers, len(sent), "a server span for no request sent")
			t.Logf("%s: %d requests sent, %d spans correct", target, len(sent), correct)
		})
	}
}
