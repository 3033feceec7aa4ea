package layout

import (
	"debug/dwarf"
	"debug/elf"
	"fmt"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/offsets"
)

// bigProgram links a good part of the standard library, so that its DWARF
// (some 8 MB of binary, 0.8 MB of compressed .debug_info) is more like that
// of a real service than the probe's.
var bigProgram = program{GOARCH: runtime.GOARCH, Source: `package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"database/sql"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"text/template"
)

func main() {
	ctx := context.WithValue(context.Background(), "k", 1)
	r, _ := http.NewRequestWithContext(ctx, "GET", "http://x/", nil)
	w := bufio.NewWriter(os.Stdout)
	j, _ := json.Marshal(map[string]int{"a": 1})
	x, _ := xml.Marshal(struct{ A int }{1})
	dump, _ := httputil.DumpRequest(r, false)
	fmt.Fprintln(w, r.URL, string(j), string(x), len(dump), &tls.Config{}, sql.Drivers(), &net.TCPAddr{})
	template.Must(template.New("t").Parse("{{.}}")).Execute(w, 1)
	w.Flush()
	if len(os.Args) > 5 {
		http.ListenAndServe(":0", nil)
	}
}
`}

// benchFields are the fields the benchmarks resolve: what an HTTP server
// and client instrumentation needs, and then some.
func benchFields(tb testing.TB) []offsets.FieldID {
	var ss []string
	for typ, fields := range map[string][]string{
		"net/http.Request": {"Method", "URL", "Proto", "ProtoMajor", "Header", "Body", "ContentLength", "Host", "Form", "RemoteAddr", "RequestURI", "TLS", "Response", "ctx"},
		"net/url.URL":      {"Scheme", "Opaque", "User", "Host", "Path", "RawPath", "RawQuery", "Fragment"},
		"runtime.g":        {"goid", "m", "sched", "sched.sp", "sched.pc", "stack", "stack.lo", "stack.hi", "atomicstatus", "labels"},
		"bufio.Writer":     {"err", "buf", "n", "wr"},
		"context.valueCtx": {"Context", "key", "val"},
		"net.TCPAddr":      {"IP", "Port", "Zone"},
	} {
		for _, f := range fields {
			ss = append(ss, typ+"."+f)
		}
	}
	return fieldIDs(tb, ss...)
}

// BenchmarkFields opens the binary and resolves benchFields, as the tracer
// does for a binary whose Go version the database does not know.
func BenchmarkFields(b *testing.B) {
	path := bigProgram.build(b)
	ids := benchFields(b)
	want, err := fullWalk(path, ids)
	require.NoError(b, err)
	got := readFieldsOnce(b, path, ids)
	require.Len(b, got, len(want))
	for id, w := range want {
		// debug/dwarf keeps no names of pointer types, so types are not compared.
		require.Equal(b, w.Offset, got[id].Offset, "targeted reader and full walk disagree on %s", id)
		require.Equal(b, w.Size, got[id].Size, "targeted reader and full walk disagree on %s", id)
	}

	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		readFieldsOnce(b, path, ids)
	}
}

func readFieldsOnce(b *testing.B, path string, ids []offsets.FieldID) map[offsets.FieldID]offsets.Value {
	f, err := Open(path)
	require.NoError(b, err)
	defer f.Close()
	got, err := f.Fields(ids)
	require.NoError(b, err)
	return got
}

// BenchmarkFieldsOpenFile is BenchmarkFields without loading the sections:
// the scan for the types and their decoding alone.
func BenchmarkFieldsOpenFile(b *testing.B) {
	f, err := Open(bigProgram.build(b))
	require.NoError(b, err)
	defer f.Close()
	ids := benchFields(b)

	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		_, err := f.Fields(ids)
		require.NoError(b, err)
	}
}

// BenchmarkFullWalk is the baseline: what a reader that indexes every type
// does, walking all of the DWARF with the standard library and decoding
// every struct type before looking fields up.
func BenchmarkFullWalk(b *testing.B) {
	path := bigProgram.build(b)
	ids := benchFields(b)

	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		_, err := fullWalk(path, ids)
		require.NoError(b, err)
	}
}

// fullWalk resolves ids by decoding every struct type in the DWARF of the
// binary at path with (*dwarf.Data).Type.
func fullWalk(path string, ids []offsets.FieldID) (map[offsets.FieldID]offsets.Value, error) {
	ef, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer ef.Close()
	d, err := ef.DWARF()
	if err != nil {
		return nil, err
	}

	structs := make(map[string]*dwarf.StructType)
	r := d.Reader()
	for {
		e, err := r.Next()
		if err != nil {
			return nil, err
		}
		if e == nil {
			break
		}
		if e.Tag != dwarf.TagStructType {
			continue
		}
		t, err := d.Type(e.Offset)
		if err != nil {
			return nil, err
		}
		if st, ok := t.(*dwarf.StructType); ok && st.StructName != "" {
			structs[st.StructName] = st
		}
	}

	found := make(map[offsets.FieldID]offsets.Value, len(ids))
	for _, id := range ids {
		st, ok := structs[id.TypeName()]
		if !ok {
			return nil, fmt.Errorf("%s: type not found", id)
		}
		var t dwarf.Type = st
		var off int64
		for _, name := range id.Path() {
			for td, ok := t.(*dwarf.TypedefType); ok; td, ok = t.(*dwarf.TypedefType) {
				t = td.Type
			}
			st, ok := t.(*dwarf.StructType)
			if !ok {
				return nil, fmt.Errorf("%s: not a struct", id)
			}
			var field *dwarf.StructField
			for _, f := range st.Field {
				if f.Name == name {
					field = f
				}
			}
			if field == nil {
				return nil, fmt.Errorf("%s: no field %q", id, name)
			}
			off += field.ByteOffset
			t = field.Type
		}
		found[id] = offsets.Value{Offset: uint64(off), Size: uint64(t.Size()), Type: t.String()}
	}
	return found, nil
}
