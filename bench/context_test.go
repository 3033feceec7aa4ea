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
