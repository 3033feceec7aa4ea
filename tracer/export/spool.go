package export

import (
	"bufio"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// DefaultSpoolSize bounds a spool directory when no size is given: about
// 350,000 small spans (~770 bytes each on disk), six minutes at 1,000
// spans/s beyond the memory buffer.
const DefaultSpoolSize = 256 << 20

// ErrKeptInSpool is returned by a Processor's Shutdown when the flush ran
// out of time and what was not exported is in the spool: not lost.
var ErrKeptInSpool = errors.New("not exported in time, kept in the spool")

// spoolFormat names the segment files' format, checked when they are read
// back; a change of spoolSpan bumps it.
const spoolFormat = "offsetdb-spool/1"

// A Spool keeps spans on disk while the collector is away: each Processor
// given one moves its oldest spans into segment files in the directory when
// its memory buffer is full, and reads them back, oldest first, when the
// collector answers again. Segments a processor still holds when it shuts
// down, and those a previous run of the tracer left, are exported by the
// spool's own replay processor (StartReplay), so spans survive a restart of
// the tracer as well as an outage.
//
// The directory's total size is bounded: when a new segment would not fit,
// the oldest ones go, and their spans are counted as QueueFull. A segment
// is written to a temporary file and renamed, so a crash leaves whole
// segments only; one that cannot be read back is renamed *.bad, logged, and
// its spans counted as ExportFailed.
type Spool struct {
	dir   string
	limit int64
	log   *slog.Logger
	lock  *os.File // DIR/.lock, held (flock) while the spool is open

	mu     sync.Mutex
	size   int64
	segs   []*segment // oldest first
	seq    int
	replay *Counts // the replay processor's counts; nil until StartReplay
	// fullLogged: "spool full" was logged; later drops are only counted
	// until the spool has room again.
	fullLogged bool
}

// segment is one file of the spool.
type segment struct {
	path  string
	size  int64
	spans int
	// owner is the processor that will export the segment: the one that
	// wrote it, or the replay processor for segments of a previous run and
	// of processors that shut down; nil before StartReplay.
	owner *Counts
	// recorded: the spans were counted as recorded in this run. Those of a
	// previous run are counted when they are read back (or dropped).
	recorded bool
}

// OpenSpool opens (creating it, mode 0700) the spool directory dir, bounded
// to limit bytes (DefaultSpoolSize when 0), and lists the segments a
// previous run left there. It fails when dir cannot be created or listed.
func OpenSpool(dir string, limit int64, log *slog.Logger) (*Spool, error) {
	if limit <= 0 {
		limit = DefaultSpoolSize
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool directory: %w", err)
	}
	// One tracer per directory: two would send each other's spans twice.
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool directory: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(lock.Name())
		lock.Close()
		return nil, fmt.Errorf("spool directory %s is in use by another tracer (%s): give each tracer its own (%w)", dir, strings.TrimSpace(string(holder)), err)
	}
	_ = lock.Truncate(0)
	_, _ = fmt.Fprintf(lock, "pid %d", os.Getpid())
	s := &Spool{dir: dir, limit: limit, log: log, lock: lock}
	// It must take a segment now, not in the middle of an outage.
	probe, err := os.CreateTemp(dir, ".tmp-")
	if err == nil {
		_, err = probe.Write([]byte("offsetdb spool write check"))
		probe.Close()
		os.Remove(probe.Name())
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("spool directory is not writable: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("spool directory: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, ".tmp-"):
			_ = os.Remove(filepath.Join(dir, name)) // a write the last run did not finish
		case strings.HasSuffix(name, ".spool"):
			path := filepath.Join(dir, name)
			n, size, err := readSegmentHeader(path)
			if err != nil {
				s.setAside(path, err, 0)
				continue
			}
			s.segs = append(s.segs, &segment{path: path, size: size, spans: n})
			s.size += size
		}
	}
	slices.SortFunc(s.segs, func(a, b *segment) int { return strings.Compare(a.path, b.path) })
	return s, nil
}

