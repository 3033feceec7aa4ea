package main

import (
	"bufio"
	"context"
	"debug/buildinfo"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/offsetdb/offsetdb/tracer/instrumentation/databasesql/dbtest"
)

// DB is the db section: what the database client instrumentations
// (database/sql, pgx, go-redis) cost a call, traced against untraced in
// alternating rounds, per client.
type DB struct {
	Pairs    int     `json:"pairs"`
	Duration float64 `json:"run_seconds"`
	Workers  int     `json:"workers"`
	// Binary says which library and Go releases dbsvc was built with.
	Binary string `json:"binary"`
	Arms   []arm  `json:"arms"`
	// Clients are the kinds of call measured, in order: "pq", "mysql",
	// "pgx", "redis".
	Clients []string `json:"clients"`
	// CallsPerSecond holds, by client and arm ("pq/untraced"), each pair's
	// figure; Ratio, by client, each traced run over the untraced run of
	// the same pair.
	CallsPerSecond map[string]Spread `json:"calls_per_second"`
	Ratio          map[string]Spread `json:"throughput_ratio"`
	// ClientUserPer1k and ClientSysPer1k are the calling process's CPU
	// time (ms) per 1000 calls, by client and arm; TracerCPUPer1k the
	// tracer's, by client.
	ClientUserPer1k map[string]Spread `json:"client_user_cpu_ms_per_1k_calls"`
	ClientSysPer1k  map[string]Spread `json:"client_sys_cpu_ms_per_1k_calls"`
	TracerCPUPer1k  map[string]Spread `json:"tracer_cpu_ms_per_1k_calls"`
	// SpanCompleteness is spans recorded over calls, by client (one span
	// per call; pgx's QueryRow is one Query).
	SpanCompleteness map[string]Spread `json:"span_completeness"`
	Dropped          map[string]uint64 `json:"dropped"`
}

// dbClients are the calls the db section measures, as dbsvc load names them.
var dbClients = []string{"pq", "mysql", "pgx", "redis"}

// dbClientNames says what each client is, for the report.
var dbClientNames = map[string]string{
	"pq":    "database/sql + lib/pq → PostgreSQL",
	"mysql": "database/sql + go-sql-driver/mysql → MariaDB",
	"pgx":   "pgx v5 pool → PostgreSQL",
	"redis": "go-redis v9 GET → Redis",
}

// dbTarget is the dbsvc build of the section: a dbtest.Matrix entry whose
// go.mod the harness's Go accepts.
var dbTarget = dbtest.Matrix[1]

func (h *harness) db(ctx context.Context) (*DB, error) {
	bin, err := h.buildDBSvc(ctx)
	if err != nil {
		return nil, err
	}
	var servers []*dbtest.Server
	defer func() {
		for _, s := range servers {
			s.Stop()
		}
	}()
	h.logf("db: starting PostgreSQL, MariaDB and Redis")
	var addrs []string
	for _, start := range []func() (*dbtest.Server, error){dbtest.StartPostgresServer, dbtest.StartMariaDBServer, dbtest.StartRedisServer} {
		s, err := start()
		servers = append(servers, s)
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, s.Addr)
	}
	flags := []string{"-pg", addrs[0], "-mysql", addrs[1], "-redis", addrs[2]}
	if out, err := exec.CommandContext(ctx, bin, append([]string{"setup"}, flags...)...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("dbsvc setup: %w: %s", err, out)
	}
	svc, load, err := startDBLoad(bin, h.dbWorkers, flags)
	if err != nil {
		return nil, err
	}
	defer load.stop()
	for _, c := range dbClients { // warm up
		if _, err := load.run(time.Second, c); err != nil {
			return nil, err
		}
	}
	d := &DB{Pairs: h.dbPairs, Duration: h.dbDuration.Seconds(), Workers: h.dbWorkers, Binary: dbsvcVersions(bin), Clients: dbClients,
		CallsPerSecond: map[string]Spread{}, Ratio: map[string]Spread{}, ClientUserPer1k: map[string]Spread{}, ClientSysPer1k: map[string]Spread{},
		TracerCPUPer1k: map[string]Spread{}, SpanCompleteness: map[string]Spread{}, Dropped: map[string]uint64{}}
	d.Arms = []arm{untracedArm, noneArm()}
	traced := d.Arms[1]
	for _, c := range dbClients {
		h.logf("db: %s, %d workers, %d pairs × %s", c, h.dbWorkers, h.dbPairs, h.dbDuration)
		runs, err := alternate(h.dbPairs, d.Arms, func(a arm) (armRun, error) {
			return h.withTracer(ctx, svc, a, func(*tracerSession) (armRun, error) {
				r, err := load.run(h.dbDuration, c)
				if err == nil && r.errors > 0 {
					err = fmt.Errorf("%s: %d of %d calls failed", c, r.errors, r.errors+r.calls)
				}
				return armRun{Requests: float64(r.calls), PerSecond: float64(r.calls) / r.seconds}, firstErr(err, ctx.Err())
			})
		})
		if err != nil {
			return nil, err
		}
		perSecond := func(r armRun) float64 { return r.PerSecond }
		for _, a := range d.Arms {
			k := c + "/" + a.Name
			d.CallsPerSecond[k] = newSpread(column(runs[a.Name], perSecond))
			d.ClientUserPer1k[k] = newSpread(per1k(runs[a.Name], serviceUser))
			d.ClientSysPer1k[k] = newSpread(per1k(runs[a.Name], serviceSys))
		}
		d.Ratio[c] = newSpread(ratios(column(runs[traced.Name], perSecond), column(runs[untracedArm.Name], perSecond)))
		d.TracerCPUPer1k[c] = newSpread(per1k(runs[traced.Name], tracerCPU))
		d.SpanCompleteness[c] = newSpread(column(runs[traced.Name], func(r armRun) float64 { return r.Spans / r.Requests }))
		var dropped float64
		for _, r := range runs[traced.Name] {
			dropped += r.Dropped
		}
		d.Dropped[c] = uint64(dropped)
	}
	return d, nil
}

