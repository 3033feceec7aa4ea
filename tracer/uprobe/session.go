package uprobe

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"

	"github.com/offsetdb/offsetdb/gobinary"
	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/spans"
)

var (
	// ErrMissingField reports a required field that the values given to
	// Attach do not resolve.
	ErrMissingField = errors.New("required field not resolved")
	// ErrInvalidInstrumentation reports an Instrumentation that does not
	// fit its BPF object or the other instrumentations: a missing program,
	// map or constant, or a duplicate name. It is a bug in the
	// instrumentation, not in the target.
	ErrInvalidInstrumentation = errors.New("invalid instrumentation")
	// ErrClosed is returned by Read once the Session is closed.
	ErrClosed = errors.New("uprobe session closed")
)

// Event is one record read from a Session.
type Event struct {
	// Instrumentation is the Name of the instrumentation that submitted it.
	Instrumentation string
	// PID is the thread group id of the process the record comes from
	// (Instrumentation.PIDAt), 0 if unknown. Set by Loader; a Session
	// leaves it 0.
	PID uint32
	// Span is what the instrumentation's Decode made of the record. It is
	// reused for the next record once the handler given to Read returns.
	Span *spans.Span
	// Record is the raw record, valid only until the handler returns: for
	// tests and debugging.
	Record []byte
	// Err is set, and Span nil, when the record could not be decoded: it
	// is empty, its tag names no attached instrumentation, or Decode
	// failed.
	Err error
}

// Session is a set of instrumentations attached to one target binary. It
// owns one BPF collection per instrumentation, the maps they share, and
// every uprobe; Close releases them all.
type Session struct {
	opts   *Options
	path   string
	byKind []*Instrumentation // by tag - 1
	span   spans.Span         // reused by decode

	shared  map[string]*ebpf.Map
	colls   []*ebpf.Collection
	links   []link.Link
	multi   bool // links are uprobe_multi links, one per program
	abi     abi  // the target's calling convention
	uprobes int  // uprobes placed, over all links
	reader  *ringbuf.Reader

	mu            sync.Mutex
	closed        bool
	finalDrops    uint64
	finalInFlight uint64
	finalSkipped  uint64
}

// Options tune Attach. A nil *Options is the zero value: the defaults.
type Options struct {
	// PerLink attaches every uprobe with a link of its own even when the
	// kernel has uprobe_multi links (Linux 6.6+): the fallback path, for
	// comparing the two and for kernels whose uprobe_multi misbehaves.
	// Closing a per-uprobe link waits for the kernel to retire the probe
	// (~80 ms each on Linux 6.18); closing a uprobe_multi link waits once
	// for all of its uprobes.
	PerLink bool
	// Shared are maps owned by the caller that every BPF object declaring
	// a map of the same name uses instead of its own, across Sessions: how
	// the client instrumentation hands requests to a writer of trace
	// context (package propagation). Close leaves them open.
	Shared map[string]*ebpf.Map
	// Constants are values for `volatile const` globals, by name, set in
	// every BPF object that declares them (objects that do not are left
	// alone): the sampler, the propagators. Each value's size must match
	// its global's (uint8 for a __u8, uint64 for a __u64).
	Constants map[string]any
}

// HaveMultiLinks reports whether Attach can place all uprobes of a BPF
// program through one uprobe_multi link on this kernel, or why not. The
// kernel is probed once per process.
func HaveMultiLinks() error {
	if err := features.HaveBPFLinkUprobeMulti(); err != nil {
		return fmt.Errorf("uprobe_multi links: %w", err)
	}
	return nil
}

// target is an instrumentation ready to load: its tag, its constants and
// the functions it probes, located in the binary.
type target struct {
	inst   *Instrumentation
	tag    uint8
	consts map[string]uint64
	// binConsts are the values of inst.BinaryConsts, also in consts.
	binConsts map[string]uint64
	probes    []Located
}