// Close releases the directory for another tracer. Segments stay.
func (s *Spool) Close() {
	if s.lock != nil {
		s.lock.Close() // releases the flock
		s.lock = nil
	}
}

// Dir is the spool directory.
func (s *Spool) Dir() string { return s.dir }

// Left returns the number of segments and spans waiting in the spool.
func (s *Spool) Left() (segments, spans int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, seg := range s.segs {
		spans += seg.spans
	}
	return len(s.segs), spans
}

// put writes spans, counted as recorded in owner, as a new segment. To make
// room it removes the oldest segments, counting their spans as QueueFull;
// it fails (and removes nothing) when spans alone exceed the bound or the
// file cannot be written.
func (s *Spool) put(owner *Counts, spans []sdktrace.ReadOnlySpan) error {
	s.mu.Lock()
	s.seq++
	name := fmt.Sprintf("%020d-%06d.spool", time.Now().UnixNano(), s.seq)
	s.mu.Unlock()
	path := filepath.Join(s.dir, name)
	size, err := writeSegment(path, spans)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if size > s.limit {
		_ = os.Remove(path)
		return fmt.Errorf("%d spans take %d bytes, more than the spool's bound of %d", len(spans), size, s.limit)
	}
	for s.size+size > s.limit && len(s.segs) > 0 {
		old := s.segs[0]
		s.segs = s.segs[1:]
		s.size -= old.size
		_ = os.Remove(old.path)
		s.countLost(old, QueueFull)
		if !s.fullLogged {
			s.fullLogged = true
			s.log.Warn("spool full: dropping its oldest spans (counted as dropped_queue_full) until it has room again", "spans", old.spans, "spool_bytes", s.limit)
		}
	}
	if s.size+size <= s.limit/2 {
		s.fullLogged = false
	}
	s.segs = append(s.segs, &segment{path: path, size: size, spans: len(spans), owner: owner, recorded: true})
	s.size += size
	return nil
}

// countLost counts the spans of a segment that will not be exported. The
// caller holds s.mu.
func (s *Spool) countLost(seg *segment, r Reason) {
	c := seg.owner
	if c == nil {
		c = new(Counts) // a previous run's, before StartReplay: this run has not counted them
	}
	if !seg.recorded {
		c.AddRecorded(seg.spans)
	}
	c.Add(r, seg.spans)
}

// has reports whether owner has a segment in the spool.
func (s *Spool) has(owner *Counts) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.ContainsFunc(s.segs, func(seg *segment) bool { return seg.owner == owner })
}

// take removes owner's oldest segment from the spool and returns its
// spans, and whether they still have to be counted as recorded (a previous
// run's). It returns nil when owner has none; a segment that cannot be
// read is set aside and the next one tried.
func (s *Spool) take(owner *Counts) (spans []sdktrace.ReadOnlySpan, uncounted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		i := slices.IndexFunc(s.segs, func(seg *segment) bool { return seg.owner == owner })
		if i < 0 {
			return nil, false
		}
		seg := s.segs[i]
		s.segs = slices.Delete(s.segs, i, i+1)
		s.size -= seg.size
		spans, err := readSegment(seg.path)
		if err != nil {
			s.setAside(seg.path, err, seg.spans)
			s.countLost(seg, ExportFailed)
			continue
		}
		_ = os.Remove(seg.path)
		return spans, !seg.recorded
	}
}

// release is called when owner shuts down. Its segments go to the replay
// processor, which exports them while the tracer runs: handed is how many
// spans (still pending in owner's counts, exported or dropped in the
// replay's, so that the totals add up). Without a replay processor, or
// when owner is the replay processor, they stay for the next run: kept is
// how many spans, for the caller to count as Spooled.
func (s *Spool) release(owner *Counts) (handed, kept int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, seg := range s.segs {
		if seg.owner != owner || owner == nil {
			continue
		}
		if s.replay != nil && owner != s.replay {
			seg.owner = s.replay
			handed += seg.spans
			continue
		}
		seg.owner = nil
		if seg.recorded {
			seg.recorded = false // the next run counts them again
			kept += seg.spans
		}
	}
	return handed, kept
}

