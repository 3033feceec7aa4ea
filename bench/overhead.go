package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// An arm is one way of running the example service: untraced, or under the
// tracer with a given exporter.
type arm struct {
	Name string   `json:"name"`
	Env  []string `json:"env,omitempty"` // tracer environment; nil for the untraced arm
	// Target, when set, replaces "--pid SERVICE" as the tracer's target
	// arguments, and Attach is how many processes it must attach to.
	Target []string `json:"-"`
	Attach int      `json:"-"`
	// Flags are tracer flags put before the target arguments.
	Flags []string `json:"flags,omitempty"`
}

func (a arm) traced() bool { return a.Env != nil }

// armRun is what one run of one arm measured.
type armRun struct {
	Requests  float64 // completed requests
	PerSecond float64
	P50, P99  float64 // ms, fixed-rate runs only
	LagP99    float64 // ms, fixed-rate runs: how late the generator sent
	Errors    float64
	TracerCPU float64 // seconds used by the tracer during the load only
	// ServiceUser and ServiceSys are the service's CPU seconds during the
	// load; uprobe traps and the BPF programs run in its threads, as system time.
	ServiceUser, ServiceSys float64
	TracerSwitches          float64 // tracer context switches during the load
	Spans                   float64
	Dropped                 float64
	// KafkaWritten is the records the context writer gave a traceparent
	// (the tracer's exit log's kafka_written).
	KafkaWritten float64
}

// SaturationRoute is the throughput of one route at saturation, traced
// against untraced, and what the tracer spent on it.
type SaturationRoute struct {
	Route           string `json:"route"`
	SpansPerRequest int    `json:"spans_per_request"`
	Load            string `json:"load"`
	// PerSecond holds each arm's requests/s per pair; Ratio each traced
	// arm's requests/s over the untraced run of the same pair.
	PerSecond map[string]Spread `json:"requests_per_second"`
	Ratio     map[string]Spread `json:"throughput_ratio"`
	// TracerCPUPer1k is the tracer's CPU time (ms) per 1000 requests.
	TracerCPUPer1k map[string]Spread `json:"tracer_cpu_ms_per_1k_requests"`
	// ServiceUserPer1k and ServiceSysPer1k are the service's own user and
	// system CPU time (ms) per 1000 requests, every arm: the probes' cost
	// lands in the traced arms' system time.
	ServiceUserPer1k map[string]Spread `json:"service_user_cpu_ms_per_1k_requests"`
	ServiceSysPer1k  map[string]Spread `json:"service_sys_cpu_ms_per_1k_requests"`
	// TracerSwitchesPerSpan is the tracer's context switches per recorded
	// span: about 1 when the ring buffer wakes the reader for every event.
	TracerSwitchesPerSpan map[string]Spread `json:"tracer_context_switches_per_span"`
	// SpansRecorded over SpansPerRequest × requests: 1 when every request
	// became its spans.
	SpanCompleteness map[string]Spread `json:"span_completeness"`
	Dropped          map[string]uint64 `json:"dropped"`
	// Exported counts the spans the in-run OTLP sink received, of
	// ExportedOf the OTLP arm's tracer recorded.
	Exported   uint64 `json:"otlp_spans_received,omitempty"`
	ExportedOf uint64 `json:"otlp_spans_recorded,omitempty"`
}

// FixedRateRoute is the latency of one route at a fixed request rate.
type FixedRateRoute struct {
	Route          string            `json:"route"`
	Rate           int               `json:"rate"`
	P50            map[string]Spread `json:"p50_ms"`
	P99            map[string]Spread `json:"p99_ms"`
	P50Delta       map[string]Spread `json:"p50_delta_ms"`
	P99Delta       map[string]Spread `json:"p99_delta_ms"`
	TracerCPUPer1k map[string]Spread `json:"tracer_cpu_ms_per_1k_requests"`
	Errors         map[string]uint64 `json:"errors"`
	// SendLagP99 is the p99 of how late the generator sent requests.
	SendLagP99 map[string]Spread `json:"send_lag_p99_ms"`
}

