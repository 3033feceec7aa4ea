package main

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

const (
	beginMarker = "<!-- bench:begin"
	endMarker   = "<!-- bench:end -->"
)

// spliceBetweenMarkers replaces what lies between the bench markers of doc
// (the begin marker's line is kept as it is) with body.
func spliceBetweenMarkers(doc, body string) (string, error) {
	i := strings.Index(doc, beginMarker)
	if i < 0 {
		return "", errors.New("no " + beginMarker + " ... --> marker")
	}
	eol := strings.IndexByte(doc[i:], '\n')
	if eol < 0 {
		return "", errors.New("begin marker ends the file")
	}
	start := i + eol + 1
	j := strings.Index(doc[start:], endMarker)
	if j < 0 {
		return "", errors.New("no " + endMarker + " marker after the begin marker")
	}
	return doc[:start] + strings.TrimRight(body, "\n") + "\n" + doc[start+j:], nil
}

// scale multiplies every value of s by f (unit changes).
func (s Spread) scale(f float64) Spread {
	out := Spread{Median: s.Median * f, Min: s.Min * f, Max: s.Max * f, N: s.N}
	for _, v := range s.Values {
		out.Values = append(out.Values, v*f)
	}
	return out
}

const mib = 1 << 20

// summaryRows are the headline figures: [figure, baseline, result].
func summaryRows(r *Results) [][3]string {
	var rows [][3]string
	add := func(a, b, c string) { rows = append(rows, [3]string{a, b, c}) }
	if o := r.Overhead; o != nil {
		for _, s := range o.Saturation {
			var res []string
			for _, a := range o.Arms[1:] {
				if sp, ok := s.Ratio[a.Name]; ok {
					res = append(res, fmt.Sprintf("×%s %s", sp.format("%.3f", ""), a.Name))
				}
			}
			add(fmt.Sprintf("Throughput at saturation, `%s` (%d span(s)/req; %s)", s.Route, s.SpansPerRequest, s.Load),
				"untraced "+s.PerSecond[untracedArm.Name].format("%.0f", " req/s"), strings.Join(res, "; "))
		}
		for _, f := range o.FixedRate {
			a := noneArm().Name
			add(fmt.Sprintf("Latency at %d req/s (open loop), `%s`", f.Rate, f.Route),
				fmt.Sprintf("untraced p50 %s, p99 %s", f.P50[untracedArm.Name].format("%.3f", " ms"), f.P99[untracedArm.Name].format("%.3f", " ms")),
				fmt.Sprintf("p50 %s, p99 %s (%s)", f.P50Delta[a].format("%+.3f", " ms"), f.P99Delta[a].format("%+.3f", " ms"), a))
		}
		var cpu []string
		for _, s := range o.Saturation {
			bu, bs := s.ServiceUserPer1k[untracedArm.Name].Median, s.ServiceSysPer1k[untracedArm.Name].Median
			for _, a := range o.Arms[1:] {
				if sp, ok := s.TracerCPUPer1k[a.Name]; ok {
					cpu = append(cpu, fmt.Sprintf("`%s` %s: service %+.0f ms user, %+.0f ms sys; tracer %s",
						s.Route, shortArm(a), s.ServiceUserPer1k[a.Name].Median-bu, s.ServiceSysPer1k[a.Name].Median-bs, sp.format("%.0f", " ms")))
				}
			}
		}
		add("CPU per 1k requests at saturation (medians)", "untraced service: "+untracedCPU(o), strings.Join(cpu, "; "))
	}
	if g := r.GRPC; g != nil {
		var res []string
		for _, a := range g.Arms[1:] {
			res = append(res, fmt.Sprintf("%s: ×%s calls/s, p50 ×%s, p99 ×%s", shortGRPCArm(a),
				g.Ratio[a.Name].format("%.3f", ""), g.P50Ratio[a.Name].format("%.2f", ""), g.P99Ratio[a.Name].format("%.2f", "")))
		}
		u := untracedArm.Name
		add(fmt.Sprintf("gRPC unary calls at saturation (health Check, %d callers closed loop, %.0fs per run; %s)", g.Workers, g.Duration, g.Binary),
			fmt.Sprintf("untraced %s calls/s, p50 %s, p99 %s", g.CallsPerSecond[u].format("%.0f", ""), g.P50[u].format("%.3f", " ms"), g.P99[u].format("%.3f", " ms")),
			strings.Join(res, "; "))
	}
	if d := r.DB; d != nil {
		var base, res []string
		for _, c := range d.Clients {
			base = append(base, fmt.Sprintf("%s %s", c, d.CallsPerSecond[c+"/"+untracedArm.Name].format("%.0f", "")))
			res = append(res, fmt.Sprintf("%s ×%s", c, d.Ratio[c].format("%.3f", "")))
			for _, a := range d.ExtraArms[c] {
				res = append(res, fmt.Sprintf("%s %s ×%s", c, strings.Join(a.Flags, " "), d.Ratio[c+"/"+a.Name].format("%.3f", "")))
			}
		}
		binary := d.Binary
		if d.KafkaBinary != "" {
			binary += "; " + d.KafkaBinary
		}
		add(fmt.Sprintf("Database, Redis and Kafka calls at saturation (one-row queries, GET, one-message WriteMessages; %d callers closed loop; ReadMessage, 1 caller; %.0fs per run; %s)", d.Workers, d.Duration, binary),
			"untraced calls/s: "+strings.Join(base, ", "), "calls/s traced (exporter none): "+strings.Join(res, ", "))
	}
	if c := r.Context; c != nil {
		rows = append(rows, contextSummaryRows(c)...)
	}
	if p := r.Peers; p != nil {
		rows = append(rows, peersSummaryRows(p)...)
	}
	if p := r.Pipeline; p != nil {
		drops := "no drops at any step (the service saturated first)"
		if p.FirstDrop != nil {
			drops = fmt.Sprintf("drops begin at %s spans/s (%s): %s dropped", p.FirstDrop.SpansPerSecond.format("%.0f", ""), p.FirstDrop, p.FirstDrop.Dropped.format("%.0f", ""))
		}
		add("Event pipeline: spans/s with zero ring-buffer drops",
			"spans offered = requests × spans/request",
			fmt.Sprintf("%.0f spans/s; %s; one reader core would record ≈%.0f spans/s (extrapolated from CPU/span)", p.MaxZeroDrop, drops, p.ReaderCeiling))
		var st []string
		for _, s := range p.Stalls {
			st = append(st, fmt.Sprintf("%.0f ms: %s dropped", s.StallMs, s.Dropped.format("%.0f", "")))
		}
		if len(st) > 0 {
			add("Drops when the reader stalls (tracer SIGSTOPped under saturating `/backend` load)", "0 dropped without a stall",
				strings.Join(st, "; ")+". "+stallThreshold(p))
		}
	}
	if res := r.Resolution; res != nil && len(res.Paths) == 3 {
		base := res.Paths[2]
		for _, p := range res.Paths[:2] {
			add(fmt.Sprintf("Offsets for a %d MB binary: %s", res.Binary.Bytes/mib, p.Name),
				fmt.Sprintf("full debug/dwarf walk: %s, %s peak RSS", base.Wall.format("%.0f", " ms"), base.MaxRSS.scale(1.0/mib).format("%.0f", " MB")),
				fmt.Sprintf("%s (×%s), %s peak RSS (×%s); resolution alone %s, %s allocated (full walk: %s, %s)",
					p.Wall.format("%.0f", " ms"), newSpread(ratios(p.Wall.Values, base.Wall.Values)).format("%.3f", ""),
					p.MaxRSS.scale(1.0/mib).format("%.0f", " MB"), newSpread(ratios(p.MaxRSS.Values, base.MaxRSS.Values)).format("%.2f", ""),
					p.Time.format("%.1f", " ms"), p.Bytes.scale(1.0/mib).format("%.1f", " MB"),
					base.Time.format("%.0f", " ms"), base.Bytes.scale(1.0/mib).format("%.0f", " MB")))
		}
	}
	if f := r.Footprint; f != nil && len(f.Cases) > 0 {
		one := f.Cases[0]
		var parts []string
		for _, c := range f.Cases {
			parts = append(parts, fmt.Sprintf("%d process(es): idle %s, loaded %s, peak %.0f MB",
				c.Processes, c.Idle.scale(1.0/mib).format("%.1f", " MB"), c.Loaded.scale(1.0/mib).format("%.1f", " MB"), float64(c.Peak)/mib))
		}
		last := f.Cases[len(f.Cases)-1]
		add("Tracer RSS", fmt.Sprintf("idle with 1 process: %s", one.Idle.scale(1.0/mib).format("%.1f", " MB")),
			fmt.Sprintf("%s; %d processes loaded: %+.1f MB over 1 idle", strings.Join(parts, "; "), last.Processes, (last.Loaded.Median-one.Idle.Median)/mib))
	}
	if g := r.Generator; g != nil {
		var total float64
		for _, ph := range phaseOrder {
			total += g.Phases[ph].Median
		}
		var parts []string
		for _, ph := range phaseOrder {
			if sp, ok := g.Phases[ph]; ok && total > 0 {
				parts = append(parts, fmt.Sprintf("%s %.1fs (%.0f%%)", ph, sp.Median, 100*sp.Median/total))
			}
		}
		add(fmt.Sprintf("Generator, go%s cold, amd64+arm64", strings.TrimPrefix(r.genVersion(), "go")), "—",
			fmt.Sprintf("%s wall; %s", g.Wall.format("%.1f", " s"), strings.Join(parts, ", ")))
		add("Generator, no-op rerun on the committed data/", fmt.Sprintf("cold one-release run: %.1f s", g.Wall.Median),
			fmt.Sprintf("%s (×%.3f; first rerun %.1f s)", g.NoOp.format("%.2f", " s"), g.NoOpRatio, g.NoOpFirst))
	}
	if m := r.Micro; m != nil {
		var parts []string
		for _, mr := range m.Results {
			parts = append(parts, fmt.Sprintf("%s %s", strings.TrimPrefix(mr.Name, ""), mr.NsPerOp.format("%.0f", " ns")))
		}
		var rs []string
		for _, ra := range m.Ratios {
			rs = append(rs, fmt.Sprintf("%s / %s ×%s", ra.Name, ra.Baseline, ra.Ratio.format("%.3f", "")))
		}
		add("Go benchmarks of the hot paths (ns/op)", strings.Join(rs, "; "), strings.Join(parts, "; "))
	}
	return rows
}

