package main

import (
	"context"
	"fmt"
	"strconv"
	"syscall"
	"time"
)

// PipelineStep is one load level of the ramp.
type PipelineStep struct {
	Route       string `json:"route"`
	Connections int    `json:"connections"`
	// SpansPerSecond the tracer recorded, Offered the spans the requests
	// should have produced per second.
	SpansPerSecond Spread `json:"spans_per_second"`
	Offered        Spread `json:"offered_spans_per_second"`
	Dropped        Spread `json:"dropped"`
	// TracerCPUShare is the tracer's CPU time over wall time: 1.0 is one
	// core busy, the most its single ring-buffer reader can use.
	TracerCPUShare Spread `json:"tracer_cpu_share"`
	// CPUPerSpan is the tracer's CPU time per recorded span, in µs.
	CPUPerSpan Spread `json:"tracer_cpu_us_per_span"`
	// SwitchesPerSpan is the tracer's context switches per recorded span.
	SwitchesPerSpan Spread `json:"tracer_context_switches_per_span"`
}

// Pipeline is section 2: how many spans per second get through the ring
// buffer without drops, and where drops begin.
type Pipeline struct {
	Exporter string         `json:"exporter"`
	Duration float64        `json:"run_seconds"`
	Steps    []PipelineStep `json:"steps"`
	// MaxZeroDrop is the highest recorded spans/s (median over rounds) of a
	// step without a single drop; FirstDrop the first step with drops, if any.
	MaxZeroDrop float64       `json:"max_spans_per_second_zero_drops"`
	FirstDrop   *PipelineStep `json:"first_drop,omitempty"`
	// ReaderCeiling extrapolates: spans/s one fully busy core would record at
	// the CPU cost per span measured at the highest step.
	ReaderCeiling float64 `json:"extrapolated_reader_ceiling_spans_per_second"`
	// Stalls are where drops begin when the reader falls behind: the
	// tracer is stopped (SIGSTOP) for a while in the middle of a
	// saturating run.
	Stalls []StallStep `json:"stalls"`
}

// StallStep is one reader stall under load.
type StallStep struct {
	Route   string  `json:"route"`
	StallMs float64 `json:"stall_ms"`
	// Offered is the spans/s of the run; Dropped the events lost.
	Offered Spread `json:"offered_spans_per_second"`
	Dropped Spread `json:"dropped"`
}