// Attach loads insts for the Go binary bin and attaches their probes, to
// every process running bin when pid is 0 or only to process pid.
//
// Where the kernel has uprobe_multi links (Linux 6.6+, see HaveMultiLinks)
// and opts does not ask for PerLink, each BPF program is attached at all of
// its file offsets (function entries, RET instructions, over every function
// it probes) through one link, which Close detaches at once; elsewhere each
// uprobe gets a link of its own. Both place uprobes by file offset.
//
// values holds the resolved offset of every field the instrumentations
// declare (see Fields); an optional field missing from it is passed to BPF
// as Absent, a required one fails Attach with ErrMissingField. Probes are
// chosen by Instrumentation.Locate: an optional probe that does not fit bin
// is left out, a required one fails Attach with an error naming the
// instrumentation and the symbol that wraps ErrProbeSkipped. Each
// instrumentation's records are tagged with its index in insts plus one. Attach needs CAP_BPF and CAP_PERFMON (or root) and
// removes the memlock rlimit of the calling process, which kernels before
// 5.11 charge BPF maps to.
//
// Everything Attach created is released when it fails. ctx only bounds
// Attach itself; the Session lives until Close.
func Attach(ctx context.Context, bin *gobinary.Binary, pid int, insts []Instrumentation, values map[offsets.FieldID]offsets.Value, opts *Options) (_ *Session, err error) {
	if opts == nil {
		opts = &Options{}
	}
	if len(insts) == 0 {
		return nil, fmt.Errorf("attach to %s: no instrumentation given", bin.Path)
	}
	targets, err := prepare(bin, insts, values)
	if err != nil {
		return nil, fmt.Errorf("attach to %s: %w", bin.Path, err)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("attach to %s: remove memlock rlimit: %w", bin.Path, err)
	}
	conv, err := binaryABI(bin)
	if err != nil {
		return nil, fmt.Errorf("attach to %s: %w", bin.Path, err)
	}
	ex, err := link.OpenExecutable(bin.Path)
	if err != nil {
		return nil, fmt.Errorf("attach to %s: %w", bin.Path, err)
	}

	s := &Session{
		opts:   opts,
		path:   bin.Path,
		shared: make(map[string]*ebpf.Map),
		multi:  !opts.PerLink && HaveMultiLinks() == nil,
		abi:    conv,
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	for _, t := range targets {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("attach to %s: %w", bin.Path, err)
		}
		if err := s.load(ex, pid, t); err != nil {
			return nil, fmt.Errorf("attach to %s: instrumentation %s: %w", bin.Path, t.inst.Name, err)
		}
		s.byKind = append(s.byKind, t.inst)
	}
	s.reader, err = ringbuf.NewReader(s.shared[EventsMap])
	if err != nil {
		return nil, fmt.Errorf("attach to %s: open ring buffer: %w", bin.Path, err)
	}
	return s, nil
}

// prepare checks insts and computes everything that needs neither BPF nor
// privileges: tags, constants and function locations.
func prepare(bin *gobinary.Binary, insts []Instrumentation, values map[offsets.FieldID]offsets.Value) ([]target, error) {
	if len(insts) > 255 {
		return nil, fmt.Errorf("%w: %d instrumentations, at most 255 fit the record tag", ErrInvalidInstrumentation, len(insts))
	}
	names := make(map[string]bool)
	var targets []target
	for i := range insts {
		inst := &insts[i]
		switch {
		case inst.Name == "":
			return nil, fmt.Errorf("%w: instrumentation #%d has no name", ErrInvalidInstrumentation, i)
		case names[inst.Name]:
			return nil, fmt.Errorf("%w: instrumentation %s given twice", ErrInvalidInstrumentation, inst.Name)
		case inst.Spec == nil || inst.Decode == nil:
			return nil, fmt.Errorf("%w: instrumentation %s has no Spec or Decode", ErrInvalidInstrumentation, inst.Name)
		}
		names[inst.Name] = true
	}
	for i := range insts {
		inst := &insts[i]
		consts, err := inst.constants(values)
		if err != nil {
			return nil, fmt.Errorf("instrumentation %s: %w", inst.Name, err)
		}
		located, _, err := inst.Locate(bin)
		if err != nil {
			return nil, err
		}
		var values map[string]uint64
		if inst.BinaryValues != nil {
			values = inst.BinaryValues(bin)
		}
		binConsts := make(map[string]uint64, len(inst.BinaryConsts))
		for _, name := range inst.BinaryConsts {
			binConsts[name] = values[name]
			consts[name] = values[name] // in the binary's key (binaryKey) too
		}
		targets = append(targets, target{inst: inst, tag: uint8(i + 1), consts: consts, binConsts: binConsts, probes: located})
	}
	return targets, nil
}

