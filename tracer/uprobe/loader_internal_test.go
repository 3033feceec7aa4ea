package uprobe

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/tracer/spans"
)

// The reader hands a record to the process whose pid it carries, decoded
// by the instrumentation its tag names; a record it cannot attribute
// (empty, unknown tag, too short for its pid, a pid not traced) is counted
// and handed to no one, and a record that does not decode reaches its
// process as an error. None panics.
func TestDispatchHandsRecordsToTheirProcessAndCountsTheRest(t *testing.T) {
	l := NewLoader(nil)
	inst := Instrumentation{Name: "fake", PIDAt: 4, Decode: func(record []byte, out *spans.Span) error {
		if record[1] == 0xff {
			return errors.New("bad record")
		}
		out.Name = "op"
		return nil
	}}
	noPID := Instrumentation{Name: "no pid", Decode: inst.Decode}
	byTag := []*Instrumentation{&inst, &noPID}
	l.byTag.Store(&byTag)
	var got []Event
	l.procs[42] = &Process{l: l, pid: 42, handle: func(ev Event) {
		if ev.Span != nil {
			ev.Span = &spans.Span{Name: ev.Span.Name} // reused after handle
		}
		got = append(got, ev)
	}}
	record := func(tag byte, pid uint32, b1 byte) []byte {
		r := make([]byte, 8)
		r[0], r[1] = tag, b1
		binary.NativeEndian.PutUint32(r[4:], pid)
		return r
	}

	for _, r := range [][]byte{
		nil,                  // empty
		record(0, 42, 0),     // tag 0: no instrumentation
		record(3, 42, 0),     // a tag no instrumentation has
		record(1, 42, 0)[:6], // too short for its pid
		record(2, 42, 0),     // an instrumentation whose records carry no pid
		record(1, 7, 0),      // a process not traced
	} {
		l.dispatch(r)
	}
	assert.Empty(t, got)
	assert.EqualValues(t, 6, l.Unattributed())

	l.dispatch(record(1, 42, 0))
	l.dispatch(record(1, 42, 0xff))
	require.Len(t, got, 2)
	assert.Equal(t, "fake", got[0].Instrumentation)
	assert.EqualValues(t, 42, got[0].PID)
	assert.NoError(t, got[0].Err)
	assert.Equal(t, "op", got[0].Span.Name)
	assert.Nil(t, got[1].Span)
	assert.ErrorContains(t, got[1].Err, "decode fake record: bad record")
	assert.EqualValues(t, 6, l.Unattributed())
}
