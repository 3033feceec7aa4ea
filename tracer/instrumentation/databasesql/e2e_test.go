//go:build linux && (amd64 || arm64)

package databasesql_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sys/unix"

	"github.com/offsetdb/offsetdb/tracer/instrumentation/databasesql/dbtest"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// get requests url and fails unless it answers 200.
func get(t *testing.T, url string) {
	resp, err := http.Get(url)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", url, body)
}

// TestTraceDatabaseSQLAcrossVersions runs dbsvc, built for each target of
// dbtest.Matrix, against real PostgreSQL and MariaDB servers, and checks
// the spans of every call its /sql handler makes through lib/pq, pgx's
// stdlib driver and go-sql-driver/mysql: names, query text, system,
// server, namespace, the failed query and its error code, that begin,
// commit and rollback have spans and a deferred Rollback after Commit none, that no span carries
// the DSN's password, and that each is a child of the request's span.
func TestTraceDatabaseSQLAcrossVersions(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: builds services with toolchains from the module proxy and starts database servers")
	}
	srv := dbtest.StartServers(t)
	for _, tg := range dbtest.Targets(t) {
		t.Run(tg.String(), func(t *testing.T) {
			bin := dbtest.OwnCopy(t, tg.Build(t))
			dbtest.Setup(t, bin, srv)
			c := dbtest.Attach(t, bin, "database/sql")
			addr := dbtest.Serve(t, bin, srv)
			drivers := []string{"pq", "pgx", "mysql"}
			for i, d := range drivers {
				get(t, fmt.Sprintf("http://%s/sql?db=%s&id=%d", addr, d, i))
			}
			get(t, fmt.Sprintf("http://%s/down?id=9", addr))
			get(t, fmt.Sprintf("http://%s/conn?id=10", addr))
			got := c.Wait(t, len(drivers)*11+3+5)
			assert.Zero(t, c.Session.Drops())
			assert.Zero(t, c.Session.InFlightLost(), "spans lost in flight")
			checkSQL(t, checkConn(t, checkDown(t, got)), drivers)
		})
	}
}

// TestTraceDatabaseSQLOnStackABIReleases is the same check for dbsvcold
// built with releases before the register calling convention (arguments
// and results on the stack, g in thread-local storage), one stripped,
// through lib/pq and go-sql-driver/mysql.
func TestTraceDatabaseSQLOnStackABIReleases(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: builds services with toolchains from the module proxy and starts database servers")
	}
	srv := dbtest.Servers{PG: dbtest.StartPostgres(t), MySQL: dbtest.StartMariaDB(t)}
	for _, tg := range dbtest.OldMatrix {
		t.Run(tg.String(), func(t *testing.T) {
			bin := dbtest.OwnCopy(t, tg.Build(t))
			dbtest.Setup(t, bin, srv)
			c := dbtest.Attach(t, bin, "database/sql", "goroutine context")
			addr := dbtest.Serve(t, bin, srv)
			drivers := []string{"pq", "mysql"}
			for i, d := range drivers {
				get(t, fmt.Sprintf("http://%s/sql?db=%s&id=%d", addr, d, i))
			}
			got := c.Wait(t, len(drivers)*11)
			assert.Zero(t, c.Session.Drops())
			assert.Zero(t, c.Session.InFlightLost(), "spans lost in flight")
			checkSQL(t, got, drivers)
		})
	}
}

// splitRequest finds the server span of the request for path and splits
// got into that request's database/sql spans and the spans of other
// traces.
func splitRequest(t *testing.T, got []dbtest.Span, path string) (server dbtest.Span, mine, rest []dbtest.Span) {
	t.Helper()
	for _, sp := range got {
		if sp.Inst == "net/http server" && sp.Attrs["url.path"] == path {
			server = sp
		}
	}
	require.NotEmpty(t, server.Name, "the %s request's span", path)
	for _, sp := range got {
		switch {
		case sp.TraceID != server.TraceID:
			rest = append(rest, sp)
		case sp.Inst == "database/sql":
			mine = append(mine, sp)
		}
	}
	return server, mine, rest
}

