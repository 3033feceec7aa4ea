package gobinary

import (
	"debug/elf"
	"fmt"
	"strings"

	"golang.org/x/arch/arm64/arm64asm"
	"golang.org/x/arch/x86/x86asm"
)

// Function is a function of a binary, located for uprobes.
type Function struct {
	// Name is the full symbol name, e.g. "net/http.(*Transport).roundTrip".
	Name string
	// Entry and End are the virtual addresses of the function's first byte
	// and of the byte after its last one. End may include the alignment
	// padding before the next function when it comes from the Go function
	// table.
	Entry, End uint64
	// EntryOffset is the file offset of Entry: where an entry uprobe attaches.
	EntryOffset uint64
	// Returns are the file offsets of every RET instruction in the function
	// (shared by every caller of Function for this name: read, never modify),
	// in address order.
	//
	// Return probes are uprobes on these instructions rather than
	// uretprobes: a uretprobe replaces the return address on the stack,
	// which breaks when the Go runtime moves or unwinds goroutine stacks.
	// Tail calls (JMP to another function, as in some wrappers) are not
	// returns and are not listed.
	Returns []uint64
	// Args is the size in bytes of the function's arguments, as the
	// function table records it (the runtime's _func.args). For a
	// function compiled for the stack-based calling convention (ABI0:
	// before Go 1.17 on amd64, 1.18 on arm64) it counts the results too,
	// which follow the arguments in the caller's frame: what locates
	// them. Register-ABI releases record the arguments alone. -1 when the
	// table does not say (an assembly function without a declared size)
	// or cannot be read.
	Args int64
}

// Function finds a function by its full symbol name, such as
// "net/http.serverHandler.ServeHTTP" or "net/http.(*Transport).roundTrip",
// and disassembles it to find its RET instructions.
//
// The name is looked up in .symtab and, when absent there or when the binary
// is stripped, in the Go function table; both give the same entry address.
// A few functions exist in both Go calling conventions (ABIs): an assembly
// function called from Go, or a Go function called from assembly, gets a
// generated wrapper of the same name, which .symtab tells apart with a
// ".abi0" suffix and the Go function table does not. Function then returns
// the body, which the linker places before its wrapper, so that a probe
// sees calls through either ABI. Names with the ".abi0" suffix are only
// found through .symtab.
// The first call reads the tables (a few megabytes for a large binary);
// later calls only read and decode the function's own bytes, once per name:
// results (errors too) are cached for the life of b. The error wraps
// ErrSymbolNotFound when no function has that name and ErrUnsupportedArch
// for architectures other than amd64 and arm64.
func (b *Binary) Function(name string) (Function, error) {
	b.locatedMu.Lock()
	defer b.locatedMu.Unlock()
	if r, ok := b.located[name]; ok {
		return r.fn, r.err
	}
	fn, err := b.function(name)
	if b.located == nil {
		b.located = make(map[string]located)
	}
	b.located[name] = located{fn, err}
	return fn, err
}

// function is Function without the cache.
func (b *Binary) function(name string) (fn Function, err error) {
	defer func() {
		if r := recover(); r != nil {
			fn, err = Function{}, fmt.Errorf("function %s: %w: parser panic: %v", name, ErrMalformed, r)
		}
	}()
	if b.Arch != "amd64" && b.Arch != "arm64" {
		return Function{}, fmt.Errorf("function %s: %w: %s", name, ErrUnsupportedArch, b.Arch)
	}
	r, err := b.lookup(name)
	if err != nil {
		return Function{}, fmt.Errorf("function %s: %w", name, err)
	}
	fn = Function{Name: name, Entry: r.entry, End: r.end}
	p, ok := b.segment(r.entry, r.end-r.entry)
	if !ok || p.Flags&elf.PF_X == 0 {
		return Function{}, fmt.Errorf("function %s: %w: [%#x, %#x) is not in an executable segment", name, ErrMalformed, r.entry, r.end)
	}
	fn.EntryOffset = r.entry - p.Vaddr + p.Off
	code, err := b.readAt(r.entry, r.end-r.entry)
	if err != nil {
		return Function{}, fmt.Errorf("function %s: %w", name, err)
	}
	rets, err := findReturns(b.Arch, code)
	if err != nil {
		return Function{}, fmt.Errorf("function %s: %w", name, err)
	}
	for _, off := range rets {
		fn.Returns = append(fn.Returns, fn.EntryOffset+off)
	}
	fn.Args = -1
	if args, err := b.funcArgs(); err == nil {
		if a, ok := args[r.entry]; ok {
			fn.Args = a
		}
	}
	return fn, nil
}