// stallThreshold says between which stalls drops began.
func stallThreshold(p *Pipeline) string {
	var lastClean *StallStep
	for i := range p.Stalls {
		st := &p.Stalls[i]
		if st.Dropped.Max == 0 {
			lastClean = st
			continue
		}
		if lastClean == nil {
			return fmt.Sprintf("Drops begin at or below a %.0f ms reader stall at %s spans/s.", st.StallMs, st.Offered.format("%.0f", ""))
		}
		return fmt.Sprintf("Drops begin between a %.0f ms and a %.0f ms reader stall at %s spans/s.", lastClean.StallMs, st.StallMs, st.Offered.format("%.0f", ""))
	}
	return "No stall tried dropped an event."
}

// shortGRPCArm is a grpc arm's name without " (exporter none)".
func shortGRPCArm(a arm) string {
	return strings.TrimSuffix(a.Name, " (exporter none)")
}

// shortArm is an arm's name without "traced (...)".
func shortArm(a arm) string {
	return strings.TrimPrefix(strings.TrimSuffix(a.Name, ")"), "traced (")
}

// untracedCPU is the untraced service's CPU per 1k requests per route.
func untracedCPU(o *Overhead) string {
	var ss []string
	for _, s := range o.Saturation {
		ss = append(ss, fmt.Sprintf("`%s` %.0f ms user, %.0f ms sys", s.Route,
			s.ServiceUserPer1k[untracedArm.Name].Median, s.ServiceSysPer1k[untracedArm.Name].Median))
	}
	return strings.Join(ss, "; ")
}

