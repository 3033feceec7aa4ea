package tracetree

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/tracer/export"
)

var t0 = time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)

// span is a console span of service svc starting at +start ms, lasting dur ms.
func span(trace, id, parent, svc, kind, name string, start, dur float64, attrs map[string]any) Span {
	at := func(ms float64) time.Time { return t0.Add(time.Duration(ms * float64(time.Millisecond))) }
	if attrs == nil {
		attrs = map[string]any{}
	}
	return Span{Name: name, TraceID: trace, SpanID: id, ParentSpanID: parent, Kind: kind,
		Start: at(start), End: at(start + dur), Attributes: attrs, Resource: map[string]any{"service.name": svc}}
}

// consoleLines encodes spans as the console exporter does, one per line.
func consoleLines(t *testing.T, spans ...Span) string {
	var b bytes.Buffer
	for _, s := range spans {
		line, err := json.Marshal(s)
		require.NoError(t, err)
		b.Write(append(line, '\n'))
	}
	return b.String()
}

func TestReadSkipsLinesThatAreNotSpans(t *testing.T) {
	in := "listening on 127.0.0.1:1\n" +
		consoleLines(t, span("t1", "a", "", "chain-a", "server", "GET /hop/", 0, 3, nil)) +
		"{not json\n" + `{"name":"no ids"}` + "\n\n" +
		consoleLines(t, span("t1", "b", "a", "chain-a", "client", "GET", 1, 1, nil))
	spans, skipped, err := Read(strings.NewReader(in))
	require.NoError(t, err)
	assert.Equal(t, 2, skipped)
	require.Len(t, spans, 2)
	assert.Equal(t, "a", spans[0].SpanID)
	assert.Equal(t, "b", spans[1].SpanID)
}

func TestReadDecodesTheConsoleExportersFormat(t *testing.T) {
	// A line exactly as tracer/export writes it.
	line := `{"name":"GET /items/{id}","trace_id":"21eb","span_id":"7144","kind":"server","start":"2026-11-30T09:00:00.000001Z",` +
		`"end":"2026-11-30T09:00:00.002501Z","status":{"code":"error","description":"boom"},"attributes":{"http.response.status_code":500},"resource":{"service.name":"svc"}}`
	spans, skipped, err := Read(strings.NewReader(line))
	require.NoError(t, err)
	require.Zero(t, skipped)
	require.Len(t, spans, 1)
	s := spans[0]
	assert.Equal(t, 2500*time.Microsecond, s.End.Sub(s.Start))
	assert.Equal(t, &export.ConsoleStatus{Code: "error", Description: "boom"}, s.Status)
	assert.Equal(t, "error: boom, HTTP 500", Status(s))
}

func TestBuildOrdersTracesAndChildrenByStartTime(t *testing.T) {
	// Given out of order: the later trace first, children reversed.
	spans := []Span{
		span("t2", "x", "", "chain-a", "server", "GET /hop/", 50, 5, nil),
		span("t1", "c2", "r", "chain-a", "client", "GET", 3, 1, nil),
		span("t1", "c1", "r", "chain-a", "client", "GET", 1, 1, nil),
		span("t1", "s1", "c1", "chain-b", "server", "GET /hop/", 1.2, 0.5, nil),
		span("t1", "r", "", "chain-a", "server", "GET /fan/", 0, 5, nil),
		span("t1", "c0", "r", "chain-a", "client", "GET", 1, 1, nil), // same start as c1: by span ID
	}
	traces := Build(spans)
	require.Len(t, traces, 2)
	assert.Equal(t, "t1", traces[0].ID)
	assert.Equal(t, "t2", traces[1].ID)
	tr := traces[0]
	assert.Equal(t, 5, tr.Spans)
	require.Len(t, tr.Roots, 1)
	root := tr.Roots[0]
	assert.Equal(t, "r", root.Span.SpanID)
	assert.False(t, root.Orphan)
	var kids []string
	for _, c := range root.Children {
		kids = append(kids, c.Span.SpanID)
	}
	assert.Equal(t, []string{"c0", "c1", "c2"}, kids)
	require.Len(t, root.Children[1].Children, 1)
	assert.Equal(t, "s1", root.Children[1].Children[0].Span.SpanID)
}

func TestBuildShowsOrphansAsSuchNotUnderAGuessedParent(t *testing.T) {
	spans := []Span{
		span("t1", "r", "", "chain-a", "server", "GET /hop/", 0, 5, nil),
		span("t1", "o", "gone", "chain-c", "server", "GET /hop/", 2, 1, nil),
		span("t1", "oc", "o", "chain-c", "client", "GET", 2.1, 0.5, nil),
		span("t1", "self", "self", "chain-c", "client", "GET", 3, 0.5, nil), // its own parent
		span("t1", "r", "", "chain-a", "server", "GET /hop/", 0, 5, nil),    // listed twice
	}
	traces := Build(spans)
	require.Len(t, traces, 1)
	tr := traces[0]
	assert.Equal(t, 4, tr.Spans)
	require.Len(t, tr.Roots, 3)
	assert.False(t, tr.Roots[0].Orphan, "the root span")
	assert.True(t, tr.Roots[1].Orphan)
	assert.Equal(t, "o", tr.Roots[1].Span.SpanID)
	require.Len(t, tr.Roots[1].Children, 1, "an orphan keeps its own children")
	assert.True(t, tr.Roots[2].Orphan)

	var out bytes.Buffer
	require.NoError(t, Print(&out, traces))
	assert.Contains(t, out.String(), "(parent gone not exported) chain-c  GET /hop/")
}

func TestPrintIndentsByParentWithServiceKindDurationAndStatus(t *testing.T) {
	spans := []Span{
		span("aaaa", "r", "", "chain-a", "server", "GET /fan/", 0, 12.5, map[string]any{"url.path": "/fan/2", "http.response.status_code": 200}),
		span("aaaa", "c1", "r", "chain-a", "client", "GET", 1, 4, map[string]any{"url.full": "http://b/hop/2-0", "http.response.status_code": 200}),
		span("aaaa", "s1", "c1", "chain-b", "server", "GET /hop/", 1.5, 0.25, map[string]any{"url.path": "/hop/2-0"}),
		span("aaaa", "s2", "s1", "chain-c", "server", "GET /x", 1.6, 0.1, nil),
		span("aaaa", "c2", "r", "chain-a", "client", "GET", 2, 1500, nil),
		span("bbbb", "e", "", "chain-a", "server", "GET /hop/", 2000, 1, map[string]any{"http.response.status_code": 502}),
	}
	spans[5].Status = &export.ConsoleStatus{Code: "error"}
	var out bytes.Buffer
	require.NoError(t, Print(&out, Build(spans)))
	want := `trace aaaa (5 spans; chain-a, chain-b, chain-c)
  chain-a  GET /fan/ (/fan/2)          server    12.5 ms  unset, HTTP 200
  ├─ chain-a  GET http://b/hop/2-0     client   4.000 ms  unset, HTTP 200
  │  └─ chain-b  GET /hop/ (/hop/2-0)  server   0.250 ms  unset
  │     └─ chain-c  GET /x             server   0.100 ms  unset
  └─ chain-a  GET                      client     1.50 s  unset

trace bbbb (1 span; chain-a)
  chain-a  GET /hop/  server   1.000 ms  error, HTTP 502
`
	assert.Equal(t, want, out.String())
}

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{412 * time.Microsecond, "0.412 ms"},
		{35100 * time.Microsecond, "35.1 ms"},
		{1250 * time.Millisecond, "1.25 s"},
	} {
		assert.Equal(t, tc.want, Duration(tc.d))
	}
}