// setAside renames a segment that cannot be read to *.bad, so that it is
// neither lost without a word nor read again, and logs why.
func (s *Spool) setAside(path string, err error, spans int) {
	bad := strings.TrimSuffix(path, ".spool") + ".bad"
	if rerr := os.Rename(path, bad); rerr != nil {
		bad = path
	}
	s.log.Error("spool segment cannot be read: set aside (its spans counted as dropped_export_failed)", "file", bad, "spans", spans, "err", err)
}

// StartReplay starts the processor that exports the segments no running
// processor owns — those a previous run left and those of processors that
// shut down — through a new exporter made as NewTracerProvider makes its
// OTLP one, counting into counts. It returns nil, nil when
// OTEL_TRACES_EXPORTER has no otlp exporter (nothing to replay to); the
// segments then stay. The caller shuts the processor down at exit: what it
// has not exported by then stays in the spool for the next run.
func (s *Spool) StartReplay(opts Options, counts *Counts) (*Processor, error) {
	names, err := exporterNames(os.Getenv(EnvTracesExporter))
	if err != nil || !slices.Contains(names, "otlp") {
		return nil, err
	}
	buf, err := bufferFromEnv(opts.Buffer)
	if err != nil {
		return nil, err
	}
	e, err := newOTLPExporter(context.Background(), buf)
	if err != nil {
		return nil, err
	}
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	s.mu.Lock()
	s.replay = counts
	for _, seg := range s.segs {
		if seg.owner == nil {
			seg.owner = counts
		}
	}
	s.mu.Unlock()
	buf.Spool = s
	return NewProcessor(e, buf, counts, log), nil
}

// spoolSpan is a span as a segment file holds it: every field the OTLP
// exporter reads from a ReadOnlySpan.
type spoolSpan struct {
	Name              string
	Context, Parent   spoolContext
	Kind              int
	Start, End        time.Time
	Attributes        []spoolValue
	DroppedAttributes int
	Events            []spoolEvent
	DroppedEvents     int
	Links             []spoolLink
	DroppedLinks      int
	StatusCode        uint32
	StatusDescription string
	ChildSpanCount    int
	Resource          []spoolValue
	ResourceSchemaURL string
	ScopeName         string
	ScopeVersion      string
	ScopeSchemaURL    string
	ScopeAttributes   []spoolValue
}

type spoolContext struct {
	TraceID    [16]byte
	SpanID     [8]byte
	Flags      byte
	TraceState string
	Remote     bool
}

type spoolEvent struct {
	Name              string
	Time              time.Time
	Attributes        []spoolValue
	DroppedAttributes int
}

type spoolLink struct {
	Context           spoolContext
	Attributes        []spoolValue
	DroppedAttributes int
}

// spoolValue is one attribute: its key, type and the field of its type.
type spoolValue struct {
	Key     string
	Type    int
	Bool    bool
	Int     int64
	Float   float64
	String  string
	Bools   []bool
	Ints    []int64
	Floats  []float64
	Strings []string
}

func toSpoolContext(sc trace.SpanContext) spoolContext {
	return spoolContext{TraceID: sc.TraceID(), SpanID: sc.SpanID(), Flags: byte(sc.TraceFlags()),
		TraceState: sc.TraceState().String(), Remote: sc.IsRemote()}
}

func (c spoolContext) spanContext() (trace.SpanContext, error) {
	ts, err := trace.ParseTraceState(c.TraceState)
	if err != nil {
		return trace.SpanContext{}, err
	}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: c.TraceID, SpanID: c.SpanID,
		TraceFlags: trace.TraceFlags(c.Flags), TraceState: ts, Remote: c.Remote}), nil
}

