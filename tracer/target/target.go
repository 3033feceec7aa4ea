// Package target traces one Go process: it decides which instrumentations
// can run on its binary, attaches them, and turns their events into spans
// until the process exits or the caller stops.
package target

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/offsetdb/offsetdb/gobinary"
	"github.com/offsetdb/offsetdb/goversion"
	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/process"
	"github.com/offsetdb/offsetdb/tracer/resolve"
	"github.com/offsetdb/offsetdb/tracer/spans"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
)

// minGo is the oldest release traced, on every architecture: the offsets
// database starts there. Releases before Go 1.17 on amd64 (1.18 on arm64)
// use the stack-based calling convention, which the BPF programs read too
// (bpf/go_abi.h); probes not made for it are skipped (uprobe.Probe.StackABI).
var minGo = goversion.MustParse("go1.12")

// archs are the architectures the BPF objects are built for.
var archs = []string{"amd64", "arm64"}

// Disabled is an instrumentation that will not run on a binary, and why.
type Disabled struct {
	Name    string
	Reason  string
	Missing []resolve.Field // the fields that could not be resolved, if that is the reason
}

func (d Disabled) String() string {
	if len(d.Missing) == 0 {
		return fmt.Sprintf("%s disabled: %s", d.Name, d.Reason)
	}
	var fs []string
	for _, f := range d.Missing {
		why := f.Status.String()
		if f.Err != nil {
			why += ": " + f.Err.Error()
		}
		fs = append(fs, fmt.Sprintf("%s (%s)", f.ID, why))
	}
	return fmt.Sprintf("%s disabled: %s: %s", d.Name, d.Reason, strings.Join(fs, "; "))
}

// Plan is what will be traced in one binary.
type Plan struct {
	Binary   *gobinary.Binary
	Fields   map[offsets.FieldID]resolve.Field
	Enabled  []uprobe.Instrumentation
	Disabled []Disabled
	// NotUsed names the instrumentations of libraries the binary does not
	// link (a gRPC instrumentation for a program without grpc-go): neither
	// enabled nor a failure.
	NotUsed []string
	// Skipped lists, by instrumentation name, the optional probes left out
	// of an enabled instrumentation and why.
	Skipped map[string][]uprobe.Skipped
	// Degraded lists, by instrumentation name, the unresolved fields an
	// enabled instrumentation runs without (uprobe.Field.IfResolved).
	Degraded map[string][]resolve.Field
	// Assumptions are what probes were chosen on without proof (see
	// uprobe.Located.Assumed), each once.
	Assumptions []string
	// Attach tunes how Trace attaches the probes; the zero value is the
	// default (uprobe_multi links where the kernel has them). Unused when
	// Loader is set: the Loader's own options apply.
	Attach uprobe.Options
	// Loader, when set, is the tracer-wide loader Trace attaches through:
	// the binary's BPF collections loaded once for all its processes, one
	// ring buffer for every process. Its owner then counts what is lost
	// in BPF (ring buffer full, in-flight calls, skipped runs), which no
	// single process can be told of. When nil, Trace uses a Loader of its
	// own and counts those too.
	Loader *uprobe.Loader
	// Count, when set, is told of the events Trace does not turn into
	// spans as they happen (Errors and Unsampled per event, Dropped about
	// every second), so that the caller's counts are current while the
	// process is traced. The Stats Trace returns still hold the totals.
	Count func(delta Stats)
}

// Values returns the resolved offsets of every field, for uprobe.Attach.
func (p *Plan) Values() map[offsets.FieldID]offsets.Value {
	vals := make(map[offsets.FieldID]offsets.Value, len(p.Fields))
	for id, f := range p.Fields {
		if f.Status == resolve.Resolved {
			vals[id] = f.Value
		}
	}
	return vals
}

