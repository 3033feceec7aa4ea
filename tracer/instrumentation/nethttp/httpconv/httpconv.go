// Package httpconv describes HTTP requests seen by the net/http
// instrumentations as spans, following the HTTP semantic conventions
// (semconv v1.43.0).
package httpconv

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/tracer/spans"
)

// HTTPEvent is one finished HTTP request seen by an instrumentation, server
// or client side, decoded from the eBPF ring buffer into Go values.
//
// The eBPF side assigns the IDs at function entry, so that a client request
// made while a server request is handled on the same goroutine carries the
// server span as its parent; spans keep those IDs.
type HTTPEvent struct {
	Kind         trace.SpanKind // trace.SpanKindServer or trace.SpanKindClient
	Start, End   time.Time
	TraceID      trace.TraceID
	SpanID       trace.SpanID
	ParentSpanID trace.SpanID // zero for a root span
	// Unsampled: the span's W3C trace-flags have the sampled bit clear
	// (the caller's decision, or the sampler's); it is not exported.
	Unsampled bool
	// TraceState is the server request's W3C tracestate header, kept with
	// the trace context it came with.
	TraceState string

	Method     string // "GET"
	Scheme     string // URL scheme: client: the URL's; server: "https" for a TLS connection, else "http" (empty: unknown, reported as "http")
	Host       string // server: Request.Host; client: URL.Host (host[:port])
	Path       string // URL.Path, cut at 1 KiB
	Query      string // URL.RawQuery, cut at 1 KiB
	Route      string // server: the matched route: a router's template ("/items/:id") or a ServeMux pattern ("GET /items/{id}"), if known
	RemoteAddr string // server: Request.RemoteAddr ("ip:port")
	ProtoMajor int
	ProtoMinor int
	StatusCode int // 0 if unknown (client request failed before a response)
	// Panicked: server: the handler panicked and net/http recovered the
	// panic (the connection or stream is closed; StatusCode is 0).
	Panicked bool
	// Hijacked: server: the handler took the connection over
	// (http.Hijacker); what it answered is unknown, StatusCode is 0.
	Hijacked bool
	// PathCut and QueryCut: Path or Query is the start of a longer value.
	PathCut, QueryCut bool
	// BodySize: server: the request's Content-Length (Request.ContentLength);
	// 0 for none or an empty body, -1 when unknown (chunked, HTTP/2
	// without content-length, or not read).
	BodySize int64
	// UserAgent: server: the request's first User-Agent header, cut at 128
	// bytes (UserAgentCut says so).
	UserAgent    string
	UserAgentCut bool
	// Exception: server: what was read of the panic of a handler that
	// panicked, for the span's "exception" event; nil when nothing was.
	Exception *Exception
}

// Exception is a recovered handler panic, as the semantic conventions'
// exception attributes describe it. Empty fields were not readable.
type Exception struct {
	// Type is the Go type of the panic value with its full import path
	// ("*example.com/app.MyError", "runtime.plainError", "string"); empty
	// when the binary has no symbol table.
	Type string
	// Message is the panic value when it is a string, or a runtime error
	// whose type is one (a nil map write's "assignment to entry in nil
	// map"); empty for other values, whose Error method the tracer cannot
	// call.
	Message string
	// Stacktrace is the stack trace net/http logged (runtime.Stack of the
	// panicking goroutine), as far as it was copied.
	Stacktrace string
	// MessageCut and StacktraceCut: Message or Stacktrace is the start of
	// a longer value.
	MessageCut, StacktraceCut bool
}

