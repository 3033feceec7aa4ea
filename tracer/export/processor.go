package export

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Defaults of BufferOptions. MaxQueue holds a minute of 1,000 spans/s, the
// outage the tracer is specified to survive without loss (~1 KiB per span
// while the collector is away, nothing when it is up). RetryMax is short
// so that a collector that comes back is used within seconds: the buffer,
// not the pause, is what bounds the cost of an outage.
const (
	DefaultMaxQueue      = 65536
	DefaultBatchSize     = 512
	DefaultDelay         = 5 * time.Second
	DefaultExportTimeout = 30 * time.Second
	DefaultConcurrency   = 4
	DefaultRetryInitial  = time.Second
	DefaultRetryMax      = 5 * time.Second
)

// BufferOptions tune a Processor. A zero field takes its default; Fill
// reads OTEL_BSP_* for the ones the specification defines.
type BufferOptions struct {
	// MaxQueue bounds the spans waiting for export (in the buffer, not
	// counting the batches being exported). When a span arrives at a full
	// buffer the oldest is dropped and counted as QueueFull.
	MaxQueue int
	// BatchSize is the most spans one export carries.
	BatchSize int
	// Delay is the longest a span waits for its batch to fill.
	Delay time.Duration
	// ExportTimeout bounds one export, the exporter's own retries included.
	ExportTimeout time.Duration
	// Concurrency is how many exports may run at once, so that a slow
	// collector does not stall the buffer behind one request.
	Concurrency int
	// RetryInitial and RetryMax bound the pause after an export that
	// failed with a retryable error: it doubles from RetryInitial up to
	// RetryMax, with ±50 % jitter, and resets on the first success. The
	// OTLP exporters retry within one export too (honouring Retry-After);
	// this pause is for the failures they give up on or do not retry,
	// such as connection refused.
	RetryInitial, RetryMax time.Duration
	// Spool, when set, takes the spans beyond MaxQueue to disk instead of
	// dropping them, and keeps what is left at shutdown for the next run
	// (see Spool). Only an OTLP exporter's processor gets it.
	Spool *Spool
}

func (o BufferOptions) withDefaults() BufferOptions {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxQueue, DefaultMaxQueue)
	def(&o.BatchSize, DefaultBatchSize)
	def(&o.Concurrency, DefaultConcurrency)
	defDur(&o.Delay, DefaultDelay)
	defDur(&o.ExportTimeout, DefaultExportTimeout)
	defDur(&o.RetryInitial, DefaultRetryInitial)
	defDur(&o.RetryMax, DefaultRetryMax)
	o.RetryMax = max(o.RetryMax, o.RetryInitial)
	return o
}

// Processor is the tracer's span processor: a bounded buffer in front of an
// exporter that keeps spans while the collector is unreachable and accounts
// for every span it is given.
//
// It replaces the SDK's BatchSpanProcessor, which drops the newest span
// when its queue is full, exports one batch at a time, and gives up on a
// batch after one failed export, all without counting. Here a failed
// export with a retryable error (see classify) puts its batch back at the
// front of the buffer and pauses exports with exponential backoff; the
// buffer drops its oldest spans, counted, only beyond MaxQueue; up to
// Concurrency exports run at once. Every span given to OnEnd is counted
// once as recorded and, by the time Shutdown returns, once as Exported,
// QueueFull, Rejected or ExportFailed.
type Processor struct {
	exporter sdktrace.SpanExporter
	opts     BufferOptions
	counts   *Counts
	log      *slog.Logger

	mu       sync.Mutex
	queue    deque
	inflight int  // spans taken by workers and not yet counted
	flushing int  // ForceFlush calls waiting: send partial batches at once
	closed   bool // Shutdown started: drain, then stop
	aborted  bool // Shutdown ran out of time: count the rest as failed
	lastTake time.Time
	changed  chan struct{} // closed and replaced on every change workers or flushers wait for

	// Retry state, shared by the workers: the collector is one.
	failures    int       // consecutive failed exports
	failingFrom time.Time // first failure of the current run
	retryAt     time.Time // no export starts before this
	fullLogged  bool      // "buffer full" logged in this outage
	spooling    bool      // "keeping spans in the spool" logged in this outage

	abortedInFlight int // spans counted as ExportFailed when their export came back after the abort

	exportCtx     context.Context
	cancelExports context.CancelFunc
	workers       sync.WaitGroup
}