// pipeline ramps wrk's concurrency, one tracer session per step (drops are
// read from its exit log), with the rounds alternating over the steps.
func (h *harness) pipeline(ctx context.Context) (*Pipeline, error) {
	svc, err := startService(h.serviceBin)
	if err != nil {
		return nil, err
	}
	defer svc.stop()
	type key struct {
		route string
		conns int
	}
	var order []key
	for _, route := range []string{"/backend", "/items/1"} {
		for _, c := range h.rampConns {
			order = append(order, key{route, c})
		}
	}
	runs := map[key][]armRun{}
	for round := range h.rampRounds {
		h.logf("pipeline: round %d of %d, %d steps × %s", round+1, h.rampRounds, len(order), h.rampDuration)
		for _, k := range order {
			r, err := h.withTracer(ctx, svc, noneArm(), func(*tracerSession) (armRun, error) {
				w, err := runWrk(ctx, svc.url(k.route), min(h.wrkThreads, k.conns), k.conns, h.rampDuration)
				return armRun{Requests: float64(w.Requests), PerSecond: w.PerSecond}, err
			})
			if err != nil {
				return nil, fmt.Errorf("%s with %d connections: %w", k.route, k.conns, err)
			}
			runs[k] = append(runs[k], r)
		}
	}
	stalls := map[time.Duration][]armRun{}
	const stallRoute = "/backend"
	for round := range h.rampRounds {
		h.logf("pipeline: reader stalls, round %d of %d: %v", round+1, h.rampRounds, h.stalls)
		for _, stall := range h.stalls {
			r, err := h.withTracer(ctx, svc, noneArm(), func(t *tracerSession) (armRun, error) {
				return stallDuring(ctx, t, stall, func() (wrkResult, error) {
					return runWrk(ctx, svc.url(stallRoute), h.wrkThreads, h.wrkConns, h.rampDuration)
				})
			})
			if err != nil {
				return nil, fmt.Errorf("stall %s: %w", stall, err)
			}
			stalls[stall] = append(stalls[stall], r)
		}
	}

	p := &Pipeline{Exporter: "none", Duration: h.rampDuration.Seconds()}
	for _, stall := range h.stalls {
		rs := stalls[stall]
		offered := column(rs, func(r armRun) float64 {
			return r.Requests * float64(spansPerRequest(stallRoute)) / h.rampDuration.Seconds()
		})
		p.Stalls = append(p.Stalls, StallStep{
			Route: stallRoute, StallMs: ms(stall),
			Offered: newSpread(offered),
			Dropped: newSpread(column(rs, func(r armRun) float64 { return r.Dropped })),
		})
	}
	secs := h.rampDuration.Seconds()
	for _, k := range order {
		rs := runs[k]
		st := PipelineStep{
			Route: k.route, Connections: k.conns,
			SpansPerSecond:  newSpread(column(rs, func(r armRun) float64 { return r.Spans / secs })),
			Offered:         newSpread(column(rs, func(r armRun) float64 { return r.Requests * float64(spansPerRequest(k.route)) / secs })),
			Dropped:         newSpread(column(rs, func(r armRun) float64 { return r.Dropped })),
			TracerCPUShare:  newSpread(column(rs, func(r armRun) float64 { return r.TracerCPU / secs })),
			CPUPerSpan:      newSpread(column(rs, func(r armRun) float64 { return r.TracerCPU * 1e6 / r.Spans })),
			SwitchesPerSpan: newSpread(perSpan(rs)),
		}
		p.Steps = append(p.Steps, st)
		if st.Dropped.Max == 0 {
			p.MaxZeroDrop = max(p.MaxZeroDrop, st.SpansPerSecond.Median)
		} else if p.FirstDrop == nil || st.SpansPerSecond.Median < p.FirstDrop.SpansPerSecond.Median {
			s := st
			p.FirstDrop = &s
		}
	}
	// The ceiling from the step where the tracer recorded the most spans.
	best := p.Steps[0]
	for _, st := range p.Steps {
		if st.SpansPerSecond.Median > best.SpansPerSecond.Median {
			best = st
		}
	}
	if best.CPUPerSpan.Median > 0 {
		p.ReaderCeiling = 1e6 / best.CPUPerSpan.Median
	}
	return p, nil
}

// stallDuring runs load and, halfway through it, stops the tracer for
// stall (SIGSTOP, then SIGCONT): its ring-buffer reader falls behind by
// that much while the probes keep submitting.
func stallDuring(ctx context.Context, t *tracerSession, stall time.Duration, load func() (wrkResult, error)) (armRun, error) {
	done := make(chan struct{})
	var w wrkResult
	var err error
	go func() {
		defer close(done)
		w, err = load()
	}()
	select {
	case <-time.After(2 * time.Second):
	case <-done:
		return armRun{}, fmt.Errorf("load ended before the stall: %v", err)
	case <-ctx.Done():
		<-done
		return armRun{}, ctx.Err()
	}
	if serr := t.cmd.Process.Signal(syscall.SIGSTOP); serr != nil {
		<-done
		return armRun{}, serr
	}
	time.Sleep(stall)
	cerr := t.cmd.Process.Signal(syscall.SIGCONT)
	<-done
	if err == nil {
		err = cerr
	}
	return armRun{Requests: float64(w.Requests), PerSecond: w.PerSecond}, err
}

func (s PipelineStep) String() string {
	return s.Route + " c=" + strconv.Itoa(s.Connections)
}