// checkDown checks the spans of the /down request, whose Query and Exec
// fail to get a connection (nothing listens on the server's port) and so
// never reach the driver: each must still be a failed span with its query
// text (the Exec's cut at 255 bytes, and marked cut), under the request's
// span. It returns the other spans.
func checkDown(t *testing.T, got []dbtest.Span) []dbtest.Span {
	server, mine, rest := splitRequest(t, got, "/down")
	queries := map[string]bool{}
	for _, sp := range mine {
		t.Logf("down: %s %q status=%v %v", sp.Kind, sp.Name, sp.Status, sp.Attrs)
		assert.Equal(t, server.SpanID, sp.ParentID, "down %s: parent", sp.Name)
		assert.Equal(t, codes.Error, sp.Status, "down %s", sp.Name)
		assert.Equal(t, "postgresql", sp.Attrs["db.system.name"], "down %s", sp.Name)
		assert.Equal(t, int64(1), sp.Attrs["server.port"], "down %s", sp.Name)
		assert.False(t, sp.End.Before(sp.Start), "down %s: ends before it starts", sp.Name)
		q := fmt.Sprint(sp.Attrs["db.query.text"])
		queries[q] = true
		if strings.HasPrefix(q, "INSERT") {
			assert.Equal(t, []string{"db.query.text"}, sp.Attrs["offsetdb.truncated"], "down %s: a cut text is marked", sp.Name)
		} else {
			assert.NotContains(t, sp.Attrs, "offsetdb.truncated", "down %s", sp.Name)
		}
	}
	long := "INSERT INTO hits (req) VALUES ($1) -- " + strings.Repeat("long ", 60)
	assert.Equal(t, map[string]bool{
		"SELECT id FROM items WHERE id = $1": true,
		long[:255]:                           true,
	}, queries, "spans of the calls that got no connection")
	return rest
}

// checkConn checks the spans of the /conn request, which queries, execs,
// begins a transaction and rolls it back through a database/sql Conn (its
// DB read from Conn.db): a span each, with the server of the DB. It returns the other spans.
func checkConn(t *testing.T, got []dbtest.Span) []dbtest.Span {
	server, mine, rest := splitRequest(t, got, "/conn")
	names := map[string]int{}
	for _, sp := range mine {
		t.Logf("conn: %s %q status=%v %v", sp.Kind, sp.Name, sp.Status, sp.Attrs)
		names[sp.Name]++
		assert.Equal(t, server.SpanID, sp.ParentID, "conn %s: parent", sp.Name)
		assert.Equal(t, codes.Unset, sp.Status, "conn %s", sp.Name)
		assert.Equal(t, "postgresql", sp.Attrs["db.system.name"], "conn %s", sp.Name)
		assert.Equal(t, "127.0.0.1", sp.Attrs["server.address"], "conn %s", sp.Name)
		assert.Equal(t, dbtest.Database, sp.Attrs["db.namespace"], "conn %s", sp.Name)
	}
	assert.Equal(t, map[string]int{"SELECT items": 1, "INSERT hits": 1, "BEGIN": 1, "ROLLBACK": 1}, names, "spans of the calls through a Conn")
	return rest
}

