// Package gobinary inspects a Go ELF executable the way an eBPF uprobe tracer
// needs it: which Go release and modules built it, where a function starts,
// and where each of its RET instructions is, as the file offsets uprobes
// attach to.
//
// It reads binaries built by Go 1.12 and later for amd64 and arm64, stripped
// or not, PIE or not, internally or externally linked. Build information
// comes from debug/buildinfo (Go 1.13+) or, for older binaries, from the
// runtime.buildVersion variable and the module info blob. Functions come
// from .symtab when present and otherwise from the Go function table
// (.gopclntab), which no strip removes because the runtime itself needs it.
//
// Nothing here executes the target or trusts it: every parser runs under
// recover, so a corrupt or hostile file yields an error, never a panic.
package gobinary

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"

	"github.com/offsetdb/offsetdb/goversion"
)

var (
	// ErrNotELF reports a file that does not start with the ELF magic, such
	// as a script or a Mach-O binary.
	ErrNotELF = errors.New("not an ELF file")
	// ErrMalformed reports an ELF file that cannot be parsed: truncated,
	// corrupt, or internally inconsistent.
	ErrMalformed = errors.New("malformed ELF file")
	// ErrNotGo reports a valid ELF file without Go build information or a
	// Go function table, such as a C program.
	ErrNotGo = errors.New("not a Go binary")
	// ErrUnknownVersion reports a Go binary whose toolchain version could not
	// be found; it only happens for stripped binaries older than Go 1.13.
	ErrUnknownVersion = errors.New("unknown Go version")
	// ErrSymbolNotFound reports a function that is in neither the symbol
	// table nor the Go function table, usually because the linker removed it
	// as unreachable or the compiler inlined every call to it.
	ErrSymbolNotFound = errors.New("symbol not found")
	// ErrUnsupportedArch reports an architecture whose instructions this
	// package cannot decode; only amd64 and arm64 are supported.
	ErrUnsupportedArch = errors.New("unsupported architecture")
)

// Binary is an open Go ELF executable.
//
// The exported fields are filled by Open and never change. The symbol and
// function tables are read on the first call to Function and cached; a
// Binary is safe for concurrent use.
type Binary struct {
	// Path is the file name given to Open.
	Path string
	// GoVersion is the release of the toolchain that built the binary. It is
	// the zero Version when GoVersionErr is set.
	GoVersion goversion.Version
	// GoVersionErr says why GoVersion is unknown: it wraps goversion.ErrDevel
	// for development toolchains and ErrUnknownVersion when no version is
	// recorded in a form this package can find.
	GoVersionErr error
	// GoVersionRaw is the version as recorded, e.g. "go1.22.5",
	// "go1.26.8-X:boringcrypto" or "devel go1.23-abc".
	GoVersionRaw string
	// Experiments lists the GOEXPERIMENT names the binary was built with,
	// from the GOEXPERIMENT build setting and from GoVersionRaw; sorted and
	// deduplicated. Some experiments change struct layouts, so a binary with
	// experiments must not be treated as the plain release.
	Experiments []string
	// Arch is the GOARCH of the binary ("amd64", "arm64", ...), from the
	// ELF machine and checked against the GOARCH build setting.
	Arch string
	// Main is the main module. It is empty for GOPATH builds.
	Main Module
	// Modules are the dependency modules linked into the binary, in the order
	// the build info lists them.
	Modules []Module
	// BuildSettings are the key=value build settings (Go 1.18+), such as
	// "GOARCH", "CGO_ENABLED", "-ldflags" or "vcs.revision".
	BuildSettings map[string]string
	// Stripped reports that the binary has no .symtab, so functions are
	// looked up in the Go function table instead.
	Stripped bool
	// HasDWARF reports that the binary carries DWARF debug information
	// (compressed or not), which the layout reader can use for types the
	// database has never seen.
	HasDWARF bool
	// PIE reports a position-independent executable (ELF type ET_DYN). File
	// offsets are what uprobes need either way; virtual addresses of a PIE
	// are relative to its load address.
	PIE bool
	// CGO reports that the binary was built with cgo enabled (CGO_ENABLED=1
	// in the build settings, recorded since Go 1.18) or imports shared
	// libraries such as libc. A build with cgo enabled records the setting
	// even when no package used cgo.
	CGO bool

	f     *os.File
	elf   *elf.File
	size  int64
	loads []*elf.Prog // PT_LOAD segments with file contents

	symOnce sync.Once
	syms    map[string]elf.Symbol
	symErr  error

	pclnOnce sync.Once
	pcln     *pclntab // located during Open for pre-1.13 binaries, otherwise on demand
	pclnErr  error

	funcOnce sync.Once
	funcs    map[string]funcRange
	funcErr  error

	argsOnce sync.Once
	args     map[uint64]int64 // function entry -> _func.args
	argsErr  error

	tlsOnce sync.Once
	tlsG    int64
	tlsErr  error

	relocOnce sync.Once
	relocs    map[uint64]uint64 // R_*_RELATIVE: address -> addend

	// located caches Function by name: planning, attaching and inspecting
	// all locate the same probed functions, and decoding a function's
	// instructions for its RETs is the costly part.
	locatedMu sync.Mutex
	located   map[string]located
}