func (r *Results) genVersion() string {
	if r.Generator != nil && len(r.Generator.Costs) > 0 {
		return r.Generator.Costs[0].Version
	}
	return "?"
}

func table(header [3]string, rows [][3]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| %s | %s | %s |\n|---|---|---|\n", header[0], header[1], header[2])
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", r[0], r[1], r[2])
	}
	return b.String()
}

func machineLine(r *Results) string {
	var kept string
	if len(r.Kept) > 0 {
		var ks []string
		for _, k := range slices.Sorted(maps.Keys(r.Kept)) {
			ks = append(ks, fmt.Sprintf("%s (%s)", k, r.Kept[k]))
		}
		kept = " Kept from earlier runs, not measured in this one: " + strings.Join(ks, "; ") + "."
	}
	return fmt.Sprintf("Measured by `make bench` on %s: %d × %s, Linux %s, %s, %s RAM; commit %s; the whole run took %.1f min. "+
		"Figures are median [min..max] over the repeats, each against a baseline measured in the same run.",
		r.Started[:10], r.Machine.NProc, r.Machine.CPU, r.Machine.Kernel, r.Machine.GoVersion, r.Machine.MemTotal, r.Commit, r.WallSeconds/60) + kept
}

var summaryHeader = [3]string{"Figure", "Baseline (same run)", "Result: median [min..max]"}

