package layout

import (
	"debug/dwarf"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"

	"github.com/go-delve/delve/pkg/dwarf/godwarf"

	"github.com/offsetdb/offsetdb/offsets"
)

// maxDepth bounds typedef chains and nested array types, which corrupt
// DWARF can make cyclic.
const maxDepth = 100

// walker reads the DIEs on the paths of fields, and only those: the
// struct, its members, and the types of the members a path goes through.
// It keeps what it read for the other fields of one Fields call.
//
// Every number it takes from an attribute is checked for its form and
// range; an attribute that is absent where the standard gives no exact
// default, or that it cannot decode, is an error wrapping ErrUndecodable
// for the field being resolved, never a zero.
type walker struct {
	r       *dwarf.Reader
	order   binary.ByteOrder
	data    *dwarf.Data
	entries map[dwarf.Offset]die
	kids    map[dwarf.Offset][]*dwarf.Entry
}

// die is a DIE and the address size of its unit.
type die struct {
	*dwarf.Entry
	addrSize int
}

func newWalker(d *dwarf.Data, order binary.ByteOrder) *walker {
	return &walker{
		r:       d.Reader(),
		order:   order,
		data:    d,
		entries: make(map[dwarf.Offset]die),
		kids:    make(map[dwarf.Offset][]*dwarf.Entry),
	}
}

// entry returns the DIE at off.
func (w *walker) entry(off dwarf.Offset) (die, error) {
	if e, ok := w.entries[off]; ok {
		return e, nil
	}
	w.r.Seek(off)
	e, err := w.r.Next()
	if err != nil {
		return die{}, undecodable("read DIE at %#x: %v", off, err)
	}
	if e == nil || e.Offset != off {
		return die{}, undecodable("no DIE at %#x", off)
	}
	d := die{e, w.r.AddressSize()}
	w.entries[off] = d
	return d, nil
}

// children returns the direct children of the DIE at off.
func (w *walker) children(off dwarf.Offset) ([]*dwarf.Entry, error) {
	if kids, ok := w.kids[off]; ok {
		return kids, nil
	}
	parent, err := w.entry(off)
	if err != nil {
		return nil, err
	}
	var kids []*dwarf.Entry
	if parent.Children {
		w.r.Seek(off)
		if _, err := w.r.Next(); err != nil {
			return nil, undecodable("read DIE at %#x: %v", off, err)
		}
		for {
			e, err := w.r.Next()
			if err != nil {
				return nil, undecodable("read children of DIE at %#x: %v", off, err)
			}
			if e == nil {
				return nil, undecodable("children of DIE at %#x run past the end of the DWARF", off)
			}
			if e.Tag == 0 {
				break
			}
			kids = append(kids, e)
			w.r.SkipChildren()
		}
	}
	w.kids[off] = kids
	return kids, nil
}

// typeOf returns the offset of the type e refers to with DW_AT_type.
func typeOf(e *dwarf.Entry) (dwarf.Offset, error) {
	f := e.AttrField(dwarf.AttrType)
	if f == nil {
		return 0, undecodable("%v at %#x has no DW_AT_type", e.Tag, e.Offset)
	}
	off, ok := f.Val.(dwarf.Offset)
	if !ok {
		return 0, undecodable("DW_AT_type of %v at %#x is of form class %v, not a reference into .debug_info", e.Tag, e.Offset, f.Class)
	}
	return off, nil
}

// resolve walks id's field path from the struct type at off, adding up the
// offsets of the fields it goes through.
func (w *walker) resolve(id offsets.FieldID, off dwarf.Offset) (v offsets.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = offsets.Value{}, undecodable("%s: corrupt DWARF: panic: %v", id, r)
		}
	}()
	var total uint64
	t := off
	where := id.TypeName() // What the next path element is looked up in.
	for i, name := range id.Path() {
		st, union, err := w.structOf(t)
		if err != nil {
			if !errors.Is(err, ErrFieldNotFound) {
				return offsets.Value{}, err
			}
			what := id.TypeName()
			if i > 0 {
				what = fmt.Sprintf("%s.%s", id.TypeName(), strings.Join(id.Path()[:i], "."))
			}
			return offsets.Value{}, &fieldError{fmt.Sprintf("%s (%s) has no field %q: %v", what, w.nameOr(t), name, err), ErrFieldNotFound}
		}
		m, err := w.member(st, name)
		if err != nil {
			return offsets.Value{}, fmt.Errorf("%s: %w", where, err)
		}
		if m == nil {
			return offsets.Value{}, &fieldError{fmt.Sprintf("%s has no field %q", where, name), ErrFieldNotFound}
		}
		// The struct, the field and the form: what a reader of the
		// error needs to find the DIE with a DWARF dumper.
		fail := func(err error) error {
			return wrapUndecodable(err, "%s (%s at DWARF offset %#x): field %q (DIE %#x): %v", where, w.nameOr(st), st, name, m.Offset, err)
		}
		loc, err := memberOffset(m, w.order, union)
		if err != nil {
			return offsets.Value{}, fail(err)
		}
		mt, err := typeOf(m)
		if err != nil {
			return offsets.Value{}, fail(err)
		}
		msize, err := w.size(mt, 0)
		if err != nil {
			return offsets.Value{}, fail(fmt.Errorf("size of its type: %w", err))
		}
		ssize, err := w.size(st, 0)
		if err != nil {
			return offsets.Value{}, fail(fmt.Errorf("size of the struct: %w", err))
		}
		if loc > ssize || msize > ssize-loc {
			return offsets.Value{}, fail(fmt.Errorf("offset %d + size %d overruns the struct's %d bytes", loc, msize, ssize))
		}
		total += loc // Cannot overflow: each step stays within the enclosing struct.
		t = mt
		where = fmt.Sprintf("%s.%s (%s)", id.TypeName(), strings.Join(id.Path()[:i+1], "."), w.nameOr(t))
	}
	size, err := w.size(t, 0)
	if err != nil {
		return offsets.Value{}, wrapUndecodable(err, "%s: size of %s: %v", id, w.nameOr(t), err)
	}
	name, err := w.typeName(t)
	if err != nil {
		return offsets.Value{}, wrapUndecodable(err, "%s: name of its type: %v", id, err)
	}
	return offsets.Value{Offset: total, Size: size, Type: name}, nil
}

