//go:build linux && (amd64 || arm64)

package goredis_test

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

// TestTraceGoRedisAcrossVersions runs dbsvc, built for each target of
// dbtest.Matrix (go-redis v9.0.5, v9.7.0 stripped, v9.23.0), against a real
// Redis server, and checks the spans of its /redis handler: one per
// command and one for the pipeline, named by command, with a "?" per
// argument and never a value, redis.Nil not a failure, a failed command
// an error, the server and database number from the client's options, and
// each a child of the request's span.
func TestTraceGoRedisAcrossVersions(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: builds services with toolchains from the module proxy and starts database servers")
	}
	srv := dbtest.StartServers(t)
	for _, tg := range dbtest.Targets(t) {
		t.Run(tg.String(), func(t *testing.T) {
			bin := dbtest.OwnCopy(t, tg.Build(t))
			dbtest.Setup(t, bin, srv)
			c := dbtest.Attach(t, bin, "go-redis")
			addr := dbtest.Serve(t, bin, srv)
			const requests = 2
			for i := range requests {
				resp, err := http.Get(fmt.Sprintf("http://%s/redis?id=%d", addr, i))
				require.NoError(t, err)
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
			}
			got := c.Wait(t, requests*(1+5))
			assert.Zero(t, c.Session.Drops())
			assert.Zero(t, c.Session.InFlightLost(), "spans lost in flight")

			servers := map[trace.SpanID]dbtest.Span{}
			for _, sp := range got {
				if sp.Inst == "net/http server" {
					servers[sp.SpanID] = sp
				}
			}
			require.Len(t, servers, requests)
			type want struct {
				name, text string
				error      bool
			}
			tally := map[want]int{}
			for _, sp := range got {
				if sp.Inst != "go-redis" {
					continue
				}
				t.Logf("%s %q status=%v %v", sp.Kind, sp.Name, sp.Status, sp.Attrs)
				text, _ := sp.Attrs["db.query.text"].(string)
				tally[want{sp.Name, text, sp.Status == codes.Error}]++
				assert.Equal(t, trace.SpanKindClient, sp.Kind)
				assert.Equal(t, "redis", sp.Attrs["db.system.name"])
				assert.Equal(t, "127.0.0.1", sp.Attrs["server.address"])
				assert.Equal(t, srv.Redis, fmt.Sprintf("127.0.0.1:%d", sp.Attrs["server.port"]))
				assert.Equal(t, "0", sp.Attrs["db.namespace"])
				assert.NotContains(t, text, "k:", "a key in the query text")
				assert.False(t, strings.ContainsAny(text, "0123456789"), "a value in the query text %q", text)
				parent, ok := servers[sp.ParentID]
				if assert.True(t, ok, "%s: parent %s is no server span", sp.Name, sp.ParentID) {
					assert.Equal(t, parent.TraceID, sp.TraceID)
					assert.False(t, sp.Start.Before(parent.Start), "%s starts before its request", sp.Name)
					assert.False(t, sp.End.After(parent.End), "%s ends after its request", sp.Name)
				}
				if sp.Name == "BATCH" {
					assert.Equal(t, int64(3), sp.Attrs["db.operation.batch.size"])
				}
			}
			assert.Equal(t, map[want]int{
				{"SET", "SET ? ? ? ?", false}:                   requests,     // SET key value EX 60
				{"GET", "GET ?", false}:                         2 * requests, // one found, one redis.Nil
				{"INCR", "INCR ?", true}:                        requests,
				{"BATCH", "SET ? ?; INCR ?; EXPIRE ? ?", false}: requests,
			}, tally, "go-redis spans by name, query text and error")
		})
	}
}
