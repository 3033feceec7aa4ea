// Package layout reads struct field offsets from the DWARF of an ELF binary.
//
// The generator uses it on probe programs built with every Go release, the
// tracer uses it on a user's binary when the database does not know that
// binary's Go version. Both ask for a few dozen fields of a few types, and a
// user's binary may carry hundreds of megabytes of DWARF, so layout reads only
// the types it is asked for: one pass over the top-level DIEs of the compile
// units, the one the Go linker puts types in first, to find them by name,
// then reading only the DIEs on each field's path: the struct, its members,
// the types they go through. It never builds an index of all types.
//
// It never guesses an offset or a size. A member location or size it
// cannot decode exactly, or that is absent where the DWARF standard gives
// no exact default, is an error for the fields that go through it
// (wrapping ErrUndecodable), never a 0; the other fields of the same
// struct still resolve.
package layout

import (
	"bytes"
	"debug/dwarf"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/offsetdb/offsetdb/offsets"
)

var (
	// ErrNotELF is returned by Open and NewFile for input that does not start
	// with the ELF magic: Mach-O, PE, scripts, text.
	ErrNotELF = errors.New("not an ELF file")

	// ErrNoDWARF is returned by Open and NewFile for an ELF file without
	// DWARF: a Go binary linked with -ldflags=-w (or -s), or a stripped one.
	ErrNoDWARF = errors.New("no DWARF debug information")

	// ErrTypeNotFound is wrapped by the error of a field whose struct type
	// is not in the DWARF: misspelt, not linked in, or not a Go binary.
	ErrTypeNotFound = errors.New("type not found in DWARF")

	// ErrFieldNotFound is wrapped by the error of a field whose struct type
	// exists but has no such field, or whose path crosses a pointer or a
	// type that is not a struct.
	ErrFieldNotFound = errors.New("field not found in DWARF")

	// ErrUndecodable is wrapped by the error of a field whose offset or
	// size the DWARF gives in a way layout cannot decode exactly: a member
	// location that is an empty or unsupported expression, a location
	// list, a bit field, a missing or negative DW_AT_byte_size, a member
	// that overruns its struct. The error names the struct, the field and
	// the attribute's form. The DWARF is wrong or from a producer layout
	// does not know, so the field must not be taken as absent either.
	ErrUndecodable = errors.New("DWARF attribute not decodable")
)

// File is an ELF binary whose DWARF is loaded and ready to be queried.
//
// A File is safe for concurrent use by multiple goroutines.
type File struct {
	data   *dwarf.Data
	order  binary.ByteOrder // Of the ELF file, for DWARF expression operands.
	closer io.Closer
}

// Open opens the ELF binary at path and loads its DWARF.
//
// Errors name the path and wrap ErrNotELF or ErrNoDWARF where those apply.
// The caller must Close the File.
func Open(path string) (*File, error) {
	osf, err := os.Open(path)
	if err != nil {
		return nil, err // *fs.PathError names the path.
	}
	f, err := NewFile(osf)
	if err != nil {
		osf.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f.closer = osf
	return f, nil
}

// NewFile reads an ELF binary from r and loads its DWARF.
//
// It decompresses only the sections that type lookups need (.debug_info,
// .debug_abbrev and the string and address tables); line tables, frames and
// location lists, often as large again, are not read. Both compressed forms
// Go has used are understood: .zdebug_* sections (older releases) and
// SHF_COMPRESSED sections (Go 1.21 and later at least). The ELF class and
// machine do not matter: an arm64 binary reads the same on an amd64 host.
//
// Corrupt input yields an error, never a panic.
func NewFile(r io.ReaderAt) (f *File, err error) {
	defer recoverCorrupt(&err)

	var magic [4]byte
	if n, err := r.ReadAt(magic[:], 0); err != nil || !bytes.Equal(magic[:], []byte(elf.ELFMAG)) {
		return nil, fmt.Errorf("%w (starts with %q)", ErrNotELF, magic[:n])
	}
	ef, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("read ELF headers: %w", truncated(err))
	}
	data, err := loadDWARF(ef)
	if err != nil {
		return nil, err
	}
	return &File{data: data, order: ef.ByteOrder}, nil
}

// Close releases the file opened by Open. It is a no-op for a File from
// NewFile: closing r is left to the caller.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	return f.closer.Close()
}

