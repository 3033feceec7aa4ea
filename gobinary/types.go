package gobinary

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/offsetdb/offsetdb/goversion"
)

// ErrNoTypes reports a binary whose type descriptors cannot be named: it
// has no symbol table to find them through (runtime.types, the start of
// the types the runtime's name offsets count from).
var ErrNoTypes = errors.New("no symbol for the types section")

// TypeLayout says where a runtime type descriptor (internal/abi.Type, Go
// 1.21+; runtime._type before) keeps its name: the byte offsets of its
// Str (a name offset into the binary's types) and TFlag fields, as the
// database or the binary's DWARF give them.
type TypeLayout struct {
	Str, TFlag uint64
}

// varintNames is the first release whose names have a varint length.
var varintNames = goversion.MustParse("go1.17")

// maxTypeName bounds the name TypeName reads.
const maxTypeName = 1024

// tflagExtraStar is internal/abi.TFlagExtraStar: the name stored for a
// type T's descriptor is "*T", to share it with *T's.
const tflagExtraStar = 1 << 1

// TypeName returns the name of the runtime type descriptor at virtual
// address addr, as reflect.Type.String gives it ("string",
// "*main.MyError", "runtime.plainError": package names, not import
// paths): what the type word of an interface value points to, once the
// load bias of a PIE is taken off. l locates the descriptor's fields.
//
// The name is the one the runtime stores for reflection, at the
// descriptor's name offset from the start of the binary's types
// (moduledata.types), which only the symbol table marks (runtime.types; in
// a PIE it lies 8 bytes before the "type:*" symbol; the linker no longer
// names each descriptor): a stripped binary yields ErrNoTypes. Names are encoded as internal/abi.Name: a flags byte, the
// length (a varint from Go 1.17, two bytes big-endian before), the bytes.
func (b *Binary) TypeName(addr uint64, l TypeLayout) (name string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: type name at %#x: %v", ErrMalformed, addr, r)
		}
	}()
	syms, err := b.symbols()
	if err != nil {
		return "", err
	}
	types, ok := syms["runtime.types"]
	if !ok {
		return "", ErrNoTypes
	}
	str, err := b.readAt(addr+l.Str, 4)
	if err != nil {
		return "", fmt.Errorf("type descriptor at %#x: %w", addr, err)
	}
	tflag, err := b.readAt(addr+l.TFlag, 1)
	if err != nil {
		return "", fmt.Errorf("type descriptor at %#x: %w", addr, err)
	}
	off := int32(b.elf.ByteOrder.Uint32(str))
	at := types.Value + uint64(int64(off))
	head, err := b.readAt(at, 1+binary.MaxVarintLen16)
	if err != nil {
		return "", fmt.Errorf("type name at %#x: %w", at, err)
	}
	var n, w int
	if b.GoVersionErr == nil && b.GoVersion.Less(varintNames) {
		n, w = int(binary.BigEndian.Uint16(head[1:])), 2
	} else {
		v, k := binary.Uvarint(head[1:])
		if k <= 0 {
			return "", fmt.Errorf("%w: type name length at %#x", ErrMalformed, at)
		}
		n, w = int(v), k
	}
	if n == 0 || n > maxTypeName {
		return "", fmt.Errorf("%w: type name of %d bytes at %#x", ErrMalformed, n, at)
	}
	data, err := b.readAt(at+1+uint64(w), uint64(n))
	if err != nil {
		return "", fmt.Errorf("type name at %#x: %w", at, err)
	}
	name = string(data)
	if tflag[0]&tflagExtraStar != 0 && len(name) > 1 && name[0] == '*' {
		name = name[1:]
	}
	return name, nil
}
