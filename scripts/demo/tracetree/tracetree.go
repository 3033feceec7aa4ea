// Package tracetree turns the tracer's console output (OTEL_TRACES_EXPORTER=console:
// one JSON object per span, export.ConsoleSpan) into trace trees for a
// terminal: one tree per trace, each span on its own line under its parent,
// with its service, name, kind, duration and status.
//
// It shows what it was given and nothing more: a span whose parent is not in
// the input (the parent was never exported, or belongs to a service nobody
// traces) is an orphan and is printed as one, at the top of its trace with the
// missing parent's ID, never attached to a guessed parent.
package tracetree

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/offsetdb/offsetdb/tracer/export"
)

// Span is one exported span, as the console exporter writes it.
type Span = export.ConsoleSpan

// Read returns the spans of the console exporter's output in r. Lines that
// are not JSON objects (a service's own output, log lines) are skipped;
// skipped counts the lines that start with '{' but are not a span.
func Read(r io.Reader) (spans []Span, skipped int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var s Span
		if err := json.Unmarshal(line, &s); err != nil || s.TraceID == "" || s.SpanID == "" {
			skipped++
			continue
		}
		spans = append(spans, s)
	}
	if err := sc.Err(); err != nil {
		return spans, skipped, fmt.Errorf("read spans: %w", err)
	}
	return spans, skipped, nil
}

// Node is a span with its children, earliest first.
type Node struct {
	Span     Span
	Children []*Node
	// Orphan is set on a top-level span that names a parent the input does
	// not hold.
	Orphan bool
}

// Trace is the spans of one trace ID as trees: Roots holds the root span
// (normally one) and the orphans, earliest first.
type Trace struct {
	ID    string
	Roots []*Node
	Spans int
}

// Start is when the trace's earliest top-level span started.
func (t *Trace) Start() time.Time {
	if len(t.Roots) == 0 {
		return time.Time{}
	}
	return t.Roots[0].Span.Start
}