// located is a cached result of Function.
type located struct {
	fn  Function
	err error
}

// Module is a Go module linked into a binary, as recorded in its build info.
type Module struct {
	// Path is the module path as required, e.g. "golang.org/x/net". Symbol
	// names use this path even when the module is replaced.
	Path string
	// Version is the required version: a release ("v1.2.3"), a
	// pseudo-version ("v0.0.0-20240101000000-abcdefabcdef"), or "(devel)"
	// for a main module built without version control information.
	Version string
	// Sum is the go.sum checksum ("h1:..."), empty for the main module and
	// for replacements by a local directory.
	Sum string
	// Replace is the module that replaced this one through a replace
	// directive, or nil.
	Replace *Module
}

// EffectivePath returns the path of the code that was actually built: the
// replacement's path when the module is replaced, which for a replacement by
// a local directory is that directory.
func (m Module) EffectivePath() string {
	if m.Replace != nil {
		return m.Replace.Path
	}
	return m.Path
}

// EffectiveVersion returns the version of the code that was actually built:
// the replacement's version when the module is replaced. For a replacement
// by a local directory, whose code has no version, it is "(devel)" (empty
// in binaries of some older releases).
func (m Module) EffectiveVersion() string {
	if m.Replace != nil {
		return m.Replace.Version
	}
	return m.Version
}

// Open opens and inspects the Go ELF executable at path.
//
// It reads the ELF headers and the build information, which costs a few
// small reads; symbol and function tables are only read by Function. The
// error wraps ErrNotELF, ErrMalformed or ErrNotGo when the file is not a Go
// ELF executable, or the error from the file system.
func Open(path string) (*Binary, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open Go binary: %w", err)
	}
	b, err := inspect(path, f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("inspect %s: %w", path, err)
	}
	return b, nil
}

// Close closes the underlying file. Function fails after Close.
func (b *Binary) Close() error {
	return b.f.Close()
}

// Module returns the module with the given required path: the main module
// or a dependency. The result carries the replacement, if any; use
// EffectivePath and EffectiveVersion to follow it.
func (b *Binary) Module(path string) (Module, bool) {
	if b.Main.Path == path && path != "" {
		return b.Main, true
	}
	for _, m := range b.Modules {
		if m.Path == path {
			return m, true
		}
	}
	return Module{}, false
}

// inspect fills a Binary from f. It recovers from panics in the standard
// library parsers, which are not hardened against every corrupt input.
func inspect(path string, f *os.File) (b *Binary, err error) {
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("%w: parser panic: %v", ErrMalformed, r)
		}
	}()

	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var magic [4]byte
	if _, err := f.ReadAt(magic[:], 0); err != nil || string(magic[:]) != elf.ELFMAG {
		return nil, ErrNotELF
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	b = &Binary{Path: path, f: f, elf: ef, size: st.Size()}
	if err := b.checkBounds(); err != nil {
		return nil, err
	}
	b.Arch = archOf(ef)
	b.PIE = ef.Type == elf.ET_DYN
	b.Stripped = ef.Section(".symtab") == nil
	b.HasDWARF = ef.Section(".debug_info") != nil || ef.Section(".zdebug_info") != nil

	bi, biErr := buildinfo.Read(f)
	if biErr == nil {
		b.useBuildInfo(bi)
	} else if err := b.useLegacyBuildInfo(biErr); err != nil {
		return nil, err
	}

	if goarch := b.BuildSettings["GOARCH"]; goarch != "" && goarch != b.Arch {
		return nil, fmt.Errorf("%w: ELF machine is %s but build setting GOARCH=%s", ErrMalformed, b.Arch, goarch)
	}
	if libs, err := ef.ImportedLibraries(); err == nil && len(libs) > 0 {
		b.CGO = true
	}
	if b.BuildSettings["CGO_ENABLED"] == "1" {
		b.CGO = true
	}
	b.Experiments = experiments(b.GoVersionRaw, b.BuildSettings["GOEXPERIMENT"])
	return b, nil
}