// NewPlan inspects the binary at path and decides, instrumentation by
// instrumentation, what can run: an instrumentation of a library the binary
// does not link is not used; one is disabled alone when a required probe
// does not fit the binary (function missing, or outside the probe's
// version bound) or one of its required fields cannot be resolved; the
// others still run. The caller closes Plan.Binary.
func NewPlan(path string, r *resolve.Resolver, insts []uprobe.Instrumentation) (*Plan, error) {
	bin, err := gobinary.Open(path)
	if err != nil {
		return nil, err
	}
	p := &Plan{Binary: bin}
	var used []uprobe.Instrumentation
	for _, inst := range insts {
		if !Links(bin, inst) {
			p.NotUsed = append(p.NotUsed, inst.Name)
			continue
		}
		used = append(used, inst)
	}
	if reason := unsupported(bin); reason != "" {
		for _, inst := range used {
			p.Disabled = append(p.Disabled, Disabled{Name: inst.Name, Reason: reason})
		}
		return p, nil
	}
	p.Fields = r.Resolve(bin, uprobe.Fields(used...))
	p.Skipped = make(map[string][]uprobe.Skipped)
	p.Degraded = make(map[string][]resolve.Field)
	for _, inst := range used {
		d, located, skipped, ok := check(bin, p.Fields, inst)
		if !ok {
			d.Name = inst.Name
			p.Disabled = append(p.Disabled, d)
			continue
		}
		for _, l := range located {
			if l.Assumed != "" && !slices.Contains(p.Assumptions, l.Assumed) {
				p.Assumptions = append(p.Assumptions, l.Assumed)
			}
		}
		if len(skipped) > 0 {
			p.Skipped[inst.Name] = skipped
		}
		for _, f := range inst.Fields {
			if rf := p.Fields[f.ID]; f.IfResolved && rf.Status == resolve.Unresolved {
				p.Degraded[inst.Name] = append(p.Degraded[inst.Name], rf)
			}
		}
		p.Enabled = append(p.Enabled, inst)
	}
	return p, nil
}

// Links reports whether bin links the library inst instruments: whether
// a module of bin provides the package of inst's first probe and the
// linker kept code of that package (a program that imports only
// grpc/codes, or no net/http at all, does not). A module that is linked
// but lacks the probed function is a failure (Disabled), not this: the
// function may have been renamed in that version. The standard library's
// probed functions exist in every release traced, so there a missing first
// function means the program does not use that part (a server that makes
// no HTTP calls has no (*http.Transport).roundTrip): not linked either.
func Links(bin *gobinary.Binary, inst uprobe.Instrumentation) bool {
	if len(inst.Probes) == 0 {
		return false
	}
	first := inst.Probes[0].Symbol
	pkg := gobinary.SymbolPackage(first)
	m, ok := bin.PackageModule(pkg)
	if !ok || !bin.HasPackage(pkg) {
		return false
	}
	if m.Path == gobinary.StdModule {
		if _, err := bin.Function(first); errors.Is(err, gobinary.ErrSymbolNotFound) {
			return false
		}
	}
	return true
}

func unsupported(bin *gobinary.Binary) string {
	if !slices.Contains(archs, bin.Arch) {
		return fmt.Sprintf("GOARCH %s is not supported (%s are)", bin.Arch, strings.Join(archs, ", "))
	}
	if bin.GoVersionErr == nil && bin.GoVersion.Less(minGo) {
		return fmt.Sprintf("built with %s; releases before %s are not traced (the offsets database starts at %s)",
			bin.GoVersion, minGo, minGo)
	}
	if err := uprobe.CanReadStackABI(bin); err != nil {
		return err.Error()
	}
	return ""
}

func check(bin *gobinary.Binary, fields map[offsets.FieldID]resolve.Field, inst uprobe.Instrumentation) (Disabled, []uprobe.Located, []uprobe.Skipped, bool) {
	located, skipped, err := inst.Locate(bin)
	if err != nil {
		return Disabled{Reason: strings.TrimPrefix(err.Error(), "instrumentation "+inst.Name+": ")}, nil, nil, false
	}
	optional := map[offsets.FieldID]bool{}
	var ids []offsets.FieldID
	for _, f := range inst.Fields {
		if f.IfResolved {
			continue // never disables the instrumentation
		}
		ids = append(ids, f.ID)
		optional[f.ID] = f.Optional
	}
	missing := resolve.Missing(fields, ids, func(id offsets.FieldID) bool { return optional[id] })
	if len(missing) > 0 {
		return Disabled{
			Reason:  fmt.Sprintf("%d field(s) unknown for %s; to fix: %s", len(missing), versionsOf(bin, missing), resolve.Hint(bin, missing)),
			Missing: missing,
		}, nil, nil, false
	}
	return Disabled{}, located, skipped, true
}

