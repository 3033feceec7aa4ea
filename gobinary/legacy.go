package gobinary

import (
	"bytes"
	"debug/elf"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Before Go 1.13 the linker wrote no build info blob. The toolchain version
// is then only in the runtime.buildVersion string variable, and module
// information, for module-mode builds, in a string the go command linked
// into runtime/debug.modinfo between these two markers
// (cmd/go/internal/modload).
var (
	modinfoStart = []byte("\x30\x77\xaf\x0c\x92\x74\x08\x02\x41\xe1\xc1\x07\xe6\xd6\x18\xe6")
	modinfoEnd   = []byte("\xf9\x32\x43\x31\x86\x18\x20\x72\x00\x82\x42\x10\x41\x16\xd8\xf2")
)

// versionString matches the values runtime.buildVersion can take.
var versionString = regexp.MustCompile(`^(go1\.[0-9]+(\.[0-9]+)?((beta|rc)[0-9]+)?(b[0-9]+)?([ -]X:[a-z0-9,]+)?|devel [ -~]+)$`)

// legacyBuildVersion reads runtime.buildVersion through its symbol or, in a
// stripped binary, by scanning for its string header.
func (b *Binary) legacyBuildVersion() (string, error) {
	if syms, _ := b.symbols(); syms != nil {
		if s, ok := syms["runtime.buildVersion"]; ok {
			v, err := b.readGoString(s.Value)
			if err != nil {
				return "", fmt.Errorf("%w: read runtime.buildVersion: %v", ErrUnknownVersion, err)
			}
			return v, nil
		}
	}
	return b.scanBuildVersion()
}

// readGoString reads the Go string whose header (pointer, length) is at addr.
func (b *Binary) readGoString(addr uint64) (string, error) {
	ptr, err := b.readPointer(addr)
	if err != nil {
		return "", err
	}
	n, err := b.readPointer(addr + b.ptrSize())
	if err != nil {
		return "", err
	}
	if n > 1<<12 {
		return "", fmt.Errorf("string at %#x is %d bytes long", addr, n)
	}
	s, err := b.readAt(ptr, n)
	return string(s), err
}

// segmentContents is a PT_LOAD segment and its file contents.
type segmentContents struct {
	prog *elf.Prog
	data []byte
}

func (b *Binary) loadedSegments() ([]segmentContents, error) {
	var segs []segmentContents
	for _, p := range b.loads {
		data, err := b.segmentData(p)
		if err != nil {
			return nil, err
		}
		segs = append(segs, segmentContents{p, data})
	}
	return segs, nil
}

// scanBuildVersion finds runtime.buildVersion in a stripped binary: a string
// header in a writable segment that points at a version string in a
// read-only one. It succeeds only when exactly one distinct version is
// found, so a program's own "go1.x" string variables make it fail rather
// than guess.
func (b *Binary) scanBuildVersion() (string, error) {
	segs, err := b.loadedSegments()
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnknownVersion, err)
	}
	found := map[string]bool{}
	check := func(ptr, n uint64) {
		if n < 4 || n > 128 {
			return
		}
		for _, s := range segs {
			p := s.prog
			if p.Flags&elf.PF_W != 0 || ptr < p.Vaddr || ptr-p.Vaddr >= p.Filesz || n > p.Filesz-(ptr-p.Vaddr) {
				continue
			}
			str := s.data[ptr-p.Vaddr:][:n]
			if (bytes.HasPrefix(str, []byte("go1.")) || bytes.HasPrefix(str, []byte("devel "))) && versionString.Match(str) {
				found[string(str)] = true
			}
			return
		}
	}
	ps := b.ptrSize()
	for _, s := range segs {
		p := s.prog
		if p.Flags&elf.PF_W == 0 {
			continue
		}
		for i := (ps - p.Vaddr%ps) % ps; i+2*ps <= uint64(len(s.data)); i += ps {
			check(b.word(s.data[i:]), b.word(s.data[i+ps:]))
		}
	}
	for addr, ptr := range b.relativeRelocs() {
		if n, err := b.readAt(addr+ps, ps); err == nil {
			check(ptr, b.word(n))
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("%w: no runtime.buildVersion symbol and no version string found", ErrUnknownVersion)
	case 1:
		for v := range found {
			return v, nil
		}
	}
	versions := make([]string, 0, len(found))
	for v := range found {
		versions = append(versions, v)
	}
	slices.Sort(versions)
	return "", fmt.Errorf("%w: several candidate version strings: %s", ErrUnknownVersion, strings.Join(versions, ", "))
}

// legacyModinfo returns the module information text between the modinfo
// markers, in the format runtime/debug.ParseBuildInfo reads.
func (b *Binary) legacyModinfo() (string, bool) {
	segs, err := b.loadedSegments()
	if err != nil {
		return "", false
	}
	for _, s := range segs {
		for _, i := range indexAll(s.data, modinfoStart) {
			rest := s.data[i+len(modinfoStart):]
			if j := bytes.Index(rest, modinfoEnd); j >= 0 && j < 1<<20 {
				return string(rest[:j]), true
			}
		}
	}
	return "", false
}