// checkBounds rejects files whose sections or segments extend past the end
// of the file, which is what a truncated copy looks like. Later reads would
// fail anyway, but with a far less helpful error.
func (b *Binary) checkBounds() error {
	for _, s := range b.elf.Sections {
		if s.Type == elf.SHT_NOBITS || s.Type == elf.SHT_NULL {
			continue
		}
		if s.Offset > uint64(b.size) || s.FileSize > uint64(b.size)-s.Offset {
			return fmt.Errorf("%w: truncated: section %s ends at %d, file has %d bytes", ErrMalformed, s.Name, s.Offset+s.FileSize, b.size)
		}
	}
	for _, p := range b.elf.Progs {
		if p.Off > uint64(b.size) || p.Filesz > uint64(b.size)-p.Off {
			return fmt.Errorf("%w: truncated: %s segment ends at %d, file has %d bytes", ErrMalformed, p.Type, p.Off+p.Filesz, b.size)
		}
		if p.Type == elf.PT_LOAD && p.Filesz > 0 {
			b.loads = append(b.loads, p)
		}
	}
	return nil
}

// archOf returns the GOARCH name of the ELF machine, or the machine's ELF
// name for machines Go does not target.
func archOf(ef *elf.File) string {
	switch ef.Machine {
	case elf.EM_X86_64:
		return "amd64"
	case elf.EM_AARCH64:
		return "arm64"
	case elf.EM_386:
		return "386"
	case elf.EM_ARM:
		return "arm"
	case elf.EM_RISCV:
		return "riscv64"
	case elf.EM_S390:
		return "s390x"
	case elf.EM_LOONGARCH:
		return "loong64"
	case elf.EM_PPC64:
		if ef.ByteOrder == binary.LittleEndian {
			return "ppc64le"
		}
		return "ppc64"
	}
	return ef.Machine.String()
}

func (b *Binary) useBuildInfo(bi *debug.BuildInfo) {
	b.setVersion(bi.GoVersion)
	b.Main = moduleOf(&bi.Main)
	for _, d := range bi.Deps {
		b.Modules = append(b.Modules, moduleOf(d))
	}
	if len(bi.Settings) > 0 {
		b.BuildSettings = make(map[string]string, len(bi.Settings))
		for _, s := range bi.Settings {
			b.BuildSettings[s.Key] = s.Value
		}
	}
}

func (b *Binary) setVersion(raw string) {
	b.GoVersionRaw = raw
	v, err := goversion.Parse(raw)
	if err != nil {
		b.GoVersionErr = err
		return
	}
	b.GoVersion = v
}

func moduleOf(m *debug.Module) Module {
	if m == nil {
		return Module{}
	}
	out := Module{Path: m.Path, Version: m.Version, Sum: m.Sum}
	if m.Replace != nil {
		r := moduleOf(m.Replace)
		out.Replace = &r
	}
	return out
}

// useLegacyBuildInfo handles binaries without a build info blob, which the
// linker writes since Go 1.13. Such a binary is still a Go binary if it has
// a Go function table; its version is then in runtime.buildVersion and its
// modules, if built in module mode, in the runtime/debug.modinfo string.
func (b *Binary) useLegacyBuildInfo(biErr error) error {
	if _, err := b.pclntab(); err != nil {
		return fmt.Errorf("%w: no build info (%v) and no Go function table (%v)", ErrNotGo, biErr, err)
	}
	raw, err := b.legacyBuildVersion()
	if err != nil {
		b.GoVersionErr = err
	} else {
		b.setVersion(raw)
	}
	if mod, ok := b.legacyModinfo(); ok {
		if bi, err := debug.ParseBuildInfo(mod); err == nil {
			b.Main = moduleOf(&bi.Main)
			for _, d := range bi.Deps {
				b.Modules = append(b.Modules, moduleOf(d))
			}
		}
	}
	return nil
}

