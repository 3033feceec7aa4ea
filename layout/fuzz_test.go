package layout

import (
	"bytes"
	"compress/zlib"
	"debug/dwarf"
	"debug/elf"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/offsets"
)

// compression is how smallELF stores .debug_info.
type compression int

const (
	uncompressed  compression = iota
	zdebug                    // .zdebug_info with a "ZLIB" header, Go 1.11 to 1.21.
	shfCompressed             // SHF_COMPRESSED with an ELF compression header.
)

// smallDWARF returns .debug_abbrev and .debug_info (DWARF 4) describing, the
// way the Go linker does, in a compile unit named "runtime":
//
//	type U struct{ x, y int }
//	type T struct {
//		a  int
//		in U
//		p  *U
//	}
func smallDWARF() (abbrev, info []byte) {
	const (
		formString = 0x08
		formData1  = 0x0b
		formRef4   = 0x13
	)
	abbrev = []byte{
		1, byte(dwarfTagCompileUnit), 1, 0x03, formString, 0, 0,
		2, byte(dwarfTagStructType), 1, 0x03, formString, 0x0b, formData1, 0, 0,
		3, byte(dwarfTagMember), 0, 0x03, formString, 0x49, formRef4, 0x38, formData1, 0, 0,
		4, byte(dwarfTagBaseType), 0, 0x03, formString, 0x3e, formData1, 0x0b, formData1, 0, 0,
		5, byte(dwarfTagPointerType), 0, 0x03, formString, 0x49, formRef4, 0, 0,
		6, byte(dwarfTagTypedef), 0, 0x03, formString, 0x49, formRef4, 0, 0,
		0,
	}

	var b []byte
	str := func(s string) { b = append(append(b, s...), 0) }
	ref := func(off int) { b = binary.LittleEndian.AppendUint32(b, uint32(off)) }
	member := func(name string, typ, off int) {
		b = append(b, 3)
		str(name)
		ref(typ)
		b = append(b, byte(off))
	}

	b = append(b, 0, 0, 0, 0) // unit_length, set below
	b = binary.LittleEndian.AppendUint16(b, 4)
	b = append(b, 0, 0, 0, 0, 8) // debug_abbrev_offset, address_size
	b = append(b, 1)
	str("runtime")

	intOff := len(b)
	b = append(b, 4)
	str("int")
	b = append(b, 5, 8) // DW_ATE_signed, 8 bytes

	uStruct := len(b)
	b = append(b, 2)
	str("main.U")
	b = append(b, 16)
	member("x", intOff, 0)
	member("y", intOff, 8)
	b = append(b, 0)

	uTypedef := len(b)
	b = append(b, 6)
	str("main.U")
	ref(uStruct)

	uPtr := len(b)
	b = append(b, 5)
	str("*main.U")
	ref(uTypedef)

	b = append(b, 2)
	str("main.T")
	b = append(b, 32)
	member("a", intOff, 0)
	member("in", uTypedef, 8)
	member("p", uPtr, 24)
	b = append(b, 0)

	b = append(b, 0) // end of the unit's children
	binary.LittleEndian.PutUint32(b, uint32(len(b)-4))
	return abbrev, b
}

// Tags used by smallDWARF, spelt out to keep the byte slices readable.
const (
	dwarfTagCompileUnit = 0x11
	dwarfTagStructType  = 0x13
	dwarfTagMember      = 0x0d
	dwarfTagBaseType    = 0x24
	dwarfTagPointerType = 0x0f
	dwarfTagTypedef     = 0x16
)

// smallELF returns a 64-bit little-endian ELF executable holding only the
// sections of smallDWARF, .debug_info compressed as c says.
func smallELF(t testing.TB, c compression) []byte {
	abbrev, info := smallDWARF()
	return buildELF(t, c, abbrev, info)
}

