package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseOutgoingReadsTheTracersExitLine(t *testing.T) {
	log := "time=2026-11-30T08:31:36.920Z level=INFO msg=totals spans=16 exported=16\n" +
		`time=2026-11-30T08:31:36.920Z level=INFO msg="outgoing trace context" written=6 application_set=1 not_written=2 tls=0 stale=2 line_too_long=0 not_http1=0 write_failed=0`
	o := parseOutgoing(log)
	require.NotNil(t, o)
	assert.Equal(t, uint64(6), o.Written)
	assert.Equal(t, uint64(1), o.AppSet)
	assert.Equal(t, uint64(2), o.NotWritten)
	assert.Equal(t, uint64(2), o.Reasons["stale"])
	assert.NotContains(t, o.Reasons, "spans", "counters of other lines")

	assert.Nil(t, parseOutgoing("msg=totals spans=3"), "no writer, no line")
}

func TestOutgoingWrittenSaysWhyRequestsGotNoTraceparent(t *testing.T) {
	o := &OutgoingContext{Expected: 10, Written: 6, AppSet: 1, NotWritten: 2, Reasons: map[string]uint64{"stale": 2, "tls": 0}}
	assert.Equal(t, "6 of 10 (60.00%); not written: application's own 1, stale 2, unaccounted 1 (no context reached the writer)", o.written())
	all := &OutgoingContext{Expected: 4, Written: 4}
	assert.Equal(t, "4 of 4 (100.00%)", all.written())
	var none *OutgoingContext
	assert.Equal(t, "—", none.written())
}

func TestContextReportShowsRatiosWrittenAndCheck(t *testing.T) {
	chain := contextChainArms()
	sp := func(v float64) Spread { return newSpread([]float64{v}) }
	p := ContextPart{Name: "two-hop chain", Route: "/hop/ID?next=B", Workers: 16, Arms: chain, SpansPerRequest: 3, OutgoingPerRequest: 1,
		PerSecond: map[string]Spread{}, P50: map[string]Spread{}, P99: map[string]Spread{},
		Ratio: map[string]Spread{}, P50Ratio: map[string]Spread{}, P99Ratio: map[string]Spread{},
		ServiceCPUPer1k: map[string]Spread{}, TracerCPUPer1k: map[string]Spread{}, SpanCompleteness: map[string]Spread{},
		Dropped:  map[string]uint64{},
		Outgoing: map[string]*OutgoingContext{chain[2].Name: {Expected: 100, Written: 99}},
		Check:    &ContextCheck{Arm: chain[2].Name, Seconds: 2, Calls: 50, Written: 49, BServers: 50, ChildOfAClient: 49, Root: 1, RootAtMs: []float64{812.4}}}
	for i, a := range chain {
		p.PerSecond[a.Name], p.P50[a.Name], p.P99[a.Name] = sp(1000/float64(i+1)), sp(1), sp(2)
		if a.traced() {
			p.Ratio[a.Name] = sp(1 / float64(i+1))
		}
	}
	c := &Context{Rounds: 3, Duration: 5, Binary: "go1.26.8", Parts: []ContextPart{p}}
	rows := contextSummaryRows(c)
	require.Len(t, rows, 1)
	assert.Contains(t, rows[0][1], "untraced 1000 req/s")
	assert.Contains(t, rows[0][2], "read-only (--context-propagation=false): ×0.500 req/s")
	assert.Contains(t, rows[0][2], "with propagation: ×0.333 req/s")
	assert.Contains(t, rows[0][2], "traceparent written 99 of 100 (99.00%); not written: unaccounted 1")
	assert.Contains(t, rows[0][2], "1 without a parent (started 812 ms after B's first)")
	md := contextMarkdown(c)
	assert.Contains(t, md, "| traced with propagation | 333 | 0.333 |")
	assert.Contains(t, md, "Check: one more 2 s run of *traced with propagation*")
}