// experiments merges the GOEXPERIMENT build setting ("boringcrypto,arenas")
// with the experiments in a version string. The linker appends them to the
// version as "go1.21.0 X:a,b" or, since Go 1.26 for versions without a
// '-', as "go1.26.0-X:a,b".
func experiments(version, setting string) []string {
	var out []string
	if setting != "" {
		out = append(out, strings.Split(setting, ",")...)
	}
	out = append(out, goversion.Experiments(version)...)
	for _, f := range strings.Fields(version) {
		if i := strings.Index(f, "-X:"); i >= 0 {
			out = append(out, strings.Split(f[i+len("-X:"):], ",")...)
		}
	}
	out = slices.DeleteFunc(out, func(s string) bool { return s == "" })
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) == 0 {
		return nil
	}
	return out
}

// segment returns the PT_LOAD segment whose file contents hold the n bytes
// at virtual address addr.
func (b *Binary) segment(addr, n uint64) (*elf.Prog, bool) {
	for _, p := range b.loads {
		if addr >= p.Vaddr && addr-p.Vaddr < p.Filesz && n <= p.Filesz-(addr-p.Vaddr) {
			return p, true
		}
	}
	return nil, false
}

// FileOffset translates a virtual address to the file offset holding its
// bytes, through the PT_LOAD segment containing it: off = addr - p_vaddr +
// p_offset. This is the offset a uprobe is attached at, for PIE and non-PIE
// binaries alike.
func (b *Binary) FileOffset(addr uint64) (uint64, error) {
	p, ok := b.segment(addr, 1)
	if !ok {
		return 0, fmt.Errorf("address %#x is not in a loaded segment", addr)
	}
	return addr - p.Vaddr + p.Off, nil
}

// readAt reads n bytes at virtual address addr from the file.
func (b *Binary) readAt(addr, n uint64) ([]byte, error) {
	p, ok := b.segment(addr, n)
	if !ok {
		return nil, fmt.Errorf("%d bytes at %#x are not in a loaded segment", n, addr)
	}
	buf := make([]byte, n)
	if _, err := b.f.ReadAt(buf, int64(addr-p.Vaddr+p.Off)); err != nil {
		return nil, fmt.Errorf("read %d bytes at %#x: %w", n, addr, err)
	}
	return buf, nil
}

// segmentData reads the file contents of a PT_LOAD segment.
func (b *Binary) segmentData(p *elf.Prog) ([]byte, error) {
	buf := make([]byte, p.Filesz)
	if _, err := b.f.ReadAt(buf, int64(p.Off)); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read segment at %#x: %w", p.Vaddr, err)
	}
	return buf, nil
}

// ptrSize is the size of a pointer in the target.
func (b *Binary) ptrSize() uint64 {
	if b.elf.Class == elf.ELFCLASS32 {
		return 4
	}
	return 8
}

// word decodes a target pointer from buf.
func (b *Binary) word(buf []byte) uint64 {
	if b.ptrSize() == 4 {
		return uint64(b.elf.ByteOrder.Uint32(buf))
	}
	return b.elf.ByteOrder.Uint64(buf)
}

// readPointer reads the pointer stored at addr as the dynamic loader would
// see it: for PIE, the linker records pointers as R_*_RELATIVE relocations
// whose addend is the link-time value, and the file may hold zero there.
func (b *Binary) readPointer(addr uint64) (uint64, error) {
	if v, ok := b.relativeRelocs()[addr]; ok {
		return v, nil
	}
	buf, err := b.readAt(addr, b.ptrSize())
	if err != nil {
		return 0, err
	}
	return b.word(buf), nil
}