// Describe fills out with the span of ev: its IDs and times, and the name,
// attributes and status the HTTP semantic conventions derive from it.
//
// A server span whose parent is set continues a trace that came in over the
// wire, so the parent is marked remote; a client span's parent is a span of
// the same process. Describe returns an error wrapping spans.ErrInvalidEvent
// for a kind other than server or client.
func Describe(ev *HTTPEvent, out *spans.Span) error {
	switch ev.Kind {
	case trace.SpanKindServer:
		describeServer(ev, out)
	case trace.SpanKindClient:
		describeClient(ev, out)
	default:
		return fmt.Errorf("describe HTTP event %s/%s: %w: kind %s", ev.TraceID, ev.SpanID, spans.ErrInvalidEvent, ev.Kind)
	}
	out.Kind = ev.Kind
	out.Start, out.End = ev.Start, ev.End
	out.TraceID, out.SpanID, out.ParentSpanID = ev.TraceID, ev.SpanID, ev.ParentSpanID
	out.RemoteParent = ev.Kind == trace.SpanKindServer && ev.ParentSpanID.IsValid()
	out.Unsampled = ev.Unsampled
	out.TraceState = ev.TraceState
	return nil
}

// Span returns the span of ev (see Describe).
func (ev HTTPEvent) Span() (spans.Span, error) {
	var s spans.Span
	err := Describe(&ev, &s)
	return s, err
}

// clearDescription empties what describeServer and describeClient fill,
// keeping the storage of the attributes.
func clearDescription(s *spans.Span) {
	s.Name, s.Status, s.StatusDescription = "", codes.Unset, ""
	s.Attributes = s.Attributes[:0]
}

// knownMethods are the HTTP methods the semantic conventions name; any other
// (including a different case: methods are case-sensitive) is reported as
// "_OTHER" with the original in http.request.method_original.
var knownMethods = map[string]attribute.KeyValue{
	"CONNECT": semconv.HTTPRequestMethodConnect,
	"DELETE":  semconv.HTTPRequestMethodDelete,
	"GET":     semconv.HTTPRequestMethodGet,
	"HEAD":    semconv.HTTPRequestMethodHead,
	"OPTIONS": semconv.HTTPRequestMethodOptions,
	"PATCH":   semconv.HTTPRequestMethodPatch,
	"POST":    semconv.HTTPRequestMethodPost,
	"PUT":     semconv.HTTPRequestMethodPut,
	"TRACE":   semconv.HTTPRequestMethodTrace,
	"QUERY":   semconv.HTTPRequestMethodQuery,
}

// addMethod appends http.request.method (and http.request.method_original
// for an unknown method) and returns the method as used in span names: the
// method itself when known, "HTTP" otherwise, as the conventions require.
func addMethod(s *spans.Span, method string) string {
	if kv, ok := knownMethods[method]; ok {
		s.Attributes = append(s.Attributes, kv)
		return method
	}
	s.Attributes = append(s.Attributes, semconv.HTTPRequestMethodOther, semconv.HTTPRequestMethodOriginal(method))
	return "HTTP"
}

// addProtocolVersion appends network.protocol.version ("1.0", "1.1", "2",
// "3") unless the version is unknown.
func addProtocolVersion(s *spans.Span, major, minor int) {
	var v string
	switch {
	case major <= 0:
		return
	case major == 1 && minor == 0:
		v = "1.0"
	case major == 1 && minor == 1:
		v = "1.1"
	case major == 2 && minor == 0:
		v = "2"
	case minor == 0:
		v = strconv.Itoa(major)
	default:
		v = strconv.Itoa(major) + "." + strconv.Itoa(minor)
	}
	s.Attributes = append(s.Attributes, semconv.NetworkProtocolVersion(v))
}

