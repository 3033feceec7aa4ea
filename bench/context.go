package main

import (
	"context"
	"debug/buildinfo"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// Context is the context section: what trace context costs requests that
// cross services. Two copies of the chain service (tracer/testdata/chain,
// built with the installed go) form client → A → B; every arm runs both
// under one `tracer --exe` (or untraced), started afresh for each run so that
// every arm starts from the same state and every connection A opens to B is
// opened while traced.
type Context struct {
	Rounds   int     `json:"rounds"`
	Duration float64 `json:"run_seconds"`
	// Binary is the Go release the chain services were built with.
	Binary string        `json:"binary"`
	Parts  []ContextPart `json:"parts"`
}

// ContextPart is one route of the chain measured with its arms.
type ContextPart struct {
	Name  string `json:"name"`
	Route string `json:"route"` // with B's address as "B"
	// Workers is how many closed-loop callers the harness runs.
	Workers int   `json:"workers"`
	Arms    []arm `json:"arms"`
	// SpansPerRequest and OutgoingPerRequest are what one request yields: its
	// spans (A's server and clients, B's servers), and A's calls to B.
	SpansPerRequest    int `json:"spans_per_request"`
	OutgoingPerRequest int `json:"outgoing_per_request"`
	// PerSecond, P50 and P99 (ms, from every request's latency in a closed
	// loop) hold each arm's figure per round; the ratios are each traced
	// arm's figure over the untraced run of the same round.
	PerSecond map[string]Spread `json:"requests_per_second"`
	P50       map[string]Spread `json:"p50_ms"`
	P99       map[string]Spread `json:"p99_ms"`
	Ratio     map[string]Spread `json:"throughput_ratio"`
	P50Ratio  map[string]Spread `json:"p50_ratio"`
	P99Ratio  map[string]Spread `json:"p99_ratio"`
	// ServiceCPUPer1k is A's and B's CPU time (ms, user+system) per 1000
	// requests; TracerCPUPer1k the tracer's.
	ServiceCPUPer1k  map[string]Spread `json:"services_cpu_ms_per_1k_requests"`
	TracerCPUPer1k   map[string]Spread `json:"tracer_cpu_ms_per_1k_requests"`
	SpanCompleteness map[string]Spread `json:"span_completeness"`
	Dropped          map[string]uint64 `json:"dropped"`
	// Outgoing sums, per arm that writes context, the tracer's exit line
	// "outgoing trace context written=N ..." over the rounds, against the
	// calls A made to B while traced (warm-up included).
	Outgoing map[string]*OutgoingContext `json:"outgoing,omitempty"`
	// Check is what B received in one more run of a propagating arm,
	// exporting every span to the harness.
	Check *ContextCheck `json:"check,omitempty"`
}

// ContextCheck compares, for one run exporting over OTLP to a sink in the
// harness, the writer's counter with what arrived: B's server spans whose
// parent is one of A's client spans continued A's trace, so their request
// carried A's traceparent.
type ContextCheck struct {
	Arm      string  `json:"arm"`
	Seconds  float64 `json:"run_seconds"`
	Calls    uint64  `json:"calls_a_to_b"` // A's calls to B while traced, warm-up included
	Written  uint64  `json:"written"`      // the tracer's counter
	AClients uint64  `json:"a_client_spans"`
	BServers uint64  `json:"b_server_spans"`
	// ChildOfAClient counts B's server spans whose parent is an A client
	// span; Root those with no parent (a request without traceparent).
	ChildOfAClient uint64 `json:"b_server_spans_child_of_a_client"`
	Root           uint64 `json:"b_server_spans_without_parent"`
	// RootAtMs says when each of those started, in ms after B's first
	// server span (the warm-up's first request).
	RootAtMs []float64 `json:"b_server_spans_without_parent_at_ms,omitempty"`
	Dropped  uint64    `json:"dropped"`
}

// OutgoingContext is what became of the trace context of A's outgoing
// requests: written into the request, left to the application's own
// traceparent, or not written, by reason.
type OutgoingContext struct {
	Expected   uint64            `json:"expected"`
	Written    uint64            `json:"written"`
	AppSet     uint64            `json:"application_set"`
	NotWritten uint64            `json:"not_written"`
	Reasons    map[string]uint64 `json:"not_written_reasons,omitempty"`
}

// contextChainGlob matches the chain copies of this section and nothing else.
const contextChainGlob = "offsetdb-bench-chain-*"

// Arms of the two parts. All traced arms export nothing (exporter none), so
// the figures are the probes, the ring buffer, span building and the
// socket-layer writer.
func contextChainArms() []arm {
	env := []string{"OTEL_TRACES_EXPORTER=none"}
	return []arm{
		untracedArm,
		{Name: "traced read-only (--context-propagation=false)", Env: env, Flags: []string{"--context-propagation=false"}},
		{Name: "traced with propagation", Env: env},
	}
}

func contextFanArms() []arm {
	env := []string{"OTEL_TRACES_EXPORTER=none"}
	return []arm{
		untracedArm,
		{Name: "traced, goroutine context on", Env: env},
		{Name: "traced, --goroutine-context=false", Env: env, Flags: []string{"--goroutine-context=false"}},
	}
}

// contextFanN is how many goroutines A starts per /fan/ request, each
// calling B.
const contextFanN = 8

// contextSettings are the context section's flags.
type contextSettings struct {
	rounds   int
	duration time.Duration
	workers  int
}

func (c *contextSettings) flags(fs *flag.FlagSet) {
	fs.IntVar(&c.rounds, "context-rounds", 3, "rounds of the context section (each runs every arm of a part once)")
	fs.DurationVar(&c.duration, "context-duration", 5*time.Second, "length of each context run (after a 1 s warm-up)")
	fs.IntVar(&c.workers, "context-workers", 16, "closed-loop callers of the context section's chain (a quarter of them on the fan-out)")
}

func (h *harness) traceContext(ctx context.Context) (*Context, error) {
	dir := filepath.Join(h.work, "context")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	a, b := filepath.Join(dir, "offsetdb-bench-chain-a"), filepath.Join(dir, "offsetdb-bench-chain-b")
	h.logf("context: building tracer/testdata/chain")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", a, "./tracer/testdata/chain")
	cmd.Dir = h.repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./tracer/testdata/chain: %w: %s", err, out)
	}
	if err := copyFile(a, b); err != nil {
		return nil, err
	}
	c := &Context{Rounds: h.contextCfg.rounds, Duration: h.contextCfg.duration.Seconds(), Binary: "?"}
	if bi, err := buildinfo.ReadFile(a); err == nil {
		c.Binary = bi.GoVersion
	}
	parts := []struct {
		name, route      string
		workers          int
		arms             []arm
		spans, outPerReq int
		check            int // the arm whose spans are checked
	}{
		{"two-hop chain", "/hop/ID?next=B", h.contextCfg.workers, contextChainArms(), 3, 1, 2},
		{fmt.Sprintf("fan-out from %d goroutines", contextFanN), fmt.Sprintf("/fan/ID?next=B&n=%d", contextFanN),
			max(1, h.contextCfg.workers/4), contextFanArms(), 1 + 2*contextFanN, contextFanN, 1},
	}
	sink, err := startParentSink()
	if err != nil {
		return nil, err
	}
	defer sink.close()
	for _, p := range parts {
		h.logf("context: %s (%s), %d callers, %d rounds × %s", p.name, p.route, p.workers, h.contextCfg.rounds, h.contextCfg.duration)
		part := ContextPart{Name: p.name, Route: p.route, Workers: p.workers, Arms: p.arms,
			SpansPerRequest: p.spans, OutgoingPerRequest: p.outPerReq,
			PerSecond: map[string]Spread{}, P50: map[string]Spread{}, P99: map[string]Spread{},
			Ratio: map[string]Spread{}, P50Ratio: map[string]Spread{}, P99Ratio: map[string]Spread{},
			ServiceCPUPer1k: map[string]Spread{}, TracerCPUPer1k: map[string]Spread{},
			SpanCompleteness: map[string]Spread{}, Dropped: map[string]uint64{}, Outgoing: map[string]*OutgoingContext{}}
		outgoing := map[string]*OutgoingContext{}
		completeness := map[string][]float64{}
		runs, err := alternate(h.contextCfg.rounds, p.arms, func(ar arm) (armRun, error) {
			r, x, err := h.contextRun(ctx, a, b, p.route, p.workers, ar, h.contextCfg.duration)
			if err != nil || !ar.traced() {
				return r, err
			}
			// The tracer's counters cover the warm-up too.
			traced := r.Requests + float64(x.warmUp)
			completeness[ar.Name] = append(completeness[ar.Name], r.Spans/(traced*float64(p.spans)))
			if x.out != nil {
				x.out.Expected = uint64(traced) * uint64(p.outPerReq)
				if outgoing[ar.Name] == nil {
					outgoing[ar.Name] = &OutgoingContext{Reasons: map[string]uint64{}}
				}
				outgoing[ar.Name].add(x.out)
			}
			return r, nil
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
		perSecond := func(r armRun) float64 { return r.PerSecond }
		p50 := func(r armRun) float64 { return r.P50 }
		p99 := func(r armRun) float64 { return r.P99 }
		pick := func(a arm, f func(armRun) float64) []float64 { return column(runs[a.Name], f) }
		for _, ar := range p.arms {
			part.PerSecond[ar.Name] = newSpread(pick(ar, perSecond))
			part.P50[ar.Name], part.P99[ar.Name] = newSpread(pick(ar, p50)), newSpread(pick(ar, p99))
			part.ServiceCPUPer1k[ar.Name] = newSpread(per1k(runs[ar.Name], func(r armRun) float64 { return r.ServiceUser + r.ServiceSys }))
			if !ar.traced() {
				continue
			}
			part.Ratio[ar.Name] = newSpread(ratios(pick(ar, perSecond), pick(untracedArm, perSecond)))
			part.P50Ratio[ar.Name] = newSpread(ratios(pick(ar, p50), pick(untracedArm, p50)))
			part.P99Ratio[ar.Name] = newSpread(ratios(pick(ar, p99), pick(untracedArm, p99)))
			part.TracerCPUPer1k[ar.Name] = newSpread(per1k(runs[ar.Name], tracerCPU))
			part.SpanCompleteness[ar.Name] = newSpread(completeness[ar.Name])
			var d float64
			for _, r := range runs[ar.Name] {
				d += r.Dropped
			}
			part.Dropped[ar.Name] = uint64(d)
		}
		part.Outgoing = outgoing
		if part.Check, err = h.contextCheck(ctx, a, b, p.route, p.workers, p.arms[p.check], p.outPerReq, sink); err != nil {
			return nil, fmt.Errorf("%s: check: %w", p.name, err)
		}
		c.Parts = append(c.Parts, part)
	}
	return c, nil
}

func (o *OutgoingContext) add(x *OutgoingContext) {
	o.Expected += x.Expected
	o.Written += x.Written
	o.AppSet += x.AppSet
	o.NotWritten += x.NotWritten
	for k, v := range x.Reasons {
		if v > 0 {
			o.Reasons[k] += v
		}
	}
}

// contextExtra is what a run of the context section measured beyond an
// armRun: the warm-up's requests (traced too), and the tracer's outgoing
// trace context line (nil when it wrote none).
type contextExtra struct {
	warmUp int
	out    *OutgoingContext
}

// contextRun is one run of one arm: the tracer (unless untraced) with
// --exe over the chain, then B and A started afresh, a warm-up, the
// measured closed loop, and everything stopped.
func (h *harness) contextRun(ctx context.Context, binA, binB, route string, workers int, a arm, d time.Duration) (r armRun, x contextExtra, err error) {
	var t *tracerSession
	if a.traced() {
		if t, err = startTracer(h.tracerBin, append(append([]string(nil), a.Flags...), "--exe", contextChainGlob), a.Env, 0); err != nil {
			return r, x, err
		}
		defer func() {
			if t != nil {
				t.stop(ctx)
			}
		}()
		if err := t.waitLog("watching for processes", 30*time.Second); err != nil {
			return r, x, err
		}
	}
	svcB, err := startService(binB)
	if err != nil {
		return r, x, err
	}
	defer svcB.stop()
	svcA, err := startService(binA)
	if err != nil {
		return r, x, err
	}
	defer svcA.stop()
	if t != nil {
		if err := t.waitAttached(2, 60*time.Second); err != nil {
			return r, x, err
		}
	}
	var tracers []int
	if t != nil {
		tracers = append(tracers, t.pid())
	}
	if r, x.warmUp, err = chainLoad(ctx, svcA, svcB, route, workers, d, tracers); err != nil {
		return r, x, err
	}
	if t == nil {
		return r, x, ctx.Err()
	}
	st, err := t.stop(ctx)
	log := t.logText()
	t = nil
	if err != nil {
		return r, x, err
	}
	r.Spans, r.Dropped = float64(st.Spans), float64(st.Dropped)
	x.out = parseOutgoing(log)
	return r, x, ctx.Err()
}

// chainLoad calls A (which calls B) in a closed loop: a 1 s warm-up, then
// workers callers for d. CPU is A's and B's, and, as TracerCPU, that of the
// tracing processes whose pids are given, over the measured load only. It
// returns the measured run and how many requests the warm-up made.
func chainLoad(ctx context.Context, svcA, svcB *service, route string, workers int, d time.Duration, tracers []int) (r armRun, warmUp int, err error) {
	url := svcA.url(strings.ReplaceAll(strings.ReplaceAll(route, "ID", "r"), "next=B", "next="+svcB.addr))
	warm := closedLoop(ctx, url, workers, time.Second)
	if warm.Errors > 0 {
		return r, 0, fmt.Errorf("warm-up: %d of %d requests failed", warm.Errors, warm.Errors+len(warm.Latencies))
	}
	cpu := func() (svc, tracer float64, err error) {
		ua, sa, err1 := cpuTime(svcA.pid())
		ub, sb, err2 := cpuTime(svcB.pid())
		svc = (ua + sa + ub + sb).Seconds()
		err = firstErr(err1, err2)
		for _, pid := range tracers {
			u, s, errT := cpuTime(pid)
			tracer += (u + s).Seconds()
			err = firstErr(err, errT)
		}
		return svc, tracer, err
	}
	svc0, tr0, err := cpu()
	if err != nil {
		return r, 0, err
	}
	res := closedLoop(ctx, url, workers, d)
	svc1, tr1, err := cpu()
	if err != nil {
		return r, 0, err
	}
	if res.Errors > 0 {
		return r, 0, fmt.Errorf("%d of %d requests failed", res.Errors, res.Errors+len(res.Latencies))
	}
	return armRun{
		Requests: float64(len(res.Latencies)), PerSecond: float64(len(res.Latencies)) / res.Seconds,
		P50: ms(percentile(res.Latencies, 50)), P99: ms(percentile(res.Latencies, 99)),
		ServiceUser: svc1 - svc0, TracerCPU: tr1 - tr0,
	}, len(warm.Latencies), nil
}

var outgoingField = regexp.MustCompile(`\b([a-z_0-9]+)=(\d+)`)

// parseOutgoing reads the tracer's exit line
// `msg="outgoing trace context" written=N application_set=N not_written=N tls=N ...`;
// nil when the log has none (the writer was off).
func parseOutgoing(log string) *OutgoingContext {
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, `msg="outgoing trace context"`) {
			continue
		}
		o := &OutgoingContext{Reasons: map[string]uint64{}}
		_, rest, _ := strings.Cut(line, `msg="outgoing trace context"`)
		for _, m := range outgoingField.FindAllStringSubmatch(rest, -1) {
			n, _ := strconv.ParseUint(m[2], 10, 64)
			switch m[1] {
			case "written":
				o.Written = n
			case "application_set":
				o.AppSet = n
			case "not_written":
				o.NotWritten = n
			default:
				o.Reasons[m[1]] = n
			}
		}
		return o
	}
	return nil
}

