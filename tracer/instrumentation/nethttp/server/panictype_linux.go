//go:build linux && (amd64 || arm64)

package server

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/offsetdb/offsetdb/gobinary"
	"github.com/offsetdb/offsetdb/goversion"
	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/resolve"
)

// stringTypes are the types of panic values whose data word points to a
// string header, so that the bytes server.c copied from there are the
// value: string itself, and the runtime's errors declared as strings
// (`type plainError string`, `type errorString string` in package
// runtime: a nil map write, a nil pointer dereference, a closed channel's
// send, ...). These are Go declarations, not field offsets; any other
// value's message would need its Error method, which the tracer cannot
// call.
var stringTypes = map[string]bool{
	"string":              true,
	"runtime.plainError":  true,
	"runtime.errorString": true,
}

// typeNames names the panic values' types of the processes traced.
var typeNames = &typeResolver{byPID: make(map[uint32]*typeBinary)}

// maxTypeBinaries bounds the binaries typeResolver keeps open: one per
// process that panicked.
const maxTypeBinaries = 16

// The fields of a runtime type descriptor that locate its name:
// internal/abi.Type's from Go 1.21, runtime._type's before.
var (
	abiTypeFields = []offsets.FieldID{offsets.MustParseFieldID("internal/abi.Type.Str"), offsets.MustParseFieldID("internal/abi.Type.TFlag")}
	oldTypeFields = []offsets.FieldID{offsets.MustParseFieldID("runtime._type.str"), offsets.MustParseFieldID("runtime._type.tflag")}
	abiTypes      = goversion.MustParse("go1.21")
)

// typeBinary is the executable of a traced process, with where its type
// descriptors keep their names (from its DWARF; ok false without).
type typeBinary struct {
	bin    *gobinary.Binary
	file   os.FileInfo // of /proc/PID/exe when opened: a reused PID runs another file
	layout gobinary.TypeLayout
	ok     bool
	// bias is the process's load bias, once loadBias found it (biased):
	// a process's mapping of its executable does not move.
	bias   uint64
	biased bool
}

// typeResolver turns the type word of a panic value into the type's name
// through the process's executable (/proc/PID/exe, opened when a
// process's first panic is decoded and kept; a process that exited before
// is not named). The name is the runtime's own, found through the
// descriptor's name offset, whose field offsets come from the binary's
// DWARF (they are not in the database) and whose base is the symbol
// runtime.types: a binary without DWARF or symbols gets no names.
type typeResolver struct {
	mu    sync.Mutex
	byPID map[uint32]*typeBinary
}

// name returns the name of the type whose descriptor is at runtime
// address typ in process pid, whose executable is tb (r.binary; nil when
// the process is gone), where server_panic ran at ip; empty when it
// cannot be named.
func (r *typeResolver) name(tb *typeBinary, pid uint32, ip, typ uint64) string {
	if tb == nil || !tb.ok {
		return ""
	}
	r.mu.Lock()
	if !tb.biased {
		tb.bias, tb.biased = loadBias(pid, tb.bin, tb.file, ip)
	}
	bias, biased := tb.bias, tb.biased
	r.mu.Unlock()
	if !biased {
		return ""
	}
	name, err := tb.bin.TypeName(typ-bias, tb.layout)
	if err != nil {
		return ""
	}
	return name
}

func (r *typeResolver) binary(pid uint32) (*typeBinary, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	path := fmt.Sprintf("/proc/%d/exe", pid)
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if tb, ok := r.byPID[pid]; ok {
		if os.SameFile(tb.file, fi) {
			return tb, nil
		}
		tb.bin.Close()
		delete(r.byPID, pid)
	}
	bin, err := gobinary.Open(path)
	if err != nil {
		return nil, err
	}
	tb := &typeBinary{bin: bin, file: fi}
	if !bin.Stripped && bin.HasDWARF {
		tb.layout, tb.ok = typeLayout(bin)
	}
	if len(r.byPID) >= maxTypeBinaries {
		for p, old := range r.byPID { // any one
			old.bin.Close()
			delete(r.byPID, p)
			break
		}
	}
	r.byPID[pid] = tb
	return tb, nil
}