// The sections type lookups read. Unit headers and DIEs are in info and
// abbrev, names in str; DWARF 5 (Go 1.25 and later by default) adds
// str_offsets and line_str for names and addr for the DW_FORM_addrx
// attributes of the subprogram DIEs that the scan steps over.
var (
	baseSections   = []string{"abbrev", "info", "str"}
	dwarf5Sections = []string{"str_offsets", "line_str", "addr"}
)

// loadDWARF builds a dwarf.Data from baseSections and dwarf5Sections.
func loadDWARF(ef *elf.File) (*dwarf.Data, error) {
	if debugSection(ef, "info") == nil {
		return nil, ErrNoDWARF
	}
	if ef.Type == elf.ET_REL {
		// Object files need relocations applied, which (*elf.File).DWARF does.
		d, err := ef.DWARF()
		if err != nil {
			return nil, fmt.Errorf("load DWARF: %w", err)
		}
		return d, nil
	}

	sec := make(map[string][]byte)
	for _, name := range append(baseSections, dwarf5Sections...) {
		s := debugSection(ef, name)
		if s == nil {
			continue
		}
		b, err := s.Data()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", s.Name, truncated(err))
		}
		sec[name] = b
	}
	if len(sec["info"]) == 0 {
		return nil, ErrNoDWARF
	}

	d, err := dwarf.New(sec["abbrev"], nil, nil, sec["info"], nil, nil, nil, sec["str"])
	if err != nil {
		return nil, fmt.Errorf("load DWARF: %w", err)
	}
	for _, name := range dwarf5Sections {
		if b := sec[name]; b != nil {
			if err := d.AddSection(".debug_"+name, b); err != nil {
				return nil, fmt.Errorf("load DWARF section .debug_%s: %w", name, err)
			}
		}
	}
	return d, nil
}

// debugSection returns .debug_name or, in binaries from older Go releases
// and other toolchains that compress the old way, .zdebug_name. Section.Data
// decompresses either form.
func debugSection(ef *elf.File, name string) *elf.Section {
	for _, prefix := range []string{".debug_", ".zdebug_"} {
		if s := ef.Section(prefix + name); s != nil && s.Type != elf.SHT_NOBITS {
			return s
		}
	}
	return nil
}

// truncated says so when err is an end of file where data was expected.
func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("file truncated: %w", err)
	}
	return err
}

// Fields returns the offset, size and type of each field in ids.
//
// Fields looks up all struct types named by ids in one pass over the DWARF
// and stops as soon as it has seen all of them, so its cost depends on where
// in the DWARF the types are, not on how many fields are asked for; a type
// the binary does not have costs a scan of all of it. Only the DIEs on the
// fields' paths are decoded, never the whole DWARF.
//
// The map holds every field that was resolved. If some were not, the error
// is a *MissingError saying why for each of them, one field at a time: a
// member whose location cannot be decoded fails the fields that go through
// it and no other. Any other error means the DWARF could not be read.
func (f *File) Fields(ids []offsets.FieldID) (found map[offsets.FieldID]offsets.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			found, err = nil, corruptPanic(r)
		}
	}()

	wanted := make(map[string]dwarf.Offset)
	for _, id := range ids {
		wanted[id.TypeName()] = 0
	}
	if err := findTypes(f.data, wanted); err != nil {
		return nil, err
	}

	w := newWalker(f.data, f.order)
	found = make(map[offsets.FieldID]offsets.Value, len(ids))
	missing := make(map[offsets.FieldID]error)
	for _, id := range ids {
		off := wanted[id.TypeName()]
		if off == 0 {
			missing[id] = &fieldError{fmt.Sprintf("type %s not found in DWARF", id.TypeName()), ErrTypeNotFound}
			continue
		}
		v, err := w.resolve(id, off)
		if err != nil {
			missing[id] = err
			continue
		}
		found[id] = v
	}
	if len(missing) > 0 {
		return found, &MissingError{Missing: missing}
	}
	return found, nil
}