// waitLog waits until the tracer has logged a line containing s.
func (t *tracerSession) waitLog(s string, timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		t.mu.Lock()
		changed := t.changed
		found := strings.Contains(strings.Join(t.log, "\n"), s)
		t.mu.Unlock()
		if found {
			return nil
		}
		select {
		case <-changed:
		case <-t.done:
			return fmt.Errorf("tracer exited before logging %q: %s", s, t.logText())
		case <-deadline:
			return fmt.Errorf("tracer did not log %q in %s: %s", s, timeout, t.logText())
		}
	}
}

// closedLoopResult is what one closed-loop run measured.
type closedLoopResult struct {
	Latencies []time.Duration // of the successful requests
	Errors    int
	Seconds   float64
}

// closedLoop runs workers callers of GET url for d, each sending its next
// request when the previous one is answered (so latency includes queueing
// at saturation, as in the grpc section).
func closedLoop(ctx context.Context, url string, workers int, d time.Duration) closedLoopResult {
	tr := &http.Transport{MaxIdleConns: workers, MaxIdleConnsPerHost: workers, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var (
		mu  sync.Mutex
		res closedLoopResult
		wg  sync.WaitGroup
	)
	start := time.Now()
	end := start.Add(d)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lats []time.Duration
			errs := 0
			for time.Now().Before(end) && ctx.Err() == nil {
				sent := time.Now()
				if get(ctx, client, url) {
					lats = append(lats, time.Since(sent))
				} else {
					errs++
				}
			}
			mu.Lock()
			res.Latencies = append(res.Latencies, lats...)
			res.Errors += errs
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	return res
}

// shortContextArm is an arm's name without "traced" and its exporter.
func shortContextArm(a arm) string {
	return strings.TrimLeft(strings.TrimPrefix(a.Name, "traced"), ", ")
}

// written says how many of a part's outgoing requests got a traceparent
// and why the others did not: "12000 of 12000 (100.00%)", then the
// writer's reasons and what it did not count.
func (o *OutgoingContext) written() string {
	if o == nil || o.Expected == 0 {
		return "—"
	}
	s := fmt.Sprintf("%d of %d (%.2f%%)", o.Written, o.Expected, 100*float64(o.Written)/float64(o.Expected))
	var why []string
	if o.AppSet > 0 {
		why = append(why, fmt.Sprintf("application's own %d", o.AppSet))
	}
	for _, k := range slicesSorted(o.Reasons) {
		why = append(why, fmt.Sprintf("%s %d", k, o.Reasons[k]))
	}
	if n := int64(o.Expected) - int64(o.Written+o.AppSet+o.NotWritten); n != 0 {
		// The writer never saw a context for these: the client probe
		// queued none (no client span), or the request left on a
		// connection the writer does not watch.
		why = append(why, fmt.Sprintf("unaccounted %d (no context reached the writer)", n))
	}
	if len(why) > 0 {
		s += "; not written: " + strings.Join(why, ", ")
	}
	return s
}

func slicesSorted(m map[string]uint64) []string {
	var ks []string
	for k, v := range m {
		if v > 0 {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	return ks
}

// contextSummaryRows are the context section's headline figures.
func contextSummaryRows(c *Context) [][3]string {
	var rows [][3]string
	u := untracedArm.Name
	for _, p := range c.Parts {
		var res []string
		for _, a := range p.Arms[1:] {
			r := fmt.Sprintf("%s: ×%s req/s, p50 ×%s, p99 ×%s", shortContextArm(a),
				p.Ratio[a.Name].format("%.3f", ""), p.P50Ratio[a.Name].format("%.2f", ""), p.P99Ratio[a.Name].format("%.2f", ""))
			if o := p.Outgoing[a.Name]; o != nil {
				r += "; traceparent written " + o.written()
			}
			res = append(res, r)
		}
		if k := p.Check; k != nil {
			res = append(res, "check: "+k.summary())
		}
		rows = append(rows, [3]string{
			fmt.Sprintf("Trace context, %s (`%s`: %d spans, %d call(s) A → B per request; %d callers closed loop, %.0fs per run; %s)",
				p.Name, p.Route, p.SpansPerRequest, p.OutgoingPerRequest, p.Workers, c.Duration, c.Binary),
			fmt.Sprintf("untraced %s req/s, p50 %s, p99 %s", p.PerSecond[u].format("%.0f", ""), p.P50[u].format("%.3f", " ms"), p.P99[u].format("%.3f", " ms")),
			strings.Join(res, "; "),
		})
	}
	return rows
}

// contextMarkdown is the context section of results.md.
func contextMarkdown(c *Context) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## 2c. Trace context across services\n\nTwo copies of `tracer/testdata/chain` (%s) on loopback, client → A → B; the harness is the client "+
		"(closed loop: each caller sends its next request when the previous one is answered, so latency includes queueing at saturation). "+
		"Every run starts afresh: the tracer (`tracer --exe %s`, `OTEL_TRACES_EXPORTER=none`) unless untraced, then B and A, so that every arm starts "+
		"from the same state: every connection A opens to B is opened while traced; a 1 s warm-up, then %.0f s measured. "+
		"Each round runs every arm of a part once, the order reversed every other round; %d rounds. Ratios are traced over the untraced run of the same round. "+
		"CPU is A's and B's (and the tracer's) utime+stime over the measured load. `traceparent written` is the tracer's exit line "+
		"`outgoing trace context written=N application_set=N not_written=N ...` summed over the rounds, against A's calls to B while traced (warm-up included).\n",
		c.Binary, contextChainGlob, c.Duration, c.Rounds)
	for _, p := range c.Parts {
		fmt.Fprintf(&b, "\n%s: `%s`, %d callers, %d spans per request.\n\n", strings.ToUpper(p.Name[:1])+p.Name[1:], p.Route, p.Workers, p.SpansPerRequest)
		b.WriteString("| Arm | req/s | ratio to untraced | p50 | p50 ratio | p99 | p99 ratio | A+B CPU / 1k req | tracer CPU / 1k req | spans recorded / expected | dropped | traceparent written |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, a := range p.Arms {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", a.Name, p.PerSecond[a.Name].format("%.0f", ""),
				orDash(p.Ratio, a.Name, "%.3f", ""), p.P50[a.Name].format("%.3f", " ms"), orDash(p.P50Ratio, a.Name, "%.2f", ""),
				p.P99[a.Name].format("%.3f", " ms"), orDash(p.P99Ratio, a.Name, "%.2f", ""),
				orDash(p.ServiceCPUPer1k, a.Name, "%.0f", " ms"), orDash(p.TracerCPUPer1k, a.Name, "%.0f", " ms"),
				orDash(p.SpanCompleteness, a.Name, "%.4f", ""), dropped(p.Dropped, a), p.Outgoing[a.Name].written())
		}
		if k := p.Check; k != nil {
			fmt.Fprintf(&b, "\nCheck: one more %.0f s run of *%s*, every span exported over OTLP/HTTP to a receiver in the harness: %s; %d client spans of A, %d spans dropped.\n",
				k.Seconds, k.Arm, k.summary(), k.AClients, k.Dropped)
		}
	}
	return b.String()
}

