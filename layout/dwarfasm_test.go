package layout

import (
	"debug/dwarf"
	"encoding/binary"
	"fmt"
	"testing"
)

// DWARF forms the tests write (DWARF 5 §7.5.6).
const (
	formAddr          = 0x01
	formBlock2        = 0x03
	formBlock4        = 0x04
	formData2         = 0x05
	formData4         = 0x06
	formData8         = 0x07
	formString        = 0x08
	formBlock         = 0x09
	formBlock1        = 0x0a
	formData1         = 0x0b
	formSdata         = 0x0d
	formUdata         = 0x0f
	formRef4          = 0x13
	formSecOffset     = 0x17
	formExprloc       = 0x18
	formImplicitConst = 0x21
)

// testAttr is one attribute of a testDIE: its form and encoded value, or,
// for DW_FORM_ref4, the label of the DIE it refers to.
type testAttr struct {
	at   dwarf.Attr
	form byte
	val  []byte
	ref  string
	// implicit is the value of a DW_FORM_implicit_const, which lives in
	// the abbreviation.
	implicit int64
}

// testDIE is a DIE for assembleDWARF.
type testDIE struct {
	label    string
	tag      dwarf.Tag
	attrs    []testAttr
	children []*testDIE // Written with DW_CHILDREN_yes when not nil.
}

func str(at dwarf.Attr, s string) testAttr {
	return testAttr{at: at, form: formString, val: append([]byte(s), 0)}
}
func data1(at dwarf.Attr, v byte) testAttr     { return testAttr{at: at, form: formData1, val: []byte{v}} }
func ref(at dwarf.Attr, label string) testAttr { return testAttr{at: at, form: formRef4, ref: label} }
func typeRef(label string) testAttr            { return ref(dwarf.AttrType, label) }
func name(s string) testAttr                   { return str(dwarf.AttrName, s) }

// exprloc returns a DW_AT_data_member_location holding expr as an
// exprloc.
func exprloc(expr ...byte) testAttr {
	return testAttr{at: dwarf.AttrDataMemberLoc, form: formExprloc, val: append(binary.AppendUvarint(nil, uint64(len(expr))), expr...)}
}

// block returns a DW_AT_data_member_location holding expr in the block
// form given, with its length prefix.
func block(form byte, expr ...byte) testAttr {
	var n []byte
	switch form {
	case formBlock1:
		n = []byte{byte(len(expr))}
	case formBlock2:
		n = binary.LittleEndian.AppendUint16(nil, uint16(len(expr)))
	case formBlock4:
		n = binary.LittleEndian.AppendUint32(nil, uint32(len(expr)))
	case formBlock:
		n = binary.AppendUvarint(nil, uint64(len(expr)))
	default:
		panic(fmt.Sprintf("form %#x is not a block", form))
	}
	return testAttr{at: dwarf.AttrDataMemberLoc, form: form, val: append(n, expr...)}
}

// constAttr returns attribute at as a constant of the form given.
func constAttr(at dwarf.Attr, form byte, v int64) testAttr {
	a := testAttr{at: at, form: form}
	switch form {
	case formData1:
		a.val = []byte{byte(v)}
	case formData2:
		a.val = binary.LittleEndian.AppendUint16(nil, uint16(v))
	case formData4, formSecOffset:
		a.val = binary.LittleEndian.AppendUint32(nil, uint32(v))
	case formData8:
		a.val = binary.LittleEndian.AppendUint64(nil, uint64(v))
	case formUdata:
		a.val = binary.AppendUvarint(nil, uint64(v))
	case formSdata:
		a.val = appendSleb(nil, v)
	case formImplicitConst:
		a.implicit = v
	default:
		panic(fmt.Sprintf("form %#x is not a constant", form))
	}
	return a
}

