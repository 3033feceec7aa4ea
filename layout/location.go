package layout

import (
	"debug/dwarf"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// memberOffset returns the byte offset of the member m within its struct,
// or within its union when union is set.
//
// It decodes every form the DWARF standard allows for the offset exactly,
// or fails saying which form it could not decode; it never falls back to 0:
//
//   - DW_AT_data_member_location as a constant (DW_FORM_data1 to data8,
//     sdata, udata, implicit_const): the offset itself. The Go linker
//     writes udata.
//   - DW_AT_data_member_location as an expression (DW_FORM_exprloc, or a
//     DW_FORM_block* before DWARF 4): evaluated by locationExpr, which
//     accepts DW_OP_plus_uconst and the constant-then-DW_OP_plus shapes.
//   - DW_AT_data_bit_offset (DWARF 4 and later) that is a whole number of
//     bytes, on a member that is not a bit field.
//
// A location list (DW_FORM_sec_offset, DW_FORM_loclistx, and DW_FORM_data4
// or data8 in DWARF 2 and 3 units, where the standard reads those as list
// pointers) is refused: a member's offset cannot depend on the PC. So is a
// bit field, whose offset is not a byte offset. A struct member without
// either attribute is refused too: DWARF 4 lets a producer omit the
// location of a member at offset 0, but no producer this package has met
// does, and an omission by mistake would read as a plausible wrong offset.
// Union members, which all start at the union's start, may omit it.
func memberOffset(m *dwarf.Entry, order binary.ByteOrder, union bool) (uint64, error) {
	for _, a := range []dwarf.Attr{dwarf.AttrBitSize, dwarf.AttrBitOffset} {
		if m.AttrField(a) != nil {
			return 0, fmt.Errorf("bit field (has %v): its offset is not a whole number of bytes", a)
		}
	}
	loc := m.AttrField(dwarf.AttrDataMemberLoc)
	bits := m.AttrField(dwarf.AttrDataBitOffset)
	switch {
	case loc != nil && bits != nil:
		return 0, errors.New("has both DW_AT_data_member_location and DW_AT_data_bit_offset")
	case bits != nil:
		v, err := constant(bits)
		if err != nil {
			return 0, fmt.Errorf("DW_AT_data_bit_offset: %w", err)
		}
		if v%8 != 0 {
			return 0, fmt.Errorf("DW_AT_data_bit_offset %d is not a whole number of bytes", v)
		}
		return v / 8, nil
	case loc == nil && union:
		return 0, nil
	case loc == nil:
		return 0, errors.New("no DW_AT_data_member_location or DW_AT_data_bit_offset")
	}

	switch loc.Class {
	case dwarf.ClassConstant:
		v, err := constant(loc)
		if err != nil {
			return 0, fmt.Errorf("DW_AT_data_member_location (constant): %w", err)
		}
		return v, nil
	case dwarf.ClassExprLoc, dwarf.ClassBlock:
		// debug/dwarf reports blocks of DWARF 2 and 3 as exprloc too.
		expr, ok := loc.Val.([]byte)
		if !ok {
			return 0, fmt.Errorf("DW_AT_data_member_location (exprloc): value is %T", loc.Val)
		}
		v, err := locationExpr(expr, order)
		if err != nil {
			return 0, fmt.Errorf("DW_AT_data_member_location (exprloc [% x]): %w", expr, err)
		}
		return v, nil
	case dwarf.ClassLocListPtr, dwarf.ClassLocList:
		return 0, fmt.Errorf("DW_AT_data_member_location is a location list (%v, value %v): "+
			"DW_FORM_sec_offset or loclistx, or DW_FORM_data* in a DWARF 2 or 3 unit; not decoded", loc.Class, loc.Val)
	}
	return 0, fmt.Errorf("DW_AT_data_member_location of form class %v not decoded", loc.Class)
}

// constant returns the value of a constant-class attribute, which must
// be a size or offset: not negative.
//
// debug/dwarf sign-extends sdata and stores data8 and udata values of 2^63
// and more as negative int64s; all of them are refused.
func constant(f *dwarf.Field) (uint64, error) {
	if f.Class != dwarf.ClassConstant {
		return 0, fmt.Errorf("form class %v, want a constant", f.Class)
	}
	v, ok := f.Val.(int64)
	if !ok {
		return 0, fmt.Errorf("constant of type %T (DW_FORM_data16?)", f.Val)
	}
	if v < 0 {
		return 0, fmt.Errorf("negative value %d", v)
	}
	return uint64(v), nil
}

// DWARF expression opcodes locationExpr understands (DWARF 5 §2.5.1).
const (
	opConst1u    = 0x08
	opConst1s    = 0x09
	opConst2u    = 0x0a
	opConst2s    = 0x0b
	opConst4u    = 0x0c
	opConst4s    = 0x0d
	opConst8u    = 0x0e
	opConst8s    = 0x0f
	opConstu     = 0x10
	opConsts     = 0x11
	opPlus       = 0x22
	opPlusUconst = 0x23
	opLit0       = 0x30
	opLit31      = 0x4f
)

// linear is a value on the stack of a member location expression:
// base*struct + off, where struct is the address of the containing struct,
// which the consumer pushes before evaluating (DWARF 5 §5.7.6).
type linear struct{ base, off int64 }

// locationExpr evaluates a DW_AT_data_member_location expression and
// returns the offset it adds to the struct's address.
//
// It understands the constant operations (DW_OP_lit0 to lit31,
// DW_OP_const1u to const8s, DW_OP_constu, DW_OP_consts), DW_OP_plus and
// DW_OP_plus_uconst: enough for what producers write, DW_OP_plus_uconst N
// (GCC, old Go) and a constant followed by DW_OP_plus. Values are tracked
// as base*struct + off, so the result is accepted only if it is exactly
// the struct's address plus a non-negative offset. Any other opcode, an
// empty expression, a truncated operand and an arithmetic overflow are
// errors.
func locationExpr(expr []byte, order binary.ByteOrder) (uint64, error) {
	if len(expr) == 0 {
		return 0, errors.New("empty expression")
	}
	stack := []linear{{base: 1}}
	push := func(v int64) { stack = append(stack, linear{off: v}) }
	for i := 0; i < len(expr); {
		op := expr[i]
		i++
		var err error
		fixed := func(n int) uint64 {
			if len(expr)-i < n {
				err = fmt.Errorf("operand of opcode %#x at byte %d: %d bytes, %d left", op, i-1, n, len(expr)-i)
				return 0
			}
			var b [8]byte
			if order == binary.BigEndian {
				copy(b[8-n:], expr[i:i+n])
			} else {
				copy(b[:], expr[i:i+n])
			}
			i += n
			return order.Uint64(b[:])
		}
		switch {
		case op >= opLit0 && op <= opLit31:
			push(int64(op - opLit0))
		case op == opConst1u:
			push(int64(fixed(1)))
		case op == opConst1s:
			push(int64(int8(fixed(1))))
		case op == opConst2u:
			push(int64(fixed(2)))
		case op == opConst2s:
			push(int64(int16(fixed(2))))
		case op == opConst4u:
			push(int64(fixed(4)))
		case op == opConst4s:
			push(int64(int32(fixed(4))))
		case op == opConst8u, op == opConstu:
			var u uint64
			if op == opConst8u {
				u = fixed(8)
			} else {
				u, i, err = uleb(expr, i)
			}
			if err == nil && u > math.MaxInt64 {
				err = fmt.Errorf("constant %d of opcode %#x at byte %d out of range", u, op, i-1)
			}
			push(int64(u))
		case op == opConst8s:
			push(int64(fixed(8)))
		case op == opConsts:
			var s int64
			s, i, err = sleb(expr, i)
			push(s)
		case op == opPlusUconst:
			var u uint64
			u, i, err = uleb(expr, i)
			if err == nil {
				if u > math.MaxInt64 {
					err = fmt.Errorf("operand %d of DW_OP_plus_uconst out of range", u)
				} else {
					top := &stack[len(stack)-1]
					top.off, err = add(top.off, int64(u))
				}
			}
		case op == opPlus:
			if len(stack) < 2 {
				return 0, fmt.Errorf("DW_OP_plus at byte %d: stack holds %d value", i-1, len(stack))
			}
			a, b := stack[len(stack)-2], stack[len(stack)-1]
			stack = stack[:len(stack)-2]
			var s linear
			if s.base, err = add(a.base, b.base); err == nil {
				s.off, err = add(a.off, b.off)
			}
			stack = append(stack, s)
		default:
			return 0, fmt.Errorf("opcode %#x at byte %d not supported", op, i-1)
		}
		if err != nil {
			return 0, err
		}
	}
	if len(stack) != 1 {
		return 0, fmt.Errorf("leaves %d values on the stack, want 1", len(stack))
	}
	v := stack[0]
	if v.base != 1 {
		return 0, fmt.Errorf("computes %d×(struct address) + %d, not an offset from the struct", v.base, v.off)
	}
	if v.off < 0 {
		return 0, fmt.Errorf("negative offset %d", v.off)
	}
	return uint64(v.off), nil
}

// add returns a+b or an error if that overflows an int64.
func add(a, b int64) (int64, error) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, fmt.Errorf("%d + %d overflows", a, b)
	}
	return s, nil
}