// load loads the collection of t, with the Session's shared maps, and
// attaches its programs.
func (s *Session) load(ex *link.Executable, pid int, t target) error {
	inst := t.inst
	spec, err := inst.Spec()
	if err != nil {
		return fmt.Errorf("load BPF object: %w", err)
	}
	pls, err := configure(spec, t, s.opts.Constants, s.abi, s.multi)
	if err != nil {
		return err
	}
	replace := make(map[string]*ebpf.Map)
	for name, m := range s.opts.Shared {
		if _, ok := spec.Maps[name]; ok {
			replace[name] = m
		}
	}
	for _, name := range sharedMapNames(inst) {
		ms, ok := spec.Maps[name]
		if !ok && slices.Contains(optionalMaps, name) {
			continue
		}
		if !ok {
			return fmt.Errorf("%w: BPF object has no map %s", ErrInvalidInstrumentation, name)
		}
		m, ok := s.shared[name]
		if !ok {
			if m, err = ebpf.NewMap(ms); err != nil {
				return fmt.Errorf("create shared map %s: %w", name, err)
			}
			s.shared[name] = m
		}
		replace[name] = m
	}
	kt, err := s.abi.kernelTypes()
	if err != nil {
		return fmt.Errorf("kernel types: %w", err)
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: replace, Programs: ebpf.ProgramOptions{KernelTypes: kt}})
	if err != nil {
		return fmt.Errorf("load BPF collection: %w", err)
	}
	s.colls = append(s.colls, coll)

	for _, pl := range pls {
		links, n, err := attachPlacement(ex, pid, coll.Programs[pl.program], pl, s.multi)
		s.links = append(s.links, links...)
		s.uprobes += n
		if err != nil {
			return err
		}
	}
	return nil
}

// sharedMapNames names the maps of inst that are created once and given to
// every collection that declares them: the runtime maps, then inst's
// SharedMaps.
func sharedMapNames(inst *Instrumentation) []string {
	return slices.Concat(requiredMaps, inst.SharedMaps, optionalMaps)
}

