package layout

import (
	"bytes"
	"debug/dwarf"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/offsets"
)

// DWARF expression opcodes the tests write that locationExpr refuses.
const (
	opDeref = 0x06
	opDup   = 0x12
	opMinus = 0x1c
)

// fieldsOf opens an ELF file holding abbrev and info and resolves ids.
func fieldsOf(t *testing.T, abbrev, info []byte, ids ...string) (map[offsets.FieldID]offsets.Value, map[offsets.FieldID]error) {
	t.Helper()
	f, err := NewFile(bytes.NewReader(testELF(t, abbrev, info)))
	require.NoError(t, err)
	got, err := f.Fields(fieldIDs(t, ids...))
	if err == nil {
		return got, nil
	}
	var missing *MissingError
	require.ErrorAs(t, err, &missing, "only per-field errors")
	return got, missing.Missing
}

func TestFieldsDecodeEveryMemberLocationForm(t *testing.T) {
	const at = dwarf.AttrDataMemberLoc
	tests := []struct {
		name string
		loc  []testAttr
	}{
		{"DW_FORM_data1", []testAttr{constAttr(at, formData1, 8)}},
		{"DW_FORM_data2", []testAttr{constAttr(at, formData2, 8)}},
		{"DW_FORM_data4", []testAttr{constAttr(at, formData4, 8)}},
		{"DW_FORM_data8", []testAttr{constAttr(at, formData8, 8)}},
		{"DW_FORM_sdata", []testAttr{constAttr(at, formSdata, 8)}},
		{"DW_FORM_udata", []testAttr{constAttr(at, formUdata, 8)}},
		{"DW_FORM_implicit_const", []testAttr{constAttr(at, formImplicitConst, 8)}},
		{"exprloc DW_OP_plus_uconst", []testAttr{exprloc(opPlusUconst, 8)}},
		{"exprloc DW_OP_plus_uconst with a padded ULEB128", []testAttr{exprloc(opPlusUconst, 0x88, 0x80, 0x00)}},
		{"exprloc two DW_OP_plus_uconst", []testAttr{exprloc(opPlusUconst, 3, opPlusUconst, 5)}},
		{"DW_FORM_block1 DW_OP_plus_uconst", []testAttr{block(formBlock1, opPlusUconst, 8)}},
		{"DW_FORM_block2 DW_OP_plus_uconst", []testAttr{block(formBlock2, opPlusUconst, 8)}},
		{"DW_FORM_block4 DW_OP_plus_uconst", []testAttr{block(formBlock4, opPlusUconst, 8)}},
		{"DW_FORM_block DW_OP_plus_uconst", []testAttr{block(formBlock, opPlusUconst, 8)}},
		{"DW_OP_constu DW_OP_plus", []testAttr{exprloc(opConstu, 8, opPlus)}},
		{"DW_OP_consts DW_OP_plus", []testAttr{exprloc(opConsts, 8, opPlus)}},
		{"DW_OP_lit8 DW_OP_plus", []testAttr{exprloc(opLit0+8, opPlus)}},
		{"DW_OP_const1u DW_OP_plus", []testAttr{exprloc(opConst1u, 8, opPlus)}},
		{"DW_OP_const1s DW_OP_plus", []testAttr{exprloc(opConst1s, 8, opPlus)}},
		{"DW_OP_const2u DW_OP_plus", []testAttr{exprloc(opConst2u, 8, 0, opPlus)}},
		{"DW_OP_const2s DW_OP_plus", []testAttr{exprloc(opConst2s, 8, 0, opPlus)}},
		{"DW_OP_const4u DW_OP_plus", []testAttr{exprloc(opConst4u, 8, 0, 0, 0, opPlus)}},
		{"DW_OP_const4s DW_OP_plus", []testAttr{exprloc(opConst4s, 8, 0, 0, 0, opPlus)}},
		{"DW_OP_const8u DW_OP_plus", []testAttr{exprloc(opConst8u, 8, 0, 0, 0, 0, 0, 0, 0, opPlus)}},
		{"DW_OP_const8s DW_OP_plus", []testAttr{exprloc(opConst8s, 8, 0, 0, 0, 0, 0, 0, 0, opPlus)}},
		{"DW_AT_data_bit_offset", []testAttr{constAttr(dwarf.AttrDataBitOffset, formUdata, 64)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			abbrev, info := locatedDWARF(tt.loc...)
			got, missing := fieldsOf(t, abbrev, info, "main.T.a", "main.T.in", "main.T.in.y", "main.T.p")
			require.Empty(t, missing)
			assert.Equal(t, map[offsets.FieldID]offsets.Value{
				fieldID(t, "main.T.a"):    {Offset: 0, Size: 8, Type: "int"},
				fieldID(t, "main.T.in"):   {Offset: 8, Size: 16, Type: "main.U"},
				fieldID(t, "main.T.in.y"): {Offset: 16, Size: 8, Type: "int"},
				fieldID(t, "main.T.p"):    {Offset: 24, Size: 8, Type: "*main.U"},
			}, got)
		})
	}
}