var _ sdktrace.SpanProcessor = (*Processor)(nil)

// NewProcessor starts a Processor exporting through exporter and counting
// into counts; log receives export failures, recoveries and losses, each
// with the number of spans it concerns.
func NewProcessor(exporter sdktrace.SpanExporter, opts BufferOptions, counts *Counts, log *slog.Logger) *Processor {
	p := &Processor{exporter: exporter, opts: opts.withDefaults(), counts: counts, log: log,
		changed: make(chan struct{}), lastTake: time.Now()}
	p.exportCtx, p.cancelExports = context.WithCancel(context.Background())
	for range p.opts.Concurrency {
		p.workers.Add(1)
		go p.work()
	}
	return p
}

// OnStart does nothing: spans are buffered when they end.
func (p *Processor) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd buffers s for export. At a full buffer the oldest span is dropped
// and counted as QueueFull. After Shutdown s is counted as ExportFailed.
func (p *Processor) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	p.counts.AddRecorded(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		p.counts.Add(ExportFailed, 1)
		return
	}
	p.queue.pushBack(s)
	p.trim()
	if p.queue.len() == p.opts.BatchSize {
		p.wake()
	}
}

// trim keeps the buffer within MaxQueue: its oldest spans go to the spool,
// a batch at a time, or without one (or when the spool fails) are dropped
// and counted as QueueFull. The caller holds p.mu.
func (p *Processor) trim() {
	over := p.queue.len() - p.opts.MaxQueue
	if over <= 0 {
		return
	}
	if p.opts.Spool != nil {
		spans := p.queue.popFront(min(p.queue.len(), max(over, p.opts.BatchSize)))
		err := p.opts.Spool.put(p.counts, spans)
		if err == nil {
			if !p.spooling {
				p.spooling = true
				p.log.Warn("export buffer full: keeping the oldest spans in the spool until the collector answers", "max_queue", p.opts.MaxQueue, "spool", p.opts.Spool.Dir())
			}
			return
		}
		p.log.Error("spool: cannot keep spans on disk (counted as dropped_queue_full)", "spans", len(spans), "err", err)
		p.counts.Add(QueueFull, len(spans))
		return
	}
	p.queue.dropFront(over)
	p.counts.Add(QueueFull, over)
	p.logFull()
}

// logFull logs the first drop of an outage. The caller holds p.mu.
func (p *Processor) logFull() {
	if p.fullLogged {
		return
	}
	p.fullLogged = true
	p.log.Warn("export buffer full: dropping the oldest spans (counted as dropped_queue_full)", "max_queue", p.opts.MaxQueue, "inflight", p.inflight)
}

// wake tells waiting workers and flushers that something changed. The
// caller holds p.mu.
func (p *Processor) wake() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// ForceFlush exports every span buffered or in flight, and returns when
// none is left or ctx is done (then with ctx's error and the number of
// spans still pending).
func (p *Processor) ForceFlush(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flushing++
	p.wake()
	defer func() { p.flushing-- }()
	for p.queue.len() > 0 || p.inflight > 0 || p.spooled() {
		if p.aborted {
			return nil
		}
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
			p.mu.Lock()
		case <-ctx.Done():
			p.mu.Lock()
			return fmt.Errorf("flush: %d spans still pending: %w", p.queue.len()+p.inflight, context.Cause(ctx))
		}
	}
	return nil
}

// spooled reports whether the processor has spans in the spool.
func (p *Processor) spooled() bool {
	return p.opts.Spool != nil && p.opts.Spool.has(p.counts)
}