// configure writes t's tag, field offsets, the target's calling
// convention and the option constants into spec, checks that spec has
// every program t's probes name, and returns where each program goes.
// With multi, programs are prepared for uprobe_multi links.
func configure(spec *ebpf.CollectionSpec, t target, constants map[string]any, conv abi, multi bool) ([]placement, error) {
	inst := t.inst
	kind, ok := spec.Variables[KindConst]
	if !ok || !kind.Constant() || kind.Size() != 1 {
		return nil, fmt.Errorf("%w: BPF object has no __u8 constant %s", ErrInvalidInstrumentation, KindConst)
	}
	if err := kind.Set(t.tag); err != nil {
		return nil, fmt.Errorf("set constant %s: %w", KindConst, err)
	}
	for name, val := range constants {
		if v, ok := spec.Variables[name]; ok && v.Constant() {
			if err := v.Set(val); err != nil {
				return nil, fmt.Errorf("set constant %s: %w", name, err)
			}
		}
	}
	if v, ok := spec.Variables[stackABIConst]; ok && v.Constant() && conv.stack {
		if err := v.Set(uint8(1)); err != nil {
			return nil, fmt.Errorf("set constant %s: %w", stackABIConst, err)
		}
	}
	if v, ok := spec.Variables[tlsGConst]; ok && v.Constant() {
		if err := v.Set(uint64(conv.tlsG)); err != nil {
			return nil, fmt.Errorf("set constant %s: %w", tlsGConst, err)
		}
	}
	dev, ino := pidNamespace()
	for name, val := range map[string]uint64{pidnsDevConst: dev, pidnsInoConst: ino} {
		if v, ok := spec.Variables[name]; ok && v.Constant() {
			if err := v.Set(val); err != nil {
				return nil, fmt.Errorf("set constant %s: %w", name, err)
			}
		}
	}
	for _, f := range inst.Fields {
		v, ok := spec.Variables[f.Const]
		if !ok || !v.Constant() {
			return nil, fmt.Errorf("%w: field %s: BPF object has no constant %s", ErrInvalidInstrumentation, f.ID, f.Const)
		}
		if err := v.Set(t.consts[f.Const]); err != nil {
			return nil, fmt.Errorf("field %s: set constant %s: %w", f.ID, f.Const, err)
		}
	}
	for name, val := range t.binConsts {
		v, ok := spec.Variables[name]
		if !ok || !v.Constant() {
			return nil, fmt.Errorf("%w: BPF object has no constant %s", ErrInvalidInstrumentation, name)
		}
		if err := v.Set(val); err != nil {
			return nil, fmt.Errorf("set constant %s: %w", name, err)
		}
	}
	for _, lp := range t.probes {
		p := lp.Probe
		for _, name := range []string{p.Entry, p.Return} {
			if name != "" && spec.Programs[name] == nil {
				return nil, fmt.Errorf("%w: symbol %s: BPF object has no program %s", ErrInvalidInstrumentation, p.Symbol, name)
			}
		}
	}
	pls := placements(t.probes, conv.stack)
	if multi {
		// The kernel attaches a program to uprobe_multi links only if it
		// was loaded for them.
		for _, pl := range pls {
			spec.Programs[pl.program].AttachType = ebpf.AttachTraceUprobeMulti
		}
	}
	return pls, nil
}

// attachPlacement attaches prog at every offset of pl, in process pid (0:
// every process running the executable): through one uprobe_multi link
// with multi, else with a link per uprobe. It returns the links made, even
// on error, so that the caller releases them, and the uprobes they place.
func attachPlacement(ex *link.Executable, pid int, prog *ebpf.Program, pl placement, multi bool) ([]link.Link, int, error) {
	if multi {
		l, err := uprobeMulti(ex, pid, prog, pl)
		if err != nil {
			return nil, 0, err
		}
		return []link.Link{l}, len(pl.offsets), nil
	}
	var links []link.Link
	for i, off := range pl.offsets {
		// With Address set, cilium/ebpf uses the symbol only to name the
		// probe and never looks it up, which is what makes stripped
		// binaries work.
		l, err := ex.Uprobe(pl.symbols[i], prog, &link.UprobeOptions{Address: off, PID: pid, Cookie: pl.cookies[i]})
		if err != nil {
			return links, len(links), fmt.Errorf("attach %s to %s at file offset %#x: %w", pl.program, pl.symbols[i], off, err)
		}
		links = append(links, l)
	}
	return links, len(links), nil
}

// placement is where one BPF program is attached: file offsets, each with
// the symbol of its function, for messages and for naming per-link probes,
// and the BPF cookie of the uprobe there (bpf_get_attach_cookie).
type placement struct {
	program string
	offsets []uint64
	symbols []string
	cookies []uint64
}

// placements groups the uprobes of probes by program, in declaration
// order: a program attached at several functions (one return program at
// every RET of two functions) has one placement with all their offsets.
// On a stack-ABI target (stack), each RET uprobe's cookie locates the
// function's results (resultsCookie); every other cookie is 0.
func placements(probes []Located, stack bool) []placement {
	var out []placement
	at := make(map[string]int)
	add := func(program, symbol string, cookie uint64, offs ...uint64) {
		i, ok := at[program]
		if !ok {
			i = len(out)
			at[program] = i
			out = append(out, placement{program: program})
		}
		for _, off := range offs {
			out[i].offsets = append(out[i].offsets, off)
			out[i].symbols = append(out[i].symbols, symbol)
			out[i].cookies = append(out[i].cookies, cookie)
		}
	}
	for _, lp := range probes {
		p, fn := lp.Probe, lp.Function
		switch {
		case p.Entry != "" && p.CallsTo != "":
			add(p.Entry, p.Symbol, 0, lp.Calls...)
		case p.Entry != "":
			add(p.Entry, p.Symbol, 0, fn.EntryOffset)
		}
		if p.Return != "" {
			var cookie uint64
			if stack {
				cookie = resultsCookie(p, fn)
			}
			add(p.Return, p.Symbol, cookie, fn.Returns...)
		}
	}
	return out
}