// member returns the member of the struct at st called name, or nil.
func (w *walker) member(st dwarf.Offset, name string) (*dwarf.Entry, error) {
	kids, err := w.children(st)
	if err != nil {
		return nil, err
	}
	for _, k := range kids {
		if k.Tag != dwarf.TagMember {
			continue
		}
		if n, _ := k.Val(dwarf.AttrName).(string); n == name {
			return k, nil
		}
	}
	return nil, nil
}

// structOf returns the offset of the struct type that the type at off is
// or names, and whether it is a union. An error wrapping ErrFieldNotFound
// says why a path cannot go through the type.
//
// Strings, slices and interfaces are structs in Go DWARF ({str, len},
// {array, len, cap}, runtime.iface or runtime.eface) whose fields are laid
// out inline, so a path may go through them. It may not go through a pointer,
// nor through a map or channel, which are pointers underneath: offsets behind
// a pointer are relative to another object.
func (w *walker) structOf(off dwarf.Offset) (dwarf.Offset, bool, error) {
	for range maxDepth {
		e, err := w.entry(off)
		if err != nil {
			return 0, false, err
		}
		switch e.Tag {
		case dwarf.TagStructType, dwarf.TagClassType:
			return off, false, nil
		case dwarf.TagUnionType:
			return off, true, nil
		case dwarf.TagPointerType:
			return 0, false, notFound("path crosses a pointer, offsets are not additive through pointers")
		case dwarf.TagTypedef:
			switch goKind(e.Entry) {
			case reflect.Map, reflect.Chan:
				return 0, false, notFound("path crosses a map or channel, which is a pointer")
			}
			if e.AttrField(dwarf.AttrType) == nil {
				return 0, false, notFound("typedef without a type")
			}
			if off, err = typeOf(e.Entry); err != nil {
				return 0, false, err
			}
		default:
			return 0, false, notFound("not a struct")
		}
	}
	return 0, false, notFound("typedef chain too long")
}

func goKind(e *dwarf.Entry) reflect.Kind {
	k, _ := e.Val(godwarf.AttrGoKind).(int64)
	return reflect.Kind(k)
}

// size returns the size in bytes of the type at off.
//
// It is DW_AT_byte_size where the type has one. Without it, a typedef or
// qualifier has the size of its type, a pointer the address size of its
// unit (DWARF 5 §5.3), and an array the product of its bounds and its
// element size. Any other type without a size is an error.
func (w *walker) size(off dwarf.Offset, depth int) (uint64, error) {
	for ; depth < maxDepth; depth++ {
		e, err := w.entry(off)
		if err != nil {
			return 0, err
		}
		if f := e.AttrField(dwarf.AttrByteSize); f != nil {
			v, err := constant(f)
			if err != nil {
				return 0, undecodable("DW_AT_byte_size of %v at %#x: %v", e.Tag, off, err)
			}
			return v, nil
		}
		switch e.Tag {
		case dwarf.TagTypedef, dwarf.TagConstType, dwarf.TagVolatileType, dwarf.TagRestrictType:
			if off, err = typeOf(e.Entry); err != nil {
				return 0, err
			}
		case dwarf.TagPointerType, dwarf.TagReferenceType, dwarf.TagRvalueReferenceType:
			if e.addrSize <= 0 {
				return 0, undecodable("%v at %#x has no DW_AT_byte_size and its unit no address size", e.Tag, off)
			}
			return uint64(e.addrSize), nil
		case dwarf.TagArrayType:
			return w.arraySize(e, depth)
		default:
			return 0, undecodable("%v at %#x has no DW_AT_byte_size", e.Tag, off)
		}
	}
	return 0, undecodable("type chain at %#x too deep", off)
}