// Shutdown exports what is left, as ForceFlush, then stops the workers and
// shuts the exporter down. When ctx is done first, the exports in flight
// are cancelled and every span not exported is counted as ExportFailed —
// or, with a spool, written to it and counted as Spooled, for the next
// run; the error says how many.
func (p *Processor) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.wake()
	p.mu.Unlock()

	flushErr := p.ForceFlush(ctx)
	var lost int
	if flushErr != nil {
		p.mu.Lock()
		p.aborted = true
		lost = p.keep(p.queue.popFront(p.queue.len()))
		p.counts.Add(ExportFailed, lost)
		p.wake()
		p.mu.Unlock()
		p.cancelExports()
	}
	p.workers.Wait()
	p.cancelExports()
	p.mu.Lock()
	lost += p.abortedInFlight
	p.mu.Unlock()
	var handed, kept int
	if p.opts.Spool != nil {
		handed, kept = p.opts.Spool.release(p.counts)
		p.counts.Add(Spooled, kept)
	}

	// The exporter's Shutdown only closes connections; give it a moment
	// even when ctx is done.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	err := p.exporter.Shutdown(sctx)
	if flushErr != nil && lost == 0 && handed > 0 {
		return errors.Join(fmt.Errorf("%w: %d spans left in %s for the tracer to export (pending here)", ErrKeptInSpool, handed, p.opts.Spool.Dir()), err)
	}
	if flushErr != nil && lost == 0 && p.opts.Spool != nil {
		return errors.Join(fmt.Errorf("%w: %d spans kept in %s for the next run (counted as spooled)", ErrKeptInSpool, kept, p.opts.Spool.Dir()), err)
	}
	if flushErr != nil {
		return errors.Join(fmt.Errorf("%d spans not exported (counted as dropped_export_failed): %w", lost, flushErr), err)
	}
	return err
}

// keep writes spans the processor gives up on at shutdown to the spool, if
// it has one, in batches; they are counted as Spooled when the spool is
// released. It returns how many could not be kept, for the caller to
// count. The caller holds p.mu.
func (p *Processor) keep(spans []sdktrace.ReadOnlySpan) (failed int) {
	if p.opts.Spool == nil {
		return len(spans)
	}
	for len(spans) > 0 {
		n := min(len(spans), p.opts.BatchSize)
		if err := p.opts.Spool.put(p.counts, spans[:n]); err != nil {
			p.log.Error("spool: cannot keep spans on disk (counted as dropped_export_failed)", "spans", len(spans), "err", err)
			return len(spans)
		}
		spans = spans[n:]
	}
	return 0
}

// work is one export worker: it takes batches and exports them until the
// processor is drained after Shutdown, or aborted.
func (p *Processor) work() {
	defer p.workers.Done()
	for {
		batch := p.take()
		if batch == nil {
			return
		}
		p.export(batch)
	}
}

// take waits for a batch to export: a full one, or whatever is buffered
// once Delay has passed since the last take, or at once while flushing.
// It also waits out the retry pause. It returns nil when the worker
// should stop.
func (p *Processor) take() []sdktrace.ReadOnlySpan {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if p.aborted || (p.closed && p.queue.len() == 0 && p.inflight == 0 && !p.spooled()) {
			return nil
		}
		now := time.Now()
		n := p.queue.len()
		due := p.lastTake.Add(p.opts.Delay)
		spooled := p.spooled()
		ready := spooled || n >= p.opts.BatchSize || (n > 0 && (p.flushing > 0 || p.closed || !now.Before(due)))
		var wait time.Duration
		switch {
		case ready && now.Before(p.retryAt):
			wait = p.retryAt.Sub(now)
		case spooled:
			// The spool holds the oldest spans: they go first.
			batch, uncounted := p.opts.Spool.take(p.counts)
			if batch == nil {
				continue
			}
			if uncounted {
				p.counts.AddRecorded(len(batch))
			}
			p.inflight += len(batch)
			p.lastTake = now
			return batch
		case ready:
			batch := p.queue.popFront(min(n, p.opts.BatchSize))
			p.inflight += len(batch)
			p.lastTake = now
			return batch
		case n > 0:
			wait = due.Sub(now)
		default:
			wait = p.opts.Delay
		}
		changed := p.changed
		p.mu.Unlock()
		timer := time.NewTimer(wait)
		select {
		case <-changed:
		case <-timer.C:
		}
		timer.Stop()
		p.mu.Lock()
	}
}

