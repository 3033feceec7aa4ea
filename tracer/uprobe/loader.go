package uprobe

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/offsetdb/offsetdb/gobinary"
	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/spans"
)

// ErrAlreadyTraced reports a Loader.Attach to a process the Loader already
// traces.
var ErrAlreadyTraced = errors.New("process already traced")

// Loader attaches instrumentations to many processes at a cost that grows
// with the number of distinct binaries, not of processes: what a node with
// hundreds of Go processes needs.
//
//   - BPF collections are loaded once per binary (same executable file,
//     same instrumentations, same resolved offsets) and shared by every
//     process running it; each process gets only its own uprobe links,
//     filtered to its pid by the kernel.
//   - Every map is created once per Loader: the ring buffer, the drop
//     counter and the active spans, and each instrumentation's own maps
//     (its in-flight calls), which every binary's collection of that
//     instrumentation shares. Their keys carry the thread group id, so
//     processes never see each other's entries; kernel memory is bounded by
//     the instrumentations, whatever the number of processes or binaries
//     (their programs aside).
//   - One goroutine reads the one ring buffer and hands each record to the
//     handler of the process whose pid it carries (Instrumentation.PIDAt).
//     Tags (KindConst) are Loader-wide: one per instrumentation name.
//
// A Session, by contrast, loads everything per process; the two never
// share maps. A Loader's methods are safe for concurrent use.
type Loader struct {
	opts  Options
	multi bool

	mu     sync.Mutex // guards what follows, and loading
	closed bool
	maps   map[string]*ebpf.Map            // Loader-wide maps, by mapKey
	specs  map[string]*ebpf.CollectionSpec // parsed BPF objects, by instrumentation name
	tags   map[string]uint8                // by instrumentation name
	bins   map[string]*loadedBinary        // by binaryKey
	// skippedClosed holds the recursion misses of unloaded collections.
	skippedClosed uint64
	// finalLost holds the drop counters at Close, by reason.
	finalLost  [2]uint64
	reader     *ringbuf.Reader
	readerDone chan struct{}

	// byTag is what the reader decodes with: the instrumentation of tag
	// i+1. It only grows; written under mu, read by the reader.
	byTag atomic.Pointer[[]*Instrumentation]

	procMu sync.RWMutex // held by the reader while it runs a handler
	procs  map[uint32]*Process

	// Drains: a drain request is complete once the reader returned from
	// a read that started after the request and that ended with the ring
	// buffer empty.
	drainReq  atomic.Uint64
	drainMu   sync.Mutex
	drainCond *sync.Cond
	drained   uint64

	unattributed atomic.Uint64
	span         spans.Span // reused by the reader
}

// loadedBinary is the collections of one binary and how many processes
// use them.
type loadedBinary struct {
	key   string
	colls []*ebpf.Collection
	// placements[i] are the programs of colls[i] and where they go.
	placements [][]placement
	refs       int
}

// Process is one process traced through a Loader: its uprobe links.
type Process struct {
	l       *Loader
	pid     uint32
	bin     *loadedBinary
	handle  func(Event)
	links   []link.Link
	uprobes int
	once    sync.Once
	err     error
}

// NewLoader returns a Loader that attaches with opts (nil: the defaults),
// the same for every process. It creates nothing in the kernel until the
// first Attach.
func NewLoader(opts *Options) *Loader {
	if opts == nil {
		opts = &Options{}
	}
	l := &Loader{
		opts:  *opts,
		multi: !opts.PerLink && HaveMultiLinks() == nil,
		maps:  make(map[string]*ebpf.Map),
		specs: make(map[string]*ebpf.CollectionSpec),
		tags:  make(map[string]uint8),
		bins:  make(map[string]*loadedBinary),
		procs: make(map[uint32]*Process),
	}
	l.drainCond = sync.NewCond(&l.drainMu)
	empty := []*Instrumentation{}
	l.byTag.Store(&empty)
	return l
}