// arraySize returns the size of an array type without DW_AT_byte_size:
// the number of elements in each of its DW_TAG_subrange_type dimensions
// times the element size. A dimension has DW_AT_count, or DW_AT_upper_bound
// and a lower bound of DW_AT_lower_bound or 0 (the default of C and Go; the
// Go linker writes DW_AT_count). An array with a stride, a dimension of
// unknown bound (C's x[]) or an enumeration dimension is an error.
func (w *walker) arraySize(e die, depth int) (uint64, error) {
	for _, a := range []dwarf.Attr{dwarf.AttrStride, dwarf.AttrStrideSize} {
		if e.AttrField(a) != nil {
			return 0, undecodable("array at %#x has %v and no DW_AT_byte_size", e.Offset, a)
		}
	}
	elem, err := typeOf(e.Entry)
	if err != nil {
		return 0, err
	}
	size, err := w.size(elem, depth+1)
	if err != nil {
		return 0, err
	}
	kids, err := w.children(e.Offset)
	if err != nil {
		return 0, err
	}
	dims := 0
	for _, k := range kids {
		switch k.Tag {
		case dwarf.TagSubrangeType:
		case dwarf.TagEnumerationType:
			return 0, undecodable("array at %#x has an enumeration dimension", e.Offset)
		default:
			continue
		}
		n, err := count(k)
		if err != nil {
			return 0, undecodable("array at %#x, dimension %d: %v", e.Offset, dims, err)
		}
		if n != 0 && size > math.MaxUint64/n {
			return 0, undecodable("array at %#x: size overflows", e.Offset)
		}
		size *= n
		dims++
	}
	if dims == 0 {
		return 0, undecodable("array at %#x has no DW_AT_byte_size and no dimension", e.Offset)
	}
	return size, nil
}

// count returns the number of elements of a DW_TAG_subrange_type.
func count(k *dwarf.Entry) (uint64, error) {
	if f := k.AttrField(dwarf.AttrCount); f != nil {
		n, err := constant(f)
		if err != nil {
			return 0, fmt.Errorf("DW_AT_count: %w", err)
		}
		return n, nil
	}
	f := k.AttrField(dwarf.AttrUpperBound)
	if f == nil {
		return 0, errors.New("neither DW_AT_count nor DW_AT_upper_bound")
	}
	upper, err := constant(f)
	if err != nil {
		return 0, fmt.Errorf("DW_AT_upper_bound: %w", err)
	}
	var lower uint64
	if f := k.AttrField(dwarf.AttrLowerBound); f != nil {
		if lower, err = constant(f); err != nil {
			return 0, fmt.Errorf("DW_AT_lower_bound: %w", err)
		}
	}
	if upper < lower || upper-lower == math.MaxUint64 {
		return 0, fmt.Errorf("bounds %d..%d", lower, upper)
	}
	return upper - lower + 1, nil
}

// typeName returns the Go name of the type at off as DWARF writes it:
// "*net/url.URL", "[]uint8", "context.Context". The Go linker names every
// type; for a type without DW_AT_name, which other producers write, the
// name is the one godwarf makes up for it ("*int").
func (w *walker) typeName(off dwarf.Offset) (string, error) {
	e, err := w.entry(off)
	if err != nil {
		return "", err
	}
	if n, ok := e.Val(dwarf.AttrName).(string); ok && n != "" {
		return n, nil
	}
	t, err := godwarf.ReadType(w.data, 0, off, make(map[dwarf.Offset]godwarf.Type))
	if err != nil {
		return "", undecodable("type at %#x has no DW_AT_name and godwarf cannot decode it: %v", off, err)
	}
	return t.String(), nil
}

// nameOr returns the name of the type at off for an error message, or its
// offset if it has none.
func (w *walker) nameOr(off dwarf.Offset) string {
	if n, err := w.typeName(off); err == nil {
		return n
	}
	return fmt.Sprintf("type at %#x", off)
}

// fieldError is a message that wraps ErrTypeNotFound, ErrFieldNotFound or
// ErrUndecodable without repeating its text.
type fieldError struct {
	msg      string
	sentinel error
}

func (e *fieldError) Error() string { return e.msg }
func (e *fieldError) Unwrap() error { return e.sentinel }

func notFound(msg string) error { return &fieldError{msg, ErrFieldNotFound} }

func undecodable(format string, args ...any) error {
	return &fieldError{fmt.Sprintf(format, args...), ErrUndecodable}
}

// wrapUndecodable formats a message for err, and keeps err's sentinel if it
// has one (a not-found type behind a reference stays not found).
func wrapUndecodable(err error, format string, args ...any) error {
	sentinel := ErrUndecodable
	for _, s := range []error{ErrTypeNotFound, ErrFieldNotFound} {
		if errors.Is(err, s) {
			sentinel = s
		}
	}
	return &fieldError{fmt.Sprintf(format, args...), sentinel}
}