// Overhead is section 1: what tracing costs each request.
type Overhead struct {
	Pairs      int               `json:"pairs"`
	Duration   float64           `json:"run_seconds"`
	Arms       []arm             `json:"arms"`
	Saturation []SaturationRoute `json:"saturation"`
	FixedRate  []FixedRateRoute  `json:"fixed_rate"`
}

// spansPerRequest is how many spans one request to a route yields: /items/1
// is served (server span), calls /backend (client span), which the same
// service serves (server span).
func spansPerRequest(route string) int {
	if route == "/items/1" {
		return 3
	}
	return 1
}

// noneArm and otlpArm are the traced arms.
func noneArm() arm {
	return arm{Name: "traced (exporter none)", Env: []string{"OTEL_TRACES_EXPORTER=none"}}
}

func otlpArm(endpoint string) arm {
	return arm{Name: "traced (OTLP to in-run sink)", Env: []string{
		"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + endpoint,
	}}
}

var untracedArm = arm{Name: "untraced"}

// withTracer runs load with the service traced per a (or not), and fills
// in what the service and the tracer spent during load only: CPU time from
// /proc/PID/stat, the tracer's context switches, and its span counters.
func (h *harness) withTracer(ctx context.Context, svc *service, a arm, load func(t *tracerSession) (armRun, error)) (armRun, error) {
	var t *tracerSession
	if a.traced() {
		var err error
		target, want := []string{"--pid", strconv.Itoa(svc.pid())}, 1
		if a.Target != nil {
			target, want = a.Target, a.Attach
		}
		t, err = startTracer(h.tracerBin, append(append([]string(nil), a.Flags...), target...), a.Env, want)
		if err != nil {
			return armRun{}, err
		}
		time.Sleep(300 * time.Millisecond) // let start-up work settle out of the CPU figures
	}
	type snapshot struct {
		svcUser, svcSys, tracer time.Duration
		switches                uint64
		err                     error
	}
	snap := func() (s snapshot) {
		s.svcUser, s.svcSys, s.err = cpuTime(svc.pid())
		if t != nil && s.err == nil {
			var u, k time.Duration
			u, k, s.err = cpuTime(t.pid())
			s.tracer = u + k
			if s.err == nil {
				s.switches, s.err = contextSwitches(t.pid())
			}
		}
		return s
	}
	before := snap()
	r, err := load(t)
	after := snap()
	if err == nil {
		err = firstErr(before.err, after.err)
	}
	if t != nil {
		st, stopErr := t.stop(ctx)
		if err == nil {
			err = stopErr
		}
		r.Spans, r.Dropped, r.KafkaWritten = float64(st.Spans), float64(st.Dropped), float64(st.KafkaWritten)
	}
	r.ServiceUser = (after.svcUser - before.svcUser).Seconds()
	r.ServiceSys = (after.svcSys - before.svcSys).Seconds()
	r.TracerCPU = (after.tracer - before.tracer).Seconds()
	r.TracerSwitches = float64(after.switches - before.switches)
	return r, err
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// alternate runs every arm once per pair, reversing the order on odd
// pairs, so slow drift (thermal, page cache, the service's heap) falls on
// both sides equally. It returns each arm's runs in pair order.
func alternate(pairs int, arms []arm, run func(a arm) (armRun, error)) (map[string][]armRun, error) {
	out := map[string][]armRun{}
	for p := range pairs {
		order := append([]arm(nil), arms...)
		if p%2 == 1 {
			for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
				order[i], order[j] = order[j], order[i]
			}
		}
		for _, a := range order {
			r, err := run(a)
			if err != nil {
				return nil, fmt.Errorf("%s, pair %d: %w", a.Name, p+1, err)
			}
			out[a.Name] = append(out[a.Name], r)
		}
	}
	return out, nil
}

