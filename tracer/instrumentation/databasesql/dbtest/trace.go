package dbtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb"
	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/instrumentation"
	"github.com/offsetdb/offsetdb/tracer/internal/proctest"
	"github.com/offsetdb/offsetdb/tracer/resolve"
	"github.com/offsetdb/offsetdb/tracer/target"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// Servers are the addresses of the servers dbsvc talks to.
type Servers struct {
	PG, MySQL, Redis string // DSNs, and Redis' host:port
}

// StartServers starts PostgreSQL, MariaDB and Redis for the test.
func StartServers(tb testing.TB) Servers {
	return Servers{PG: StartPostgres(tb), MySQL: StartMariaDB(tb), Redis: StartRedis(tb)}
}

// Flags are dbsvc's flags naming the servers.
func (s Servers) Flags() []string {
	return []string{"-pg", s.PG, "-mysql", s.MySQL, "-redis", s.Redis}
}

// OwnCopy copies the built binary at path into the test's temporary
// directory: uprobes are placed on the file, and a copy of its own keeps a
// test from recording the processes of another test using the same cached
// build.
func OwnCopy(t *testing.T, path string) string {
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	own := filepath.Join(t.TempDir(), filepath.Base(path))
	require.NoError(t, os.WriteFile(own, data, 0o755))
	return own
}

// Setup runs `dbsvc setup`, which creates the tables; run it before
// attaching, or its calls are traced too.
func Setup(t *testing.T, bin string, s Servers) {
	out, err := exec.Command(bin, append([]string{"setup"}, s.Flags()...)...).CombinedOutput()
	require.NoError(t, err, "dbsvc setup: %s", out)
}

// Serve starts `dbsvc serve` and returns its HTTP address.
func Serve(t *testing.T, bin string, s Servers) string {
	cmd := exec.Command(bin, append([]string{"serve", "-http", "127.0.0.1:0"}, s.Flags()...)...)
	cmd.Stderr = os.Stderr
	return proctest.Serve(t, cmd, "http ", "dbsvc serve")
}

// Span is what the tests keep of a decoded span.
type Span struct {
	Inst             string
	Name             string
	Kind             trace.SpanKind
	TraceID          trace.TraceID
	SpanID, ParentID trace.SpanID
	Start, End       time.Time
	Attrs            map[string]any
	Status           codes.Code
}

// Collector reads a session's spans in the background.
type Collector struct {
	Session *uprobe.Session
	mu      sync.Mutex
	spans   []Span
	errs    []error
}

// Attach plans every instrumentation of the registry for bin, fails when
// one of those named in need, or net/http server, is disabled (dbsvc makes
// no HTTP calls: the net/http client may be), attaches the enabled ones to every process running bin and
// collects their spans until the test ends.
func Attach(t *testing.T, bin string, need ...string) *Collector {
	return AttachWith(t, bin, nil, need...)
}

// AttachWith is Attach with uprobe options: the maps and constants of a
// writer of trace context (package propagation).
func AttachWith(t *testing.T, bin string, opts *uprobe.Options, need ...string) *Collector {
	db, err := offsets.Open(offsetdb.Data())
	require.NoError(t, err)
	plan, err := target.NewPlan(bin, &resolve.Resolver{DBs: []*offsets.DB{db}}, instrumentation.All())
	require.NoError(t, err)
	t.Cleanup(func() { plan.Binary.Close() })
	need = append(need, "net/http server")
	for _, d := range plan.Disabled {
		if slices.Contains(need, d.Name) {
			t.Fatalf("%s", d)
		}
		t.Logf("%s", d)
	}
	for name, sk := range plan.Skipped {
		for _, s := range sk {
			t.Logf("%s: probe skipped: %v", name, s.Err)
		}
	}
	for name, fs := range plan.Degraded {
		for _, f := range fs {
			t.Logf("%s runs without %s: %v", name, f.ID, f.Err)
		}
	}
	s, err := uprobe.Attach(context.Background(), plan.Binary, 0, plan.Enabled, plan.Values(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, s.Close()) })

	ctx, cancel := context.WithCancel(context.Background())
	c := &Collector{Session: s}
	done := make(chan error, 1)
	go func() {
		done <- s.Read(ctx, func(ev uprobe.Event) {
			c.mu.Lock()
			defer c.mu.Unlock()
			if ev.Err != nil {
				c.errs = append(c.errs, ev.Err)
				return
			}
			sp := ev.Span
			c.spans = append(c.spans, Span{
				Inst: ev.Instrumentation, Name: sp.Name, Kind: sp.Kind, TraceID: sp.TraceID, SpanID: sp.SpanID,
				ParentID: sp.ParentSpanID, Start: sp.Start, End: sp.End,
				Attrs: uprobetest.AttrMap(t, sp.Attributes), Status: sp.Status,
			})
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return c
}

// eventTimeout bounds the waits for spans: generous, so that only a test
// that would never pass reaches it.
const eventTimeout = 2 * time.Minute

// Wait returns the spans once there are n (and any extra ones that arrive
// within 300 ms more), or fails after eventTimeout.
func (c *Collector) Wait(t *testing.T, n int) []Span {
	t.Helper()
	deadline := time.Now().Add(eventTimeout)
	for {
		c.mu.Lock()
		got, errs := append([]Span(nil), c.spans...), c.errs
		c.mu.Unlock()
		require.Empty(t, errs, "decode errors")
		if len(got) >= n {
			time.Sleep(300 * time.Millisecond)
			return c.Take()
		}
		if time.Now().After(deadline) {
			byInst := map[string]int{}
			for _, s := range got {
				byInst[s.Inst]++
				if len(got) < 100 {
					t.Logf("%s %s %s status=%v %v", s.Inst, s.Kind, s.Name, s.Status, s.Attrs)
				}
			}
			require.Failf(t, "timeout", "got %d of %d spans: %v; dropped %d", len(got), n, byInst, c.Session.Drops())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitAtMost returns the spans once there are n, or what has come after
// timeout: for a test that checks what is missing itself.
func (c *Collector) WaitAtMost(t *testing.T, n int, timeout time.Duration) []Span {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c.mu.Lock()
		have, errs := len(c.spans), c.errs
		c.mu.Unlock()
		require.Empty(t, errs, "decode errors")
		if have >= n || time.Now().After(deadline) {
			time.Sleep(300 * time.Millisecond)
			return c.Take()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Errs returns the errors of records that could not be decoded.
func (c *Collector) Errs() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]error(nil), c.errs...)
}

// Take returns the spans collected so far and forgets them.
func (c *Collector) Take() []Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	got := c.spans
	c.spans = nil
	return got
}

// Registered reports whether the registry has an instrumentation named
// name.
func Registered(name string) bool {
	for _, inst := range instrumentation.All() {
		if inst.Name == name {
			return true
		}
	}
	return false
}
