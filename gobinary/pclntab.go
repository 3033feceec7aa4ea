package gobinary

import (
	"debug/elf"
	"debug/gosym"
	"errors"
	"fmt"
)

// Magic numbers at the start of the Go function table, one per format
// (internal/abi.PCLnTabMagic). debug/gosym reads all four.
const (
	go12Magic  = 0xfffffffb // Go 1.2 to 1.15: absolute entry addresses
	go116Magic = 0xfffffffa // Go 1.16 and 1.17: absolute entry addresses
	go118Magic = 0xfffffff0 // Go 1.18 and 1.19: entries relative to runtime.text
	go120Magic = 0xfffffff1 // Go 1.20 and later: entries relative to runtime.text
)

// Word indexes of fields in runtime.moduledata, the same from Go 1.16 to at
// least Go 1.26: pcHeader, six slices of three words, findfunctab, then
// minpc, maxpc, text, etext.
const (
	moduledataMinPC = 20
	moduledataMaxPC = 21
	moduledataText  = 22
)

// pclntab is the Go function table (runtime.pclntab) of a binary. It maps
// program counters to functions and lines and, unlike .symtab, survives
// stripping because the runtime needs it for stack traces and GC.
type pclntab struct {
	addr uint64 // virtual address of the first byte (runtime.pcheader)
	data []byte
}

// funcRange is a function's [entry, end) address range.
type funcRange struct{ entry, end uint64 }

// pclntab locates and reads the Go function table once.
func (b *Binary) pclntab() (*pclntab, error) {
	b.pclnOnce.Do(func() { b.pcln, b.pclnErr = b.findPclntab() })
	return b.pcln, b.pclnErr
}

// findPclntab finds the function table by section name (".gopclntab", or
// ".data.rel.ro.gopclntab" for PIE before Go 1.16-ish), by the
// runtime.pclntab symbol, or, for files without section headers, by its
// magic number.
func (b *Binary) findPclntab() (*pclntab, error) {
	for _, name := range []string{".gopclntab", ".data.rel.ro.gopclntab"} {
		if s := b.elf.Section(name); s != nil && s.Type != elf.SHT_NOBITS && s.Flags&elf.SHF_COMPRESSED == 0 {
			data, err := s.Data()
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", name, err)
			}
			return &pclntab{addr: s.Addr, data: data}, nil
		}
	}
	if syms, err := b.symbols(); err == nil {
		start, ok1 := syms["runtime.pclntab"]
		end, ok2 := syms["runtime.epclntab"]
		if ok1 && ok2 && end.Value > start.Value {
			if data, err := b.readAt(start.Value, end.Value-start.Value); err == nil {
				return &pclntab{addr: start.Value, data: data}, nil
			}
		}
	}
	if len(b.elf.Sections) == 0 {
		return b.scanPclntab()
	}
	return nil, errors.New("no .gopclntab section")
}

// scanPclntab searches the loaded segments for a function table header that
// debug/gosym accepts. Only files stripped of their section headers need it.
func (b *Binary) scanPclntab() (*pclntab, error) {
	var magics [][]byte
	for _, m := range []uint32{go12Magic, go116Magic, go118Magic, go120Magic} {
		buf := make([]byte, 4)
		b.elf.ByteOrder.PutUint32(buf, m)
		magics = append(magics, buf)
	}
	for _, p := range b.loads {
		data, err := b.segmentData(p)
		if err != nil {
			return nil, err
		}
		for _, magic := range magics {
			for _, i := range indexAll(data, magic) {
				h := data[i:]
				if i%4 != 0 || len(h) < 16 || h[4] != 0 || h[5] != 0 || (h[6] != 1 && h[6] != 2 && h[6] != 4) || uint64(h[7]) != b.ptrSize() {
					continue
				}
				tab, err := gosym.NewTable(nil, gosym.NewLineTable(h, 0))
				if err == nil && len(tab.Funcs) > 0 {
					return &pclntab{addr: p.Vaddr + uint64(i), data: h}, nil
				}
			}
		}
	}
	return nil, errors.New("no section headers and no Go function table in the loaded segments")
}

// funcTable returns the functions of the Go function table by name; the
// first (lowest) function of a name wins.
func (b *Binary) funcTable() (map[string]funcRange, error) {
	b.funcOnce.Do(func() { b.funcs, b.funcErr = b.readFuncTable() })
	return b.funcs, b.funcErr
}