// uleb decodes the unsigned LEB128 number at b[i:] and returns it and the
// index after it.
func uleb(b []byte, i int) (uint64, int, error) {
	start := i
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if i >= len(b) {
			return 0, i, fmt.Errorf("truncated ULEB128 at byte %d", start)
		}
		c := b[i]
		i++
		if shift >= 64 || (shift == 63 && c&0x7e != 0) {
			if c&0x7f != 0 {
				return 0, i, fmt.Errorf("ULEB128 at byte %d overflows 64 bits", start)
			}
		} else {
			v |= uint64(c&0x7f) << shift
		}
		if c&0x80 == 0 {
			return v, i, nil
		}
	}
}

// sleb decodes the signed LEB128 number at b[i:] and returns it and the
// index after it.
func sleb(b []byte, i int) (int64, int, error) {
	start := i
	var v int64
	var shift uint
	for {
		if i >= len(b) {
			return 0, i, fmt.Errorf("truncated SLEB128 at byte %d", start)
		}
		c := b[i]
		i++
		if shift >= 63 {
			// Bit 63 is the sign; the bits above it may only repeat it.
			if shift == 63 {
				v |= int64(c&1) << 63
			}
			if want := byte(0x7f * (uint64(v) >> 63)); c&0x7f != want {
				return 0, i, fmt.Errorf("SLEB128 at byte %d overflows 64 bits", start)
			}
		} else {
			v |= int64(c&0x7f) << shift
		}
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			return v, i, nil
		}
	}
}