// buildELF returns a 64-bit little-endian ELF executable holding only
// .debug_abbrev and .debug_info, the latter compressed as c says.
func buildELF(t testing.TB, c compression, abbrev, info []byte) []byte {

	infoName, infoFlags := ".debug_info", elf.SectionFlag(0)
	switch c {
	case zdebug:
		infoName = ".zdebug_info"
		hdr := append([]byte("ZLIB"), binary.BigEndian.AppendUint64(nil, uint64(len(info)))...)
		info = append(hdr, deflate(t, info)...)
	case shfCompressed:
		infoFlags = elf.SHF_COMPRESSED
		var hdr bytes.Buffer
		require.NoError(t, binary.Write(&hdr, binary.LittleEndian, elf.Chdr64{
			Type: uint32(elf.COMPRESS_ZLIB), Size: uint64(len(info)), Addralign: 1,
		}))
		info = append(hdr.Bytes(), deflate(t, info)...)
	}

	type section struct {
		name  string
		flags elf.SectionFlag
		data  []byte
	}
	sections := []section{{".debug_abbrev", 0, abbrev}, {infoName, infoFlags, info}}
	shstrtab := []byte{0}
	nameOff := map[string]int{}
	for _, s := range append(sections, section{name: ".shstrtab"}) {
		nameOff[s.name] = len(shstrtab)
		shstrtab = append(append(shstrtab, s.name...), 0)
	}
	sections = append(sections, section{".shstrtab", 0, shstrtab})

	const ehsize, shentsize = 64, 64
	var body bytes.Buffer
	headers := []elf.Section64{{}} // SHN_UNDEF
	for _, s := range sections {
		headers = append(headers, elf.Section64{
			Name:      uint32(nameOff[s.name]),
			Type:      uint32(elf.SHT_PROGBITS),
			Flags:     uint64(s.flags),
			Off:       uint64(ehsize + body.Len()),
			Size:      uint64(len(s.data)),
			Addralign: 1,
		})
		body.Write(s.data)
	}
	headers[len(headers)-1].Type = uint32(elf.SHT_STRTAB)

	var out bytes.Buffer
	hdr := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Shoff: uint64(ehsize + body.Len()), Ehsize: ehsize, Shentsize: shentsize,
		Shnum: uint16(len(headers)), Shstrndx: uint16(len(headers) - 1),
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	require.NoError(t, binary.Write(&out, binary.LittleEndian, hdr))
	out.Write(body.Bytes())
	require.NoError(t, binary.Write(&out, binary.LittleEndian, headers))
	return out.Bytes()
}

func deflate(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	_, err := w.Write(b)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return buf.Bytes()
}

func TestFieldsOfCompressedDWARF(t *testing.T) {
	want := map[offsets.FieldID]offsets.Value{
		fieldID(t, "main.T.a"):    {Offset: 0, Size: 8, Type: "int"},
		fieldID(t, "main.T.in"):   {Offset: 8, Size: 16, Type: "main.U"},
		fieldID(t, "main.T.in.y"): {Offset: 16, Size: 8, Type: "int"},
		fieldID(t, "main.T.p"):    {Offset: 24, Size: 8, Type: "*main.U"},
		fieldID(t, "main.U.y"):    {Offset: 8, Size: 8, Type: "int"},
	}
	for _, tt := range []struct {
		name string
		c    compression
	}{
		{"uncompressed", uncompressed},
		{".zdebug_info", zdebug},
		{"SHF_COMPRESSED", shfCompressed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := NewFile(bytes.NewReader(smallELF(t, tt.c)))
			require.NoError(t, err)
			got, err := f.Fields(keys(want))
			require.NoError(t, err)
			assert.Equal(t, want, got)
			require.NoError(t, f.Close())
		})
	}
}

func TestFieldsIsSafeForConcurrentUse(t *testing.T) {
	f, err := NewFile(bytes.NewReader(smallELF(t, uncompressed)))
	require.NoError(t, err)
	ids := fieldIDs(t, "main.T.in.y", "main.T.p", "main.U.x")
	want, err := f.Fields(ids)
	require.NoError(t, err)

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			got, err := f.Fields(ids)
			assert.NoError(t, err)
			assert.Equal(t, want, got)
		})
	}
	wg.Wait()
}