// uprobeMulti attaches prog at every offset of pl through one uprobe_multi
// link.
func uprobeMulti(ex *link.Executable, pid int, prog *ebpf.Program, pl placement) (link.Link, error) {
	// Addresses are file offsets, as UprobeOptions.Address is; with no
	// symbols cilium/ebpf never reads the symbol table, which is what makes
	// stripped binaries work.
	opts := &link.UprobeMultiOptions{Addresses: pl.offsets, PID: uint32(pid)}
	if slices.ContainsFunc(pl.cookies, func(c uint64) bool { return c != 0 }) {
		opts.Cookies = pl.cookies
	}
	l, err := ex.UprobeMulti(nil, prog, opts)
	if err != nil {
		return nil, fmt.Errorf("attach %s to %d offsets in %s through one uprobe_multi link: %w",
			pl.program, len(pl.offsets), strings.Join(slices.Compact(slices.Clone(pl.symbols)), ", "), err)
	}
	return l, nil
}

// readInterval bounds how long a record waits in the ring buffer when too
// few are queued for the programs to wake the reader.
const readInterval = 100 * time.Millisecond

// Read calls handle with each record the instrumentations submit, in the
// order they were submitted, until ctx is done (it returns ctx.Err()) or the
// Session is closed (it returns ErrClosed).
//
// handle runs on the calling goroutine; while it runs, records queue in the
// ring buffer, and those that find it full are counted by Drops. Read must
// not be called concurrently with itself.
func (s *Session) Read(ctx context.Context, handle func(Event)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// Flush wakes a blocked ReadInto, which then returns the records
	// already in the ring buffer and ErrFlushed.
	stop := context.AfterFunc(ctx, func() { s.reader.Flush() })
	defer stop()

	var rec ringbuf.Record
	for {
		// The programs wake the reader only once records pile up (see
		// submit in bpf/nethttp.h); the deadline picks up the rest.
		s.reader.SetDeadline(time.Now().Add(readInterval))
		err := s.reader.ReadInto(&rec)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue
		case errors.Is(err, ringbuf.ErrClosed):
			return ErrClosed
		case errors.Is(err, ringbuf.ErrFlushed):
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue // a flush for an earlier Read
		case err != nil:
			return fmt.Errorf("read ring buffer of %s: %w", s.path, err)
		}
		handle(s.decode(rec.RawSample))
	}
}

// decode dispatches record to the Decode of the instrumentation its first
// byte names.
func (s *Session) decode(record []byte) Event {
	if len(record) == 0 {
		return Event{Err: errors.New("empty record")}
	}
	tag := int(record[0])
	if tag == 0 || tag > len(s.byKind) {
		return Event{Err: fmt.Errorf("record with unknown tag %d", record[0])}
	}
	inst := s.byKind[tag-1]
	s.span.Reset()
	if err := inst.Decode(record, &s.span); err != nil {
		return Event{Instrumentation: inst.Name, Record: record, Err: fmt.Errorf("decode %s record: %w", inst.Name, err)}
	}
	return Event{Instrumentation: inst.Name, Span: &s.span, Record: record}
}

// Drops returns how many records the programs could not submit because the
// ring buffer was full, summed over all CPUs, since Attach. A reader that
// keeps up sees 0. After Close it returns the count at Close.
func (s *Session) Drops() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.finalDrops
	}
	return s.readLost(lostRingBufferFull)
}

// InFlightLost returns how many calls a return program found no start for,
// summed over all CPUs, since Attach: their start was evicted from an LRU
// in-flight map (more calls in progress at once than it holds), happened
// before the probes were attached, or its program run was skipped by the
// kernel. Each is a span lost. After Close it returns the count at Close.
func (s *Session) InFlightLost() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.finalInFlight
	}
	return s.readLost(lostInFlight)
}