// relativeRelocs returns the R_X86_64_RELATIVE and R_AARCH64_RELATIVE
// relocations of the binary as address -> addend. Only PIE binaries have
// them.
func (b *Binary) relativeRelocs() map[uint64]uint64 {
	b.relocOnce.Do(func() {
		b.relocs = map[uint64]uint64{}
		if b.elf.Class != elf.ELFCLASS64 {
			return
		}
		var relative uint32
		switch b.elf.Machine {
		case elf.EM_X86_64:
			relative = uint32(elf.R_X86_64_RELATIVE)
		case elf.EM_AARCH64:
			relative = uint32(elf.R_AARCH64_RELATIVE)
		default:
			return
		}
		for _, s := range b.elf.Sections {
			if s.Type != elf.SHT_RELA || s.Flags&elf.SHF_COMPRESSED != 0 {
				continue
			}
			data, err := s.Data()
			if err != nil {
				continue
			}
			for i := 0; i+24 <= len(data); i += 24 {
				off := b.elf.ByteOrder.Uint64(data[i:])
				info := b.elf.ByteOrder.Uint64(data[i+8:])
				if uint32(info) == relative {
					b.relocs[off] = b.elf.ByteOrder.Uint64(data[i+16:])
				}
			}
		}
	})
	return b.relocs
}

// symbols returns the .symtab symbols by name; the first definition of a
// name wins. ABI0 (assembly) functions are named "pkg.fn.abi0" there but
// "pkg.fn" in the Go function table, so they are also indexed without the
// suffix unless an ABIInternal function of that name exists.
func (b *Binary) symbols() (map[string]elf.Symbol, error) {
	b.symOnce.Do(func() {
		if b.Stripped {
			return
		}
		syms, err := b.elf.Symbols()
		if err != nil {
			b.symErr = fmt.Errorf("read .symtab: %w", err)
			return
		}
		b.syms = make(map[string]elf.Symbol, len(syms))
		for _, s := range syms {
			if s.Section == elf.SHN_UNDEF || s.Name == "" {
				continue
			}
			if _, dup := b.syms[s.Name]; !dup {
				b.syms[s.Name] = s
			}
		}
		for _, s := range syms {
			if name, ok := strings.CutSuffix(s.Name, ".abi0"); ok && elf.ST_TYPE(s.Info) == elf.STT_FUNC {
				if _, dup := b.syms[name]; !dup {
					b.syms[name] = s
				}
			}
		}
	})
	return b.syms, b.symErr
}

// indexAll returns the offsets of every occurrence of sep in s.
func indexAll(s, sep []byte) []int {
	var out []int
	for i := 0; ; {
		j := bytes.Index(s[i:], sep)
		if j < 0 {
			return out
		}
		out = append(out, i+j)
		i += j + 1
	}
}

// StdModule is the module name PackageModule gives the standard library.
const StdModule = "std"

// PackageModule returns the module that provides the package with import
// path pkg in b: StdModule for a standard-library package (no dot in its
// first path element), else the module of b with the longest path that is
// pkg or a prefix of it. ok is false when no module of b provides pkg.
func (b *Binary) PackageModule(pkg string) (m Module, ok bool) {
	first, _, _ := strings.Cut(pkg, "/")
	if !strings.Contains(first, ".") {
		return Module{Path: StdModule, Version: b.GoVersionRaw}, true
	}
	for _, c := range append([]Module{b.Main}, b.Modules...) {
		if c.Path != "" && (pkg == c.Path || strings.HasPrefix(pkg, c.Path+"/")) && len(c.Path) > len(m.Path) {
			m, ok = c, true
		}
	}
	return m, ok
}

// SymbolPackage returns the import path of the package that defines the
// function with symbol name sym: "net/http" for
// "net/http.(*Transport).roundTrip", "google.golang.org/grpc" for
// "google.golang.org/grpc.(*Server).handleStream".
func SymbolPackage(sym string) string {
	slash := strings.LastIndexByte(sym, '/')
	dot := strings.IndexByte(sym[slash+1:], '.')
	if dot < 0 {
		return sym
	}
	return sym[:slash+1+dot]
}

// DataSymbol returns the virtual address of the data symbol name (an
// STT_OBJECT of .symtab, such as "go:itab.*crypto/tls.Conn,net.Conn"), and
// whether the binary has it: a stripped binary has none.
func (b *Binary) DataSymbol(name string) (uint64, bool) {
	syms, err := b.symbols()
	if err != nil {
		return 0, false
	}
	s, ok := syms[name]
	if !ok || elf.ST_TYPE(s.Info) != elf.STT_OBJECT {
		return 0, false
	}
	return s.Value, true
}
