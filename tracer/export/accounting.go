package export

import (
	"log/slog"
	"sync/atomic"
)

// Reason is why a span was not exported, or, for Exported, that it was.
// Every span the tracer sees ends in exactly one of these, so that
// recorded = exported + queue_full + rejected + export_failed (+ discarded
// with OTEL_TRACES_EXPORTER=none) once a Processor has shut down. Events lost before they became spans
// (RingBufferFull, Invalid, InFlightLost) and spans never recorded (Unsampled) are
// counted beside them.
type Reason int

// The reasons, in the order log lines and metrics list them. Their String
// is the error.type value of the OpenTelemetry SDK self-observability
// metrics ("queue_full" is the specification's own value).
const (
	// Exported spans were accepted by every exporter.
	Exported Reason = iota
	// QueueFull spans were the oldest in a full export buffer when a
	// newer span arrived: dropped so that the newest are kept.
	QueueFull
	// Rejected spans were refused by the collector for good: a
	// non-retryable status (400, 500, gRPC InvalidArgument, ...) or an OTLP
	// partial success naming them.
	Rejected
	// ExportFailed spans were still failing with a retryable error, or still
	// waiting in the buffer, when the flush at exit ran out of time.
	ExportFailed
	// RingBufferFull events were lost in the kernel: the BPF ring buffer
	// was full when the probe submitted them.
	RingBufferFull
	// Invalid events could not be decoded into a span, or the span could
	// not be recorded.
	Invalid
	// InFlightLost calls ended without a start the BPF side recorded:
	// begun before the probes were attached, evicted from an in-flight map
	// (more calls in progress at once than it holds), or their entry run
	// skipped by the kernel.
	InFlightLost
	// Unsampled spans were not recorded: the caller's trace context was not
	// sampled, or the configured sampler (OTEL_TRACES_SAMPLER) said no.
	Unsampled
	// Discarded spans were recorded with OTEL_TRACES_EXPORTER=none: thrown
	// away as asked, not lost.
	Discarded
	// Spooled spans were left in the spool (--spool-dir) at exit, for the
	// next run to export: not lost. That run counts them again, as
	// recorded and by their outcome there.
	Spooled
	numReasons
)

var reasonNames = [numReasons]string{"exported", "queue_full", "rejected", "export_failed", "ring_buffer_full", "invalid", "in_flight_lost", "unsampled", "discarded", "spooled"}

// String returns the reason's name as log lines and metrics spell it.
func (r Reason) String() string {
	if r < 0 || r >= numReasons {
		return "unknown"
	}
	return reasonNames[r]
}

// Counts are the span counters of one traced process or of the whole
// tracer. A Counts made with Child adds everything it counts to its parent
// too, so the tracer's totals are exact sums of its processes'. The zero
// value is ready to use; it is safe for concurrent use.
type Counts struct {
	parent   *Counts
	recorded atomic.Int64
	n        [numReasons]atomic.Int64
}

// Child returns Counts whose additions also go to c.
func (c *Counts) Child() *Counts { return &Counts{parent: c} }

// Add counts n spans (or events) for reason r.
func (c *Counts) Add(r Reason, n int) {
	for ; c != nil; c = c.parent {
		c.n[r].Add(int64(n))
	}
}

// AddRecorded counts n spans handed to a Processor.
func (c *Counts) AddRecorded(n int) {
	for ; c != nil; c = c.parent {
		c.recorded.Add(int64(n))
	}
}

// Snapshot returns the current counts. Outcomes are read before Recorded,
// so Pending is never negative while spans are in flight.
func (c *Counts) Snapshot() Snapshot {
	var s Snapshot
	for r := range numReasons {
		s.By[r] = c.n[r].Load()
	}
	s.Recorded = c.recorded.Load()
	return s
}

// Snapshot is a reading of Counts.
type Snapshot struct {
	// Recorded spans were handed to the SDK's span processor.
	Recorded int64
	// By holds the count for each Reason.
	By [numReasons]int64
}

// Dropped is the number of spans and events lost for any reason.
func (s Snapshot) Dropped() int64 {
	var n int64
	for r := QueueFull; r < numReasons; r++ {
		if r != Unsampled && r != Discarded && r != Spooled {
			n += s.By[r]
		}
	}
	return n
}

// Pending is the number of recorded spans with no outcome yet: waiting in
// the export buffer or being exported. It is zero once the Processor has
// shut down: recorded = exported + queue_full + rejected + export_failed.
func (s Snapshot) Pending() int64 {
	return s.Recorded - s.By[Exported] - s.By[QueueFull] - s.By[Rejected] - s.By[ExportFailed] - s.By[Discarded] - s.By[Spooled]
}

// Attrs returns the counts as log attributes: spans (recorded), exported,
// pending, dropped (every loss, for tools that read one number), then one
// dropped_REASON per reason, unsampled and discarded.
func (s Snapshot) Attrs() []any {
	attrs := []any{
		slog.Int64("spans", s.Recorded),
		slog.Int64("exported", s.By[Exported]),
		slog.Int64("pending", s.Pending()),
		slog.Int64("dropped", s.Dropped()),
	}
	for r := QueueFull; r < numReasons; r++ {
		if r == Unsampled || r == Discarded || r == Spooled {
			continue
		}
		attrs = append(attrs, slog.Int64("dropped_"+r.String(), s.By[r]))
	}
	attrs = append(attrs, slog.Int64("unsampled", s.By[Unsampled]), slog.Int64("discarded", s.By[Discarded]))
	if s.By[Spooled] > 0 {
		attrs = append(attrs, slog.Int64("spooled", s.By[Spooled]))
	}
	return attrs
}
