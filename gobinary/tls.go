package gobinary

import (
	"errors"
	"fmt"

	"golang.org/x/arch/x86/x86asm"
)

// tlsWitnesses are Go functions of the runtime that every binary links and
// that start, like almost every Go function, with the stack-bound check:
// they load the current goroutine's g first.
var tlsWitnesses = []string{"runtime.mallocgc", "runtime.newobject", "runtime.growslice", "runtime.makeslice", "runtime.mapaccess1"}

// GoTLSOffset returns where an amd64 binary built for the stack-based
// calling convention (before Go 1.17) keeps the current goroutine's g: at
// this offset from the thread pointer (the FS base), always -8 in the
// binaries Go's own linker writes, but chosen by the external linker in cgo
// builds. It is read from the code itself: the prologue of runtime
// functions loads g as "MOVQ FS:off, CX" or, in a PIE, "MOVQ $off, CX;
// MOVQ FS:0(CX), CX". Every witness that does so must agree (one that
// starts otherwise, say built without the stack check, is passed over).
// The result is cached.
func (b *Binary) GoTLSOffset() (int64, error) {
	b.tlsOnce.Do(func() { b.tlsG, b.tlsErr = b.goTLSOffset() })
	return b.tlsG, b.tlsErr
}

func (b *Binary) goTLSOffset() (int64, error) {
	if b.Arch != "amd64" {
		return 0, fmt.Errorf("%w: %s keeps g in a register, not thread-local storage", ErrUnsupportedArch, b.Arch)
	}
	var found []int64
	var names []string
	for _, name := range tlsWitnesses {
		r, err := b.lookup(name)
		if errors.Is(err, ErrSymbolNotFound) {
			continue
		}
		if err != nil {
			return 0, err
		}
		n := min(r.end-r.entry, 64)
		code, err := b.readAt(r.entry, n)
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", name, err)
		}
		if off, ok := tlsLoad(code); ok {
			found = append(found, off)
			names = append(names, name)
		}
	}
	if len(found) == 0 {
		return 0, fmt.Errorf("none of %v starts by loading g from thread-local storage (FS:off, or an offset then FS:0(reg))", tlsWitnesses)
	}
	for i, off := range found {
		if off != found[0] {
			return 0, fmt.Errorf("%w: %s loads g at FS%+d but %s at FS%+d", ErrMalformed, names[0], found[0], names[i], off)
		}
	}
	return found[0], nil
}

// tlsLoad decodes the first instructions of an amd64 function for the
// load of g from FS-relative thread-local storage and returns its offset.
func tlsLoad(code []byte) (int64, bool) {
	imm := map[x86asm.Reg]int64{} // registers holding an immediate
	for pc, i := 0, 0; pc < len(code) && i < 4; i++ {
		inst, err := x86asm.Decode(code[pc:], 64)
		if err != nil || inst.Len == 0 {
			return 0, false
		}
		pc += inst.Len
		if inst.Op != x86asm.MOV {
			return 0, false
		}
		dst, _ := inst.Args[0].(x86asm.Reg)
		switch src := inst.Args[1].(type) {
		case x86asm.Imm:
			imm[dst] = int64(src)
		case x86asm.Mem:
			if src.Segment != x86asm.FS || src.Index != 0 {
				return 0, false
			}
			if src.Base == 0 {
				return int64(int32(src.Disp)), true
			}
			v, ok := imm[src.Base]
			return v + int64(int32(src.Disp)), ok
		default:
			return 0, false
		}
	}
	return 0, false
}
