//go:build linux && (amd64 || arm64)

package server

import (
	"fmt"
	"os"
	"sync"

	"github.com/offsetdb/offsetdb/gobinary"
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
var typeNames = &typeResolver{byPID: make(map[uint32]*gobinary.Binary)}

// maxTypeBinaries bounds the binaries typeResolver keeps open: one per
// process that panicked, each holding its index of type symbols.
const maxTypeBinaries = 16

// typeResolver turns the type word of a panic value into the type's name,
// through the symbol table of the process's executable (/proc/PID/exe,
// opened when a process's first panic is decoded and kept, a few per
// tracer; a process that exited before is not named).
type typeResolver struct {
	mu    sync.Mutex
	byPID map[uint32]*gobinary.Binary
}

// name returns the name of the type whose descriptor is at runtime
// address typ in process pid, where server_panic ran at ip; empty when it
// cannot be named (a stripped binary, an exited process).
func (r *typeResolver) name(pid uint32, ip, typ uint64) string {
	bin, err := r.binary(pid)
	if err != nil || bin.Stripped {
		return ""
	}
	bias, ok := loadBias(bin, ip)
	if !ok {
		return ""
	}
	name, _, _ := bin.TypeName(typ - bias)
	return name
}

func (r *typeResolver) binary(pid uint32) (*gobinary.Binary, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b, ok := r.byPID[pid]; ok {
		return b, nil
	}
	b, err := gobinary.Open(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return nil, err
	}
	if len(r.byPID) >= maxTypeBinaries {
		for p, old := range r.byPID { // any one: pids are not reused soon
			old.Close()
			delete(r.byPID, p)
			break
		}
	}
	r.byPID[pid] = b
	return b, nil
}

// loadBias returns what to subtract from a runtime address of the process
// to get the binary's virtual address: zero for a position-dependent
// executable, the load bias of a PIE. ip is where server_panic ran, the
// entry of one of the panicLogf functions (a uprobe reports the probed
// instruction; one byte past it is accepted too): the bias is a whole
// number of pages, which tells the function apart.
func loadBias(bin *gobinary.Binary, ip uint64) (uint64, bool) {
	page := uint64(os.Getpagesize())
	for _, sym := range panicLogf {
		fn, err := bin.Function(sym)
		if err != nil || ip < fn.Entry {
			continue
		}
		d := ip - fn.Entry
		if d%page > 1 || (!bin.PIE && d > 1) {
			continue
		}
		return d - d%page, true
	}
	return 0, false
}
