// Package target traces one Go process: it decides which instrumentations
// can run on its binary, attaches them, and turns their events into spans
// until the process exits or the caller stops.
package target

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/offsetdb/offsetdb/gobinary"
	"github.com/offsetdb/offsetdb/goversion"
	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/process"
	"github.com/offsetdb/offsetdb/tracer/resolve"
	"github.com/offsetdb/offsetdb/tracer/spans"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
)

// minGo is the oldest release whose calling convention the BPF programs
// understand: Go 1.17 introduced the register ABI on amd64 (1.18 on arm64).
var minGo = map[string]goversion.Version{
	"amd64": goversion.MustParse("go1.17"),
	"arm64": goversion.MustParse("go1.18"),
}

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
// instrumentation, what can run: an instrumentation is disabled alone when
// its function is not in the binary or one of its required fields cannot
// be resolved; the others still run. The caller closes Plan.Binary.
func NewPlan(path string, r *resolve.Resolver, insts []uprobe.Instrumentation) (*Plan, error) {
	bin, err := gobinary.Open(path)
	if err != nil {
		return nil, err
	}
	p := &Plan{Binary: bin}
	if reason := unsupported(bin); reason != "" {
		for _, inst := range insts {
			p.Disabled = append(p.Disabled, Disabled{Name: inst.Name, Reason: reason})
		}
		return p, nil
	}
	p.Fields = r.Resolve(bin, uprobe.Fields(insts...))
	for _, inst := range insts {
		if d, ok := check(bin, p.Fields, inst); !ok {
			d.Name = inst.Name
			p.Disabled = append(p.Disabled, d)
			continue
		}
		p.Enabled = append(p.Enabled, inst)
	}
	return p, nil
}

func unsupported(bin *gobinary.Binary) string {
	min, ok := minGo[bin.Arch]
	if !ok {
		return fmt.Sprintf("GOARCH %s is not supported (amd64, arm64 are)", bin.Arch)
	}
	if bin.GoVersionErr == nil && bin.GoVersion.Less(min) {
		return fmt.Sprintf("built with %s; the probes need the register calling convention of %s or later on %s",
			bin.GoVersion, min, bin.Arch)
	}
	return ""
}

func check(bin *gobinary.Binary, fields map[offsets.FieldID]resolve.Field, inst uprobe.Instrumentation) (Disabled, bool) {
	for _, p := range inst.Probes {
		if _, err := bin.Function(p.Symbol); err != nil {
			return Disabled{Reason: fmt.Sprintf("function %s: %v", p.Symbol, err)}, false
		}
	}
	optional := map[offsets.FieldID]bool{}
	ids := make([]offsets.FieldID, len(inst.Fields))
	for i, f := range inst.Fields {
		ids[i] = f.ID
		optional[f.ID] = f.Optional
	}
	missing := resolve.Missing(fields, ids, func(id offsets.FieldID) bool { return optional[id] })
	if len(missing) > 0 {
		ver := bin.GoVersionRaw
		if ver == "" {
			ver = "unknown Go version"
		}
		return Disabled{
			Reason:  fmt.Sprintf("%d field(s) unknown for %s %s; to fix: %s", len(missing), ver, bin.Arch, resolve.Hint(bin)),
			Missing: missing,
		}, false
	}
	return Disabled{}, true
}

// Stats are counters of one traced process.
type Stats struct {
	Spans   uint64
	Errors  uint64 // records that could not be decoded or recorded
	Dropped uint64 // events lost because the ring buffer was full
}

// Trace attaches the plan's enabled instrumentations to process pid and
// records a span for every event until ctx is done or the process exits.
// attached, if not nil, is called once the probes are in place (a process
// the tracer started is held until then). Trace detaches before returning.
func Trace(ctx context.Context, p *Plan, pid int, rec *spans.Recorder, log *slog.Logger, attached func()) (Stats, error) {
	var st Stats
	if len(p.Enabled) == 0 {
		return st, errors.New("no instrumentation can run on this binary")
	}
	if pid > 0 && !process.Alive(pid) {
		return st, fmt.Errorf("pid %d: %w", pid, process.ErrGone)
	}
	sess, err := uprobe.Attach(ctx, p.Binary, pid, p.Enabled, p.Values())
	if err != nil {
		return st, err
	}
	defer sess.Close()
	var names []string
	for _, inst := range p.Enabled {
		names = append(names, inst.Name)
	}
	if attached != nil {
		attached()
	}
	log.Info("attached", "pid", pid, "binary", p.Binary.Path, "go", p.Binary.GoVersionRaw, "instrumentations", strings.Join(names, ", "))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if pid > 0 {
		go func() {
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if !process.Alive(pid) {
						log.Info("target exited", "pid", pid)
						cancel()
						return
					}
				}
			}
		}()
	}
	err = sess.Read(ctx, func(ev uprobe.Event) {
		if ev.Err != nil {
			st.Errors++
			log.Warn("bad event", "instrumentation", ev.Instrumentation, "err", ev.Err)
			return
		}
		hev, ok := ev.Value.(spans.HTTPEvent)
		if !ok {
			st.Errors++
			return
		}
		if err := rec.Record(hev); err != nil {
			st.Errors++
			log.Warn("span not recorded", "err", err)
			return
		}
		st.Spans++
	})
	st.Dropped = sess.Drops()
	if st.Dropped > 0 {
		log.Warn("events dropped: the ring buffer was full", "pid", pid, "dropped", st.Dropped)
	}
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, uprobe.ErrClosed) {
		return st, err
	}
	return st, nil
}