// FuzzNewFile feeds NewFile and Fields arbitrary bytes: they may fail but
// must not panic, whatever debug/elf, debug/dwarf and godwarf make of them.
func FuzzNewFile(f *testing.F) {
	whole := smallELF(f, uncompressed)
	f.Add(whole)
	f.Add(whole[:len(whole)/2])
	f.Add(smallELF(f, zdebug))
	f.Add(smallELF(f, shfCompressed))
	f.Add([]byte("\x7fELF"))
	for _, loc := range [][]testAttr{{exprloc(opConstu, 8, opPlus)}, {exprloc()}, {block(formBlock1, opPlusUconst, 0x88)}} {
		abbrev, info := locatedDWARF(loc...)
		f.Add(testELF(f, abbrev, info))
	}
	ids := fieldIDs(f, "main.T.in", "main.T.in.y", "main.T.p", "main.U.x", "main.V.x")

	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := NewFile(bytes.NewReader(data))
		if err != nil {
			return
		}
		defer file.Close()
		_, _ = file.Fields(ids)
	})
}

// locationForms are the ways FuzzMemberLocation writes the location of
// main.T.in in locatedDWARF, each from the fuzzer's bytes v.
var locationForms = []func(v []byte) []testAttr{
	func([]byte) []testAttr { return nil },
	func(v []byte) []testAttr {
		return []testAttr{constAttr(dwarf.AttrDataMemberLoc, formData1, leInt(v, 1))}
	},
	func(v []byte) []testAttr {
		return []testAttr{constAttr(dwarf.AttrDataMemberLoc, formData2, leInt(v, 2))}
	},
	func(v []byte) []testAttr {
		return []testAttr{constAttr(dwarf.AttrDataMemberLoc, formData4, leInt(v, 4))}
	},
	func(v []byte) []testAttr {
		return []testAttr{constAttr(dwarf.AttrDataMemberLoc, formData8, leInt(v, 8))}
	},
	func(v []byte) []testAttr {
		return []testAttr{constAttr(dwarf.AttrDataMemberLoc, formSdata, leInt(v, 8))}
	},
	func(v []byte) []testAttr {
		return []testAttr{constAttr(dwarf.AttrDataMemberLoc, formUdata, leInt(v, 8))}
	},
	func(v []byte) []testAttr {
		return []testAttr{constAttr(dwarf.AttrDataMemberLoc, formImplicitConst, leInt(v, 8))}
	},
	func(v []byte) []testAttr {
		return []testAttr{constAttr(dwarf.AttrDataMemberLoc, formSecOffset, leInt(v, 4))}
	},
	func(v []byte) []testAttr { return []testAttr{exprloc(v...)} },
	func(v []byte) []testAttr { return []testAttr{block(formBlock1, v[:min(len(v), 255)]...)} },
	func(v []byte) []testAttr { return []testAttr{block(formBlock2, v...)} },
	func(v []byte) []testAttr { return []testAttr{block(formBlock4, v...)} },
	func(v []byte) []testAttr { return []testAttr{block(formBlock, v...)} },
	func(v []byte) []testAttr {
		return []testAttr{constAttr(dwarf.AttrDataBitOffset, formUdata, leInt(v, 8))}
	},
}

// leInt returns the little-endian number in the first n bytes of v.
func leInt(v []byte, n int) int64 {
	var b [8]byte
	copy(b[:n], v)
	return int64(binary.LittleEndian.Uint64(b[:]))
}

// locationSeeds are (form, bytes) pairs for FuzzMemberLocation and
// TestMemberLocationMutations: each form with an offset of 8, and the
// shapes of TestFieldsRefuseMemberLocationsTheyCannotDecode.
var locationSeeds = []struct {
	form uint8
	v    []byte
}{
	{0, nil}, {1, []byte{8}}, {2, []byte{8}}, {3, []byte{8}}, {4, []byte{8}}, {5, []byte{8}}, {6, []byte{8}},
	{7, []byte{8}}, {8, []byte{8}}, {9, []byte{opPlusUconst, 8}}, {9, []byte{opPlusUconst, 13, opConsts, 0x78, opPlus}}, // debug/dwarf reads only the first operation {10, []byte{opPlusUconst, 8}},
	{11, []byte{opPlusUconst, 8}}, {12, []byte{opPlusUconst, 8}}, {13, []byte{opPlusUconst, 8}}, {14, []byte{64}},
	{9, nil}, {9, []byte{opConstu, 8, opPlus}}, {9, []byte{opConsts, 8, opPlus}}, {9, []byte{opLit0 + 8, opPlus}},
	{9, []byte{opConst2u, 8, 0, opPlus}}, {9, []byte{opPlusUconst, 0x88}}, {9, []byte{opDeref}},
	{9, []byte{opPlusUconst, 8, opDeref}}, {9, []byte{opConsts, 0x78, opPlus}}, {9, []byte{opLit0 + 8}},
	{9, []byte{opDup, opPlus}}, {9, []byte{opPlusUconst, 0x88, 0x80, 0x00}},
}

