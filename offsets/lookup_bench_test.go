package offsets_test

import (
	"testing"

	"github.com/offsetdb/offsetdb"
	"github.com/offsetdb/offsetdb/offsets"
)

// lookupFields are the fields the net/http server instrumentation asks for.
var lookupFields = []string{
	"runtime.g.goid", "net/http.Request.Method", "net/http.Request.URL", "net/http.Request.Host",
	"net/http.Request.RemoteAddr", "net/url.URL.Path", "net/url.URL.RawQuery", "net/http.response.status",
}

// BenchmarkLookup measures DB.Lookup on the embedded database: "cached" is
// one lookup once the std shard is decoded (the steady state), "open" opens
// the database and looks up every field of the server instrumentation, as
// the tracer does once per traced binary (index, shard read, sha256 check,
// JSON decode).
func BenchmarkLookup(b *testing.B) {
	var ids []offsets.FieldID
	for _, s := range lookupFields {
		id, err := offsets.ParseFieldID(s)
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, id)
	}
	const version, arch = "go1.22.5", "amd64"
	db, err := offsets.Open(offsetdb.Data())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := db.Lookup(offsets.StdModule, version, arch, ids[0]); err != nil {
		b.Skipf("embedded database cannot answer for %s: %v", version, err)
	}
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := db.Lookup(offsets.StdModule, version, arch, ids[i%len(ids)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("open", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			db, err := offsets.Open(offsetdb.Data())
			if err != nil {
				b.Fatal(err)
			}
			for _, id := range ids {
				if _, err := db.Lookup(offsets.StdModule, version, arch, id); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