// contextCheckDuration is the length of the check run.
const contextCheckDuration = 2 * time.Second

// contextCheck runs arm a once more, exporting every span over OTLP to
// sink, and compares what B's server spans say arrived with the writer's
// counter.
func (h *harness) contextCheck(ctx context.Context, binA, binB, route string, workers int, a arm, outPerReq int, sink *parentSink) (*ContextCheck, error) {
	h.logf("context: checking the spans of %q (OTLP to an in-run sink, %s)", a.Name, contextCheckDuration)
	chk := a
	chk.Env = []string{"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf", "OTEL_EXPORTER_OTLP_ENDPOINT=" + sink.endpoint}
	sink.reset()
	r, x, err := h.contextRun(ctx, binA, binB, route, workers, chk, contextCheckDuration)
	if err != nil {
		return nil, err
	}
	c := &ContextCheck{Arm: a.Name, Seconds: contextCheckDuration.Seconds(),
		Calls: (uint64(r.Requests) + uint64(x.warmUp)) * uint64(outPerReq), Dropped: uint64(r.Dropped)}
	if x.out != nil {
		c.Written = x.out.Written
	}
	c.AClients, c.BServers, c.ChildOfAClient, c.Root, c.RootAtMs = sink.counts()
	return c, nil
}

// parentSink is an OTLP/HTTP receiver that keeps the span IDs of A's client
// spans and the parents of B's server spans.
type parentSink struct {
	endpoint string
	srv      *http.Server

	mu       sync.Mutex
	aClients map[pcommon.SpanID]bool
	bParents []pcommon.SpanID
	bStarts  []pcommon.Timestamp
	// aServers and aClientParents say whether A's client spans are
	// children of A's server spans (the peers section asks).
	aServers       map[pcommon.SpanID]bool
	aClientParents []pcommon.SpanID
}

