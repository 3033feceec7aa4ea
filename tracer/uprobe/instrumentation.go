// Package uprobe attaches eBPF instrumentations to the functions of an
// unmodified Go binary and reads the records they submit.
//
// An Instrumentation declares, as data, the functions it probes, the struct
// field offsets its BPF programs need, and how to decode its records; the
// package knows nothing about the libraries instrumented. A Loader (what
// the tracer uses) loads one BPF collection per instrumentation for each
// target binary, with the offsets written into the collection's constants,
// shares it between every process running that binary, and reads every
// process's records from one ring buffer; Attach makes a Session that does
// the same for one binary alone. Both attach a uprobe at each probed
// function's entry and at each of its RET instructions. Return
// probes are not uretprobes: a uretprobe rewrites the return address on the
// stack, which breaks when the Go runtime moves a goroutine's stack.
//
// Functions are located with package gobinary and attached by file offset,
// so stripped binaries work as well as binaries with a symbol table. Where
// the kernel has uprobe_multi links (Linux 6.6+), all uprobes of one BPF
// program share one link, which detaches ~25 times faster than a link per
// uprobe (BenchmarkAttachDetach).
package uprobe

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/offsetdb/offsetdb/gobinary"
	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/spans"
)

// Names of the maps every instrumentation's collection declares through
// bpf/runtime.h and bpf/context.h. Attach creates each once per Session and
// gives the same map to every collection that declares it, so all
// instrumentations of a target write to one ring buffer and one drop
// counter, and see one active span per goroutine.
const (
	// EventsMap is a BPF_MAP_TYPE_RINGBUF the programs submit records to.
	// The first byte of every record is the submitting instrumentation's
	// tag (see KindConst). Required.
	EventsMap = "events"
	// DropsMap is a BPF_MAP_TYPE_PERCPU_ARRAY with one __u64 entry the
	// programs increment when the ring buffer has no room for a record.
	// Required.
	DropsMap = "drops"
	// ActiveSpansMap holds the active span of each goroutine (bpf/context.h):
	// what lets any instrumentation parent to any other. Shared when
	// declared.
	ActiveSpansMap = "active_spans"
)

// runtimeMaps are the maps Attach shares between all collections of a
// Session: those every object must declare, then those shared if declared.
var (
	requiredMaps = []string{EventsMap, DropsMap}
	optionalMaps = []string{ActiveSpansMap}
)

// KindConst is the name of the `volatile const __u8` global every
// instrumentation's BPF object must declare. Attach gives each
// instrumentation of a Session its tag (its index in the list given to
// Attach, plus one), a Loader one tag per instrumentation name for all
// binaries, and writes it there; the programs start each record with it,
// and records are dispatched on it. No package picks numbers.
const KindConst = "event_kind"

// OptionConsts are the BPF constants an object may declare that no Field
// sets: they come from Options.Constants, the same for every object of a
// tracer. bpf/context.h declares the sampler (sampler, sampler_bound) and
// the tracecontext switch (propagate_tracecontext); the net/http client the
// switch for the trace-context writer (context_writer, bpf/propagation.h).
var OptionConsts = []string{"sampler", "sampler_bound", "propagate_tracecontext", "context_writer"}

// Absent is the value Attach writes into the constant of an optional field
// that the target does not have (a field added or removed by some
// release). BPF code compares the constant with it before using the field.
const Absent = ^uint64(0)

// Field is a struct field offset an instrumentation's BPF code needs. The
// module whose database shard holds it follows from the field's package
// (resolve.Module): "runtime.g.goid" is std's, a grpc field grpc's.
type Field struct {
	// ID is the field, as the offsets database and the DWARF reader name it.
	ID offsets.FieldID
	// Const is the name of the `volatile const __u64` global in the BPF
	// object that receives the field's byte offset.
	Const string
	// Optional marks a field that does not exist in every supported
	// release; when it is missing from the resolved values its constant is
	// set to Absent instead of failing Attach.
	Optional bool
	// IfResolved marks a field the programs can do without, losing what
	// they read through it (an attribute, a status code, incoming trace
	// context): when no source knows its offset, the instrumentation still
	// runs, with the constant set to Absent, and says what it lost. Like
	// Optional for Attach; the difference is in planning (package target),
	// where an unresolved Optional field disables the instrumentation.
	IfResolved bool
}

