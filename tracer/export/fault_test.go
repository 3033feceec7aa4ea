package export_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/offsetdb/offsetdb/tracer/export"
	"github.com/offsetdb/offsetdb/tracer/spans"
)

// fault is how the faulty collector answers an export request.
type fault int

const (
	healthy     fault = iota
	down              // nothing listens: connection refused
	unavailable       // 503
	throttled         // 429 with Retry-After: 1
	slow              // answers after collector.slowBy
	reset             // closes the connection without an answer
	badRequest        // 400: the collector will never take these spans
	partial           // 200 with a partial success rejecting collector.rejectPer spans of each request
)

func (f fault) String() string {
	return [...]string{"healthy", "down", "503", "429+Retry-After", "slow", "connection reset", "400", "partial success"}[f]
}

// collector is a real OTLP/HTTP trace receiver whose answers a test
// switches between healthy and a fault. It counts distinct span IDs: an
// export the client gave up on after the collector took it is sent again,
// and must not be counted twice.
type collector struct {
	t    testing.TB
	addr string
	srv  *http.Server

	mu        sync.Mutex
	fault     fault
	ids       map[trace.SpanID]bool
	answered  map[fault]int // requests answered with each fault
	slowBy    time.Duration
	rejectPer int
}

func newCollector(t testing.TB) *collector {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	c := &collector{t: t, addr: ln.Addr().String(), ids: map[trace.SpanID]bool{}, answered: map[fault]int{}, slowBy: 300 * time.Millisecond, rejectPer: 1}
	c.listen(ln)
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.srv != nil {
			_ = c.srv.Close()
		}
	})
	return c
}

// listen serves on ln with a new server. The caller holds c.mu, or is
// newCollector.
func (c *collector) listen(ln net.Listener) {
	// OTLP/gRPC is served over the same port by grpc-go's ServeHTTP, with
	// HTTP/2 without TLS, so that down and slow work alike for both.
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	gs := grpc.NewServer()
	ptraceotlp.RegisterGRPCServer(gs, &grpcCollector{c: c})
	srv := &http.Server{Protocols: protocols, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			gs.ServeHTTP(w, r)
			return
		}
		c.serve(w, r)
	})}
	c.srv = srv
	go func() { _ = srv.Serve(ln) }()
}

func (c *collector) endpoint() string { return "http://" + c.addr }

// set switches the collector to f. Down closes the listener and every
// connection; leaving it listens again on the same port.
func (c *collector) set(f fault) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f == down && c.srv != nil {
		require.NoError(c.t, c.srv.Close())
		c.srv = nil
	}
	if f != down && c.srv == nil {
		ln, err := net.Listen("tcp", c.addr)
		require.NoError(c.t, err)
		c.listen(ln)
	}
	c.fault = f
}

func (c *collector) received() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ids)
}

// grpcCollector is the OTLP/gRPC face of a collector.
type grpcCollector struct {
	ptraceotlp.UnimplementedGRPCServer
	c *collector
}

// Export answers one OTLP/gRPC export as the collector's fault says.
func (g *grpcCollector) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	c := g.c
	c.mu.Lock()
	f, slowBy, rejectPer := c.fault, c.slowBy, c.rejectPer
	c.answered[f]++
	c.mu.Unlock()
	resp := ptraceotlp.NewExportResponse()
	switch f {
	case unavailable:
		return resp, status.Error(codes.Unavailable, "collector unavailable")
	case throttled:
		st, err := status.New(codes.ResourceExhausted, "slow down").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)})
		require.NoError(c.t, err)
		return resp, st.Err()
	case badRequest:
		return resp, status.Error(codes.InvalidArgument, "bad request")
	case slow:
		time.Sleep(slowBy)
	}
	c.take(req, f, rejectPer)
	if f == partial {
		resp.PartialSuccess().SetRejectedSpans(int64(rejectPer))
		resp.PartialSuccess().SetErrorMessage("span too large")
	}
	return resp, nil
}