// checkMemberLocation writes main.T.in's location as locationForms[form]
// of v says, resolves main.T's fields and checks that:
//
//   - the offset Fields returns for main.T.in, if any, is the one
//     debug/dwarf computes for the same DIE where debug/dwarf decodes it,
//     and the one evalLocation computes from the attribute debug/dwarf
//     reads; otherwise Fields reports main.T.in as ErrUndecodable;
//   - main.T.in.y follows main.T.in, and the siblings main.T.a and
//     main.T.p resolve whatever main.T.in's location is;
//   - a constant location that fits in main.T resolves.
//
// It returns whether main.T.in resolved.
func checkMemberLocation(t testing.TB, form uint8, v []byte) bool {
	attrs := locationForms[int(form)%len(locationForms)](v)
	abbrev, info := locatedDWARF(attrs...)
	elfFile := testELF(t, abbrev, info)

	f, err := NewFile(bytes.NewReader(elfFile))
	require.NoError(t, err)
	ids := fieldIDs(t, "main.T.a", "main.T.in", "main.T.in.y", "main.T.p")
	got, err := f.Fields(ids)
	missing := map[offsets.FieldID]error{}
	if err != nil {
		var m *MissingError
		require.ErrorAs(t, err, &m)
		missing = m.Missing
	}
	assert.Equal(t, offsets.Value{Offset: 0, Size: 8, Type: "int"}, got[ids[0]], "sibling main.T.a")
	assert.Equal(t, offsets.Value{Offset: 24, Size: 8, Type: "*main.U"}, got[ids[3]], "sibling main.T.p")

	want := stdlibMemberOffset(t, elfFile)
	in, ok := got[ids[1]]
	if !ok {
		assert.ErrorIs(t, missing[ids[1]], ErrUndecodable, "main.T.in is there: only its location may be unreadable")
		assert.ErrorIs(t, missing[ids[2]], ErrUndecodable)
		if want.constant && want.expr >= 0 && want.expr <= 16 && len(attrs) == 1 && attrs[0].at == dwarf.AttrDataMemberLoc {
			t.Errorf("constant location %d (%v) refused: %v", want.expr, attrs[0].form, missing[ids[1]])
		}
		return false
	}
	if want.typeErr == nil && want.typeExact {
		assert.Equal(t, want.typeOffset, int64(in.Offset), "offset of main.T.in against debug/dwarf's Data.Type")
	}
	assert.True(t, want.exprOK, "main.T.in resolved to %d from a location the oracle cannot evaluate", in.Offset)
	assert.Equal(t, want.expr, int64(in.Offset), "offset of main.T.in against the attribute's evaluation")
	assert.Equal(t, offsets.Value{Offset: in.Offset, Size: 16, Type: "main.U"}, in)
	assert.Equal(t, offsets.Value{Offset: in.Offset + 8, Size: 8, Type: "int"}, got[ids[2]], "main.T.in.y")
	return true
}

// stdlibOffset is what the standard library makes of main.T.in's location.
type stdlibOffset struct {
	typeOffset int64 // StructField.ByteOffset from Data.Type, if typeErr is nil.
	typeErr    error
	// typeExact says debug/dwarf reads the whole attribute: it decodes an
	// expression as its first DW_OP_plus_uconst and ignores what follows,
	// so an expression of more operations is not its to judge.
	typeExact bool
	// expr is the offset the attribute debug/dwarf reads gives, by
	// evalLocation for an expression, if exprOK.
	expr     int64
	exprOK   bool
	constant bool // The attribute is of class constant.
}

