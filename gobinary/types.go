package gobinary

import (
	"debug/elf"
	"fmt"
	"strings"
)

// TypeName returns the Go name of the runtime type descriptor at virtual
// address addr ("string", "*main.MyError", "runtime.plainError"): what the
// type word of an interface value points to, once the load bias of a PIE
// is taken off. Names are the linker's, with full import paths.
//
// It reads .symtab, where the linker names each type descriptor
// "type:NAME" (Go 1.20+) or "type.NAME" (before): a stripped binary has no
// names, and TypeName reports false for every address, as it does for an
// address where no type descriptor starts. The first call indexes the
// table; later calls are map lookups.
func (b *Binary) TypeName(addr uint64) (string, bool, error) {
	b.typeOnce.Do(func() {
		if b.Stripped {
			return
		}
		syms, err := b.elf.Symbols()
		if err != nil {
			b.typeErr = fmt.Errorf("read .symtab: %w", err)
			return
		}
		b.types = make(map[uint64]string)
		for _, s := range syms {
			if s.Section == elf.SHN_UNDEF || elf.ST_TYPE(s.Info) == elf.STT_FUNC {
				continue
			}
			name, ok := strings.CutPrefix(s.Name, "type:")
			if !ok {
				name, ok = strings.CutPrefix(s.Name, "type.")
			}
			// "type:.namedata.*", "type:.eq.*", ... are not descriptors.
			if !ok || name == "" || name[0] == '.' {
				continue
			}
			if _, dup := b.types[s.Value]; !dup {
				b.types[s.Value] = name
			}
		}
	})
	if b.typeErr != nil {
		return "", false, b.typeErr
	}
	name, ok := b.types[addr]
	return name, ok, nil
}
