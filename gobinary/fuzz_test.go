package gobinary

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpen feeds arbitrary files to Open and Function: they may fail but
// must not panic or hang. Seeds are the headers of a real Go binary, whose
// section and segment tables then point past the end of the file.
func FuzzOpen(f *testing.F) {
	f.Add([]byte("\x7fELF"))
	f.Add([]byte("#!/bin/sh\n"))
	if data, err := os.ReadFile(build(f, "normal")); err == nil {
		f.Add(data[:4096])
		f.Add(data[:64])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "bin")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		b, err := Open(path)
		if err != nil {
			return
		}
		defer b.Close()
		for _, name := range append(probed, "main.main") {
			b.Function(name)
		}
	})
}
