package resolve

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/offsetdb/offsetdb"
	"github.com/offsetdb/offsetdb/gobinary"
	"github.com/offsetdb/offsetdb/offsets"
)

// benchFields are the fields the net/http server and client
// instrumentations need.
var benchFields = []string{
	"runtime.g.goid", "net/http.Request.Method", "net/http.Request.URL", "net/http.Request.Host",
	"net/http.Request.RemoteAddr", "net/http.Request.ProtoMajor", "net/http.Request.ProtoMinor",
	"net/http.Request.Pattern", "net/url.URL.Scheme", "net/url.URL.Host", "net/url.URL.Path",
	"net/url.URL.RawQuery", "net/http.response.status", "net/http.Response.StatusCode",
}

// BenchmarkResolve resolves the instrumentations' fields for a small
// net/http server built by the local toolchain: "database" from the
// embedded database (opened per op, as once per traced binary), "dwarf"
// from the binary's DWARF alone (the fallback for releases the database
// lacks).
func BenchmarkResolve(b *testing.B) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		b.Skipf("no go toolchain to build the target: %v", err)
	}
	dir := b.TempDir()
	src := "package main\n\nimport \"net/http\"\n\nfunc main() {\n\thttp.HandleFunc(\"/\", func(w http.ResponseWriter, r *http.Request) {})\n\t_ = http.ListenAndServe(\"127.0.0.1:0\", nil)\n}\n"
	for name, content := range map[string]string{"main.go": src, "go.mod": "module example.com/target\n\ngo 1.22\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	cmd := exec.Command(goCmd, "build", "-o", "target", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build target: %v: %s", err, out)
	}
	bin, err := gobinary.Open(filepath.Join(dir, "target"))
	if err != nil {
		b.Fatal(err)
	}
	defer bin.Close()
	var ids []offsets.FieldID
	for _, s := range benchFields {
		id, err := offsets.ParseFieldID(s)
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, id)
	}

	resolveAll := func(b *testing.B, r *Resolver, source string) {
		for id, f := range r.Resolve(bin, ids) {
			if f.Status == Unresolved || !strings.HasPrefix(f.Provenance, source) {
				b.Skipf("%s: %s from %q, not from the %s: %v", id, f.Status, f.Provenance, source, f.Err)
			}
		}
	}
	b.Run("database", func(b *testing.B) {
		open := func() *Resolver {
			db, err := offsets.Open(offsetdb.Data())
			if err != nil {
				b.Fatal(err)
			}
			return &Resolver{DBs: []*offsets.DB{db}, NoDWARF: true}
		}
		resolveAll(b, open(), "database")
		b.ReportAllocs()
		for b.Loop() {
			open().Resolve(bin, ids)
		}
	})
	b.Run("dwarf", func(b *testing.B) {
		r := &Resolver{}
		resolveAll(b, r, "dwarf")
		b.ReportAllocs()
		for b.Loop() {
			r.Resolve(bin, ids)
		}
	})
}