// describeServer fills the name, attributes and status of s for a
// server-side event.
//
// The name is "{method} {http.route}" when the route is known and
// "{method}" otherwise; http.request.body.size is the request's
// Content-Length when it declared a non-empty body (a body sent without
// one, chunked, is not measured); status is Error for 5xx responses only, since a 4xx
// is the client's error, not the server's, and for a handler that panicked
// (error.type "panic", with an "exception" event carrying what was read
// of the panic: see Exception). url.query has the values of sensitive
// parameters replaced by "REDACTED" (see redactQuery).
func describeServer(ev *HTTPEvent, s *spans.Span) {
	clearDescription(s)
	method := addMethod(s, ev.Method)
	s.Name = method
	if route := routePath(ev.Route); route != "" {
		s.Name = method + " " + route
		s.Attributes = append(s.Attributes, semconv.HTTPRoute(route))
	}
	if ev.Path != "" {
		s.Attributes = append(s.Attributes, semconv.URLPath(ev.Path))
	}
	if ev.Query != "" {
		s.Attributes = append(s.Attributes, semconv.URLQuery(redactQuery(ev.Query)))
	}
	if ev.UserAgent != "" {
		s.Attributes = append(s.Attributes, semconv.UserAgentOriginal(ev.UserAgent))
	}
	if kv, ok := truncated(ev.PathCut, ev.QueryCut, ev.UserAgentCut); ok {
		s.Attributes = append(s.Attributes, kv)
	}
	scheme := ev.Scheme
	if scheme == "" {
		scheme = "http"
	}
	s.Attributes = append(s.Attributes, semconv.URLScheme(scheme))
	if host, port := spans.SplitHostPort(ev.Host); host != "" {
		s.Attributes = append(s.Attributes, semconv.ServerAddress(host))
		if port > 0 {
			s.Attributes = append(s.Attributes, semconv.ServerPort(port))
		}
	}
	if host, port := spans.SplitHostPort(ev.RemoteAddr); host != "" {
		s.Attributes = append(s.Attributes, semconv.ClientAddress(host))
		if port > 0 {
			s.Attributes = append(s.Attributes, semconv.ClientPort(port))
		}
	}
	addProtocolVersion(s, ev.ProtoMajor, ev.ProtoMinor)
	if ev.BodySize > 0 {
		s.Attributes = append(s.Attributes, semconv.HTTPRequestBodySize(int(ev.BodySize)))
	}
	if ev.StatusCode != 0 {
		s.Attributes = append(s.Attributes, semconv.HTTPResponseStatusCode(ev.StatusCode))
		if ev.StatusCode >= 500 && ev.StatusCode <= 599 {
			s.SetError(semconv.ErrorTypeKey.String(strconv.Itoa(ev.StatusCode)), "")
		}
	}
	if ev.Hijacked {
		s.Attributes = append(s.Attributes, attrHijacked)
	}
	if ev.Panicked && s.Status != codes.Error {
		s.SetError(semconv.ErrorTypeKey.String("panic"), "handler panicked")
	}
	if ev.Panicked && ev.Exception != nil {
		s.Events = append(s.Events, exceptionEvent(ev.Exception, ev.End))
	}
}

// exceptionEvent returns the "exception" event of a recovered panic, with
// the exception.type, exception.message and exception.stacktrace that were
// read, and offsetdb.truncated naming those that were cut.
func exceptionEvent(x *Exception, at time.Time) spans.Event {
	ev := spans.Event{Name: semconv.ExceptionEventName, Time: at}
	if x.Type != "" {
		ev.Attributes = append(ev.Attributes, semconv.ExceptionType(x.Type))
	}
	if x.Message != "" {
		ev.Attributes = append(ev.Attributes, semconv.ExceptionMessage(x.Message))
	}
	if x.Stacktrace != "" {
		ev.Attributes = append(ev.Attributes, semconv.ExceptionStacktrace(x.Stacktrace))
	}
	var cut []string
	if x.MessageCut && x.Message != "" {
		cut = append(cut, string(semconv.ExceptionMessageKey))
	}
	if x.StacktraceCut && x.Stacktrace != "" {
		cut = append(cut, string(semconv.ExceptionStacktraceKey))
	}
	if cut != nil {
		ev.Attributes = append(ev.Attributes, spans.TruncatedKey.StringSlice(cut))
	}
	return ev
}