func toSpoolValues(kvs []attribute.KeyValue) []spoolValue {
	out := make([]spoolValue, len(kvs))
	for i, kv := range kvs {
		v := spoolValue{Key: string(kv.Key), Type: int(kv.Value.Type())}
		switch kv.Value.Type() {
		case attribute.BOOL:
			v.Bool = kv.Value.AsBool()
		case attribute.INT64:
			v.Int = kv.Value.AsInt64()
		case attribute.FLOAT64:
			v.Float = kv.Value.AsFloat64()
		case attribute.STRING:
			v.String = kv.Value.AsString()
		case attribute.BOOLSLICE:
			v.Bools = kv.Value.AsBoolSlice()
		case attribute.INT64SLICE:
			v.Ints = kv.Value.AsInt64Slice()
		case attribute.FLOAT64SLICE:
			v.Floats = kv.Value.AsFloat64Slice()
		case attribute.STRINGSLICE:
			v.Strings = kv.Value.AsStringSlice()
		default:
			v.String = kv.Value.String() // a type newer than this code: kept as its text
			v.Type = int(attribute.STRING)
		}
		out[i] = v
	}
	return out
}

func fromSpoolValues(vs []spoolValue) []attribute.KeyValue {
	out := make([]attribute.KeyValue, 0, len(vs))
	for _, v := range vs {
		k := attribute.Key(v.Key)
		switch attribute.Type(v.Type) {
		case attribute.BOOL:
			out = append(out, k.Bool(v.Bool))
		case attribute.INT64:
			out = append(out, k.Int64(v.Int))
		case attribute.FLOAT64:
			out = append(out, k.Float64(v.Float))
		case attribute.BOOLSLICE:
			out = append(out, k.BoolSlice(v.Bools))
		case attribute.INT64SLICE:
			out = append(out, k.Int64Slice(v.Ints))
		case attribute.FLOAT64SLICE:
			out = append(out, k.Float64Slice(v.Floats))
		case attribute.STRINGSLICE:
			out = append(out, k.StringSlice(v.Strings))
		default:
			out = append(out, k.String(v.String))
		}
	}
	return out
}

func toSpoolSpan(s sdktrace.ReadOnlySpan) spoolSpan {
	scopeAttrs := s.InstrumentationScope().Attributes
	out := spoolSpan{
		Name: s.Name(), Context: toSpoolContext(s.SpanContext()), Parent: toSpoolContext(s.Parent()),
		Kind: int(s.SpanKind()), Start: s.StartTime(), End: s.EndTime(),
		Attributes: toSpoolValues(s.Attributes()), DroppedAttributes: s.DroppedAttributes(),
		DroppedEvents: s.DroppedEvents(), DroppedLinks: s.DroppedLinks(),
		StatusCode: uint32(s.Status().Code), StatusDescription: s.Status().Description,
		ChildSpanCount: s.ChildSpanCount(),
		ScopeName:      s.InstrumentationScope().Name, ScopeVersion: s.InstrumentationScope().Version,
		ScopeSchemaURL: s.InstrumentationScope().SchemaURL, ScopeAttributes: toSpoolValues(scopeAttrs.ToSlice()),
	}
	if r := s.Resource(); r != nil {
		out.Resource, out.ResourceSchemaURL = toSpoolValues(r.Attributes()), r.SchemaURL()
	}
	for _, e := range s.Events() {
		out.Events = append(out.Events, spoolEvent{Name: e.Name, Time: e.Time,
			Attributes: toSpoolValues(e.Attributes), DroppedAttributes: e.DroppedAttributeCount})
	}
	for _, l := range s.Links() {
		out.Links = append(out.Links, spoolLink{Context: toSpoolContext(l.SpanContext),
			Attributes: toSpoolValues(l.Attributes), DroppedAttributes: l.DroppedAttributeCount})
	}
	return out
}