// dbsvcVersions says which library and Go releases dbsvc was built with.
func dbsvcVersions(path string) string {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return "?"
	}
	var vs []string
	for _, d := range bi.Deps {
		for _, m := range []string{"github.com/lib/pq", "github.com/go-sql-driver/mysql", "github.com/jackc/pgx/v5", "github.com/redis/go-redis/v9"} {
			if d.Path == m {
				vs = append(vs, strings.TrimPrefix(m, "github.com/")+" "+d.Version)
			}
		}
	}
	return strings.Join(append(vs, bi.GoVersion), ", ")
}

// buildDBSvc builds the database test service (package dbtest's dbsvc)
// with the Go on PATH, from the module proxy.
func (h *harness) buildDBSvc(ctx context.Context) (string, error) {
	src := filepath.Join(h.work, "dbsvc-src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), dbtest.Source(), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte(dbTarget.GoMod()), 0o644); err != nil {
		return "", err
	}
	bin := filepath.Join(h.work, "bin", "dbsvc")
	h.logf("db: building dbsvc (the libraries of %s, with the Go on PATH)", dbTarget)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build dbsvc: %w: %s", err, out)
	}
	return bin, nil
}

// dbLoad is a running `dbsvc load`, idle between runs.
type dbLoad struct {
	svc *service
	in  io.WriteCloser
	out *bufio.Scanner
}

type dbLoadRun struct {
	calls, errors int
	seconds       float64
}

// startDBLoad starts `dbsvc load`: the process the tracer attaches to, as
// a service (it says "listening on -" once connected).
func startDBLoad(bin string, workers int, flags []string) (*service, *dbLoad, error) {
	cmd := exec.Command(bin, append([]string{"load", "-workers", strconv.Itoa(workers)}, flags...)...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start dbsvc load: %w", err)
	}
	svc := &service{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(svc.done) }()
	sc := bufio.NewScanner(out)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "listening on ") {
		svc.stop()
		return nil, nil, fmt.Errorf("dbsvc load did not start: %q", sc.Text())
	}
	return svc, &dbLoad{svc: svc, in: in, out: sc}, nil
}

var dbLoadLine = regexp.MustCompile(`^calls=(\d+) errors=(\d+) seconds=([\d.]+)$`)

// run has the load generator call for d.
func (l *dbLoad) run(d time.Duration, client string) (dbLoadRun, error) {
	if _, err := fmt.Fprintf(l.in, "run %s %s\n", d, client); err != nil {
		return dbLoadRun{}, fmt.Errorf("dbsvc load: %w", err)
	}
	if !l.out.Scan() {
		return dbLoadRun{}, fmt.Errorf("dbsvc load exited during a run: %v", l.out.Err())
	}
	m := dbLoadLine.FindStringSubmatch(strings.TrimSpace(l.out.Text()))
	if m == nil {
		return dbLoadRun{}, fmt.Errorf("dbsvc load: unexpected output %q", l.out.Text())
	}
	var r dbLoadRun
	r.calls, _ = strconv.Atoi(m[1])
	r.errors, _ = strconv.Atoi(m[2])
	r.seconds, _ = strconv.ParseFloat(m[3], 64)
	if r.seconds <= 0 || r.calls == 0 {
		return r, fmt.Errorf("dbsvc load: %q", l.out.Text())
	}
	return r, nil
}

func (l *dbLoad) stop() {
	l.in.Close()
	select {
	case <-l.svc.done:
	case <-time.After(5 * time.Second):
		l.svc.stop()
	}
}