func appendSleb(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// assembleDWARF returns .debug_abbrev and a DWARF 4 .debug_info holding
// one compile unit, cu, with 8-byte addresses.
func assembleDWARF(cu *testDIE) (abbrev, info []byte) {
	codes := map[string]uint64{}
	codeOf := func(d *testDIE) uint64 {
		sig := fmt.Sprint(d.tag, d.children != nil)
		for _, a := range d.attrs {
			sig += fmt.Sprintf(" %d/%d/%d", a.at, a.form, a.implicit)
		}
		if c, ok := codes[sig]; ok {
			return c
		}
		c := uint64(len(codes) + 1)
		codes[sig] = c
		abbrev = binary.AppendUvarint(abbrev, c)
		abbrev = binary.AppendUvarint(abbrev, uint64(d.tag))
		if d.children != nil {
			abbrev = append(abbrev, 1)
		} else {
			abbrev = append(abbrev, 0)
		}
		for _, a := range d.attrs {
			abbrev = binary.AppendUvarint(abbrev, uint64(a.at))
			abbrev = binary.AppendUvarint(abbrev, uint64(a.form))
			if a.form == formImplicitConst {
				abbrev = appendSleb(abbrev, a.implicit)
			}
		}
		abbrev = append(abbrev, 0, 0)
		return c
	}

	const header = 11 // unit_length, version, debug_abbrev_offset, address_size
	offsets := map[string]int{}
	var emit func(b []byte, d *testDIE) []byte
	emit = func(b []byte, d *testDIE) []byte {
		if d.label != "" {
			offsets[d.label] = len(b)
		}
		b = binary.AppendUvarint(b, codeOf(d))
		for _, a := range d.attrs {
			if a.form == formRef4 {
				b = binary.LittleEndian.AppendUint32(b, uint32(offsets[a.ref]))
				continue
			}
			b = append(b, a.val...)
		}
		if d.children != nil {
			for _, k := range d.children {
				b = emit(b, k)
			}
			b = append(b, 0)
		}
		return b
	}
	var b []byte
	for range 2 { // The first pass finds the offsets the second one refers to.
		abbrev, codes = nil, map[string]uint64{}
		b = make([]byte, header)
		b = emit(b, cu)
	}
	abbrev = append(abbrev, 0)
	binary.LittleEndian.PutUint32(b, uint32(len(b)-4))
	binary.LittleEndian.PutUint16(b[4:], 4)
	b[10] = 8
	return abbrev, b
}

// locatedDWARF returns the DWARF of smallDWARF's types, with the
// attributes that locate main.T.in given by loc (one or more attributes,
// or none):
//
//	type U struct{ x, y int }
//	type T struct {
//		a  int
//		in U
//		p  *U
//	}
func locatedDWARF(loc ...testAttr) (abbrev, info []byte) {
	member := func(n, typ string, off byte) *testDIE {
		return &testDIE{tag: dwarf.TagMember, attrs: []testAttr{name(n), typeRef(typ), data1(dwarf.AttrDataMemberLoc, off)}}
	}
	in := &testDIE{tag: dwarf.TagMember, attrs: append([]testAttr{name("in"), typeRef("U")}, loc...)}
	return assembleDWARF(&testDIE{tag: dwarf.TagCompileUnit, attrs: []testAttr{name("runtime")}, children: []*testDIE{
		{label: "int", tag: dwarf.TagBaseType, attrs: []testAttr{name("int"), data1(dwarf.AttrEncoding, 5), data1(dwarf.AttrByteSize, 8)}},
		{label: "U struct", tag: dwarf.TagStructType, attrs: []testAttr{name("main.U"), data1(dwarf.AttrByteSize, 16)}, children: []*testDIE{
			member("x", "int", 0), member("y", "int", 8),
		}},
		{label: "U", tag: dwarf.TagTypedef, attrs: []testAttr{name("main.U"), typeRef("U struct")}},
		{label: "*U", tag: dwarf.TagPointerType, attrs: []testAttr{name("*main.U"), typeRef("U")}},
		{label: "T", tag: dwarf.TagStructType, attrs: []testAttr{name("main.T"), data1(dwarf.AttrByteSize, 32)}, children: []*testDIE{
			member("a", "int", 0), in, member("p", "*U", 24),
		}},
	}})
}

// testELF returns an ELF file holding abbrev and info.
func testELF(t testing.TB, abbrev, info []byte) []byte {
	return buildELF(t, uncompressed, abbrev, info)
}
