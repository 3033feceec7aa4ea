// Package goroutine makes trace context follow the go statement: a
// goroutine started while its parent handles a traced request inherits the
// request's span as its active span (bpf/context.h), so that the calls it
// makes — a handler's fan-out, errgroup, a worker started for the request —
// are children of the request's span. An inherited context is honoured only
// while the goroutine it came from still has that span active: a goroutine
// that outlives its request, or a pooled worker started during an earlier
// one, starts new traces instead.
//
// It probes runtime.newproc1 (entry and RETs), which every go statement
// reaches, and submits no records. Before Go 1.15 newproc1 returns nothing,
// and the new goroutine is read where newproc1 queues it: at its call of
// runtime.runqput (a uprobe on that instruction, not on runqput, which the
// scheduler also calls for every goroutine it wakes). Its cost is two
// uprobe hits per goroutine started, three before Go 1.15 (about 25–50 µs
// of kernel time each on this project's test machines): on a program that
// starts a goroutine per request it is as much as a server span's;
// `tracer --goroutine-context=false` turns it off.
package goroutine

import (
	"errors"

	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/spans"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
)

// The BPF objects, compiled for both targets and committed, come from
// goroutine.c and the shared headers in bpf/; the build needs clang and
// libbpf-dev.
//go:generate go tool bpf2go -tags linux -target amd64,arm64 goroutine goroutine.c -- -I../../../bpf -O2 -mcpu=v3 -Wall -Werror -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu

// Name is the instrumentation's name, for flags and logs.
const Name = "goroutine context"

// newproc1 is the runtime function every go statement reaches.
const newproc1 = "runtime.newproc1"

// runqput queues a runnable goroutine; before Go 1.15, newproc1 calls it
// with the goroutine it created.
const runqput = "runtime.runqput"

// Instrumentation returns the declaration of the goroutine context
// instrumentation, for uprobe.Attach. Each call returns a new copy.
func Instrumentation() uprobe.Instrumentation {
	return uprobe.Instrumentation{
		Name: Name,
		Probes: []uprobe.Probe{
			// Go 1.12-1.14: newproc1 returns nothing. The new g is the
			// one it queues: read at its call of runqput (not inlined
			// there: it loops), before the call.
			{Symbol: newproc1, Entry: "newproc_entry_117", Return: "newproc_return_114", Versions: "<go1.15", Optional: true, StackABI: true},
			{Symbol: newproc1, CallsTo: runqput, Entry: "newproc_queue", Versions: "<go1.15", Optional: true, StackABI: true},
			// Go 1.15-1.17 (ABI0 before 1.17 on amd64, 1.18 on arm64):
			// the result *g is one word.
			{Symbol: newproc1, Entry: "newproc_entry_117", Return: "newproc_return", Versions: ">=go1.15,<go1.18", Optional: true, StackABI: true, StackResults: 8},
			{Symbol: newproc1, Entry: "newproc_entry", Return: "newproc_return", Versions: ">=go1.18", Optional: true},
		},
		Fields: []uprobe.Field{
			{ID: offsets.MustParseFieldID("runtime.g.goid"), Const: "off_g_goid"},
		},
		Spec:   spec,
		Decode: decode,
	}
}

// errNoRecords is what decode reports: the programs submit no records.
var errNoRecords = errors.New("goroutine context instrumentation submits no records")

func decode([]byte, *spans.Span) error { return errNoRecords }