// Attach attaches insts to process pid, which runs the Go binary bin (bin
// may have been opened through another path to the same file: the probes
// are placed through /proc/PID/exe), and
// calls handle with each of the process's records, on the Loader's reader
// goroutine, from the moment the probes can fire until Process.Close
// returns. handle must not block for long: every process's records wait
// behind it. Event.Span is reused once handle returns.
//
// The binary's collections are loaded by the first Attach for it and
// reused by the next ones while a process uses them; values and the
// checks on them are Attach's (see the function Attach). Attach needs
// CAP_BPF and CAP_PERFMON (or root). Everything it created is released
// when it fails; ctx only bounds Attach itself.
func (l *Loader) Attach(ctx context.Context, bin *gobinary.Binary, pid int, insts []Instrumentation, values map[offsets.FieldID]offsets.Value, handle func(Event)) (_ *Process, err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("attach to pid %d (%s): %w", pid, bin.Path, err)
		}
	}()
	if pid <= 0 {
		return nil, fmt.Errorf("a Loader traces one process at a time: pid %d", pid)
	}
	if len(insts) == 0 {
		return nil, errors.New("no instrumentation given")
	}
	if handle == nil {
		return nil, errors.New("no handler given")
	}
	targets, err := prepare(bin, insts, values)
	if err != nil {
		return nil, err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("remove memlock rlimit: %w", err)
	}
	conv, err := binaryABI(bin)
	if err != nil {
		return nil, err
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	if err := l.assignTags(targets); err != nil {
		return nil, err
	}
	exePath := fmt.Sprintf("/proc/%d/exe", pid)
	key, err := binaryKey(exePath, targets, conv)
	if err != nil {
		return nil, err
	}
	lb := l.bins[key]
	if lb == nil {
		if lb, err = l.load(ctx, key, targets, conv); err != nil {
			return nil, err
		}
		l.bins[key] = lb
	}
	lb.refs++
	p := &Process{l: l, pid: uint32(pid), bin: lb, handle: handle}
	// The executable by this process's own path: bin may have been opened
	// through another process's /proc/PID/exe, gone when it exits.
	ex, err := link.OpenExecutable(exePath)
	if err != nil {
		l.release(lb)
		return nil, err
	}

	l.procMu.Lock()
	if _, ok := l.procs[p.pid]; ok {
		l.procMu.Unlock()
		l.release(lb)
		return nil, ErrAlreadyTraced
	}
	// Registered before the probes are placed: a record can follow at once.
	l.procs[p.pid] = p
	l.procMu.Unlock()

	for i, coll := range lb.colls {
		for _, pl := range lb.placements[i] {
			links, n, err := attachPlacement(ex, pid, coll.Programs[pl.program], pl, l.multi)
			p.links = append(p.links, links...)
			p.uprobes += n
			if err != nil {
				l.mu.Unlock()
				p.Close() // takes l.mu to release the binary
				l.mu.Lock()
				return nil, err
			}
		}
	}
	if err := l.startReader(); err != nil {
		l.mu.Unlock()
		p.Close()
		l.mu.Lock()
		return nil, err
	}
	return p, nil
}

// assignTags gives each instrumentation of targets its Loader-wide tag,
// the first time its name is seen, and writes it into targets.
func (l *Loader) assignTags(targets []target) error {
	byTag := slices.Clone(*l.byTag.Load())
	for i := range targets {
		t := &targets[i]
		tag, ok := l.tags[t.inst.Name]
		if !ok {
			if len(byTag) >= 255 {
				return fmt.Errorf("%w: more than 255 instrumentations in one Loader, which the record tag cannot tell apart", ErrInvalidInstrumentation)
			}
			inst := *t.inst
			byTag = append(byTag, &inst)
			tag = uint8(len(byTag))
			l.tags[t.inst.Name] = tag
		}
		t.tag = tag
	}
	l.byTag.Store(&byTag)
	return nil
}