func TestFieldsRefuseMemberLocationsTheyCannotDecode(t *testing.T) {
	const at = dwarf.AttrDataMemberLoc
	ff := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}
	tests := []struct {
		name   string
		loc    []testAttr
		errMsg string // In the error of main.T.in, after what names the struct and field.
	}{
		{"absent", nil, "no DW_AT_data_member_location or DW_AT_data_bit_offset"},
		{"empty exprloc", []testAttr{exprloc()}, "(exprloc []): empty expression"},
		{"empty DW_FORM_block1", []testAttr{block(formBlock1)}, "(exprloc []): empty expression"},
		{"unknown opcode", []testAttr{exprloc(opDeref)}, "(exprloc [06]): opcode 0x6 at byte 0 not supported"},
		{"unknown opcode after a good one", []testAttr{exprloc(opPlusUconst, 8, opDeref)}, "opcode 0x6 at byte 2 not supported"},
		{"DW_OP_minus", []testAttr{exprloc(opLit0+8, opMinus)}, "opcode 0x1c at byte 1 not supported"},
		{"DW_OP_dup", []testAttr{exprloc(opDup, opPlus)}, "opcode 0x12 at byte 0 not supported"},
		{"truncated ULEB128", []testAttr{exprloc(opPlusUconst, 0x88)}, "(exprloc [23 88]): truncated ULEB128 at byte 1"},
		{"truncated SLEB128", []testAttr{exprloc(opConsts, 0x88)}, "truncated SLEB128 at byte 1"},
		{"truncated DW_OP_const2u", []testAttr{exprloc(opConst2u, 8)}, "operand of opcode 0xa at byte 0: 2 bytes, 1 left"},
		{"ULEB128 over 64 bits", []testAttr{exprloc(append([]byte{opPlusUconst}, ff...)...)}, "ULEB128 at byte 1 overflows 64 bits"},
		{"SLEB128 over 64 bits", []testAttr{exprloc(append(append([]byte{opConsts}, ff[:9]...), 0x01, opPlus)...)}, "SLEB128 at byte 1 overflows 64 bits"},
		{"DW_OP_const8u over 2^63", []testAttr{exprloc(opConst8u, 0, 0, 0, 0, 0, 0, 0, 0x80, opPlus)}, "out of range"},
		{"a constant alone", []testAttr{exprloc(opLit0 + 8)}, "leaves 2 values on the stack, want 1"},
		{"DW_OP_plus without a constant", []testAttr{exprloc(opPlus)}, "DW_OP_plus at byte 0: stack holds 1 value"},
		{"DW_OP_plus of two constants", []testAttr{exprloc(opLit0+4, opLit0+4, opPlus)}, "leaves 2 values on the stack"},
		{"negative expression", []testAttr{exprloc(opConsts, 0x78, opPlus)}, "negative offset -8"},
		{"negative DW_FORM_sdata", []testAttr{constAttr(at, formSdata, -8)}, "(constant): negative value -8"},
		{"DW_FORM_data8 of 2^63", []testAttr{constAttr(at, formData8, -1<<63)}, "(constant): negative value"},
		{"past the struct", []testAttr{constAttr(at, formData1, 17)}, "offset 17 + size 16 overruns the struct's 32 bytes"},
		{"far past the struct", []testAttr{constAttr(at, formData8, 1<<40)}, "overruns the struct's 32 bytes"},
		{"location list", []testAttr{constAttr(at, formSecOffset, 0x10)}, "is a location list (ClassLocListPtr"},
		{"bit field", []testAttr{constAttr(at, formData1, 8), constAttr(dwarf.AttrBitSize, formData1, 3)}, "bit field (has BitSize)"},
		{"DW_AT_data_bit_offset not in bytes", []testAttr{constAttr(dwarf.AttrDataBitOffset, formUdata, 68)}, "DW_AT_data_bit_offset 68 is not a whole number of bytes"},
		{"both location attributes", []testAttr{constAttr(at, formData1, 8), constAttr(dwarf.AttrDataBitOffset, formUdata, 64)}, "has both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			abbrev, info := locatedDWARF(tt.loc...)
			got, missing := fieldsOf(t, abbrev, info, "main.T.a", "main.T.in", "main.T.in.y", "main.T.p", "main.U.y")

			// The siblings and the other struct still resolve.
			assert.Equal(t, map[offsets.FieldID]offsets.Value{
				fieldID(t, "main.T.a"): {Offset: 0, Size: 8, Type: "int"},
				fieldID(t, "main.T.p"): {Offset: 24, Size: 8, Type: "*main.U"},
				fieldID(t, "main.U.y"): {Offset: 8, Size: 8, Type: "int"},
			}, got)

			require.Len(t, missing, 2, "main.T.in and main.T.in.y, which goes through it")
			for _, id := range []string{"main.T.in", "main.T.in.y"} {
				err := missing[fieldID(t, id)]
				require.Error(t, err, id)
				assert.ErrorIs(t, err, ErrUndecodable, id)
				assert.NotErrorIs(t, err, ErrFieldNotFound, "%s is there, only its location is not readable", id)
				assert.Contains(t, err.Error(), `main.T (main.T at DWARF offset `, id)
				assert.Contains(t, err.Error(), `field "in"`, id)
				assert.Contains(t, err.Error(), tt.errMsg, id)
			}
		})
	}
}

