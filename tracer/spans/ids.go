package spans

import (
	"context"
	"encoding/binary"
	"math/rand/v2"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// IDGenerator returns the sdktrace.IDGenerator that a TracerProvider must be
// built with (sdktrace.WithIDGenerator) for a Recorder to keep the IDs the
// eBPF side assigned.
//
// The SDK has no option to start a span with a given span ID: it always asks
// its IDGenerator. This one answers with the IDs Recorder.Record places in the
// context it passes to Tracer.Start, and with random IDs for spans started
// any other way, so the provider stays usable for ordinary spans.
func IDGenerator() sdktrace.IDGenerator { return eventIDGenerator{} }

// eventIDGenerator is the sdktrace.IDGenerator returned by IDGenerator.
type eventIDGenerator struct{}

// NewIDs returns the event's trace and span ID when ctx comes from Record.
func (eventIDGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if c, ok := ctx.Value(idContextKey{}).(*idContext); ok {
		return c.traceID, c.spanID
	}
	var tid trace.TraceID
	binary.BigEndian.PutUint64(tid[:8], rand.Uint64())
	binary.BigEndian.PutUint64(tid[8:], rand.Uint64())
	return tid, randomSpanID()
}

// NewSpanID returns the event's span ID when ctx comes from Record.
func (eventIDGenerator) NewSpanID(ctx context.Context, _ trace.TraceID) trace.SpanID {
	if c, ok := ctx.Value(idContextKey{}).(*idContext); ok {
		return c.spanID
	}
	return randomSpanID()
}

func randomSpanID() trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		binary.BigEndian.PutUint64(sid[:], rand.Uint64())
	}
	return sid
}

// idContextKey is the context key under which an idContext answers for itself.
type idContextKey struct{}

// idContext carries one event's IDs from Record to eventIDGenerator through
// Tracer.Start. It is its own context value, so it costs a single allocation
// where context.WithValue would cost two.
type idContext struct {
	context.Context
	traceID trace.TraceID
	spanID  trace.SpanID
}

// Value returns c itself for idContextKey and defers to the parent otherwise.
func (c *idContext) Value(key any) any {
	if _, ok := key.(idContextKey); ok {
		return c
	}
	return c.Context.Value(key)
}