// versionsOf names the versions of the modules the fields belong to:
// "go1.22.5 amd64", "google.golang.org/grpc@v1.60.0 amd64".
func versionsOf(bin *gobinary.Binary, fields []resolve.Field) string {
	var vs []string
	for _, f := range fields {
		v := "unknown module"
		if module, ok := resolve.Module(bin, f.ID); ok && module == offsets.StdModule {
			v = bin.GoVersionRaw
			if v == "" {
				v = "unknown Go version"
			}
		} else if m, ok := bin.Module(module); ok {
			v = module + "@" + m.EffectiveVersion()
		}
		if !slices.Contains(vs, v) {
			vs = append(vs, v)
		}
	}
	return strings.Join(vs, ", ") + " " + bin.Arch
}

// Stats are counters of one traced process.
type Stats struct {
	Spans   uint64
	Errors  uint64 // records that could not be decoded or recorded
	Dropped uint64 // events lost because the ring buffer was full
	// InFlightLost counts calls whose return found no start in BPF
	// (uprobe.Loader.InFlightLost): each a span lost.
	InFlightLost uint64
	// Unsampled counts spans not exported because their caller's trace
	// context was not sampled.
	Unsampled uint64
	// SkippedRuns counts probe hits at which the kernel did not run the
	// program, another BPF program being active on that CPU
	// (uprobe.Loader.SkippedRuns): each may have lost a span.
	SkippedRuns uint64
}

// Trace attaches the plan's enabled instrumentations to process pid and
// records a span for every event until ctx is done or the process exits.
// attached, if not nil, is called once the probes are in place (a process
// the tracer started is held until then). Trace detaches before returning.
//
// Trace learns of the exit from a pidfd, within microseconds, and then
// detaches and waits for the records already submitted: milliseconds
// with uprobe_multi links, ~80 ms per uprobe without. A detach that takes
// more than a second is logged, with what it waits for.
func Trace(ctx context.Context, p *Plan, pid int, rec *spans.Recorder, log *slog.Logger, attached func()) (Stats, error) {
	var st Stats
	if len(p.Enabled) == 0 {
		return st, errors.New("no instrumentation can run on this binary")
	}
	if pid <= 0 {
		return st, fmt.Errorf("pid %d: Trace traces one process", pid)
	}
	if !process.Alive(pid) {
		return st, fmt.Errorf("pid %d: %w", pid, process.ErrGone)
	}
	count := p.Count
	if count == nil {
		count = func(Stats) {}
	}
	ld := p.Loader
	own := ld == nil
	if own {
		ld = uprobe.NewLoader(&p.Attach)
		defer func() {
			if err := ld.Close(); err != nil {
				log.Warn("unload", "pid", pid, "err", err)
			}
		}()
	}
	// handle runs on the loader's reader goroutine until proc.Close
	// returns; st is read only after.
	handle := func(ev uprobe.Event) {
		if ev.Err != nil {
			st.Errors++
			count(Stats{Errors: 1})
			log.Warn("bad event", "instrumentation", ev.Instrumentation, "pid", pid, "err", ev.Err)
			return
		}
		if ev.Span.Unsampled {
			st.Unsampled++
			count(Stats{Unsampled: 1})
			return
		}
		if err := rec.Record(ev.Span); err != nil {
			st.Errors++
			count(Stats{Errors: 1})
			log.Warn("span not recorded", "pid", pid, "err", err)
			return
		}
		st.Spans++
	}
	proc, err := ld.Attach(ctx, p.Binary, pid, p.Enabled, p.Values(), handle)
	if err != nil {
		return st, err
	}
	links, uprobes := proc.Links()
	closed := false
	detach := func() {
		if closed {
			return
		}
		closed = true
		defer LogIfSlow(log, "detaching uprobes", "pid", pid, "links", links, "uprobes", uprobes)()
		if err := proc.Close(); err != nil {
			log.Warn("detach", "pid", pid, "err", err)
		}
	}
	defer detach()
	var names []string
	for _, inst := range p.Enabled {
		names = append(names, inst.Name)
	}
	if attached != nil {
		attached()
	}
	linkKind := "per uprobe"
	if proc.MultiLinks() {
		linkKind = "uprobe_multi"
	}
	exe := p.Binary.Path
	if strings.HasPrefix(exe, "/proc/") {
		exe = fmt.Sprintf("/proc/%d/exe", pid) // the plan may come from another process of the binary
	}
	log.Info("attached", "pid", pid, "binary", exe, "go", p.Binary.GoVersionRaw, "instrumentations", strings.Join(names, ", "),
		"uprobes", uprobes, "links", links, "link_kind", linkKind)

	var lost *LostCounter
	if own {
		lost = NewLostCounter(ld, func(d Stats) { count(d) })
	}
	exited := make(chan struct{})
	waitCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		if process.WaitExit(waitCtx, pid) == nil {
			log.Info("target exited", "pid", pid)
			close(exited)
		}
	}()
	if lost != nil {
		tick := time.NewTicker(time.Second)
	wait:
		for {
			select {
			case <-ctx.Done():
				break wait
			case <-exited:
				break wait
			case <-tick.C:
				lost.Report()
			}
		}
		tick.Stop()
	} else {
		select {
		case <-ctx.Done():
		case <-exited:
		}
	}
	detach()
	if !own {
		return st, nil
	}
	lost.Report()
	st.Dropped, st.InFlightLost, st.SkippedRuns = ld.Drops(), ld.InFlightLost(), ld.SkippedRuns()
	st.Errors += ld.Unattributed()
	LogLost(log, st, "pid", pid)
	return st, nil
}