// The indexes of the drops map (bpf/runtime.h LOST_*).
const (
	lostRingBufferFull uint32 = 0
	lostInFlight       uint32 = 1
)

// readLost sums the per-CPU counters of one reason (lostCount).
func (s *Session) readLost(reason uint32) uint64 {
	return lostCount(s.shared[DropsMap], reason)
}

// lostCount sums the per-CPU counters of one reason in the drops map m. A
// lookup in an open per-CPU array within its bounds cannot fail short of a
// kernel bug, which it reports as the largest count rather than hide; an
// object built before the reason existed has no such index and reads 0.
func lostCount(m *ebpf.Map, reason uint32) uint64 {
	if m == nil || reason >= m.MaxEntries() {
		return 0
	}
	var perCPU []uint64
	if err := m.Lookup(reason, &perCPU); err != nil {
		return ^uint64(0)
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	return n
}

// SkippedRuns returns how many times the kernel skipped one of the
// Session's programs at a probe hit since Attach, because another BPF
// program was running on that CPU (it was preempted there: the kernel runs
// one tracing program per CPU at a time), summed over programs
// (bpf_prog_info.recursion_misses, Linux 5.12+). A skipped entry program
// loses its operation's span, a skipped return program the span's end.
// After Close it returns the count at Close.
func (s *Session) SkippedRuns() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.finalSkipped
	}
	return s.readSkipped()
}

func (s *Session) readSkipped() uint64 {
	return skippedRuns(s.colls)
}

// skippedRuns sums the recursion misses of every program of colls.
func skippedRuns(colls []*ebpf.Collection) uint64 {
	var n uint64
	for _, c := range colls {
		for _, p := range c.Programs {
			if st, err := p.Stats(); err == nil {
				n += st.RecursionMisses
			}
		}
	}
	return n
}

// Runs returns how many times each of the Session's programs ran since it
// was loaded, by program name (programs of the same name in several
// objects are summed). The kernel counts runs only while run-time
// statistics are enabled (ebpf.EnableStats, or the kernel.bpf_stats_enabled
// sysctl), which costs two clock reads per run: a diagnostic, to tell a
// probe that never fired from one whose program gave up. Before Close only.
func (s *Session) Runs() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	runs := map[string]uint64{}
	if s.closed {
		return runs
	}
	for _, c := range s.colls {
		for name, p := range c.Programs {
			if st, err := p.Stats(); err == nil {
				runs[name] += st.RunCount
			}
		}
	}
	return runs
}

// Links returns how many links hold the Session's uprobes and how many
// uprobes they place: with uprobe_multi links, one link per BPF program.
func (s *Session) Links() (links, uprobes int) {
	return len(s.links), s.uprobes
}

// MultiLinks reports whether the Session's uprobes are attached through
// uprobe_multi links rather than one link each.
func (s *Session) MultiLinks() bool {
	return s.multi
}

// detach closes every link. Closing a link returns once the kernel has
// retired its uprobes, which waits for a grace period: ~80 ms per link on
// Linux 6.18, measured by BenchmarkAttachDetach, and serialized by the
// kernel, so closing links concurrently gains nothing. One uprobe_multi
// link per program is what makes detaching fast.
func (s *Session) detach() []error {
	var errs []error
	for _, l := range s.links {
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("detach uprobe: %w", err))
		}
	}
	return errs
}

// Close detaches every probe, then releases the collections, the maps and
// the ring buffer reader, which ends a blocked Read with ErrClosed. It is
// safe to call more than once.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	errs := s.detach()
	s.finalDrops = s.readLost(lostRingBufferFull)
	s.finalInFlight = s.readLost(lostInFlight)
	s.finalSkipped = s.readSkipped()
	if s.reader != nil {
		if err := s.reader.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close ring buffer reader: %w", err))
		}
	}
	for _, c := range s.colls {
		c.Close()
	}
	for _, m := range s.shared {
		if err := m.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close map: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close uprobe session for %s: %w", s.path, err)
	}
	return nil
}