// lookup returns the address range of the named function.
func (b *Binary) lookup(name string) (funcRange, error) {
	syms, err := b.symbols()
	if err != nil {
		return funcRange{}, err
	}
	isFunc := func(s elf.Symbol) bool { return elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Size > 0 }
	if s, ok := syms[name]; ok && isFunc(s) {
		if body, ok := syms[name+".abi0"]; ok && isFunc(body) && body.Value < s.Value {
			s = body
		}
		return funcRange{entry: s.Value, end: s.Value + s.Size}, nil
	}
	funcs, err := b.funcTable()
	if err != nil {
		return funcRange{}, fmt.Errorf("read Go function table: %w", err)
	}
	if r, ok := funcs[name]; ok && r.end > r.entry {
		return r, nil
	}
	return funcRange{}, ErrSymbolNotFound
}

// findReturns returns the offsets of the RET instructions in code.
//
// Go's amd64 code contains no data, so an undecodable instruction means the
// range is wrong and is reported rather than skipped. arm64 instructions are
// 4 bytes, and literal pools and zero padding between functions do not
// decode; those words are skipped.
func findReturns(arch string, code []byte) ([]uint64, error) {
	var rets []uint64
	err := decodeCode(arch, 0, code, func(in instruction) {
		if in.ret {
			rets = append(rets, uint64(in.pc))
		}
	})
	return rets, err
}

// instruction is what the searches of this file need of one decoded
// instruction.
type instruction struct {
	pc     int    // offset in the code
	ret    bool   // a return (amd64 RET, arm64 RET)
	target uint64 // the address a direct call (amd64 CALL rel32, arm64 BL) goes to; 0 for others
}

// decodeCode calls visit for each instruction of code, the bytes of a
// function at address base, in order; see findReturns for what is
// skipped and what is an error.
func decodeCode(arch string, base uint64, code []byte, visit func(instruction)) error {
	switch arch {
	case "amd64":
		for pc := 0; pc < len(code); {
			inst, err := x86asm.Decode(code[pc:], 64)
			if err != nil || inst.Len == 0 {
				return fmt.Errorf("decode amd64 instruction at offset %#x: %v", pc, err)
			}
			in := instruction{pc: pc, ret: inst.Op == x86asm.RET}
			if rel, ok := inst.Args[0].(x86asm.Rel); ok && inst.Op == x86asm.CALL {
				in.target = base + uint64(pc+inst.Len) + uint64(int64(rel))
			}
			visit(in)
			pc += inst.Len
		}
	case "arm64":
		for pc := 0; pc+4 <= len(code); pc += 4 {
			inst, err := arm64asm.Decode(code[pc:])
			if err != nil {
				continue
			}
			in := instruction{pc: pc, ret: inst.Op == arm64asm.RET}
			if rel, ok := inst.Args[0].(arm64asm.PCRel); ok && inst.Op == arm64asm.BL {
				in.target = base + uint64(pc) + uint64(int64(rel))
			}
			visit(in)
		}
	default:
		return fmt.Errorf("%w: %s", ErrUnsupportedArch, arch)
	}
	return nil
}

// HasPackage reports whether b has at least one function of the package
// with import path pkg: whether the linker kept any of its code. It reads
// the Go function table (see Function), which also stripped binaries
// have; an unreadable table is reported as false.
func (b *Binary) HasPackage(pkg string) bool {
	funcs, err := b.funcTable()
	if err != nil {
		return false
	}
	prefix := pkg + "."
	for name := range funcs {
		if strings.HasPrefix(name, prefix) && !strings.Contains(name[len(prefix):], "/") {
			return true
		}
	}
	return false
}

// CallSites returns the file offsets of the instructions in the function
// caller that call the function callee directly (amd64 CALL rel32, arm64
// BL), in address order: where a uprobe sees the arguments caller passes
// to callee, before the call. Calls through a register or a wrapper are
// not found. The error wraps ErrSymbolNotFound when either function is
// missing.
func (b *Binary) CallSites(caller, callee string) ([]uint64, error) {
	from, err := b.Function(caller)
	if err != nil {
		return nil, err
	}
	to, err := b.lookup(callee) // its entry only: no need to decode its body
	if err != nil {
		return nil, fmt.Errorf("function %s: %w", callee, err)
	}
	code, err := b.readAt(from.Entry, from.End-from.Entry)
	if err != nil {
		return nil, fmt.Errorf("function %s: %w", caller, err)
	}
	var sites []uint64
	err = decodeCode(b.Arch, from.Entry, code, func(in instruction) {
		if in.target == to.entry {
			sites = append(sites, from.EntryOffset+uint64(in.pc))
		}
	})
	if err != nil {
		return nil, fmt.Errorf("function %s: %w", caller, err)
	}
	return sites, nil
}