// binaryKey names what makes two processes' collections the same: the
// executable file (device and inode, which is also what the kernel places
// uprobes in) and, for each instrumentation, its tag and constants.
func binaryKey(path string, targets []target, conv abi) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", fmt.Errorf("stat executable: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d:%d abi=%v", st.Dev, st.Ino, conv)
	for _, t := range targets {
		fmt.Fprintf(&b, "|%d", t.tag)
		names := make([]string, 0, len(t.consts))
		for name := range t.consts {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			fmt.Fprintf(&b, " %s=%#x", name, t.consts[name])
		}
	}
	return b.String(), nil
}

// load loads one collection per target, with the Loader's maps.
func (l *Loader) load(ctx context.Context, key string, targets []target, conv abi) (_ *loadedBinary, err error) {
	lb := &loadedBinary{key: key}
	defer func() {
		if err != nil {
			for _, c := range lb.colls {
				c.Close()
			}
		}
	}()
	kt, err := conv.kernelTypes()
	if err != nil {
		return nil, fmt.Errorf("kernel types: %w", err)
	}
	for _, t := range targets {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		spec, err := l.spec(t.inst)
		if err != nil {
			return nil, fmt.Errorf("instrumentation %s: %w", t.inst.Name, err)
		}
		pls, err := configure(spec, t, l.opts.Constants, conv, l.multi)
		if err != nil {
			return nil, fmt.Errorf("instrumentation %s: %w", t.inst.Name, err)
		}
		replace, err := l.mapsFor(t.inst, spec)
		if err != nil {
			return nil, fmt.Errorf("instrumentation %s: %w", t.inst.Name, err)
		}
		coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: replace, Programs: ebpf.ProgramOptions{KernelTypes: kt}})
		if err != nil {
			return nil, fmt.Errorf("instrumentation %s: load BPF collection: %w", t.inst.Name, err)
		}
		lb.colls = append(lb.colls, coll)
		lb.placements = append(lb.placements, pls)
	}
	return lb, nil
}

// spec returns a copy of inst's BPF object, parsed once per Loader: parsing
// costs ~1 MB of allocations per object, and copying a few kB.
func (l *Loader) spec(inst *Instrumentation) (*ebpf.CollectionSpec, error) {
	s, ok := l.specs[inst.Name]
	if !ok {
		var err error
		if s, err = inst.Spec(); err != nil {
			return nil, fmt.Errorf("load BPF object: %w", err)
		}
		l.specs[inst.Name] = s
	}
	return s.Copy(), nil
}

// mapsFor returns the Loader's maps for every map of spec, creating those
// that do not exist yet: the caller's Options.Shared, the runtime maps and
// inst's SharedMaps by name, every other map by instrumentation and name.
// Data sections (.rodata, .bss) stay per collection: they hold the
// constants.
func (l *Loader) mapsFor(inst *Instrumentation, spec *ebpf.CollectionSpec) (map[string]*ebpf.Map, error) {
	shared := sharedMapNames(inst)
	for _, name := range requiredMaps {
		if _, ok := spec.Maps[name]; !ok {
			return nil, fmt.Errorf("%w: BPF object has no map %s", ErrInvalidInstrumentation, name)
		}
	}
	for _, name := range inst.SharedMaps {
		if _, ok := spec.Maps[name]; !ok {
			return nil, fmt.Errorf("%w: BPF object has no map %s", ErrInvalidInstrumentation, name)
		}
	}
	replace := make(map[string]*ebpf.Map)
	for name, ms := range spec.Maps {
		if m, ok := l.opts.Shared[name]; ok {
			replace[name] = m
			continue
		}
		if strings.HasPrefix(name, ".") {
			continue
		}
		key := inst.Name + "\x00" + name
		if slices.Contains(shared, name) {
			key = name
		}
		m, ok := l.maps[key]
		if !ok {
			var err error
			if m, err = ebpf.NewMap(ms); err != nil {
				return nil, fmt.Errorf("create map %s: %w", name, err)
			}
			l.maps[key] = m
		}
		replace[name] = m
	}
	return replace, nil
}