func startParentSink() (*parentSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &parentSink{endpoint: "http://" + ln.Addr().String()}
	s.reset()
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
		s.add(req.Traces())
		out, _ := ptraceotlp.NewExportResponse().MarshalProto()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	})
	s.srv = &http.Server{Handler: mux}
	go s.srv.Serve(ln)
	return s, nil
}

func (s *parentSink) add(td ptrace.Traces) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rs := range td.ResourceSpans().All() {
		name, _ := rs.Resource().Attributes().Get("service.name")
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				switch {
				case name.Str() == "offsetdb-bench-chain-a" && sp.Kind() == ptrace.SpanKindClient:
					s.aClients[sp.SpanID()] = true
					s.aClientParents = append(s.aClientParents, sp.ParentSpanID())
				case name.Str() == "offsetdb-bench-chain-a" && sp.Kind() == ptrace.SpanKindServer:
					s.aServers[sp.SpanID()] = true
				case name.Str() == "offsetdb-bench-chain-b" && sp.Kind() == ptrace.SpanKindServer:
					s.bParents = append(s.bParents, sp.ParentSpanID())
					s.bStarts = append(s.bStarts, sp.StartTimestamp())
				}
			}
		}
	}
}

func (s *parentSink) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.aClients, s.bParents, s.bStarts = map[pcommon.SpanID]bool{}, nil, nil
	s.aServers, s.aClientParents = map[pcommon.SpanID]bool{}, nil
}