// describeClient fills the name, attributes and status of s for a
// client-side event.
//
// The name is "{method}": a client knows no route. Status is Error for 4xx
// and 5xx responses, for codes outside 100-599, and, with the description
// "no response", when no response arrived (StatusCode 0). The query in
// url.full has the values of sensitive parameters replaced by "REDACTED"
// (see redactQuery).
func describeClient(ev *HTTPEvent, s *spans.Span) {
	clearDescription(s)
	s.Name = addMethod(s, ev.Method)
	scheme := ev.Scheme
	if scheme == "" {
		scheme = "http"
	}
	full := scheme + "://" + ev.Host + ev.Path
	if ev.Query != "" {
		full += "?" + redactQuery(ev.Query)
	}
	s.Attributes = append(s.Attributes, semconv.URLFull(full))
	if ev.PathCut || ev.QueryCut {
		s.Attributes = append(s.Attributes, attrTruncatedFull)
	}
	if host, port := spans.SplitHostPort(ev.Host); host != "" {
		s.Attributes = append(s.Attributes, semconv.ServerAddress(host))
		if port == 0 {
			port = defaultPort(scheme)
		}
		if port > 0 {
			s.Attributes = append(s.Attributes, semconv.ServerPort(port))
		}
	}
	addProtocolVersion(s, ev.ProtoMajor, ev.ProtoMinor)
	switch code := ev.StatusCode; {
	case code == 0:
		s.SetError(semconv.ErrorTypeOther, "no response")
	case code < 100 || code >= 400:
		s.Attributes = append(s.Attributes, semconv.HTTPResponseStatusCode(code))
		s.SetError(semconv.ErrorTypeKey.String(strconv.Itoa(code)), "")
	default:
		s.Attributes = append(s.Attributes, semconv.HTTPResponseStatusCode(code))
	}
}

// attrHijacked marks the span of a request whose handler hijacked the
// connection, which is why it has no http.response.status_code. The
// semantic conventions have no attribute for it.
var attrHijacked = attribute.Bool("offsetdb.http.hijacked", true)

// offsetdb.truncated lists the attributes whose value is the start of a
// longer one (the record's buffers hold 1 KiB of path and of query, 128
// bytes of user agent). The semantic conventions have no attribute for it.
var attrTruncatedFull = spans.TruncatedKey.StringSlice([]string{"url.full"})

// truncatedServer holds the offsetdb.truncated attribute of each
// combination of cut server values, indexed by path | query<<1 | ua<<2,
// made once rather than per span.
var truncatedServer = func() (kvs [8]attribute.KeyValue) {
	for i := range kvs {
		var names []string
		for bit, name := range []string{"url.path", "url.query", "user_agent.original"} {
			if i&(1<<bit) != 0 {
				names = append(names, name)
			}
		}
		kvs[i] = spans.TruncatedKey.StringSlice(names)
	}
	return kvs
}()

// truncated returns the offsetdb.truncated attribute of a server span
// whose path, query or user agent were cut; false when none was.
func truncated(path, query, userAgent bool) (attribute.KeyValue, bool) {
	i := 0
	for bit, cut := range []bool{path, query, userAgent} {
		if cut {
			i |= 1 << bit
		}
	}
	return truncatedServer[i], i != 0
}

// routePath returns the path part of a ServeMux pattern
// "[METHOD ][HOST]/[PATH]", which is what http.route holds, or "" when the
// pattern has no path.
func routePath(pattern string) string {
	if i := strings.IndexAny(pattern, " \t"); i >= 0 {
		pattern = strings.TrimLeft(pattern[i+1:], " \t")
	}
	if i := strings.IndexByte(pattern, '/'); i >= 0 {
		return pattern[i:]
	}
	return ""
}

// defaultPort returns the well-known port of an HTTP URL scheme, or 0.
func defaultPort(scheme string) int {
	switch strings.ToLower(scheme) {
	case "http":
		return 80
	case "https":
		return 443
	}
	return 0
}
