//go:build linux && (amd64 || arm64)

package pgx

import (
	"github.com/cilium/ebpf"

	"github.com/offsetdb/offsetdb/tracer/instrumentation/databasesql"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/databasesql/dbconv"
	"github.com/offsetdb/offsetdb/tracer/spans"
)

// spec returns the BPF objects of pgx.c, embedded by bpf2go.
func spec() (*ebpf.CollectionSpec, error) {
	return loadPgx()
}

// decode is the instrumentation's uprobe.Instrumentation.Decode. The
// programs submit the record format of the database/sql programs
// (bpf/db.h), so package databasesql decodes it.
func decode(record []byte, out *spans.Span) error {
	ev, err := databasesql.DecodeRecord(record)
	if err != nil {
		return err
	}
	dbconv.Describe(&ev, out)
	return nil
}

// recordPIDAt is where the record format of package databasesql holds the
// submitting process (uprobe.Instrumentation.PIDAt).
var recordPIDAt = databasesql.RecordPIDAt
