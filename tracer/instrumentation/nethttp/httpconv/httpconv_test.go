package httpconv

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/tracer/spans"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

func TestDescribeFollowsHTTPSemanticConventions(t *testing.T) {
	tests := []struct {
		name        string
		ev          HTTPEvent
		wantName    string
		wantAttrs   map[string]any
		wantStatus  codes.Code
		wantDescrip string
	}{
		{
			name: "server with method pattern names span by route path",
			ev: HTTPEvent{Kind: trace.SpanKindServer, Method: "GET", Host: "shop.example:8080", Path: "/items/42",
				Query: "color=red", Route: "GET /items/{id}", RemoteAddr: "10.0.0.7:51234", ProtoMajor: 1, ProtoMinor: 1, StatusCode: 200},
			wantName: "GET /items/{id}",
			wantAttrs: map[string]any{
				"http.request.method": "GET", "http.route": "/items/{id}", "url.path": "/items/42", "url.query": "color=red",
				"url.scheme": "http", "server.address": "shop.example", "server.port": int64(8080),
				"client.address": "10.0.0.7", "client.port": int64(51234), "network.protocol.version": "1.1",
				"http.response.status_code": int64(200),
			},
		},
		{
			name: "server pattern without method, HEAD matched by GET pattern, IPv6 peer, HTTP/2",
			ev: HTTPEvent{Kind: trace.SpanKindServer, Method: "HEAD", Host: "[::1]:9000", Path: "/static/app.js",
				Route: "/static/", RemoteAddr: "[::1]:40000", ProtoMajor: 2, StatusCode: 404},
			wantName: "HEAD /static/",
			wantAttrs: map[string]any{
				"http.request.method": "HEAD", "http.route": "/static/", "url.path": "/static/app.js", "url.scheme": "http",
				"server.address": "::1", "server.port": int64(9000), "client.address": "::1", "client.port": int64(40000),
				"network.protocol.version": "2", "http.response.status_code": int64(404),
			},
		},
		{
			name: "server pattern with method and host keeps the path as route",
			ev: HTTPEvent{Kind: trace.SpanKindServer, Method: "POST", Host: "api.example", Path: "/v1/orders",
				Route: "POST  api.example/v1/orders", ProtoMajor: 1, ProtoMinor: 0, StatusCode: 201},
			wantName: "POST /v1/orders",
			wantAttrs: map[string]any{
				"http.request.method": "POST", "http.route": "/v1/orders", "url.path": "/v1/orders", "url.scheme": "http",
				"server.address": "api.example", "network.protocol.version": "1.0", "http.response.status_code": int64(201),
			},
		},
		{
			name: "server without route, unknown method and 5xx",
			ev: HTTPEvent{Kind: trace.SpanKindServer, Method: "PURGE", Host: "cache", Path: "/x", RemoteAddr: "1.2.3.4:5",
				ProtoMajor: 1, ProtoMinor: 1, StatusCode: 503},
			wantName: "HTTP",
			wantAttrs: map[string]any{
				"http.request.method": "_OTHER", "http.request.method_original": "PURGE", "url.path": "/x", "url.scheme": "http",
				"server.address": "cache", "client.address": "1.2.3.4", "client.port": int64(5),
				"network.protocol.version": "1.1", "http.response.status_code": int64(503), "error.type": "503",
			},
			wantStatus: codes.Error,
		},
		{
			name: "server whose handler panicked: error, no status",
			ev: HTTPEvent{Kind: trace.SpanKindServer, Method: "GET", Path: "/panic", Route: "/panic",
				ProtoMajor: 1, ProtoMinor: 1, Panicked: true},
			wantName: "GET /panic",
			wantAttrs: map[string]any{
				"http.request.method": "GET", "http.route": "/panic", "url.path": "/panic", "url.scheme": "http",
				"network.protocol.version": "1.1", "error.type": "panic",
			},
			wantStatus:  codes.Error,
			wantDescrip: "handler panicked",
		},
		{
			name:     "server whose handler hijacked the connection: no status, marked",
			ev:       HTTPEvent{Kind: trace.SpanKindServer, Method: "GET", Path: "/ws", ProtoMajor: 1, ProtoMinor: 1, Hijacked: true},
			wantName: "GET",
			wantAttrs: map[string]any{
				"http.request.method": "GET", "url.path": "/ws", "url.scheme": "http",
				"network.protocol.version": "1.1", "offsetdb.http.hijacked": true,
			},
		},
		{
			name: "server with a cut path and query says so",
			ev: HTTPEvent{Kind: trace.SpanKindServer, Method: "GET", Path: "/long/aaaa", Query: "q=bbbb",
				ProtoMajor: 1, ProtoMinor: 1, StatusCode: 200, PathCut: true, QueryCut: true},
			wantName: "GET",
			wantAttrs: map[string]any{
				"http.request.method": "GET", "url.path": "/long/aaaa", "url.query": "q=bbbb", "url.scheme": "http",
				"offsetdb.truncated": []string{"url.path", "url.query"}, "network.protocol.version": "1.1",
				"http.response.status_code": int64(200),
			},
		},
		{
			name: "HTTPS server over HTTP/2 with a body and a cut user agent, 5xx is an error",
			ev: HTTPEvent{Kind: trace.SpanKindServer, Method: "POST", Scheme: "https", Path: "/upload",
				ProtoMajor: 2, StatusCode: 503, BodySize: 10 << 20, UserAgent: "curl/8.5.0", UserAgentCut: true},
			wantName: "POST",
			wantAttrs: map[string]any{
				"http.request.method": "POST", "url.path": "/upload", "url.scheme": "https",
				"network.protocol.version": "2", "http.request.body.size": int64(10 << 20),
				"user_agent.original": "curl/8.5.0", "offsetdb.truncated": []string{"user_agent.original"},
				"http.response.status_code": int64(503), "error.type": "503",
			},
			wantStatus: codes.Error,
		},
		{
			name:     "server body size unknown (-1) or empty (0) is not reported",
			ev:       HTTPEvent{Kind: trace.SpanKindServer, Method: "PUT", Path: "/x", ProtoMajor: 1, ProtoMinor: 1, StatusCode: 200, BodySize: -1},
			wantName: "PUT",
			wantAttrs: map[string]any{
				"http.request.method": "PUT", "url.path": "/x", "url.scheme": "http",
				"network.protocol.version": "1.1", "http.response.status_code": int64(200),
			},
		},
		{
			name: "client with a cut query says url.full is cut",
			ev: HTTPEvent{Kind: trace.SpanKindClient, Method: "GET", Scheme: "http", Host: "a", Path: "/x", Query: "q=cccc",
				ProtoMajor: 1, ProtoMinor: 1, StatusCode: 200, QueryCut: true},
			wantName: "GET",
			wantAttrs: map[string]any{
				"http.request.method": "GET", "url.full": "http://a/x?q=cccc", "offsetdb.truncated": []string{"url.full"},
				"server.address": "a", "server.port": int64(80), "network.protocol.version": "1.1",
				"http.response.status_code": int64(200),
			},
		},
		{
			name: "server query values of sensitive keys are redacted, also when cut",
			ev: HTTPEvent{Kind: trace.SpanKindServer, Method: "GET", Path: "/target/q", Query: "sig=abc&AWSAccessKeyId=k&X-Goog-Signature=0123",
				ProtoMajor: 1, ProtoMinor: 1, StatusCode: 200, QueryCut: true},
			wantName: "GET",
			wantAttrs: map[string]any{
				"http.request.method": "GET", "url.path": "/target/q", "url.query": "sig=REDACTED&AWSAccessKeyId=k&X-Goog-Signature=REDACTED",
				"url.scheme": "http", "offsetdb.truncated": []string{"url.query"}, "network.protocol.version": "1.1",
				"http.response.status_code": int64(200),
			},
		},
		{
			name: "client url.full has the values of sensitive query keys redacted",
			ev: HTTPEvent{Kind: trace.SpanKindClient, Method: "GET", Scheme: "https", Host: "bucket.s3.example", Path: "/o",
				Query: "sig=topsecret&X-Amz-Signature=abc&X-Amz-Date=20260101", ProtoMajor: 1, ProtoMinor: 1, StatusCode: 200},
			wantName: "GET",
			wantAttrs: map[string]any{
				"http.request.method": "GET", "url.full": "https://bucket.s3.example/o?sig=REDACTED&X-Amz-Signature=REDACTED&X-Amz-Date=20260101",
				"server.address": "bucket.s3.example", "server.port": int64(443), "network.protocol.version": "1.1",
				"http.response.status_code": int64(200),
			},
		},
		{
			name:     "methods are case-sensitive",
			ev:       HTTPEvent{Kind: trace.SpanKindServer, Method: "get", Path: "/", Route: "/", StatusCode: 200},
			wantName: "HTTP /",
			wantAttrs: map[string]any{
				"http.request.method": "_OTHER", "http.request.method_original": "get", "http.route": "/", "url.path": "/",
				"url.scheme": "http", "http.response.status_code": int64(200),
			},
		},
		{
			name: "client with default https port and 4xx",
			ev: HTTPEvent{Kind: trace.SpanKindClient, Method: "GET", Scheme: "https", Host: "inventory.internal",
				Path: "/stock/42", Query: "fresh=1", ProtoMajor: 2, StatusCode: 404},
			wantName: "GET",
			wantAttrs: map[string]any{
				"http.request.method": "GET", "url.full": "https://inventory.internal/stock/42?fresh=1",
				"server.address": "inventory.internal", "server.port": int64(443), "network.protocol.version": "2",
				"http.response.status_code": int64(404), "error.type": "404",
			},
			wantStatus: codes.Error,
		},
		{
			name: "client with explicit port and 3xx",
			ev: HTTPEvent{Kind: trace.SpanKindClient, Method: "DELETE", Scheme: "http", Host: "10.1.1.1:8081",
				Path: "/carts/7", ProtoMajor: 1, ProtoMinor: 1, StatusCode: 302},
			wantName: "DELETE",
			wantAttrs: map[string]any{
				"http.request.method": "DELETE", "url.full": "http://10.1.1.1:8081/carts/7", "server.address": "10.1.1.1",
				"server.port": int64(8081), "network.protocol.version": "1.1", "http.response.status_code": int64(302),
			},
		},
		{
			name:     "client without response",
			ev:       HTTPEvent{Kind: trace.SpanKindClient, Method: "POST", Scheme: "http", Host: "down.example", Path: "/"},
			wantName: "POST",
			wantAttrs: map[string]any{
				"http.request.method": "POST", "url.full": "http://down.example/", "server.address": "down.example",
				"server.port": int64(80), "error.type": "_OTHER",
			},
			wantStatus:  codes.Error,
			wantDescrip: "no response",
		},
		{
			name:     "client with uninterpretable status code",
			ev:       HTTPEvent{Kind: trace.SpanKindClient, Method: "GET", Scheme: "http", Host: "odd.example:81", Path: "/", StatusCode: 999},
			wantName: "GET",
			wantAttrs: map[string]any{
				"http.request.method": "GET", "url.full": "http://odd.example:81/", "server.address": "odd.example",
				"server.port": int64(81), "http.response.status_code": int64(999), "error.type": "999",
			},
			wantStatus: codes.Error,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s spans.Span
			if tt.ev.Kind == trace.SpanKindServer {
				describeServer(&tt.ev, &s)
			} else {
				describeClient(&tt.ev, &s)
			}
			assert.Equal(t, tt.wantName, s.Name)
			assert.Equal(t, tt.wantAttrs, uprobetest.AttrMap(t, s.Attributes))
			assert.Equal(t, tt.wantStatus, s.Status)
			assert.Equal(t, tt.wantDescrip, s.StatusDescription)
		})
	}
}