// findTypes sets wanted[name] to the offset of the DIE naming each type in
// wanted, leaving 0 (where a unit header, never a DIE, is) for types it does
// not find.
//
// The Go linker appends every type DIE to the children of the last compile
// unit named "runtime" (movetomodule in cmd/link/internal/ld/dwarf.go, there
// since before Go 1.12; seen in Go 1.21, 1.22 and 1.26 binaries, DWARF 4 and
// 5 alike): a DW_TAG_structure_type named
// "net/http.Request" followed by a DW_TAG_typedef of the same name pointing
// at it. So findTypes first lists the compile units, which costs one DIE
// each, scans that unit and stops there if it found everything. Only then
// does it scan the other units, so binaries from other linkers still work.
//
// Within a unit it looks only at the unit's children and skips the
// children of everything else: the subprograms with their parameters,
// variables and lexical blocks, and the members of unwanted structs. Either
// the struct or the typedef DIE will do; godwarf resolves the typedef.
func findTypes(d *dwarf.Data, wanted map[string]dwarf.Offset) error {
	units, err := compileUnits(d)
	if err != nil {
		return err
	}
	last := -1
	for i, u := range units {
		if u.name == "runtime" {
			last = i
		}
	}
	if last >= 0 {
		units = append([]unit{units[last]}, append(units[:last:last], units[last+1:]...)...)
	}

	left := len(wanted)
	r := d.Reader()
	for _, u := range units {
		if left == 0 {
			break
		}
		r.Seek(u.off)
		if _, err := r.Next(); err != nil { // The unit's own DIE.
			return fmt.Errorf("scan DWARF unit at %#x: %w", u.off, err)
		}
		for left > 0 {
			e, err := r.Next()
			if err != nil {
				return fmt.Errorf("scan DWARF unit at %#x: %w", u.off, err)
			}
			if e == nil || e.Tag == 0 || e.Tag == dwarf.TagCompileUnit || e.Tag == dwarf.TagPartialUnit {
				break // End of the unit's children.
			}
			switch e.Tag {
			case dwarf.TagStructType, dwarf.TagTypedef:
				if name, ok := e.Val(dwarf.AttrName).(string); ok {
					if off, ok := wanted[name]; ok && off == 0 {
						wanted[name] = e.Offset
						left--
					}
				}
			}
			r.SkipChildren()
		}
	}
	return nil
}

// unit is a compile unit DIE.
type unit struct {
	off  dwarf.Offset
	name string
}

// compileUnits lists the compile units with children, in the order of the
// DWARF. Skipping a unit's children does not decode them, so this reads one
// DIE per unit.
func compileUnits(d *dwarf.Data) ([]unit, error) {
	var units []unit
	r := d.Reader()
	for {
		e, err := r.Next()
		if err != nil {
			return nil, fmt.Errorf("list DWARF compile units: %w", err)
		}
		if e == nil {
			return units, nil
		}
		if (e.Tag == dwarf.TagCompileUnit || e.Tag == dwarf.TagPartialUnit) && e.Children {
			name, _ := e.Val(dwarf.AttrName).(string)
			units = append(units, unit{e.Offset, name})
		}
		r.SkipChildren()
	}
}

// MissingError is returned by Fields when some fields were not resolved.
type MissingError struct {
	// Missing holds, for each field not resolved, an error wrapping
	// ErrTypeNotFound or ErrFieldNotFound, which say the field does not
	// exist, or ErrUndecodable, which says it may exist but its DWARF
	// cannot be read: a caller must not take such a field as absent.
	Missing map[offsets.FieldID]error
}

// Error lists the missing fields in the order of their string form.
func (e *MissingError) Error() string {
	ids := make([]offsets.FieldID, 0, len(e.Missing))
	for id := range e.Missing {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].Less(ids[j]) })

	what := "not found"
	for _, err := range e.Missing {
		if !errors.Is(err, ErrTypeNotFound) && !errors.Is(err, ErrFieldNotFound) {
			what = "not resolved"
		}
	}
	var b strings.Builder
	if len(ids) == 1 {
		fmt.Fprintf(&b, "1 field %s: ", what)
	} else {
		fmt.Fprintf(&b, "%d fields %s: ", len(ids), what)
	}
	for i, id := range ids {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %v", id, e.Missing[id])
	}
	return b.String()
}

// recoverCorrupt turns a panic in debug/elf, debug/dwarf or godwarf, which
// corrupt input can cause, into an error.
func recoverCorrupt(err *error) {
	if r := recover(); r != nil {
		*err = corruptPanic(r)
	}
}

func corruptPanic(r any) error {
	return fmt.Errorf("corrupt ELF or DWARF: panic: %v", r)
}