// plusUconstOnly reports whether expr is one DW_OP_plus_uconst whose ULEB128
// operand ends the expression: the one expression debug/dwarf evaluates
// whole.
func plusUconstOnly(expr []byte) bool {
	if len(expr) < 2 || expr[0] != opPlusUconst {
		return false
	}
	for i, b := range expr[1:] {
		if b&0x80 == 0 {
			return i == len(expr)-2
		}
	}
	return false
}

// stdlibMemberOffset reads main.T.in's location from elfFile with
// debug/elf and debug/dwarf alone.
func stdlibMemberOffset(t testing.TB, elfFile []byte) stdlibOffset {
	ef, err := elf.NewFile(bytes.NewReader(elfFile))
	require.NoError(t, err)
	d, err := ef.DWARF()
	require.NoError(t, err)
	r := d.Reader()
	var st, in *dwarf.Entry
	for e, err := r.Next(); e != nil && err == nil; e, err = r.Next() {
		if e.Tag == dwarf.TagStructType && e.Val(dwarf.AttrName) == "main.T" {
			st = e
		}
		if st != nil && e.Tag == dwarf.TagMember && e.Val(dwarf.AttrName) == "in" {
			in = e
			break
		}
	}
	require.NotNil(t, in, "member in of main.T")

	out := stdlibOffset{typeExact: true}
	typ, err := d.Type(st.Offset)
	out.typeErr = err
	if err == nil {
		for _, fld := range typ.(*dwarf.StructType).Field {
			if fld.Name == "in" {
				out.typeOffset = fld.ByteOffset
				if in.AttrField(dwarf.AttrDataMemberLoc) == nil {
					out.typeOffset = fld.DataBitOffset / 8
				}
			}
		}
	}
	loc := in.AttrField(dwarf.AttrDataMemberLoc)
	if loc == nil {
		loc = in.AttrField(dwarf.AttrDataBitOffset)
		if loc != nil {
			v := loc.Val.(int64)
			out.expr, out.exprOK = v/8, v%8 == 0
		}
		return out
	}
	switch v := loc.Val.(type) {
	case int64:
		out.expr, out.exprOK, out.constant = v, loc.Class == dwarf.ClassConstant, loc.Class == dwarf.ClassConstant
	case []byte:
		out.typeExact = plusUconstOnly(v)
		// A location is an offset if it moves with the struct.
		a, okA := evalLocation(v, 0x1000)
		b, okB := evalLocation(v, 0x7000_0000)
		if okA && okB && a-0x1000 == b-0x7000_0000 && a-0x1000 < 1<<63 {
			out.expr, out.exprOK = int64(a-0x1000), true
		}
	}
	return out
}

// evalLocation evaluates a DWARF expression the plain way, on a stack of
// 64-bit values that wrap around, with base pushed first. It knows more
// opcodes than locationExpr accepts, so that a shape it refuses is still
// checked to be refused rightly.
//
// An empty expression is not evaluated: it is an empty location
// description (DWARF 5 §2.6.1.1.1), an object with no location, not one
// at the struct's start.
func evalLocation(expr []byte, base uint64) (uint64, bool) {
	if len(expr) == 0 {
		return 0, false
	}
	stack := []uint64{base}
	for len(expr) > 0 {
		op := expr[0]
		expr = expr[1:]
		fixed := func(n int) (uint64, bool) {
			if len(expr) < n {
				return 0, false
			}
			var b [8]byte
			copy(b[:], expr[:n])
			expr = expr[n:]
			return binary.LittleEndian.Uint64(b[:]), true
		}
		leb := func() (uint64, uint, bool) {
			var v uint64
			var shift uint
			for i, c := range expr {
				if shift < 64 {
					v |= uint64(c&0x7f) << shift
				} else if c&0x7f != 0 {
					return 0, 0, false
				}
				shift += 7
				if c&0x80 == 0 {
					expr = expr[i+1:]
					return v, shift, true
				}
			}
			return 0, 0, false
		}
		var v uint64
		ok := true
		switch {
		case op >= opLit0 && op <= opLit31:
			v = uint64(op - opLit0)
		case op == opConst1u || op == opConst1s:
			v, ok = fixed(1)
			if op == opConst1s {
				v = uint64(int64(int8(v)))
			}
		case op == opConst2u || op == opConst2s:
			v, ok = fixed(2)
			if op == opConst2s {
				v = uint64(int64(int16(v)))
			}
		case op == opConst4u || op == opConst4s:
			v, ok = fixed(4)
			if op == opConst4s {
				v = uint64(int64(int32(v)))
			}
		case op == opConst8u || op == opConst8s:
			v, ok = fixed(8)
		case op == opConstu:
			v, _, ok = leb()
		case op == opConsts:
			var shift uint
			v, shift, ok = leb()
			if ok && shift < 64 && v&(1<<(shift-1)) != 0 {
				v |= ^uint64(0) << shift
			}
		case op == opPlusUconst:
			if v, _, ok = leb(); ok {
				stack[len(stack)-1] += v
			}
			if !ok {
				return 0, false
			}
			continue
		case op == opPlus || op == opMinus:
			if len(stack) < 2 {
				return 0, false
			}
			a, b := stack[len(stack)-2], stack[len(stack)-1]
			stack = stack[:len(stack)-2]
			if op == opPlus {
				v = a + b
			} else {
				v = a - b
			}
		case op == opDup:
			v = stack[len(stack)-1]
		default:
			return 0, false
		}
		if !ok {
			return 0, false
		}
		stack = append(stack, v)
	}
	if len(stack) != 1 {
		return 0, false
	}
	return stack[0], true
}