func TestRoutePathStripsMethodAndHost(t *testing.T) {
	tests := map[string]string{
		"":                      "",
		"/":                     "/",
		"/items/{id}":           "/items/{id}",
		"GET /items/{id}":       "/items/{id}",
		"GET\t/items/{id...}":   "/items/{id...}",
		"example.com/":          "/",
		"PUT example.com/a/{b}": "/a/{b}",
		"GET":                   "",
	}
	for pattern, want := range tests {
		assert.Equal(t, want, routePath(pattern), "pattern %q", pattern)
	}
}

// A server span whose handler panicked has one "exception" event at its
// end, with the exception attributes that were read and offsetdb.truncated
// naming those cut; without an Exception (a panic not logged) there is
// none, nor on a span that did not panic.
func TestDescribeAddsExceptionEventToPanickedSpan(t *testing.T) {
	end := time.Date(2026, 11, 30, 15, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		ev   HTTPEvent
		want []spans.Event
	}{
		{name: "everything read, stack trace cut",
			ev: HTTPEvent{Panicked: true, Exception: &Exception{Type: "string", Message: "boom", Stacktrace: "goroutine 1 [running]:\n", StacktraceCut: true}},
			want: []spans.Event{{Name: "exception", Time: end, Attributes: []attribute.KeyValue{
				semconv.ExceptionType("string"), semconv.ExceptionMessage("boom"), semconv.ExceptionStacktrace("goroutine 1 [running]:\n"),
				attribute.StringSlice("offsetdb.truncated", []string{"exception.stacktrace"}),
			}}}},
		{name: "no type or message: a stripped binary, message cut",
			ev: HTTPEvent{Panicked: true, Exception: &Exception{Message: "long", MessageCut: true, Stacktrace: "goroutine 1 [running]:\n"}},
			want: []spans.Event{{Name: "exception", Time: end, Attributes: []attribute.KeyValue{
				semconv.ExceptionMessage("long"), semconv.ExceptionStacktrace("goroutine 1 [running]:\n"),
				attribute.StringSlice("offsetdb.truncated", []string{"exception.message"}),
			}}}},
		{name: "panic not logged", ev: HTTPEvent{Panicked: true}},
		{name: "no panic", ev: HTTPEvent{Exception: &Exception{Type: "string"}}},
	}
	for _, c := range cases {
		c.ev.Kind, c.ev.Method, c.ev.End = trace.SpanKindServer, "GET", end
		s, err := c.ev.Span()
		require.NoError(t, err, c.name)
		assert.Equal(t, c.want, s.Events, c.name)
		if c.ev.Panicked {
			assert.Contains(t, s.Attributes, semconv.ErrorTypeKey.String("panic"), c.name)
		}
	}
}