func checkSQL(t *testing.T, got []dbtest.Span, drivers []string) {
	servers := map[trace.SpanID]dbtest.Span{}
	byDriver := map[string]trace.TraceID{}
	for _, sp := range got {
		if sp.Inst == "net/http server" {
			servers[sp.SpanID] = sp
			q, _ := sp.Attrs["url.query"].(string)
			for _, d := range drivers {
				if strings.Contains(q, "db="+d+"&") {
					byDriver[d] = sp.TraceID
				}
			}
		}
	}
	require.Len(t, servers, len(drivers), "server spans")
	system := map[string]string{"pq": "postgresql", "pgx": "postgresql", "mysql": "mysql"}
	errorType := map[string]string{"pq": "42P01", "pgx": "42P01", "mysql": "1146"}
	port := map[string]bool{}
	for _, d := range drivers {
		type want struct {
			name  string
			error bool
		}
		names := map[want]int{}
		for _, sp := range got {
			if sp.Inst != "database/sql" || sp.TraceID != byDriver[d] {
				continue
			}
			names[want{sp.Name, sp.Status == codes.Error}]++
			t.Logf("%s: %s %q status=%v %v", d, sp.Kind, sp.Name, sp.Status, sp.Attrs)
			assert.Equal(t, trace.SpanKindClient, sp.Kind)
			parent, ok := servers[sp.ParentID]
			if assert.True(t, ok, "%s %s: parent %s is no server span", d, sp.Name, sp.ParentID) {
				assert.False(t, sp.Start.Before(parent.Start), "%s %s starts before its request", d, sp.Name)
				assert.False(t, sp.End.After(parent.End), "%s %s ends after its request", d, sp.Name)
			}
			assert.Equal(t, system[d], sp.Attrs["db.system.name"], "%s %s", d, sp.Name)
			assert.Equal(t, "127.0.0.1", sp.Attrs["server.address"], "%s %s", d, sp.Name)
			assert.Equal(t, dbtest.Database, sp.Attrs["db.namespace"], "%s %s", d, sp.Name)
			if p, ok := sp.Attrs["server.port"].(int64); assert.True(t, ok, "%s %s: server.port", d, sp.Name) {
				port[fmt.Sprint(system[d], p)] = true
			}
			for k, v := range sp.Attrs {
				assert.NotContains(t, fmt.Sprint(v), dbtest.Password, "%s %s: attribute %s", d, sp.Name, k)
			}
			switch sp.Name {
			case "BEGIN", "COMMIT", "ROLLBACK":
				assert.Equal(t, sp.Name, sp.Attrs["db.operation.name"], "%s %s", d, sp.Name)
				assert.NotContains(t, sp.Attrs, "db.query.text", "%s %s", d, sp.Name)
			default:
				assert.Contains(t, sp.Attrs["db.query.text"], strings.SplitN(sp.Name, " ", 2)[0], "%s %s", d, sp.Name)
			}
			if sp.Status == codes.Error {
				// The server's code, from its error response: MySQL's
				// ER_NO_SUCH_TABLE, PostgreSQL's undefined_table.
				assert.Equal(t, errorType[d], sp.Attrs["error.type"], "%s %s", d, sp.Name)
				assert.Equal(t, errorType[d], sp.Attrs["db.response.status_code"], "%s %s", d, sp.Name)
				assert.Equal(t, "SELECT * FROM no_such_table", sp.Attrs["db.query.text"])
			} else {
				assert.NotContains(t, sp.Attrs, "error.type", "%s %s", d, sp.Name)
				assert.NotContains(t, sp.Attrs, "db.response.status_code", "%s %s", d, sp.Name)
			}
		}
		assert.Equal(t, map[want]int{
			{"SELECT items", false}:        2, // a query, a prepared statement's
			{"INSERT hits", false}:         2, // an exec, a prepared statement's
			{"BEGIN", false}:               2, // DB.BeginTx, twice
			{"UPDATE items", false}:        1, // in the transaction
			{"COMMIT", false}:              1,
			{"ROLLBACK", false}:            1, // the explicit one; the deferred one after Commit makes none
			{"SELECT no_such_table", true}: 1,
		}, names, "database/sql spans of the request through %s, by name and error", d)
	}
	assert.Len(t, port, 2, "one port per server: %v", port)
}