// Probe is a function an instrumentation attaches to.
type Probe struct {
	// Symbol is the function's full symbol name, such as
	// "net/http.(*Transport).roundTrip".
	Symbol string
	// Entry is the name of the BPF program attached at the function's first
	// instruction; empty for none.
	Entry string
	// CallsTo, when set, places Entry not at the function's first
	// instruction but at each instruction of the function that calls the
	// function CallsTo directly, before the call: where the program reads
	// the arguments Symbol passes to CallsTo (GO_CALLARGn,
	// bpf/go_abi.h), at a cost per call from Symbol only, not per call of
	// CallsTo. A function with no such call is skipped.
	CallsTo string
	// Return is the name of the BPF program attached at every RET
	// instruction of the function; empty for none. At a RET the results are
	// in the result registers and the goroutine is the caller's.
	Return string
	// Versions bounds the probe to the versions of the symbol's module that
	// have this function with this signature, as an offsets.Constraint
	// (">=v1.8.0", ">=v1.14.0,<v1.69.0"); empty for every version. Outside
	// the bound the probe is skipped, never attached to a function whose
	// arguments it would misread.
	Versions string
	// Optional lets the instrumentation run without this probe when the
	// function is not in the binary (the linker dropped it, or the library
	// renamed it) or its version is outside Versions; the programs must
	// then do without what it records. A required probe that cannot be
	// attached disables the instrumentation.
	Optional bool
	// StackABI says the probe's programs were checked against the
	// stack-based calling convention of Go before 1.17 on amd64 (1.18 on
	// arm64), whose targets are skipped otherwise: the argument words they
	// read (GO_REGn) are preceded only by word-sized arguments, so that
	// word n of the registers is word n of the stack (bpf/go_abi.h), and
	// the signature under Versions holds for those releases too.
	StackABI bool
	// StackResults is, for a Return program that reads results
	// (GO_RESULTn) on a stack-ABI target, the size in bytes of the
	// function's results as its signature lays them out on the stack:
	// each aligned to its type, the whole rounded up to a word (24 for
	// (*Response, error)); or of its trailing results only, when one
	// before them varies in size with the library's version (16 for the
	// error of (Message, error)): GO_RESULT1 is then the first word of
	// those. Results end where the function table's argument size
	// (_func.args) ends, so this locates them; a function whose table
	// entry is smaller is skipped. Zero: results read as 0.
	StackResults int
}

// Instrumentation is an eBPF instrumentation of one library, declared as
// data.
type Instrumentation struct {
	// Name identifies the instrumentation in errors and logs: "net/http server".
	Name string
	// Probes are the functions to attach to.
	Probes []Probe
	// Fields are the struct field offsets the BPF code needs, from any
	// module.
	Fields []Field
	// SharedMaps names maps, besides the runtime maps (EventsMap, DropsMap,
	// ActiveSpansMap), that Attach creates once per Session and shares
	// between every instrumentation that declares them (by name; their
	// specs must agree).
	SharedMaps []string
	// BinaryConsts names the `volatile const __u64` globals of the BPF
	// object whose values come from the target binary itself rather than
	// from field offsets (the address of a data symbol, relative to a
	// probed function): BinaryValues returns them for a binary, 0 for a
	// name it leaves out.
	BinaryConsts []string
	BinaryValues func(bin *gobinary.Binary) map[string]uint64
	// Spec returns a fresh copy of the instrumentation's BPF collection.
	Spec func() (*ebpf.CollectionSpec, error)
	// PIDAt is the byte offset in every record of the __u32 thread group id
	// of the process that submitted it (bpf_get_current_pid_tgid() >> 32),
	// or 0 for an instrumentation that submits no records: how a Loader,
	// which reads the records of every process from one ring buffer, hands
	// each to its process. Offset 0 is the tag, never the pid.
	PIDAt int
	// Decode fills out (already Reset) with the span one record describes.
	// The record's memory is reused after Decode returns; Decode must not
	// keep it.
	Decode func(record []byte, out *spans.Span) error
}

// ids returns the field IDs of inst, in declaration order.
func (inst *Instrumentation) ids() []offsets.FieldID {
	ids := make([]offsets.FieldID, len(inst.Fields))
	for i, f := range inst.Fields {
		ids[i] = f.ID
	}
	return ids
}

// constants returns the value of every field constant of inst, given the
// resolved offsets: the offset, or Absent for an optional field missing from
// values. A required field missing from values is an error wrapping
// ErrMissingField.
func (inst *Instrumentation) constants(values map[offsets.FieldID]offsets.Value) (map[string]uint64, error) {
	consts := make(map[string]uint64, len(inst.Fields))
	for _, f := range inst.Fields {
		v, ok := values[f.ID]
		switch {
		case ok:
			consts[f.Const] = v.Offset
		case f.Optional || f.IfResolved:
			consts[f.Const] = Absent
		default:
			return nil, fmt.Errorf("%w: %s (constant %s)", ErrMissingField, f.ID, f.Const)
		}
	}
	return consts, nil
}

// Fields returns the IDs of every field the instrumentations need, each
// once, in declaration order: what a caller resolves before Attach.
func Fields(insts ...Instrumentation) []offsets.FieldID {
	seen := make(map[offsets.FieldID]bool)
	var ids []offsets.FieldID
	for i := range insts {
		for _, id := range insts[i].ids() {
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// Unsupported returns the Spec and Decode of an instrumentation on a
// platform its BPF objects are not built for (they are built for Linux on
// amd64 and arm64): both report errors.ErrUnsupported, naming it. It is
// the one platform stub every instrumentation package uses.
func Unsupported(name string) (spec func() (*ebpf.CollectionSpec, error), decode func([]byte, *spans.Span) error) {
	err := fmt.Errorf("%s instrumentation: %w (BPF objects are built for linux/amd64 and linux/arm64)", name, errors.ErrUnsupported)
	return func() (*ebpf.CollectionSpec, error) { return nil, err },
		func([]byte, *spans.Span) error { return err }
}