func (b *Binary) readFuncTable() (funcs map[string]funcRange, err error) {
	defer func() {
		if r := recover(); r != nil {
			funcs, err = nil, fmt.Errorf("%w: Go function table: parser panic: %v", ErrMalformed, r)
		}
	}()
	pt, err := b.pclntab()
	if err != nil {
		return nil, err
	}
	if len(pt.data) < 16 {
		return nil, fmt.Errorf("%w: Go function table is %d bytes", ErrMalformed, len(pt.data))
	}
	var text, minPC uint64
	switch magic := b.elf.ByteOrder.Uint32(pt.data); magic {
	case go12Magic, go116Magic:
	case go118Magic, go120Magic:
		if text, minPC, err = b.runtimeText(pt); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unsupported Go function table format (magic %#x)", magic)
	}
	tab, err := gosym.NewTable(nil, gosym.NewLineTable(pt.data, text))
	if err != nil {
		return nil, fmt.Errorf("%w: Go function table: %v", ErrMalformed, err)
	}
	if len(tab.Funcs) == 0 {
		return nil, fmt.Errorf("%w: Go function table has no functions", ErrMalformed)
	}
	if minPC != 0 && tab.Funcs[0].Entry != minPC {
		return nil, fmt.Errorf("%w: first function at %#x, but runtime.firstmoduledata says %#x", ErrMalformed, tab.Funcs[0].Entry, minPC)
	}
	// A function that exists in both Go ABIs appears twice under one name:
	// its body and a generated wrapper, which the linker places after it.
	// The body is the one to probe; see Function.
	funcs = make(map[string]funcRange, len(tab.Funcs))
	for i := range tab.Funcs {
		f := &tab.Funcs[i]
		if _, dup := funcs[f.Name]; !dup {
			funcs[f.Name] = funcRange{entry: f.Entry, end: f.End}
		}
	}
	return funcs, nil
}

// runtimeText returns the address of runtime.text, the base that Go 1.18+
// function tables store entry points relative to. For internally linked
// binaries it is the start of .text, but an external linker places C
// start-up code first, so a stripped cgo binary needs runtime.firstmoduledata
// instead. minPC, when not zero, is the first function's entry according to
// the module data, for the caller to cross-check.
func (b *Binary) runtimeText(pt *pclntab) (text, minPC uint64, err error) {
	if syms, _ := b.symbols(); syms != nil {
		if s, ok := syms["runtime.text"]; ok {
			return s.Value, 0, nil
		}
	}
	if text, minPC, ok := b.moduledataText(pt.addr); ok {
		return text, minPC, nil
	}
	// Go 1.18 up to 1.2x also stored runtime.text in the table header;
	// later releases write zero there.
	if v, err := b.readPointer(pt.addr + 8 + 2*b.ptrSize()); err == nil && v != 0 {
		return v, 0, nil
	}
	if s := b.elf.Section(".text"); s != nil {
		return s.Addr, 0, nil
	}
	return 0, 0, errors.New("cannot find runtime.text: no symbol, module data or .text section")
}

// moduledataText finds runtime.firstmoduledata, whose first word points at
// the function table, and returns its text and minpc fields. In a PIE, the
// pointer may exist only as a relocation addend.
func (b *Binary) moduledataText(pclnAddr uint64) (text, minPC uint64, ok bool) {
	ps := b.ptrSize()
	var candidates []uint64
	for _, p := range b.loads {
		if p.Flags&elf.PF_W == 0 {
			continue
		}
		data, err := b.segmentData(p)
		if err != nil {
			continue
		}
		for i := (ps - p.Vaddr%ps) % ps; i+ps <= uint64(len(data)); i += ps {
			if b.word(data[i:]) == pclnAddr {
				candidates = append(candidates, p.Vaddr+i)
			}
		}
	}
	for addr, v := range b.relativeRelocs() {
		if v == pclnAddr {
			candidates = append(candidates, addr)
		}
	}
	for _, md := range candidates {
		var w [3]uint64
		valid := true
		for i, idx := range []uint64{moduledataMinPC, moduledataMaxPC, moduledataText} {
			v, err := b.readPointer(md + idx*ps)
			if err != nil {
				valid = false
				break
			}
			w[i] = v
		}
		minPC, maxPC, text := w[0], w[1], w[2]
		if valid && text <= minPC && minPC < maxPC && b.executable(text) && b.executable(minPC) {
			return text, minPC, true
		}
	}
	return 0, 0, false
}

// executable reports whether addr is in a loaded, executable segment.
func (b *Binary) executable(addr uint64) bool {
	p, ok := b.segment(addr, 1)
	return ok && p.Flags&elf.PF_X != 0
}

// argsSizeUnknown is the _func.args of a function whose argument size
// the toolchain does not know (runtime.ArgsSizeUnknown).
const argsSizeUnknown = -0x80000000

// funcArgs returns _func.args, the size of the arguments and results
// area in the stack-based calling convention, of every function in the
// Go function table, by entry address. It reads the table once.
func (b *Binary) funcArgs() (map[uint64]int64, error) {
	b.argsOnce.Do(func() { b.args, b.argsErr = b.readFuncArgs() })
	return b.args, b.argsErr
}

// readFuncArgs walks the function table's index (functab) and reads the
// args field of each _func record. The layouts (runtime/symtab.go and
// cmd/link/internal/ld/pcln.go of each release):
//
//	Go 1.2-1.15:  header of 8 bytes + nfunctab (uintptr); functab of
//	              (entry uintptr, funcoff uintptr) right after it, funcoff
//	              from the table's start; _func {entry uintptr, nameoff
//	              int32, args int32, ...}
//	Go 1.16-1.17: header of 8 bytes + 7 uintptrs, the last pclnOffset;
//	              functab at pclnOffset, pairs of uintptrs as above with
//	              funcoff from pclnOffset; _func as above
//	Go 1.18+:     header of 8 bytes + 8 uintptrs, the last pclnOffset;
//	              functab at pclnOffset of (entryoff uint32, funcoff
//	              uint32), entries relative to runtime.text; _func
//	              {entryoff uint32, nameoff int32, args int32, ...}
func (b *Binary) readFuncArgs() (args map[uint64]int64, err error) {
	defer func() {
		if r := recover(); r != nil {
			args, err = nil, fmt.Errorf("%w: Go function table: parser panic: %v", ErrMalformed, r)
		}
	}()
	pt, err := b.pclntab()
	if err != nil {
		return nil, err
	}
	d, ps, bo := pt.data, b.ptrSize(), b.elf.ByteOrder
	if len(d) < 16 {
		return nil, fmt.Errorf("%w: Go function table is %d bytes", ErrMalformed, len(d))
	}
	n := b.word(d[8:])
	if n > uint64(len(d)) {
		return nil, fmt.Errorf("%w: Go function table claims %d functions", ErrMalformed, n)
	}
	args = make(map[uint64]int64, n)
	put := func(entry uint64, a int32) {
		if a == argsSizeUnknown || a < 0 {
			args[entry] = -1
		} else {
			args[entry] = int64(a)
		}
	}
	switch magic := bo.Uint32(d); magic {
	case go12Magic, go116Magic:
		tab, base := d[8+ps:], d
		if magic == go116Magic {
			base = d[b.word(d[8+6*ps:]):]
			tab = base
		}
		for i := uint64(0); i < n; i++ {
			entry, off := b.word(tab[2*ps*i:]), b.word(tab[2*ps*i+ps:])
			f := base[off:]
			if b.word(f) != entry {
				return nil, fmt.Errorf("%w: Go function table: _func of %#x starts with %#x", ErrMalformed, entry, b.word(f))
			}
			put(entry, int32(bo.Uint32(f[ps+4:])))
		}
	case go118Magic, go120Magic:
		text, _, err := b.runtimeText(pt)
		if err != nil {
			return nil, err
		}
		base := d[b.word(d[8+7*ps:]):]
		for i := uint64(0); i < n; i++ {
			entryOff, off := bo.Uint32(base[8*i:]), bo.Uint32(base[8*i+4:])
			f := base[off:]
			if bo.Uint32(f) != entryOff {
				return nil, fmt.Errorf("%w: Go function table: _func of %#x starts with %#x", ErrMalformed, entryOff, bo.Uint32(f))
			}
			put(text+uint64(entryOff), int32(bo.Uint32(f[8:])))
		}
	default:
		return nil, fmt.Errorf("unsupported Go function table format (magic %#x)", magic)
	}
	return args, nil
}