// startReader opens the ring buffer reader and starts its goroutine, once.
func (l *Loader) startReader() error {
	if l.reader != nil {
		return nil
	}
	events := l.maps[EventsMap]
	if events == nil {
		return fmt.Errorf("%w: no %s map", ErrInvalidInstrumentation, EventsMap)
	}
	r, err := ringbuf.NewReader(events)
	if err != nil {
		return fmt.Errorf("open ring buffer: %w", err)
	}
	l.reader = r
	l.readerDone = make(chan struct{})
	go l.read()
	return nil
}

// read hands every record to its process until the reader is closed.
func (l *Loader) read() {
	defer close(l.readerDone)
	defer func() {
		l.drainMu.Lock()
		l.drained = ^uint64(0) // no reader left to wait for
		l.drainCond.Broadcast()
		l.drainMu.Unlock()
	}()
	var rec ringbuf.Record
	for {
		req := l.drainReq.Load()
		// The programs wake the reader only once records pile up (see
		// submit in bpf/runtime.h); the deadline picks up the rest.
		l.reader.SetDeadline(time.Now().Add(readInterval))
		err := l.reader.ReadInto(&rec)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, ringbuf.ErrFlushed):
			// The ring buffer was empty after this read began.
			l.drainMu.Lock()
			if req > l.drained {
				l.drained = req
				l.drainCond.Broadcast()
			}
			l.drainMu.Unlock()
			continue
		case err != nil:
			return // closed
		}
		l.dispatch(rec.RawSample)
	}
}

// dispatch decodes record and hands it to the handler of its process; a
// record of no traced process is counted (Unattributed).
func (l *Loader) dispatch(record []byte) {
	byTag := *l.byTag.Load()
	if len(record) == 0 || record[0] == 0 || int(record[0]) > len(byTag) {
		l.unattributed.Add(1)
		return
	}
	inst := byTag[record[0]-1]
	if inst.PIDAt <= 0 || len(record) < inst.PIDAt+4 {
		l.unattributed.Add(1)
		return
	}
	pid := binary.NativeEndian.Uint32(record[inst.PIDAt:])
	l.procMu.RLock()
	defer l.procMu.RUnlock()
	p := l.procs[pid]
	if p == nil {
		l.unattributed.Add(1)
		return
	}
	l.span.Reset()
	ev := Event{Instrumentation: inst.Name, PID: pid, Span: &l.span, Record: record}
	if err := inst.Decode(record, &l.span); err != nil {
		ev.Span, ev.Err = nil, fmt.Errorf("decode %s record: %w", inst.Name, err)
	}
	p.handle(ev)
}

// drainTimeout bounds how long Process.Close waits for the reader to reach
// the records submitted before it: under a load the reader cannot keep up
// with, the ring buffer is never empty.
const drainTimeout = 2 * time.Second

// drain returns once the reader has handed on every record submitted
// before the call, or after drainTimeout.
func (l *Loader) drain() {
	l.mu.Lock()
	r := l.reader
	l.mu.Unlock()
	if r == nil {
		return
	}
	req := l.drainReq.Add(1)
	_ = r.Flush() // ends a wait at once rather than at the deadline
	timer := time.AfterFunc(drainTimeout, func() {
		l.drainMu.Lock()
		l.drainCond.Broadcast()
		l.drainMu.Unlock()
	})
	defer timer.Stop()
	start := time.Now()
	l.drainMu.Lock()
	defer l.drainMu.Unlock()
	for l.drained < req && time.Since(start) < drainTimeout {
		l.drainCond.Wait()
	}
}