// export sends one batch and counts or requeues its spans.
func (p *Processor) export(batch []sdktrace.ReadOnlySpan) {
	ctx, cancel := context.WithTimeout(p.exportCtx, p.opts.ExportTimeout)
	err := p.exporter.ExportSpans(ctx, batch)
	cancel()

	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.wake()
	p.inflight -= len(batch)
	n := len(batch)
	if err == nil {
		p.counts.Add(Exported, n)
		p.succeeded()
		return
	}
	o := classify(err, n)
	switch {
	case o.retry && p.aborted:
		failed := p.keep(batch)
		p.counts.Add(ExportFailed, failed)
		p.abortedInFlight += failed
	case o.retry:
		p.failed(err, n)
		// The batch is older than anything buffered: back to the front,
		// and if that overflows the buffer its oldest spans go.
		p.queue.pushFront(batch)
		p.trim()
	default:
		p.counts.Add(Rejected, o.rejected)
		p.counts.Add(Exported, n-o.rejected)
		p.succeeded()
		if o.rejected > 0 {
			p.log.Error("collector rejected spans (counted as dropped_rejected)", "spans", o.rejected, "batch", n, "err", err)
		}
	}
}

// succeeded ends a run of failures. The caller holds p.mu.
func (p *Processor) succeeded() {
	if p.failures > 0 {
		p.log.Info("export recovered", "failed_for", time.Since(p.failingFrom).Round(time.Millisecond),
			"failed_exports", p.failures, "buffered", p.queue.len())
	}
	p.failures = 0
	p.retryAt = time.Time{}
	p.fullLogged = false
	p.spooling = false
}

// failed records a retryable failure of n spans and sets the pause before
// the next export. The caller holds p.mu.
func (p *Processor) failed(err error, n int) {
	if p.failures == 0 {
		p.failingFrom = time.Now()
		p.log.Warn("export failed: keeping the spans and retrying until the collector answers", "spans", n,
			"buffered", p.queue.len(), "max_queue", p.opts.MaxQueue, "err", err)
	} else {
		p.log.Debug("export failed again", "spans", n, "buffered", p.queue.len(), "failures", p.failures+1, "err", err)
	}
	p.failures++
	pause := p.opts.RetryInitial << min(p.failures-1, 20)
	pause = min(pause, p.opts.RetryMax)
	pause = time.Duration(float64(pause) * (0.5 + rand.Float64())) // ±50 % jitter
	p.retryAt = time.Now().Add(pause)
}

// deque is a ring buffer of spans that grows as needed.
type deque struct {
	buf        []sdktrace.ReadOnlySpan
	head, size int
}

func (d *deque) len() int { return d.size }

func (d *deque) grow(need int) {
	if need <= len(d.buf) {
		return
	}
	buf := make([]sdktrace.ReadOnlySpan, max(need, 2*len(d.buf), 64))
	for i := range d.size {
		buf[i] = d.buf[(d.head+i)%len(d.buf)]
	}
	d.buf, d.head = buf, 0
}

func (d *deque) pushBack(s sdktrace.ReadOnlySpan) {
	d.grow(d.size + 1)
	d.buf[(d.head+d.size)%len(d.buf)] = s
	d.size++
}

// pushFront puts spans, in order, before the first.
func (d *deque) pushFront(spans []sdktrace.ReadOnlySpan) {
	d.grow(d.size + len(spans))
	for i := len(spans) - 1; i >= 0; i-- {
		d.head = (d.head - 1 + len(d.buf)) % len(d.buf)
		d.buf[d.head] = spans[i]
	}
	d.size += len(spans)
}

// popFront removes and returns the first n spans.
func (d *deque) popFront(n int) []sdktrace.ReadOnlySpan {
	out := make([]sdktrace.ReadOnlySpan, n)
	for i := range n {
		out[i] = d.buf[d.head]
		d.buf[d.head] = nil
		d.head = (d.head + 1) % len(d.buf)
	}
	d.size -= n
	return out
}

// dropFront removes the first n spans.
func (d *deque) dropFront(n int) {
	for range n {
		d.buf[d.head] = nil
		d.head = (d.head + 1) % len(d.buf)
	}
	d.size -= n
}