// LostCounter reports, as deltas, what a Loader counts as lost: records
// the ring buffer had no room for, calls whose start was not found, and
// records of no traced process (as Errors).
type LostCounter struct {
	ld    *uprobe.Loader
	count func(Stats)
	mu    sync.Mutex
	last  Stats
}

// NewLostCounter returns a LostCounter that tells count of what ld lost
// since the last Report.
func NewLostCounter(ld *uprobe.Loader, count func(Stats)) *LostCounter {
	return &LostCounter{ld: ld, count: count}
}

// Report calls count with what was lost since the last call, if anything.
func (c *LostCounter) Report() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := Stats{Dropped: c.ld.Drops(), InFlightLost: c.ld.InFlightLost(), Errors: c.ld.Unattributed()}
	d := Stats{Dropped: now.Dropped - c.last.Dropped, InFlightLost: now.InFlightLost - c.last.InFlightLost, Errors: now.Errors - c.last.Errors}
	c.last = now
	if d != (Stats{}) {
		c.count(d)
	}
}

// LogLost logs what st says was lost in BPF, with args naming whose.
func LogLost(log *slog.Logger, st Stats, args ...any) {
	if st.SkippedRuns > 0 {
		log.Warn("the kernel skipped probe runs: another BPF program was running on the CPU (preempted there); the spans of those calls are lost",
			append(args, "skipped_runs", st.SkippedRuns)...)
	}
	if st.Dropped > 0 {
		log.Warn("events dropped: the ring buffer was full", append(args, "dropped", st.Dropped)...)
	}
	if st.InFlightLost > 0 {
		log.Warn("calls ended without a recorded start (begun before the probes were attached, evicted from the in-flight map, or their entry run skipped): their spans are lost",
			append(args, "in_flight_lost", st.InFlightLost)...)
	}
}

// slowAfter is how long a step of stopping may take before LogIfSlow says
// what the tracer is waiting for.
const slowAfter = time.Second

// LogIfSlow logs "still waiting" with what and args if the returned
// function is not called within a second (at info level), and again every
// five seconds until it is (at warn level): a stop that takes long says
// what it waits for.
func LogIfSlow(log *slog.Logger, what string, args ...any) (done func()) {
	start := time.Now()
	stop := make(chan struct{})
	go func() {
		t := time.NewTimer(slowAfter)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				// The first notice is progress (detaching a link waits
				// for the kernel, about a second under load); one that
				// repeats is worth a warning.
				level, waited := slog.LevelInfo, time.Since(start)
				if waited > 5*time.Second {
					level = slog.LevelWarn
				}
				log.Log(context.Background(), level, "still waiting", append([]any{"for", what, "waited", waited.Round(time.Millisecond)}, args...)...)
				t.Reset(5 * time.Second)
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(stop) }) }
}