// sizedDWARF returns DWARF of a struct main.S, 64 bytes unless sSize
// holds other attributes, with one member f at offset 0 of the type
// labelled "F" among types.
func sizedDWARF(sSize []testAttr, types ...*testDIE) (abbrev, info []byte) {
	if sSize == nil {
		sSize = []testAttr{data1(dwarf.AttrByteSize, 64)}
	}
	kids := []*testDIE{
		{label: "int", tag: dwarf.TagBaseType, attrs: []testAttr{name("int"), data1(dwarf.AttrEncoding, 5), data1(dwarf.AttrByteSize, 8)}},
		{tag: dwarf.TagStructType, attrs: append([]testAttr{name("main.S")}, sSize...), children: []*testDIE{
			{tag: dwarf.TagMember, attrs: []testAttr{name("f"), typeRef("F"), data1(dwarf.AttrDataMemberLoc, 0)}},
		}},
	}
	return assembleDWARF(&testDIE{tag: dwarf.TagCompileUnit, attrs: []testAttr{name("runtime")}, children: append(kids, types...)})
}

func TestFieldsTakeSizesOnlyFromAttributesTheyDecode(t *testing.T) {
	array := func(attrs []testAttr, dims ...*testDIE) *testDIE {
		return &testDIE{label: "F", tag: dwarf.TagArrayType, attrs: append([]testAttr{name("[3]int"), typeRef("int")}, attrs...), children: dims}
	}
	subrange := func(attrs ...testAttr) *testDIE {
		return &testDIE{tag: dwarf.TagSubrangeType, attrs: attrs}
	}
	tests := []struct {
		name   string
		sSize  []testAttr
		typ    *testDIE
		want   uint64 // Size of main.S.f when errMsg is empty.
		errMsg string
	}{
		{name: "DW_AT_byte_size", typ: &testDIE{label: "F", tag: dwarf.TagBaseType, attrs: []testAttr{name("int16"), data1(dwarf.AttrByteSize, 2)}}, want: 2},
		{name: "no DW_AT_byte_size", typ: &testDIE{label: "F", tag: dwarf.TagBaseType, attrs: []testAttr{name("int16")}}, errMsg: "BaseType at 0x"},
		{name: "DW_AT_byte_size as a block", typ: &testDIE{label: "F", tag: dwarf.TagBaseType, attrs: []testAttr{name("int16"), {at: dwarf.AttrByteSize, form: formBlock1, val: []byte{1, 2}}}}, errMsg: "DW_AT_byte_size of BaseType at"},
		{name: "negative DW_AT_byte_size", typ: &testDIE{label: "F", tag: dwarf.TagStructType, attrs: []testAttr{name("main.X"), constAttr(dwarf.AttrByteSize, formSdata, -2)}}, errMsg: "negative value -2"},
		{name: "typedef without DW_AT_byte_size", typ: &testDIE{label: "F", tag: dwarf.TagTypedef, attrs: []testAttr{name("main.I"), typeRef("int")}}, want: 8},
		{name: "pointer without DW_AT_byte_size", typ: &testDIE{label: "F", tag: dwarf.TagPointerType, attrs: []testAttr{name("*int"), typeRef("int")}}, want: 8},
		{name: "array with DW_AT_byte_size", typ: array([]testAttr{data1(dwarf.AttrByteSize, 24)}, subrange(data1(dwarf.AttrCount, 3))), want: 24},
		{name: "array with DW_AT_count", typ: array(nil, subrange(data1(dwarf.AttrCount, 3))), want: 24},
		{name: "array with DW_AT_upper_bound", typ: array(nil, subrange(data1(dwarf.AttrUpperBound, 2))), want: 24},
		{name: "array with both bounds", typ: array(nil, subrange(data1(dwarf.AttrLowerBound, 1), data1(dwarf.AttrUpperBound, 3))), want: 24},
		{name: "array of two dimensions", typ: array(nil, subrange(data1(dwarf.AttrCount, 2)), subrange(data1(dwarf.AttrCount, 3))), want: 48},
		{name: "array without bounds", typ: array(nil, subrange()), errMsg: "neither DW_AT_count nor DW_AT_upper_bound"},
		{name: "array with a block count", typ: array(nil, subrange(testAttr{at: dwarf.AttrCount, form: formExprloc, val: []byte{1, opLit0 + 3}})), errMsg: "DW_AT_count: form class ClassExprLoc"},
		{name: "array without dimensions", typ: array(nil), errMsg: "no DW_AT_byte_size and no dimension"},
		{name: "array with a stride", typ: array([]testAttr{data1(dwarf.AttrStride, 16)}, subrange(data1(dwarf.AttrCount, 3))), errMsg: "has Stride and no DW_AT_byte_size"},
		{name: "array overrunning the struct", typ: array(nil, subrange(data1(dwarf.AttrCount, 9))), errMsg: "offset 0 + size 72 overruns the struct's 64 bytes"},
		{name: "struct without DW_AT_byte_size", sSize: []testAttr{}, typ: &testDIE{label: "F", tag: dwarf.TagTypedef, attrs: []testAttr{name("main.I"), typeRef("int")}}, errMsg: "size of the struct: StructType at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			abbrev, info := sizedDWARF(tt.sSize, tt.typ)
			got, missing := fieldsOf(t, abbrev, info, "main.S.f")
			if tt.errMsg == "" {
				require.Empty(t, missing)
				assert.Equal(t, tt.want, got[fieldID(t, "main.S.f")].Size)
				return
			}
			assert.Empty(t, got)
			err := missing[fieldID(t, "main.S.f")]
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrUndecodable)
			assert.Contains(t, err.Error(), tt.errMsg)
		})
	}
}

func TestMissingErrorSaysNotResolvedForUndecodableFields(t *testing.T) {
	err := &MissingError{Missing: map[offsets.FieldID]error{
		fieldID(t, "a.T.x"): &fieldError{`type a.T not found in DWARF`, ErrTypeNotFound},
		fieldID(t, "b.T.y"): &fieldError{`b.T: field "y": empty expression`, ErrUndecodable},
	}}
	assert.Equal(t, `2 fields not resolved: a.T.x: type a.T not found in DWARF; b.T.y: b.T: field "y": empty expression`, err.Error())
}