// readmeTable is what goes between README's bench markers.
func readmeTable(r *Results) string {
	var b strings.Builder
	b.WriteString("\n### Measured overhead and cost\n\n")
	b.WriteString(table(summaryHeader, summaryRows(r)))
	b.WriteString("\n" + machineLine(r) + " Details, method and every section: [bench/results.md](bench/results.md); reproduce with `sudo make bench`.\n")
	if len(r.Skipped) > 0 {
		b.WriteString("\nNot measured in this run: " + skippedText(r) + ".\n")
	}
	return b.String()
}

func skippedText(r *Results) string {
	var ss []string
	for _, k := range slices.Sorted(maps.Keys(r.Skipped)) {
		ss = append(ss, k+" ("+r.Skipped[k]+")")
	}
	return strings.Join(ss, "; ")
}

// resultsMarkdown is bench/results.md.
func resultsMarkdown(r *Results) string {
	var b strings.Builder
	b.WriteString("# offsetdb benchmark results\n\n<!-- generated by make bench (go run ./bench); do not edit -->\n\n")
	b.WriteString(machineLine(r) + "\n\n")
	b.WriteString(table(summaryHeader, summaryRows(r)))
	if len(r.Skipped) > 0 {
		b.WriteString("\nNot measured in this run: " + skippedText(r) + ".\n")
	}
	var secs []string
	for _, k := range allSections {
		if s, ok := r.Sections[k]; ok {
			secs = append(secs, fmt.Sprintf("%s %.0fs", k, s))
		}
	}
	b.WriteString("\nTime per section: " + strings.Join(secs, ", ") + ".\n")

	if o := r.Overhead; o != nil {
		fmt.Fprintf(&b, "\n## 1. Per-request overhead\n\nThe example service (`tracer/testdata/service`) on loopback, one process for the whole section; "+
			"each pair runs it untraced and traced (`tracer --pid`, attached before and detached after each traced run), "+
			"the order reversed every other pair; %d pairs × %.0f s. Traced arms: `OTEL_TRACES_EXPORTER=none` (spans are built by the SDK and dropped: "+
			"the cost of the probes, the ring buffer and span building) and, for `/items/1`, OTLP/HTTP to a sink in the harness process that decodes every request "+
			"(the cost of export added). Tracer CPU is utime+stime from /proc/PID/stat over the load only. "+
			"The uprobes' own cost (a trap per probe hit, run in the service's threads) shows in the throughput, not in the tracer's CPU.\n\n", o.Pairs, o.Duration)
		b.WriteString("| Route | Arm | req/s | ratio to untraced | service user / 1k req | service sys / 1k req | tracer CPU / 1k req | tracer context switches / span | spans recorded / expected | dropped |\n|---|---|---|---|---|---|---|---|---|---|\n")
		for _, s := range o.Saturation {
			for _, a := range o.Arms {
				ps, ok := s.PerSecond[a.Name]
				if !ok {
					continue
				}
				fmt.Fprintf(&b, "| `%s` (%s) | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", s.Route, s.Load, a.Name, ps.format("%.0f", ""),
					orDash(s.Ratio, a.Name, "%.3f", ""), orDash(s.ServiceUserPer1k, a.Name, "%.0f", " ms"), orDash(s.ServiceSysPer1k, a.Name, "%.0f", " ms"),
					orDash(s.TracerCPUPer1k, a.Name, "%.1f", " ms"), orDash(s.TracerSwitchesPerSpan, a.Name, "%.2f", ""),
					orDash(s.SpanCompleteness, a.Name, "%.4f", ""), dropped(s.Dropped, a))
			}
			if s.ExportedOf > 0 {
				fmt.Fprintf(&b, "\nOTLP sink received %d of the %d spans the OTLP arm recorded on `%s`.\n\n", s.Exported, s.ExportedOf, s.Route)
			}
		}
		b.WriteString("\nLatency at a fixed rate: an open-loop generator in the harness (one goroutine per request, sent on a 1 ms tick, latency from the moment each request is sent; " +
			"send lag is how late requests left against their schedule, the same for both arms when the generator keeps up):\n\n")
		b.WriteString("| Route | Arm | p50 | p99 | p50 delta | p99 delta | tracer CPU / 1k req | send lag p99 | errors |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, f := range o.FixedRate {
			for _, a := range []arm{untracedArm, noneArm()} {
				fmt.Fprintf(&b, "| `%s` at %d req/s | %s | %s | %s | %s | %s | %s | %s | %d |\n", f.Route, f.Rate, a.Name,
					f.P50[a.Name].format("%.3f", " ms"), f.P99[a.Name].format("%.3f", " ms"),
					orDash(f.P50Delta, a.Name, "%+.3f", " ms"), orDash(f.P99Delta, a.Name, "%+.3f", " ms"),
					orDash(f.TracerCPUPer1k, a.Name, "%.1f", " ms"), orDash(f.SendLagP99, a.Name, "%.2f", " ms"), f.Errors[a.Name])
			}
		}
	}
	if g := r.GRPC; g != nil {
		fmt.Fprintf(&b, "\n## 2. gRPC unary calls\n\n`bench/grpcload` (%s) serves grpc-go's health service on loopback, one process for the whole section, and calls it: "+
			"%d callers in one client process, each sending its next unary `grpc.health.v1.Health/Check` when the previous one is answered (closed loop, so latency includes queueing at saturation), "+
			"over one connection. Each pair runs every arm once, the order reversed every other pair; %d pairs × %.0f s. "+
			"Traced arms (`OTEL_TRACES_EXPORTER=none`): the server (`tracer --pid`: a server span per call), and the server and the client (`tracer --exe` on grpcload: a server and a client span per call), "+
			"attached before and detached after each run. Ratios are traced over the untraced run of the same pair; CPU is the server's and the tracer's utime+stime over the load only.\n\n",
			g.Binary, g.Workers, g.Pairs, g.Duration)
		b.WriteString("| Arm | calls/s | ratio to untraced | p50 | p50 ratio | p99 | p99 ratio | server user / 1k calls | server sys / 1k calls | tracer CPU / 1k calls | spans recorded / expected | dropped |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, a := range g.Arms {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", a.Name, g.CallsPerSecond[a.Name].format("%.0f", ""),
				orDash(g.Ratio, a.Name, "%.3f", ""), g.P50[a.Name].format("%.3f", " ms"), orDash(g.P50Ratio, a.Name, "%.2f", ""),
				g.P99[a.Name].format("%.3f", " ms"), orDash(g.P99Ratio, a.Name, "%.2f", ""),
				orDash(g.ServerUserPer1k, a.Name, "%.0f", " ms"), orDash(g.ServerSysPer1k, a.Name, "%.0f", " ms"), orDash(g.TracerCPUPer1k, a.Name, "%.1f", " ms"),
				orDash(g.SpanCompleteness, a.Name, "%.4f", ""), dropped(g.Dropped, a))
		}
	}
	if d := r.DB; d != nil {
		b.WriteString(dbMarkdown(d))
	}
	if c := r.Context; c != nil {
		b.WriteString(contextMarkdown(c))
	}
	if p := r.Peers; p != nil {
		b.WriteString(peersMarkdown(p))
	}
	if p := r.Pipeline; p != nil {
		fmt.Fprintf(&b, "\n## 3. Event pipeline\n\nOne tracer session (exporter %s) per step, so that its exit log's `dropped=N` belongs to that step; "+
			"wrk at rising concurrency, %.0f s per step, the ramp repeated in rounds. Offered spans = requests × spans per request (`/items/1`: server, client, and the server span of the `/backend` call it makes).\n\n", p.Exporter, p.Duration)
		b.WriteString("| Step | offered spans/s | recorded spans/s | dropped | tracer CPU (cores) | tracer CPU per span | tracer context switches per span |\n|---|---|---|---|---|---|---|\n")
		for _, s := range p.Steps {
			fmt.Fprintf(&b, "| `%s` wrk -c%d | %s | %s | %s | %s | %s | %s |\n", s.Route, s.Connections, s.Offered.format("%.0f", ""), s.SpansPerSecond.format("%.0f", ""),
				s.Dropped.format("%.0f", ""), s.TracerCPUShare.format("%.2f", ""), s.CPUPerSpan.format("%.1f", " µs"), s.SwitchesPerSpan.format("%.2f", ""))
		}
		fmt.Fprintf(&b, "\nHighest rate without drops: %.0f spans/s. ", p.MaxZeroDrop)
		if p.FirstDrop == nil {
			b.WriteString("No step dropped an event: on this machine the service and the load generator saturate the CPUs before the ring buffer fills. ")
		} else {
			fmt.Fprintf(&b, "Drops begin at %s (%s spans/s). ", p.FirstDrop, p.FirstDrop.SpansPerSecond.format("%.0f", ""))
		}
		fmt.Fprintf(&b, "At the measured CPU cost per span, one core spent only on reading would record ≈%.0f spans/s (an extrapolation, not a measurement).\n", p.ReaderCeiling)
		if len(p.Stalls) > 0 {
			b.WriteString("\nWhere drops begin when the reader falls behind: the tracer stopped (SIGSTOP) for a while, 2 s into a saturating run, while the probes keep submitting to the 1 MiB ring buffer.\n\n")
			b.WriteString("| Route | reader stall | offered spans/s (whole run) | dropped |\n|---|---|---|---|\n")
			for _, st := range p.Stalls {
				fmt.Fprintf(&b, "| `%s` wrk -c64 | %.0f ms | %s | %s |\n", st.Route, st.StallMs, st.Offered.format("%.0f", ""), st.Dropped.format("%.0f", ""))
			}
			b.WriteString("\n" + stallThreshold(p) + "\n")
		}
	}
	if res := r.Resolution; res != nil {
		bb := res.Binary
		fmt.Fprintf(&b, "\n## 4. Offset resolution on a large binary\n\n`bench/bigbinary` (its own module: the Kubernetes clientset and a dozen AWS SDK v2 service clients, all methods kept): "+
			"%d MB, %d MB of DWARF sections (compressed), %s, %d modules; build: %s. The %d fields of both instrumentations; %d rounds, the three paths alternating. "+
			"Process: a child process per run, wall time and peak RSS (GNU time's %%M; `tracer inspect` also inspects the binary: build info, symbols, RET instructions). "+
			"In process: the resolution alone (`resolve.Resolver.Resolve`, or the full walk), time and bytes allocated from runtime.MemStats.\n\n",
			bb.Bytes/mib, bb.DWARFBytes/mib, bb.GoVersion, bb.Modules, bb.BuildTime, res.Fields, res.Rounds)
		b.WriteString("| Path | process wall | process peak RSS | in-process time | allocated | allocations | provenance |\n|---|---|---|---|---|---|---|\n")
		for _, p := range res.Paths {
			fmt.Fprintf(&b, "| %s<br>`%s` | %s | %s | %s | %s | %s | %s |\n", p.Name, p.Command, p.Wall.format("%.0f", " ms"), p.MaxRSS.scale(1.0/mib).format("%.0f", " MB"),
				p.Time.format("%.1f", " ms"), p.Bytes.scale(1.0/mib).format("%.1f", " MB"), p.Allocs.format("%.0f", ""), p.Provides)
		}
	}
	if f := r.Footprint; f != nil {
		fmt.Fprintf(&b, "\n## 5. Tracer footprint\n\n`%s` over copies of the example service (one binary), each started after the tracer "+
			"(held at its exec until attached); VmRSS sampled every 250 ms idle (1 s after the last attach, for 2 s) and under load (%s); peak is VmHWM. "+
			"CPU is the tracer's utime+stime over each window, in cores. BPF is the memlock of the tracer's BPF maps and programs (/proc/PID/fdinfo). "+
			"Attach is each process's exec to its probes in place, as the tracer logs it (exec_to_attached), and the time until all were attached. "+
			"The machine has %d cores shared with other work: figures are noisy.\n\n", f.Command, f.Load, r.Machine.NProc)
		b.WriteString("| Traced processes | idle RSS | loaded RSS | peak RSS | per process over 1 (idle) | idle CPU | loaded CPU | CPU per 1k requests | BPF memlock (maps, programs) | exec → attached | all attached | requests | spans | dropped | one service's RSS |\n" +
			"|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		one := f.Cases[0]
		for _, c := range f.Cases {
			per := "–"
			if c.Processes > one.Processes {
				per = fmt.Sprintf("%.2f MB", (c.Idle.Median-one.Idle.Median)/float64(c.Processes-one.Processes)/mib)
			}
			dropped := fmt.Sprint(c.Dropped)
			if len(c.DroppedBy) > 0 {
				var why []string
				for _, r := range slices.Sorted(maps.Keys(c.DroppedBy)) {
					why = append(why, fmt.Sprintf("%s %d", r, c.DroppedBy[r]))
				}
				dropped += " (" + strings.Join(why, ", ") + ")"
			}
			fmt.Fprintf(&b, "| %d | %s | %s | %.1f MB | %s | %.3f | %.2f | %.1f ms | %.1f MB (%d, %d) | %s | %.1f s | %d | %d | %s | %.1f MB |\n", c.Processes,
				c.Idle.scale(1.0/mib).format("%.1f", " MB"), c.Loaded.scale(1.0/mib).format("%.1f", " MB"), float64(c.Peak)/mib, per,
				c.IdleCPU, c.LoadedCPU, c.CPUPer1k, float64(c.BPFMemlock)/mib, c.BPFMaps, c.BPFProgs,
				c.Attach.format("%.0f", " ms"), c.AttachAll, c.Requests, c.Spans, dropped, float64(c.ServiceRSS)/mib)
		}
	}
	if g := r.Generator; g != nil {
		fmt.Fprintf(&b, "\n## 6. Generator\n\n`%s`, %d run(s): wall %s. Phases from its `--report`:\n\n", g.Command, g.Wall.N, g.Wall.format("%.1f", " s"))
		b.WriteString("| Phase | seconds | share |\n|---|---|---|\n")
		var total float64
		for _, ph := range phaseOrder {
			total += g.Phases[ph].Median
		}
		for _, ph := range phaseOrder {
			if sp, ok := g.Phases[ph]; ok && total > 0 {
				fmt.Fprintf(&b, "| %s | %s | %.0f%% |\n", ph, sp.format("%.2f", ""), 100*sp.Median/total)
			}
		}
		fmt.Fprintf(&b, "\nNo-op: `%s`: %s (first rerun %.2f s), ×%.3f of the cold one-release run.\n", g.NoOpCommand, g.NoOp.format("%.2f", " s"), g.NoOpFirst, g.NoOpRatio)
	}
	if m := r.Micro; m != nil {
		fmt.Fprintf(&b, "\n## Go benchmarks\n\nEach package's test binary built once, run %d rounds (package after package, `-test.benchtime=%s -test.count=1`); raw output for benchstat in `%s`.\n\n",
			m.Rounds, m.BenchTime, "bench/micro.txt")
		b.WriteString("| Benchmark | ns/op | B/op | allocs/op |\n|---|---|---|---|\n")
		for _, mr := range m.Results {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", mr.Name, mr.NsPerOp.format("%.0f", ""), mr.BytesPerOp.format("%.0f", ""), mr.AllocsPerOp.format("%.0f", ""))
		}
		for _, ra := range m.Ratios {
			fmt.Fprintf(&b, "\n%s / %s: ×%s per round.\n", ra.Name, ra.Baseline, ra.Ratio.format("%.4f", ""))
		}
	}
	b.WriteString("\nReproduce: `sudo make bench` (root for the tracer sections; about 18 minutes on 2 cores; the large binary's first build adds minutes and is cached in ~/.cache/offsetdb-bench). Machine-readable: `bench/results.json`.\n")
	return b.String()
}