// TestTraceManyConcurrentRequests sends 500 concurrent requests, each
// with its own id, to the /all handler, which queries PostgreSQL (lib/pq)
// and MariaDB through database/sql, Redis and PostgreSQL through pgx: every
// request must be one trace, its server span the parent of its calls, no
// call in another request's trace, and no span missing or lost.
func TestTraceManyConcurrentRequests(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: builds services with toolchains from the module proxy and starts database servers")
	}
	srv := dbtest.StartServers(t)
	tg := dbtest.Matrix[len(dbtest.Matrix)-1]
	if env := os.Getenv("OFFSETDB_DB_TARGET"); env != "" {
		for _, m := range dbtest.Matrix {
			if m.Go == env {
				tg = m
			}
		}
	}
	bin := dbtest.OwnCopy(t, tg.Build(t))
	dbtest.Setup(t, bin, srv)
	// Run counts per program: a span missing with no loss counted is then
	// told apart as a probe that never fired or a program that gave up.
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	require.NoError(t, err)
	defer stats.Close()
	c := dbtest.Attach(t, bin, "database/sql")
	addr := dbtest.Serve(t, bin, srv)

	const n = 500
	var wg sync.WaitGroup
	// 64 in flight: more opens more database connections than PostgreSQL's
	// default max_connections (100) allows, and requests then fail (500).
	sem := make(chan struct{}, 64)
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			resp, err := http.Get(fmt.Sprintf("http://%s/all?id=%d", addr, i))
			if err != nil {
				errs <- err
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				errs <- fmt.Errorf("id %d: status %d", i, resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	perRequest := map[string]int{"database/sql": 2}
	for _, inst := range []string{"go-redis", "pgx"} {
		if dbtest.Registered(inst) {
			perRequest[inst] = 1
		}
	}
	total := n
	for _, k := range perRequest {
		total += n * k
	}
	got := c.WaitAtMost(t, total, time.Minute)
	assert.Zero(t, c.Session.Drops())
	t.Logf("lost in flight %d, skipped runs %d, program runs %v", c.Session.InFlightLost(), c.Session.SkippedRuns(), c.Session.Runs())

	type tree struct {
		server dbtest.Span
		calls  map[string]int
	}
	traces := map[trace.TraceID]*tree{}
	ids := map[string]bool{}
	for _, sp := range got {
		if sp.Inst != "net/http server" {
			continue
		}
		require.Nil(t, traces[sp.TraceID], "two requests in one trace")
		traces[sp.TraceID] = &tree{server: sp, calls: map[string]int{}}
		ids[fmt.Sprint(sp.Attrs["url.query"])] = true
	}
	assert.Len(t, ids, n, "one server span per request id")
	for _, sp := range got {
		if sp.Inst == "net/http server" {
			continue
		}
		tr := traces[sp.TraceID]
		if !assert.NotNil(t, tr, "%s %s in no request's trace", sp.Inst, sp.Name) {
			continue
		}
		assert.Equal(t, tr.server.SpanID, sp.ParentID, "%s %s: parent", sp.Inst, sp.Name)
		tr.calls[sp.Inst]++
	}
	// Each request has all its calls, and none more: a span missing with
	// no loss counted fails, and so does a loss (the tracer keeps up with
	// 64 requests in flight). The run counts say, for a missing span,
	// whether its probe fired at all.
	extra, missing := 0, 0
	for _, tr := range traces {
		for inst, k := range perRequest {
			switch got := tr.calls[inst]; {
			case got > k:
				extra++
				t.Errorf("request %v: %d %s spans, want %d", tr.server.Attrs["url.query"], got, inst, k)
			case got < k:
				missing += k - got
				t.Errorf("request %v: %d %s spans, want %d", tr.server.Attrs["url.query"], got, inst, k)
			}
		}
	}
	assert.Zero(t, extra, "requests with extra calls")
	assert.Zero(t, missing, "client spans missing (%d lost in flight, %d dropped, %d program runs skipped)",
		c.Session.InFlightLost(), c.Session.Drops(), c.Session.SkippedRuns())
	assert.Zero(t, c.Session.InFlightLost(), "spans lost in flight")
	assert.Zero(t, c.Session.SkippedRuns(), "program runs skipped")
}