// take stores the span IDs of req, less the rejected ones of a partial
// success.
func (c *collector) take(req ptraceotlp.ExportRequest, f fault, rejectPer int) {
	td := req.Traces()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		ss := td.ResourceSpans().At(i).ScopeSpans()
		for j := 0; j < ss.Len(); j++ {
			spans := ss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				if f == partial && k >= spans.Len()-rejectPer {
					continue // rejected: not stored
				}
				c.ids[trace.SpanID(spans.At(k).SpanID())] = true
			}
		}
	}
}

func (c *collector) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	c.mu.Lock()
	f, slowBy, rejectPer := c.fault, c.slowBy, c.rejectPer
	c.answered[f]++
	c.mu.Unlock()
	switch f {
	case unavailable:
		http.Error(w, "collector unavailable", http.StatusServiceUnavailable)
		return
	case throttled:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "slow down", http.StatusTooManyRequests)
		return
	case badRequest:
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	case reset:
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.(*net.TCPConn).SetLinger(0) // RST, not FIN
			_ = conn.Close()
		}
		return
	case slow:
		time.Sleep(slowBy)
	}
	req := ptraceotlp.NewExportRequest()
	if !assert.NoError(c.t, req.UnmarshalProto(body)) {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	resp := ptraceotlp.NewExportResponse()
	c.take(req, f, rejectPer)
	if f == partial {
		resp.PartialSuccess().SetRejectedSpans(int64(rejectPer))
		resp.PartialSuccess().SetErrorMessage("span too large")
	}
	out, err := resp.MarshalProto()
	require.NoError(c.t, err)
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// faultRun is one run of spans at a fixed rate through a real
// TracerProvider and OTLP/HTTP exporter to a collector that fails for a
// while in the middle.
type faultRun struct {
	rate           int           // spans per second
	before, during time.Duration // healthy, then faulty
	total          time.Duration // spans are sent until then; the fault ends before, or not
	buffer         export.BufferOptions
	flush          time.Duration // the shutdown budget
	fault          fault
	collectorSetup func(*collector)
	sent           int
	counts         *export.Counts
	log            bytes.Buffer
	coll           *collector
	shutdownErr    error
	// provider, when set, builds the TracerProvider instead of
	// export.NewTracerProvider: the SDK's own batch processor, for the
	// before/after benchmark.
	provider func() *sdktrace.TracerProvider
	// grpc exports over OTLP/gRPC instead of OTLP/HTTP.
	grpc bool
	// measureHeap records, in heapAtFaultEnd, the Go heap in use when the
	// fault ends: what the buffer holds through the outage.
	measureHeap    bool
	heapAtFaultEnd uint64
	// otlpTimeout is OTEL_EXPORTER_OTLP_TIMEOUT in ms; "2000" when empty.
	otlpTimeout string
	// parent, when set, is the tracer's totals: counts is its child.
	parent *export.Counts
}

func (r *faultRun) run(t testing.TB) {
	t.Helper()
	r.coll = newCollector(t)
	if r.collectorSetup != nil {
		r.collectorSetup(r.coll)
	}
	timeout := r.otlpTimeout
	if timeout == "" {
		timeout = "2000"
	}
	protocol := "http/protobuf"
	if r.grpc {
		protocol = "grpc"
	}
	setEnv(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": r.coll.endpoint(), "OTEL_EXPORTER_OTLP_TIMEOUT": timeout, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol})
	r.counts = new(export.Counts)
	if r.parent != nil {
		r.counts = r.parent.Child()
	}
	log := slog.New(slog.NewTextHandler(&r.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tp, err := export.NewTracerProvider(context.Background(), export.Options{ServiceName: "fault", Counts: r.counts, Buffer: r.buffer, Log: log})
	require.NoError(t, err)
	if r.provider != nil {
		tp = r.provider()
	}
	rec, err := spans.NewRecorder(tp)
	require.NoError(t, err)

	// Every 10 ms, the spans due by then: the rate holds even when a tick
	// comes late on a busy machine.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	faultOn, faultOff := false, false
	for now := range tick.C {
		el := now.Sub(start)
		if !faultOn && el >= r.before {
			r.coll.set(r.fault)
			faultOn = true
		}
		if !faultOff && el >= r.before+r.during {
			if r.measureHeap {
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				r.heapAtFaultEnd = ms.HeapInuse
			}
			r.coll.set(healthy)
			faultOff = true
		}
		if el >= r.total {
			break
		}
		for due := int(el.Seconds() * float64(r.rate)); r.sent < due; {
			r.sent++
			s := spans.Span{Name: "GET /x", Kind: trace.SpanKindServer, Start: now, End: now}
			binary.BigEndian.PutUint64(s.TraceID[:8], uint64(r.sent))
			binary.BigEndian.PutUint64(s.TraceID[8:], uint64(r.sent))
			binary.BigEndian.PutUint64(s.SpanID[:], uint64(r.sent))
			require.NoError(t, rec.Record(&s))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.flush)
	defer cancel()
	r.shutdownErr = tp.Shutdown(ctx)
}

// accountedFor checks the invariant every fault must keep: every span
// sent was recorded, and is either received by the collector or counted as
// dropped for a reason, exactly.
func (r *faultRun) accountedFor(t *testing.T) export.Snapshot {
	t.Helper()
	s := r.counts.Snapshot()
	assert.EqualValues(t, r.sent, s.Recorded, "every span sent is recorded")
	assert.Zero(t, s.Pending(), "nothing pending after shutdown")
	assert.EqualValues(t, r.coll.received(), s.By[export.Exported], "exported = received by the collector")
	assert.EqualValues(t, r.sent, int64(r.coll.received())+s.By[export.QueueFull]+s.By[export.Rejected]+s.By[export.ExportFailed]+s.By[export.Spooled],
		"sent = received + queue_full + rejected + export_failed + spooled; log:\n%s", r.log.String())
	return s
}

// fastRetry scales the retry pauses down so that a test's outage lasts
// seconds, not minutes.
var fastRetry = export.BufferOptions{Delay: 50 * time.Millisecond, RetryInitial: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond, ExportTimeout: 3 * time.Second}

func TestProcessorLosesNothingThroughCollectorFaults(t *testing.T) {
	for _, f := range []fault{down, unavailable, throttled, slow, reset} {
		t.Run(f.String(), func(t *testing.T) {
			r := &faultRun{rate: 1000, before: 300 * time.Millisecond, during: 1200 * time.Millisecond, total: (300 * time.Millisecond) + (1200 * time.Millisecond) + (300 * time.Millisecond),
				buffer: fastRetry, flush: 10 * time.Second, fault: f}
			r.run(t)
			require.NoError(t, r.shutdownErr)
			s := r.accountedFor(t)
			assert.Zero(t, s.Dropped(), "a fault shorter than the buffer loses nothing")
			assert.EqualValues(t, r.sent, r.coll.received())
			if f == down {
				assert.Contains(t, r.log.String(), "export failed: keeping the spans", "the first failure is logged")
				assert.Contains(t, r.log.String(), "export recovered", "the recovery is logged")
			}
		})
	}
}

func TestProcessorHonoursRetryAfter(t *testing.T) {
	r := &faultRun{rate: 200, before: 100 * time.Millisecond, during: 300 * time.Millisecond, total: (100 * time.Millisecond) + (300 * time.Millisecond) + (1500 * time.Millisecond),
		buffer: fastRetry, flush: 10 * time.Second, fault: throttled}
	r.run(t)
	require.NoError(t, r.shutdownErr)
	r.accountedFor(t)
	r.coll.mu.Lock()
	defer r.coll.mu.Unlock()
	// Each worker that got 429 with Retry-After: 1 waits a second before
	// its next request, so the 300 ms of throttling see at most one request
	// per worker (4); with the backoff alone (50 to 200 ms) each would
	// send several.
	assert.Positive(t, r.coll.answered[throttled])
	assert.LessOrEqual(t, r.coll.answered[throttled], export.DefaultConcurrency)
}

func TestProcessorDropsOldestBeyondTheBoundAndCountsThem(t *testing.T) {
	buf := fastRetry
	buf.MaxQueue = 200
	r := &faultRun{rate: 1000, before: 100 * time.Millisecond, during: time.Second, total: (100 * time.Millisecond) + (time.Second) + (200 * time.Millisecond),
		buffer: buf, flush: 10 * time.Second, fault: down}
	r.run(t)
	require.NoError(t, r.shutdownErr)
	s := r.accountedFor(t)
	assert.Greater(t, s.By[export.QueueFull], int64(300), "an outage of 1,000 spans overflows a 200-span buffer")
	assert.Contains(t, r.log.String(), "export buffer full: dropping the oldest spans")
	// The newest spans survive: the last one sent was received.
	r.coll.mu.Lock()
	defer r.coll.mu.Unlock()
	var last trace.SpanID
	binary.BigEndian.PutUint64(last[:], uint64(r.sent))
	assert.True(t, r.coll.ids[last], "the newest span is kept")
}

func TestProcessorCountsRejectedSpans(t *testing.T) {
	for _, tt := range []struct {
		fault   fault
		logText string
	}{
		{badRequest, "400 Bad Request"},
		{partial, "span too large"},
	} {
		t.Run(tt.fault.String(), func(t *testing.T) {
			r := &faultRun{rate: 500, before: 100 * time.Millisecond, during: 500 * time.Millisecond, total: (100 * time.Millisecond) + (500 * time.Millisecond) + (200 * time.Millisecond),
				buffer: fastRetry, flush: 10 * time.Second, fault: tt.fault}
			r.run(t)
			require.NoError(t, r.shutdownErr)
			s := r.accountedFor(t)
			assert.Positive(t, s.By[export.Rejected])
			assert.Zero(t, s.By[export.ExportFailed]+s.By[export.QueueFull])
			assert.Contains(t, r.log.String(), "collector rejected spans")
			assert.Contains(t, r.log.String(), tt.logText)
		})
	}
}

func TestProcessorCountsWhatTheFlushDeadlineCutsOff(t *testing.T) {
	r := &faultRun{rate: 1000, before: 100 * time.Millisecond, during: time.Hour, total: 500 * time.Millisecond,
		buffer: fastRetry, flush: 300 * time.Millisecond, fault: down}
	r.run(t)
	require.Error(t, r.shutdownErr)
	assert.Contains(t, r.shutdownErr.Error(), "not exported (counted as dropped_export_failed)")
	s := r.accountedFor(t)
	assert.Positive(t, s.By[export.ExportFailed])
}

// BenchmarkLossUnderFaults measures, for each collector fault, the share of
// spans lost at 1,000 spans/s through the SDK's BatchSpanProcessor with the
// OTLP exporter's default retry (how the tracer exported before) and
// through the Processor with its defaults (after). The fault lasts
// OFFSETDB_FAULT_SECONDS (default 5; 60 for the figure) after 5 s
// of healthy traffic and is followed by 30 s more; then the flush gets the
// tracer's 5 s budget. "slow" answers each export after 2 s. It reports
// lost_%_before, lost_%_after and, after, the spans counted as dropped
// (equal to those lost: nothing is lost silently), and the Go heap in use
// when the fault ends (the spans held through it). Run it with
// -benchtime=1x -timeout 0: one iteration is one run per fault and side.
func BenchmarkLossUnderFaults(b *testing.B) {
	faultFor := 5 * time.Second
	if v := os.Getenv("OFFSETDB_FAULT_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(b, err, "OFFSETDB_FAULT_SECONDS")
		faultFor = time.Duration(n) * time.Second
	}
	for _, f := range []fault{down, unavailable, throttled, slow, reset} {
		b.Run(f.String(), func(b *testing.B) {
			for range b.N {
				for _, before := range []bool{true, false} {
					r := &faultRun{rate: 1000, before: 5 * time.Second, during: faultFor, total: faultFor + 35*time.Second,
						flush: 5 * time.Second, fault: f, otlpTimeout: "10000", collectorSetup: func(c *collector) { c.slowBy = 2 * time.Second }}
					if before {
						r.provider = func() *sdktrace.TracerProvider {
							e, err := otlptracehttp.New(context.Background())
							require.NoError(b, err)
							return sdktrace.NewTracerProvider(sdktrace.WithIDGenerator(spans.IDGenerator()), sdktrace.WithBatcher(e))
						}
					}
					r.measureHeap = true
					r.run(b)
					lost := 100 * float64(r.sent-r.coll.received()) / float64(r.sent)
					name := "lost_%_after"
					if before {
						name = "lost_%_before"
					} else {
						s := r.counts.Snapshot()
						b.ReportMetric(float64(s.Dropped()), "counted_drops_after")
						b.ReportMetric(float64(r.sent-r.coll.received())-float64(s.Dropped()), "uncounted_losses_after")
					}
					b.ReportMetric(lost, name)
					b.ReportMetric(float64(r.heapAtFaultEnd)/(1<<20), strings.Replace(name, "lost_%", "heap_MiB_at_fault_end", 1))
				}
			}
		})
	}
}

// TestProcessorThroughGRPCFaults: the same accounting over OTLP/gRPC:
// Unavailable and ResourceExhausted with RetryInfo are retried until the
// collector takes the spans; InvalidArgument and a partial success are
// counted as rejected; a collector that is down loses nothing.
func TestProcessorThroughGRPCFaults(t *testing.T) {
	for _, tt := range []struct {
		name     string
		fault    fault
		rejected bool
	}{
		{"down", down, false}, {"Unavailable", unavailable, false}, {"ResourceExhausted with RetryInfo", throttled, false},
		{"InvalidArgument", badRequest, true}, {"partial success", partial, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &faultRun{rate: 1000, before: 200 * time.Millisecond, during: 800 * time.Millisecond, total: 1300 * time.Millisecond,
				buffer: fastRetry, flush: 10 * time.Second, fault: tt.fault, grpc: true}
			r.run(t)
			require.NoError(t, r.shutdownErr)
			s := r.accountedFor(t)
			if tt.fault != down {
				assert.Positive(t, r.coll.answered[tt.fault], "the fault was met")
			}
			if tt.rejected {
				assert.Positive(t, s.By[export.Rejected])
				assert.Contains(t, r.log.String(), "collector rejected spans")
			} else {
				assert.Zero(t, s.Dropped(), "log:\n%s", r.log.String())
			}
		})
	}
}

// TestCountsAddUpWithoutExport: with OTEL_TRACES_EXPORTER=none or
// OTEL_SDK_DISABLED=true the spans are recorded and counted as discarded,
// not lost.
func TestCountsAddUpWithoutExport(t *testing.T) {
	for _, env := range []map[string]string{{"OTEL_TRACES_EXPORTER": "none"}, {"OTEL_SDK_DISABLED": "true"}} {
		setEnv(t, env)
		counts := new(export.Counts)
		tp, err := export.NewTracerProvider(context.Background(), export.Options{ServiceName: "none", Counts: counts})
		require.NoError(t, err)
		recordAndShutdown(t, tp)
		s := counts.Snapshot()
		assert.EqualValues(t, 2, s.Recorded, "%v", env)
		assert.EqualValues(t, 2, s.By[export.Discarded], "%v", env)
		assert.Zero(t, s.Pending(), "%v", env)
		assert.Zero(t, s.Dropped(), "%v", env)
	}
}