func orDash(m map[string]Spread, k, verb, unit string) string {
	if s, ok := m[k]; ok {
		return s.format(verb, unit)
	}
	return "—"
}

func dropped(m map[string]uint64, a arm) string {
	if !a.traced() {
		return "—"
	}
	return fmt.Sprint(m[a.Name])
}

// dbMarkdown is the db section's part of the report.
func dbMarkdown(d *DB) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## 2b. Database, Redis and Kafka clients\n\n`dbsvc load` (package `tracer/instrumentation/databasesql/dbtest`, %s) against PostgreSQL, MariaDB and Redis "+
		"started on loopback for the section: %d callers in one process, each making its next call when the previous one returns (closed loop), no request around them (every span a root). "+
		"Per client, each pair runs untraced and traced (`tracer --pid`, `OTEL_TRACES_EXPORTER=none`, attached before and detached after each run) once, the order reversed every other pair; %d pairs × %.0f s. "+
		"Ratios are traced over the untraced run of the same pair; CPU is the calling process's and the tracer's utime+stime over the load only.\n\n",
		d.Binary, d.Workers, d.Pairs, d.Duration)
	if d.KafkaBinary != "" {
		fmt.Fprintf(&b, "Kafka: `kafkaload` (`bench/testdata/kafkaload`, %s) against franz-go's `kfake` broker (it speaks the real Kafka protocol; topics of one partition), "+
			"which runs in a process of its own, so that the traced process does only the client's work: in it, the broker's CPU would count as the client's (the same traced or not, diluting the cost), "+
			"and its writes would pass the context writer's socket program as a kafka-go process's. "+
			"kafka-produce: %d callers share one synchronous `Writer` (`RequiredAcks` one: a call returns when the broker has stored its message), each writing one message per `WriteMessages` call; "+
			"`BatchSize` 1, so a call's message is a full batch and goes out at once in a Produce request of its own, never waiting for `BatchTimeout` (1 ms, the default being 1 s), "+
			"and each call is one producer span and one record for the context writer to rewrite. "+
			"It also runs a third arm with the context writer off (`--context-propagation=false`), so that the writer's cost (its `sk_msg` program rewriting each Produce request, and the message list the `WriteMessages` probe keeps) shows apart from the probes'. "+
			"kafka-consume: one caller reads with `Reader.ReadMessage` (no consumer group, so no commits; `MaxBytes` 1 MiB) from a topic filled with 200,000 messages before the runs, starting over at offset 0 after the last; "+
			"each message is one consumer span. The broker's CPU is not counted.\n\n", d.KafkaBinary, d.Workers)
	}
	b.WriteString("| Client | untraced calls/s | traced calls/s | ratio | client user / 1k calls (untraced → traced) | client sys / 1k calls (untraced → traced) | tracer CPU / 1k calls | spans / call | dropped |\n|---|---|---|---|---|---|---|---|---|\n")
	u := untracedArm.Name
	row := func(name, c, k string, t arm) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s → %s | %s → %s | %s | %s | %d |\n", name,
			d.CallsPerSecond[c+"/"+u].format("%.0f", ""), d.CallsPerSecond[c+"/"+t.Name].format("%.0f", ""), d.Ratio[k].format("%.3f", ""),
			d.ClientUserPer1k[c+"/"+u].format("%.0f", " ms"), d.ClientUserPer1k[c+"/"+t.Name].format("%.0f", " ms"),
			d.ClientSysPer1k[c+"/"+u].format("%.0f", " ms"), d.ClientSysPer1k[c+"/"+t.Name].format("%.0f", " ms"),
			d.TracerCPUPer1k[k].format("%.1f", " ms"), d.SpanCompleteness[k].format("%.4f", ""), d.Dropped[k])
	}
	var propagated []string
	for _, c := range d.Clients {
		row(dbClientNames[c], c, c, noneArm())
		for _, a := range d.ExtraArms[c] {
			row(dbClientNames[c]+", `"+strings.Join(a.Flags, " ")+"`", c, c+"/"+a.Name, a)
		}
		for _, a := range append([]arm{noneArm()}, d.ExtraArms[c]...) {
			if p, ok := d.Propagated[c+"/"+a.Name]; ok {
				propagated = append(propagated, fmt.Sprintf("%s %s: %s", c, a.Name, p.format("%.4f", "")))
			}
		}
	}
	if len(propagated) > 0 {
		b.WriteString("\nRecords given a `traceparent` header by the context writer (the tracer's `kafka_written`), per call: " + strings.Join(propagated, "; ") + ".")
		for _, c := range d.Clients {
			if w, ok := d.WriterRatio[c]; ok {
				fmt.Fprintf(&b, " The context writer's own cost, %s calls/s traced over traced with `--context-propagation=false` in the same pair: ×%s.", c, w.format("%.3f", ""))
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}