// counts returns A's client spans, B's server spans, how many of those
// are children of one of A's client spans or have no parent, and when each
// of the latter started (ms after B's first server span).
func (s *parentSink) counts() (aClients, bServers, childOfA, root uint64, rootAt []float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	first := pcommon.Timestamp(0)
	for _, t := range s.bStarts {
		if first == 0 || t < first {
			first = t
		}
	}
	for i, p := range s.bParents {
		switch {
		case p.IsEmpty():
			root++
			rootAt = append(rootAt, float64(s.bStarts[i]-first)/1e6)
		case s.aClients[p]:
			childOfA++
		}
	}
	return uint64(len(s.aClients)), uint64(len(s.bParents)), childOfA, root, rootAt
}

// aLinks returns A's server spans and how many of A's client spans are
// children of one of them.
func (s *parentSink) aLinks() (aServers, aClientsChildOfServer uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.aClientParents {
		if s.aServers[p] {
			aClientsChildOfServer++
		}
	}
	return uint64(len(s.aServers)), aClientsChildOfServer
}

func (s *parentSink) close() { s.srv.Close() }

// summary says what B received against what the writer counted.
func (k *ContextCheck) summary() string {
	s := fmt.Sprintf("of %d calls A → B, %d had a traceparent written (the tracer's counter); B's %d server spans: %d children of A's client spans, %d without a parent",
		k.Calls, k.Written, k.BServers, k.ChildOfAClient, k.Root)
	if len(k.RootAtMs) > 0 {
		var at []string
		for _, ms := range k.RootAtMs[:min(len(k.RootAtMs), 5)] {
			at = append(at, fmt.Sprintf("%.0f", ms))
		}
		s += fmt.Sprintf(" (started %s ms after B's first)", strings.Join(at, ", "))
	}
	return s
}