func (s spoolSpan) readOnly() (sdktrace.ReadOnlySpan, error) {
	sc, err := s.Context.spanContext()
	if err != nil {
		return nil, err
	}
	parent, err := s.Parent.spanContext()
	if err != nil {
		return nil, err
	}
	stub := tracetest.SpanStub{
		Name: s.Name, SpanContext: sc, Parent: parent, SpanKind: trace.SpanKind(s.Kind),
		StartTime: s.Start, EndTime: s.End, Attributes: fromSpoolValues(s.Attributes),
		DroppedAttributes: s.DroppedAttributes, DroppedEvents: s.DroppedEvents, DroppedLinks: s.DroppedLinks,
		Status:         sdktrace.Status{Code: codes.Code(s.StatusCode), Description: s.StatusDescription},
		ChildSpanCount: s.ChildSpanCount,
		Resource:       resource.NewWithAttributes(s.ResourceSchemaURL, fromSpoolValues(s.Resource)...),
		InstrumentationScope: instrumentation.Scope{Name: s.ScopeName, Version: s.ScopeVersion,
			SchemaURL: s.ScopeSchemaURL, Attributes: attribute.NewSet(fromSpoolValues(s.ScopeAttributes)...)},
	}
	for _, e := range s.Events {
		stub.Events = append(stub.Events, sdktrace.Event{Name: e.Name, Time: e.Time,
			Attributes: fromSpoolValues(e.Attributes), DroppedAttributeCount: e.DroppedAttributes})
	}
	for _, l := range s.Links {
		lc, err := l.Context.spanContext()
		if err != nil {
			return nil, err
		}
		stub.Links = append(stub.Links, sdktrace.Link{SpanContext: lc,
			Attributes: fromSpoolValues(l.Attributes), DroppedAttributeCount: l.DroppedAttributes})
	}
	return stub.Snapshot(), nil
}

// segmentHeader opens a segment file.
type segmentHeader struct {
	Format string
	Spans  int
}

// writeSegment writes spans to path through a temporary file in the same
// directory, and returns the file's size.
func writeSegment(path string, spans []sdktrace.ReadOnlySpan) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	w := bufio.NewWriter(tmp)
	enc := gob.NewEncoder(w)
	err = enc.Encode(segmentHeader{Format: spoolFormat, Spans: len(spans)})
	for _, s := range spans {
		if err != nil {
			break
		}
		err = enc.Encode(toSpoolSpan(s))
	}
	if err == nil {
		err = w.Flush()
	}
	var size int64
	if err == nil {
		var fi os.FileInfo
		if fi, err = tmp.Stat(); err == nil {
			size = fi.Size()
		}
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return 0, fmt.Errorf("spool: write %d spans: %w", len(spans), err)
	}
	return size, nil
}

// readSegmentHeader returns the number of spans a segment holds and its
// size, checking its format.
func readSegmentHeader(path string) (int, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	var h segmentHeader
	if err := gob.NewDecoder(bufio.NewReader(f)).Decode(&h); err != nil {
		return 0, 0, fmt.Errorf("header: %w", err)
	}
	if h.Format != spoolFormat {
		return 0, 0, fmt.Errorf("format %q, want %q (written by another version of the tracer)", h.Format, spoolFormat)
	}
	return h.Spans, fi.Size(), nil
}

// readSegment reads every span of a segment.
func readSegment(path string) ([]sdktrace.ReadOnlySpan, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := gob.NewDecoder(bufio.NewReader(f))
	var h segmentHeader
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	if h.Format != spoolFormat {
		return nil, fmt.Errorf("format %q, want %q", h.Format, spoolFormat)
	}
	if h.Spans < 0 || h.Spans > 1<<24 {
		return nil, fmt.Errorf("header: %d spans", h.Spans)
	}
	out := make([]sdktrace.ReadOnlySpan, 0, h.Spans)
	for range h.Spans {
		var s spoolSpan
		if err := dec.Decode(&s); err != nil {
			return nil, fmt.Errorf("span %d of %d: %w", len(out)+1, h.Spans, err)
		}
		ro, err := s.readOnly()
		if err != nil {
			return nil, fmt.Errorf("span %d of %d: %w", len(out)+1, h.Spans, err)
		}
		out = append(out, ro)
	}
	return out, nil
}