func column(runs []armRun, f func(armRun) float64) []float64 {
	out := make([]float64, len(runs))
	for i, r := range runs {
		out[i] = f(r)
	}
	return out
}

// per1k is a CPU time of each run (seconds, picked by f) in ms per 1000 requests.
func per1k(runs []armRun, f func(armRun) float64) []float64 {
	return column(runs, func(r armRun) float64 {
		if r.Requests == 0 {
			return math.NaN()
		}
		return f(r) * 1000 / (r.Requests / 1000)
	})
}

func tracerCPU(r armRun) float64   { return r.TracerCPU }
func serviceUser(r armRun) float64 { return r.ServiceUser }
func serviceSys(r armRun) float64  { return r.ServiceSys }

// perSpan is the tracer's context switches per recorded span of each run.
func perSpan(runs []armRun) []float64 {
	return column(runs, func(r armRun) float64 {
		if r.Spans == 0 {
			return math.NaN()
		}
		return r.TracerSwitches / r.Spans
	})
}

func (h *harness) overhead(ctx context.Context) (*Overhead, error) {
	sink, err := startOTLPSink()
	if err != nil {
		return nil, err
	}
	defer sink.close()
	svc, err := startService(h.serviceBin)
	if err != nil {
		return nil, err
	}
	defer svc.stop()
	if _, err := runWrk(ctx, svc.url("/items/1"), h.wrkThreads, h.wrkConns, 2*time.Second); err != nil { // warm up
		return nil, err
	}
	o := &Overhead{Pairs: h.pairs, Duration: h.runDuration.Seconds()}
	o.Arms = []arm{untracedArm, noneArm(), otlpArm(sink.endpoint)}

	for _, route := range []string{"/backend", "/items/1"} {
		arms := []arm{untracedArm, noneArm()}
		if route == "/items/1" {
			arms = append(arms, otlpArm(sink.endpoint))
		}
		h.logf("overhead: %s at saturation, %d pairs × %s", route, h.pairs, h.runDuration)
		sink.spans.Store(0)
		runs, err := alternate(h.pairs, arms, func(a arm) (armRun, error) {
			return h.withTracer(ctx, svc, a, func(*tracerSession) (armRun, error) {
				w, err := runWrk(ctx, svc.url(route), h.wrkThreads, h.wrkConns, h.runDuration)
				if err == nil && w.Non2xx+w.SockErrors > 0 {
					err = fmt.Errorf("wrk: %d non-2xx answers, %d socket errors", w.Non2xx, w.SockErrors)
				}
				return armRun{Requests: float64(w.Requests), PerSecond: w.PerSecond}, err
			})
		})
		if err != nil {
			return nil, fmt.Errorf("saturation %s: %w", route, err)
		}
		sr := SaturationRoute{
			Route: route, SpansPerRequest: spansPerRequest(route),
			Load:      fmt.Sprintf("wrk -t%d -c%d, %s per run", h.wrkThreads, h.wrkConns, h.runDuration),
			PerSecond: map[string]Spread{}, Ratio: map[string]Spread{}, TracerCPUPer1k: map[string]Spread{},
			ServiceUserPer1k: map[string]Spread{}, ServiceSysPer1k: map[string]Spread{}, TracerSwitchesPerSpan: map[string]Spread{},
			SpanCompleteness: map[string]Spread{}, Dropped: map[string]uint64{},
			Exported: sink.spans.Load(),
		}
		base := column(runs[untracedArm.Name], func(r armRun) float64 { return r.PerSecond })
		sr.PerSecond[untracedArm.Name] = newSpread(base)
		for _, a := range arms {
			sr.ServiceUserPer1k[a.Name] = newSpread(per1k(runs[a.Name], serviceUser))
			sr.ServiceSysPer1k[a.Name] = newSpread(per1k(runs[a.Name], serviceSys))
		}
		for _, a := range arms[1:] {
			rs := runs[a.Name]
			ps := column(rs, func(r armRun) float64 { return r.PerSecond })
			sr.PerSecond[a.Name] = newSpread(ps)
			sr.Ratio[a.Name] = newSpread(ratios(ps, base))
			sr.TracerCPUPer1k[a.Name] = newSpread(per1k(rs, tracerCPU))
			sr.TracerSwitchesPerSpan[a.Name] = newSpread(perSpan(rs))
			sr.SpanCompleteness[a.Name] = newSpread(column(rs, func(r armRun) float64 {
				return r.Spans / (r.Requests * float64(spansPerRequest(route)))
			}))
			var d float64
			for _, r := range rs {
				d += r.Dropped
			}
			sr.Dropped[a.Name] = uint64(d)
			if a.Name != noneArm().Name {
				for _, r := range rs {
					sr.ExportedOf += uint64(r.Spans)
				}
			}
		}
		o.Saturation = append(o.Saturation, sr)
	}

	for _, route := range []string{"/backend", "/items/1"} {
		arms := []arm{untracedArm, noneArm()}
		h.logf("overhead: %s at %d req/s, %d pairs × %s", route, h.rate, h.pairs, h.runDuration)
		runs, err := alternate(h.pairs, arms, func(a arm) (armRun, error) {
			return h.withTracer(ctx, svc, a, func(*tracerSession) (armRun, error) {
				r := openLoop(ctx, svc.url(route), h.rate, h.runDuration)
				return armRun{
					Requests: float64(len(r.Latencies)), Errors: float64(r.Errors),
					P50: ms(percentile(r.Latencies, 50)), P99: ms(percentile(r.Latencies, 99)),
					LagP99: ms(percentile(r.Lags, 99)),
				}, ctx.Err()
			})
		})
		if err != nil {
			return nil, fmt.Errorf("fixed rate %s: %w", route, err)
		}
		fr := FixedRateRoute{Route: route, Rate: h.rate,
			P50: map[string]Spread{}, P99: map[string]Spread{}, P50Delta: map[string]Spread{}, P99Delta: map[string]Spread{},
			TracerCPUPer1k: map[string]Spread{}, Errors: map[string]uint64{}, SendLagP99: map[string]Spread{}}
		b50 := column(runs[untracedArm.Name], func(r armRun) float64 { return r.P50 })
		b99 := column(runs[untracedArm.Name], func(r armRun) float64 { return r.P99 })
		for _, a := range arms {
			rs := runs[a.Name]
			p50 := column(rs, func(r armRun) float64 { return r.P50 })
			p99 := column(rs, func(r armRun) float64 { return r.P99 })
			fr.P50[a.Name], fr.P99[a.Name] = newSpread(p50), newSpread(p99)
			fr.SendLagP99[a.Name] = newSpread(column(rs, func(r armRun) float64 { return r.LagP99 }))
			var e float64
			for _, r := range rs {
				e += r.Errors
			}
			fr.Errors[a.Name] = uint64(e)
			if a.traced() {
				fr.P50Delta[a.Name], fr.P99Delta[a.Name] = newSpread(deltas(p50, b50)), newSpread(deltas(p99, b99))
				fr.TracerCPUPer1k[a.Name] = newSpread(per1k(rs, tracerCPU))
			}
		}
		o.FixedRate = append(o.FixedRate, fr)
	}
	return o, nil
}

// otlpSink is the in-run OTLP/HTTP receiver the OTLP arm exports to: it
// decodes each request and counts the spans, as a collector would before
// doing anything with them.
type otlpSink struct {
	endpoint string
	srv      *http.Server
	spans    atomic.Uint64
}

func startOTLPSink() (*otlpSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &otlpSink{endpoint: "http://" + ln.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.spans.Add(uint64(req.Traces().SpanCount()))
		out, _ := ptraceotlp.NewExportResponse().MarshalProto()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	})
	s.srv = &http.Server{Handler: mux}
	go s.srv.Serve(ln)
	return s, nil
}

func (s *otlpSink) close() { s.srv.Close() }