// release drops one process's reference to lb and unloads it with the
// last. The caller holds l.mu.
func (l *Loader) release(lb *loadedBinary) {
	lb.refs--
	if lb.refs > 0 {
		return
	}
	delete(l.bins, lb.key)
	l.skippedClosed += skippedRuns(lb.colls)
	for _, c := range lb.colls {
		c.Close()
	}
}

// Links returns how many links hold the process's uprobes and how many
// uprobes they place.
func (p *Process) Links() (links, uprobes int) {
	return len(p.links), p.uprobes
}

// MultiLinks reports whether the process's uprobes are attached through
// uprobe_multi links rather than one link each.
func (p *Process) MultiLinks() bool {
	return p.l.multi
}

// Close detaches the process's probes, waits until the reader has handed
// its last records to the handler (at most two seconds), and stops calling
// the handler; the binary's collections are unloaded with its last
// process. It is safe to call more than once.
func (p *Process) Close() error {
	p.once.Do(func() {
		var errs []error
		for _, l := range p.links {
			if err := l.Close(); err != nil {
				errs = append(errs, fmt.Errorf("detach uprobe: %w", err))
			}
		}
		p.l.drain()
		p.l.procMu.Lock()
		if p.l.procs[p.pid] == p {
			delete(p.l.procs, p.pid)
		}
		p.l.procMu.Unlock()
		p.l.mu.Lock()
		p.l.release(p.bin)
		p.l.mu.Unlock()
		if err := errors.Join(errs...); err != nil {
			p.err = fmt.Errorf("detach pid %d: %w", p.pid, err)
		}
	})
	return p.err
}

// Binaries returns how many binaries have collections loaded, and how many
// collections that is: what stays in the kernel besides the links.
func (l *Loader) Binaries() (binaries, collections int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, lb := range l.bins {
		collections += len(lb.colls)
	}
	return len(l.bins), collections
}

// Drops returns how many records the programs of every process could not
// submit because the ring buffer was full, since the Loader was made.
func (l *Loader) Drops() uint64 {
	return l.readLost(lostRingBufferFull)
}

// InFlightLost returns how many calls a return program found no start for,
// over every process (see Session.InFlightLost).
func (l *Loader) InFlightLost() uint64 {
	return l.readLost(lostInFlight)
}

// Unattributed returns how many records the reader could not hand to a
// process: the process was no longer traced when its record was read (it
// came after Close's wait), or the record was empty or carried an unknown
// tag. Each is a span lost.
func (l *Loader) Unattributed() uint64 {
	return l.unattributed.Load()
}

// SkippedRuns returns how many times the kernel skipped one of the
// Loader's programs at a probe hit (see Session.SkippedRuns), over every
// binary ever loaded.
func (l *Loader) SkippedRuns() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.skippedClosed
	for _, lb := range l.bins {
		n += skippedRuns(lb.colls)
	}
	return n
}

func (l *Loader) readLost(reason uint32) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return l.finalLost[reason]
	}
	return lostCount(l.maps[DropsMap], reason)
}

// Close detaches every process still attached, unloads everything and
// stops the reader. Handlers are not called once it returns.
func (l *Loader) Close() error {
	l.procMu.RLock()
	procs := make([]*Process, 0, len(l.procs))
	for _, p := range l.procs {
		procs = append(procs, p)
	}
	l.procMu.RUnlock()
	var errs []error
	for _, p := range procs {
		if err := p.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.Join(errs...)
	}
	l.closed = true
	for _, reason := range []uint32{lostRingBufferFull, lostInFlight} {
		l.finalLost[reason] = lostCount(l.maps[DropsMap], reason)
	}
	if l.reader != nil {
		if err := l.reader.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close ring buffer reader: %w", err))
		}
		<-l.readerDone
	}
	for _, m := range l.maps {
		if err := m.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close map: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close uprobe loader: %w", err)
	}
	return nil
}