// Build groups spans by trace ID and links each to its parent. Traces are
// ordered by their earliest top-level span, spans under a parent by start
// time (then span ID, so that the order never depends on the input's). A
// span listed twice (same trace and span ID) is kept once.
func Build(spans []Span) []*Trace {
	byTrace := map[string][]Span{}
	var order []string
	for _, s := range spans {
		if _, ok := byTrace[s.TraceID]; !ok {
			order = append(order, s.TraceID)
		}
		byTrace[s.TraceID] = append(byTrace[s.TraceID], s)
	}
	traces := make([]*Trace, 0, len(order))
	for _, id := range order {
		traces = append(traces, buildTrace(id, byTrace[id]))
	}
	slices.SortStableFunc(traces, func(a, b *Trace) int {
		if c := a.Start().Compare(b.Start()); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return traces
}

func buildTrace(id string, spans []Span) *Trace {
	nodes := map[string]*Node{}
	var list []*Node
	for _, s := range spans {
		if _, dup := nodes[s.SpanID]; dup {
			continue
		}
		n := &Node{Span: s}
		nodes[s.SpanID] = n
		list = append(list, n)
	}
	t := &Trace{ID: id, Spans: len(list)}
	for _, n := range list {
		p := n.Span.ParentSpanID
		if parent, ok := nodes[p]; ok && p != n.Span.SpanID {
			parent.Children = append(parent.Children, n)
			continue
		}
		n.Orphan = p != ""
		t.Roots = append(t.Roots, n)
	}
	sortNodes(t.Roots)
	for _, n := range list {
		sortNodes(n.Children)
	}
	return t
}

func sortNodes(ns []*Node) {
	slices.SortFunc(ns, func(a, b *Node) int {
		if c := a.Span.Start.Compare(b.Span.Start); c != 0 {
			return c
		}
		return strings.Compare(a.Span.SpanID, b.Span.SpanID)
	})
}

// Print writes each trace as an indented tree:
//
//	trace 4bf92f3577b34da6a3ce929d0e0e4736 (5 spans; chain-a, chain-b, chain-c)
//	  chain-a  GET /hop/ (/hop/1)              server  3.214 ms  unset, HTTP 200
//	  └─ chain-a  GET http://…/hop/1?next=…    client  2.801 ms  unset, HTTP 200
//
// Columns line up within a trace: service and span name (indented under the
// parent), kind, duration, status (with the HTTP status code or gRPC status
// when the span has one, and an error's description).
func Print(w io.Writer, traces []*Trace) error {
	var b strings.Builder
	for i, t := range traces {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "trace %s (%d span%s; %s)\n", t.ID, t.Spans, plural(t.Spans), strings.Join(services(t), ", "))
		var rows [][4]string
		for _, r := range t.Roots {
			rows = appendRows(rows, r, "", "", true)
		}
		width := 0
		for _, r := range rows {
			width = max(width, len([]rune(r[0])))
		}
		for _, r := range rows {
			pad := strings.Repeat(" ", width-len([]rune(r[0])))
			fmt.Fprintf(&b, "  %s%s  %-6s  %9s  %s\n", r[0], pad, r[1], r[2], r[3])
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// appendRows adds n and its subtree: [tree prefix, service and name; kind;
// duration; status].
func appendRows(rows [][4]string, n *Node, prefix, branch string, top bool) [][4]string {
	s := n.Span
	label := branch + service(s) + "  " + Label(s)
	if n.Orphan {
		label = branch + "(parent " + short(s.ParentSpanID) + " not exported) " + service(s) + "  " + Label(s)
	}
	rows = append(rows, [4]string{prefix + label, s.Kind, Duration(s.End.Sub(s.Start)), Status(s)})
	childPrefix := prefix
	if !top {
		if strings.HasPrefix(branch, "├") {
			childPrefix += "│  "
		} else {
			childPrefix += "   "
		}
	}
	for i, c := range n.Children {
		br := "├─ "
		if i == len(n.Children)-1 {
			br = "└─ "
		}
		rows = appendRows(rows, c, childPrefix, br, false)
	}
	return rows
}

// Label is the span's name, with the URL a client called (url.full) or the
// path a server was asked for (url.path, in parentheses: the name holds the
// route) when the name does not say it.
func Label(s Span) string {
	if v, ok := s.Attributes["url.full"].(string); ok && v != "" && !strings.Contains(s.Name, v) {
		return s.Name + " " + v
	}
	if v, ok := s.Attributes["url.path"].(string); ok && v != "" && !strings.Contains(s.Name, v) {
		return s.Name + " (" + v + ")"
	}
	return s.Name
}

// Status is the span's status ("unset", "ok" or "error: description") and,
// when the span has one, its HTTP response status code or gRPC status code.
func Status(s Span) string {
	st := "unset"
	if s.Status != nil {
		st = s.Status.Code
		if s.Status.Description != "" {
			st += ": " + s.Status.Description
		}
	}
	if v, ok := s.Attributes["http.response.status_code"]; ok {
		st += fmt.Sprintf(", HTTP %v", v)
	} else if v, ok := s.Attributes["rpc.grpc.status_code"]; ok {
		st += fmt.Sprintf(", gRPC %v", v)
	}
	return st
}

// Duration formats d for a column: "0.412 ms", "35.1 ms", "1.25 s".
func Duration(d time.Duration) string {
	switch ms := float64(d) / float64(time.Millisecond); {
	case ms < 10:
		return fmt.Sprintf("%.3f ms", ms)
	case ms < 1000:
		return fmt.Sprintf("%.1f ms", ms)
	default:
		return fmt.Sprintf("%.2f s", ms/1000)
	}
}

func service(s Span) string {
	if v, ok := s.Resource["service.name"].(string); ok && v != "" {
		return v
	}
	return "?"
}

// services are the service names of a trace's spans, in order of first
// appearance in the tree.
func services(t *Trace) []string {
	var out []string
	var walk func(n *Node)
	walk = func(n *Node) {
		if name := service(n.Span); !slices.Contains(out, name) {
			out = append(out, name)
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	for _, r := range t.Roots {
		walk(r)
	}
	return out
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8] + "…"
	}
	return id
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