// typeLayout reads where the type descriptors of bin keep their names,
// from its DWARF, through resolve (with no database: these fields are not
// in them). The set of bin's Go release is tried first: a type the DWARF
// lacks costs a scan of all of it (layout.File.Fields).
func typeLayout(bin *gobinary.Binary) (gobinary.TypeLayout, bool) {
	sets := [][]offsets.FieldID{abiTypeFields, oldTypeFields}
	if bin.GoVersionErr == nil && bin.GoVersion.Less(abiTypes) {
		sets[0], sets[1] = sets[1], sets[0]
	}
	r := resolve.Resolver{}
	for _, ids := range sets {
		fs := r.Resolve(bin, ids)
		str, tflag := fs[ids[0]], fs[ids[1]]
		if str.Status == resolve.Resolved && tflag.Status == resolve.Resolved {
			return gobinary.TypeLayout{Str: str.Value.Offset, TFlag: tflag.Value.Offset}, true
		}
	}
	return gobinary.TypeLayout{}, false
}

// loadBias returns what to subtract from a runtime address of process pid
// to get the binary's virtual address: zero for a position-dependent
// executable, the load bias of a PIE. ip is where server_panic ran, the
// entry of one of the panicLogf functions (a uprobe reports the probed
// instruction; one byte past it is accepted too). The process's mapping
// of ip must be of the executable (exe, by inode) at the file offset of
// that function's entry: a PID that names another process (one that
// reused it, or a tracer in another PID namespace than the kernel's
// numbers) gets no bias, and no names.
func loadBias(pid uint32, bin *gobinary.Binary, exe os.FileInfo, ip uint64) (uint64, bool) {
	st, ok := exe.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	m, ok := containing(exeMappings(pid, st.Ino), ip)
	if !ok {
		return 0, false
	}
	at := ip - m.start + m.off
	for _, sym := range panicLogf {
		fn, err := bin.Function(sym)
		if err != nil {
			continue
		}
		if at == fn.EntryOffset || at == fn.EntryOffset+1 {
			return ip - (at - fn.EntryOffset) - fn.Entry, true
		}
	}
	return 0, false
}

// staticString returns at most max bytes of a string of process pid that
// lies in the binary's own static data (tb, as for name), and its length:
// the bytes at ptr, of length n, or when the string's header was not
// read (n 0) those of the header at data. The BPF program could not read
// them: a page of the executable's data that the process never touched is
// not mapped in, and a BPF program cannot fault it in. Read from
// /proc/PID/mem, which can, they are only read from a mapping of the
// executable (by inode), whose strings never change: not from the heap,
// whose memory may already hold something else. Nothing when the
// process has exited.
func (r *typeResolver) staticString(tb *typeBinary, pid uint32, data, ptr uint64, n int64, max int) ([]byte, int64) {
	if tb == nil {
		return nil, 0
	}
	st, ok := tb.file.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, 0
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return nil, 0
	}
	defer mem.Close()
	exe := exeMappings(pid, st.Ino)
	static := func(addr uint64) bool {
		_, ok := containing(exe, addr)
		return addr != 0 && ok
	}
	if n <= 0 {
		var h [16]byte // a string header: pointer, length
		if !static(data) {
			return nil, 0
		}
		if _, err := mem.ReadAt(h[:], int64(data)); err != nil {
			return nil, 0
		}
		ptr, n = binary.NativeEndian.Uint64(h[:8]), int64(binary.NativeEndian.Uint64(h[8:]))
	}
	if n <= 0 || !static(ptr) {
		return nil, 0
	}
	b := make([]byte, min(n, int64(max)))
	if _, err := mem.ReadAt(b, int64(ptr)); err != nil {
		return nil, 0
	}
	return b, n
}

// mapping is one mapping of a process's executable: its addresses
// [start, end) map the file from offset off.
type mapping struct{ start, end, off uint64 }

// exeMappings returns the mappings of process pid of the file with inode
// ino, from one read of /proc/PID/maps.
func exeMappings(pid uint32, ino uint64) []mapping {
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil
	}
	defer f.Close()
	var ms []mapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fs := strings.Fields(sc.Text())
		if len(fs) < 5 {
			continue
		}
		lo, hi, found := strings.Cut(fs[0], "-")
		if !found {
			continue
		}
		s, err1 := strconv.ParseUint(lo, 16, 64)
		e, err2 := strconv.ParseUint(hi, 16, 64)
		o, err3 := strconv.ParseUint(fs[2], 16, 64)
		i, err4 := strconv.ParseUint(fs[4], 10, 64)
		if err1 == nil && err2 == nil && err3 == nil && err4 == nil && i == ino {
			ms = append(ms, mapping{s, e, o})
		}
	}
	return ms
}

// containing returns the mapping of ms that holds address addr.
func containing(ms []mapping, addr uint64) (mapping, bool) {
	for _, m := range ms {
		if addr >= m.start && addr < m.end {
			return m, true
		}
	}
	return mapping{}, false
}
