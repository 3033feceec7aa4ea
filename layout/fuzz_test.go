package layout

import (
	"bytes"
	"compress/zlib"
	"debug/elf"
	"encoding/binary"
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
	ids := fieldIDs(f, "main.T.in.y", "main.T.p", "main.U.x", "main.V.x")

	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := NewFile(bytes.NewReader(data))
		if err != nil {
			return
		}
		defer file.Close()
		_, _ = file.Fields(ids)
	})
}