// FuzzMemberLocation writes main.T.in's location in every form
// locationForms knows, from the fuzzer's bytes, and checks
// checkMemberLocation's properties: an offset Fields returns is the one
// the standard library computes, or Fields says it cannot decode it.
func FuzzMemberLocation(f *testing.F) {
	for _, s := range locationSeeds {
		f.Add(s.form, s.v)
	}
	f.Fuzz(func(t *testing.T, form uint8, v []byte) {
		checkMemberLocation(t, form, v)
	})
}

// TestMemberLocationMutations runs checkMemberLocation on random
// mutations of locationSeeds for a bounded time, so that CI's go test
// explores beyond the seeds without a fuzzing step: 2 s, or 300 ms with
// -short, with a fixed seed so that a failure repeats.
func TestMemberLocationMutations(t *testing.T) {
	// A fixed number of runs from a fixed seed: the same inputs on every
	// machine, however fast (a time budget made the inputs depend on it).
	budget := 6000
	if testing.Short() {
		budget = 800
	}
	rng := rand.New(rand.NewPCG(17, 1))
	interesting := []byte{0, 1, 8, 16, 17, 0x7f, 0x80, 0xff, opConst1u, opConst1s, opConst2u, opConst2s, opConst4u,
		opConst4s, opConst8u, opConst8s, opConstu, opConsts, opPlus, opPlusUconst, opLit0, opLit0 + 8, opLit31, opDeref, opDup, opMinus}
	var runs, resolved int
	for range budget {
		s := locationSeeds[rng.IntN(len(locationSeeds))]
		form, v := s.form, slices.Clone(s.v)
		for range 1 + rng.IntN(4) {
			switch rng.IntN(6) {
			case 0:
				form = uint8(rng.IntN(len(locationForms)))
			case 1:
				if len(v) > 0 {
					v[rng.IntN(len(v))] = interesting[rng.IntN(len(interesting))]
				}
			case 2:
				i := rng.IntN(len(v) + 1)
				v = slices.Insert(v, i, interesting[rng.IntN(len(interesting))])
			case 3:
				v = v[:rng.IntN(len(v)+1)]
			case 4:
				if len(v) > 0 {
					v[rng.IntN(len(v))] ^= byte(1 << rng.IntN(8))
				}
			case 5:
				v = append(v, byte(rng.Uint32()))
			}
		}
		if checkMemberLocation(t, form, v) {
			resolved++
		}
		runs++
		if t.Failed() {
			t.Fatalf("failing input after %d runs: form %d, bytes % x", runs, form, v)
		}
	}
	t.Logf("%d mutated locations: %d resolved, %d refused", runs, resolved, runs-resolved)
	assert.Greater(t, resolved, 0, "no mutation resolved: the check is vacuous")
	assert.Greater(t, runs-resolved, 0, "no mutation was refused: the check is vacuous")
}
