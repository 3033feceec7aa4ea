//go:build linux && (amd64 || arm64)

package pgx_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/tracer/instrumentation/databasesql/dbtest"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

func get(t *testing.T, url string) {
	resp, err := http.Get(url)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", url, body)
}

// TestTracePgxAcrossVersions runs dbsvc, built for each target of
// dbtest.Matrix (pgx v5.4.3, v5.7.1 stripped, v5.12.0), against a real
// PostgreSQL server and checks the spans of its /pgx handler, which uses a
// pgxpool.Pool (query, QueryRow, exec, a failing exec, CopyFrom, a
// transaction, two batches), and of its /sql
// handler through pgx's database/sql driver, where each pgx call is a
// child of the database/sql span that made it (its "begin" of BEGIN's).
// Failed calls carry the server's SQLSTATE as error.type.
func TestTracePgxAcrossVersions(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: builds services with toolchains from the module proxy and starts database servers")
	}
	srv := dbtest.StartServers(t)
	for _, tg := range dbtest.Targets(t) {
		t.Run(tg.String(), func(t *testing.T) {
			bin := dbtest.OwnCopy(t, tg.Build(t))
			dbtest.Setup(t, bin, srv)
			c := dbtest.Attach(t, bin, "pgx", "database/sql")
			addr := dbtest.Serve(t, bin, srv)
			get(t, fmt.Sprintf("http://%s/pgx?id=1", addr))
			// pgx, server
			got := c.Wait(t, 10+1)
			checkNative(t, got, srv)
			get(t, fmt.Sprintf("http://%s/sql?db=pgx&id=2", addr))
			// database/sql 10 (two BEGINs), pgx 10 (a "begin" under each), server
			got = c.Wait(t, 10+10+1)
			checkUnderSQL(t, got)
			assert.Zero(t, c.Session.Drops())
			assert.Zero(t, c.Session.InFlightLost(), "spans lost in flight")
		})
	}
}

func checkNative(t *testing.T, got []dbtest.Span, srv dbtest.Servers) {
	var server dbtest.Span
	for _, sp := range got {
		if sp.Inst == "net/http server" {
			server = sp
		}
	}
	require.True(t, server.SpanID.IsValid(), "no server span")
	type want struct {
		name  string
		error bool
	}
	tally := map[want]int{}
	for _, sp := range got {
		if sp.Inst != "pgx" {
			continue
		}
		t.Logf("%s %q status=%v %v", sp.Kind, sp.Name, sp.Status, sp.Attrs)
		tally[want{sp.Name, sp.Status == codes.Error}]++
		assert.Equal(t, trace.SpanKindClient, sp.Kind)
		assert.Equal(t, server.SpanID, sp.ParentID, "%s: parent", sp.Name)
		assert.Equal(t, server.TraceID, sp.TraceID, "%s: trace", sp.Name)
		assert.Equal(t, "postgresql", sp.Attrs["db.system.name"])
		assert.Equal(t, "127.0.0.1", sp.Attrs["server.address"])
		assert.Contains(t, srv.PG, fmt.Sprintf("127.0.0.1:%d/", sp.Attrs["server.port"]))
		assert.Equal(t, dbtest.Database, sp.Attrs["db.namespace"])
		switch {
		case sp.Name == "COPY hits":
			assert.Equal(t, "hits", sp.Attrs["db.collection.name"])
			assert.NotContains(t, sp.Attrs, "db.query.text", "a COPY's rows are never read")
		case sp.Name == "BATCH INSERT hits":
			// Three queries of one text.
			assert.Equal(t, "BATCH INSERT", sp.Attrs["db.operation.name"])
			assert.Equal(t, int64(3), sp.Attrs["db.operation.batch.size"])
			assert.Equal(t, "BATCH INSERT hits", sp.Attrs["db.query.summary"])
			assert.Equal(t, "INSERT INTO hits (req) VALUES ($1)", sp.Attrs["db.query.text"])
		case sp.Name == "BATCH SELECT":
			// Two different texts: the operation, no text.
			assert.Equal(t, "BATCH SELECT", sp.Attrs["db.operation.name"])
			assert.Equal(t, int64(2), sp.Attrs["db.operation.batch.size"])
			assert.NotContains(t, sp.Attrs, "db.query.text")
		default:
			assert.Contains(t, strings.ToUpper(fmt.Sprint(sp.Attrs["db.query.text"])), strings.SplitN(sp.Name, " ", 2)[0])
		}
		if sp.Status == codes.Error {
			// undefined_table, from the server's ErrorResponse.
			assert.Equal(t, "42P01", sp.Attrs["error.type"], "%s", sp.Name)
			assert.Equal(t, "42P01", sp.Attrs["db.response.status_code"], "%s", sp.Name)
		} else {
			assert.NotContains(t, sp.Attrs, "error.type", "%s", sp.Name)
			assert.NotContains(t, sp.Attrs, "db.response.status_code", "%s", sp.Name)
		}
		assert.False(t, sp.Start.Before(server.Start) || sp.End.After(server.End), "%s outside its request", sp.Name)
	}
	assert.Equal(t, map[want]int{
		{"SELECT items", false}:        2, // Query, QueryRow
		{"INSERT hits", false}:         1,
		{"SELECT no_such_table", true}: 1,
		{"COPY hits", false}:           1,
		{"BEGIN", false}:               1, // pool.Begin: pgx's "begin"
		{"UPDATE items", false}:        1,
		{"COMMIT", false}:              1,
		{"BATCH INSERT hits", false}:   1,
		{"BATCH SELECT", true}:         1, // its missing table's prepare fails while SendBatch runs
	}, tally, "pgx spans of /pgx by name and error")
}

func checkUnderSQL(t *testing.T, got []dbtest.Span) {
	byID := map[trace.SpanID]dbtest.Span{}
	for _, sp := range got {
		byID[sp.SpanID] = sp
	}
	children, begins := 0, 0
	for _, sp := range got {
		if sp.Inst != "pgx" {
			continue
		}
		t.Logf("%s %q status=%v parent=%s", sp.Kind, sp.Name, sp.Status, byID[sp.ParentID].Inst)
		parent, ok := byID[sp.ParentID]
		if !assert.True(t, ok, "pgx %s: parent %s not in the request", sp.Name, sp.ParentID) {
			continue
		}
		assert.Equal(t, parent.TraceID, sp.TraceID)
		if parent.Inst != "database/sql" {
			t.Errorf("pgx %s: parent is a %s span", sp.Name, parent.Inst)
			continue
		}
		children++
		assert.False(t, sp.Start.Before(parent.Start) || sp.End.After(parent.End), "%s outside its database/sql span", sp.Name)
		if sp.Name == "BEGIN" {
			// pgx's "begin" Exec, under database/sql's BEGIN span.
			assert.Equal(t, "BEGIN", parent.Name)
			begins++
		}
		if sp.Status == codes.Error {
			assert.Equal(t, "42P01", sp.Attrs["error.type"], "%s", sp.Name)
		}
	}
	assert.Equal(t, 10, children, "a pgx span under each database/sql span")
	assert.Equal(t, 2, begins)
}
