package main

import (
	"bufio"
	"context"
	"debug/buildinfo"
	_ "embed"
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

// DB is the db section: what the database and messaging client
// instrumentations (database/sql, pgx, go-redis, kafka-go) cost a call,
// traced against untraced in alternating rounds, per client.
type DB struct {
	Pairs    int     `json:"pairs"`
	Duration float64 `json:"run_seconds"`
	Workers  int     `json:"workers"`
	// Binary says which library and Go releases dbsvc was built with;
	// KafkaBinary the same of kafkaload.
	Binary      string `json:"binary"`
	KafkaBinary string `json:"kafka_binary,omitempty"`
	// Arms are the arms every client runs; ExtraArms, by client, the ones
	// it runs besides them (kafka-produce: the context writer off), whose
	// figures are keyed client/arm in every map below.
	Arms      []arm            `json:"arms"`
	ExtraArms map[string][]arm `json:"extra_arms,omitempty"`
	// Clients are the kinds of call measured, in order: "pq", "mysql",
	// "pgx", "redis", "kafka-produce", "kafka-consume".
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
	// per call; pgx's QueryRow is one Query; kafka-consume's ReadMessage
	// one per message).
	SpanCompleteness map[string]Spread `json:"span_completeness"`
	Dropped          map[string]uint64 `json:"dropped"`
	// Propagated is, by client and traced arm, the records the context
	// writer gave a traceparent header (the tracer's kafka_written) over
	// the calls (one record each), for kafka-produce.
	Propagated map[string]Spread `json:"records_with_traceparent_per_call,omitempty"`
	// WriterRatio is, by client, each pair's calls/s traced over its
	// calls/s traced with the context writer off (kafka-produce): the
	// writer's own cost.
	WriterRatio map[string]Spread `json:"traced_over_writer_off,omitempty"`
}

// dbClients are the calls the db section measures, as dbsvc load and
// kafkaload load name them.
var dbClients = []string{"pq", "mysql", "pgx", "redis", "kafka-produce", "kafka-consume"}

// kafkaClients are the dbClients kafkaload makes.
var kafkaClients = map[string]bool{"kafka-produce": true, "kafka-consume": true}

// noPropagationArm is kafka-produce's extra arm: traced with the context
// writer off, so that the writer's cost shows apart from the probes'.
func noPropagationArm() arm {
	return arm{Name: "traced, --context-propagation=false (exporter none)", Env: []string{"OTEL_TRACES_EXPORTER=none"}, Flags: []string{"--context-propagation=false"}}
}

// dbExtraArms are the arms a client runs besides untraced and traced.
func dbExtraArms() map[string][]arm {
	return map[string][]arm{"kafka-produce": {noPropagationArm()}}
}

// dbClientNames says what each client is, for the report.
var dbClientNames = map[string]string{
	"pq":    "database/sql + lib/pq → PostgreSQL",
	"mysql": "database/sql + go-sql-driver/mysql → MariaDB",
	"pgx":   "pgx v5 pool → PostgreSQL",
	"redis": "go-redis v9 GET → Redis",
	// kafkaload's
	"kafka-produce": "kafka-go Writer.WriteMessages, 1 message → kfake",
	"kafka-consume": "kafka-go Reader.ReadMessage ← kfake (1 caller)",
}

// dbTarget is the dbsvc build of the section: a dbtest.Matrix entry whose
// go.mod the harness's Go accepts.
var dbTarget = dbtest.Matrix[1]

func (h *harness) db(ctx context.Context) (*DB, error) {
	bin, err := h.buildDBSvc(ctx)
	if err != nil {
		return nil, err
	}
	kbin, err := h.buildKafkaLoad(ctx)
	if err != nil {
		return nil, err
	}
	var servers []*dbtest.Server
	defer func() {
		for _, s := range servers {
			s.Stop()
		}
	}()
	h.logf("db: starting PostgreSQL, MariaDB, Redis and a kfake Kafka broker")
	var addrs []string
	for _, start := range []func() (*dbtest.Server, error){dbtest.StartPostgresServer, dbtest.StartMariaDBServer, dbtest.StartRedisServer} {
		s, err := start()
		servers = append(servers, s)
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, s.Addr)
	}
	broker, brokerAddr, err := startKafkaBroker(kbin)
	if err != nil {
		return nil, err
	}
	defer broker.stop()
	flags := []string{"-pg", addrs[0], "-mysql", addrs[1], "-redis", addrs[2]}
	if out, err := exec.CommandContext(ctx, bin, append([]string{"setup"}, flags...)...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("dbsvc setup: %w: %s", err, out)
	}
	svc, load, err := startDBLoad(bin, h.dbWorkers, flags)
	if err != nil {
		return nil, err
	}
	defer load.stop()
	ksvc, kload, err := startDBLoad(kbin, h.dbWorkers, []string{"-broker", brokerAddr})
	if err != nil {
		return nil, err
	}
	defer kload.stop()
	loadOf := func(c string) (*service, *dbLoad) {
		if kafkaClients[c] {
			return ksvc, kload
		}
		return svc, load
	}
	for _, c := range dbClients { // warm up
		if _, l := loadOf(c); l != nil {
			if _, err := l.run(time.Second, c); err != nil {
				return nil, err
			}
		}
	}
	d := &DB{Pairs: h.dbPairs, Duration: h.dbDuration.Seconds(), Workers: h.dbWorkers, Binary: dbsvcVersions(bin), KafkaBinary: kafkaloadVersions(kbin), Clients: dbClients,
		CallsPerSecond: map[string]Spread{}, Ratio: map[string]Spread{}, ClientUserPer1k: map[string]Spread{}, ClientSysPer1k: map[string]Spread{},
		TracerCPUPer1k: map[string]Spread{}, SpanCompleteness: map[string]Spread{}, Dropped: map[string]uint64{}, Propagated: map[string]Spread{}, WriterRatio: map[string]Spread{}}
	d.Arms = []arm{untracedArm, noneArm()}
	d.ExtraArms = dbExtraArms()
	for _, c := range dbClients {
		arms := append(append([]arm(nil), d.Arms...), d.ExtraArms[c]...)
		s, l := loadOf(c)
		h.logf("db: %s, %d arms, %d pairs × %s", c, len(arms), h.dbPairs, h.dbDuration)
		runs, err := alternate(h.dbPairs, arms, func(a arm) (armRun, error) {
			return h.withTracer(ctx, s, a, func(*tracerSession) (armRun, error) {
				r, err := l.run(h.dbDuration, c)
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
		for _, a := range arms {
			k := c + "/" + a.Name
			d.CallsPerSecond[k] = newSpread(column(runs[a.Name], perSecond))
			d.ClientUserPer1k[k] = newSpread(per1k(runs[a.Name], serviceUser))
			d.ClientSysPer1k[k] = newSpread(per1k(runs[a.Name], serviceSys))
			if !a.traced() {
				continue
			}
			if a.Name == d.Arms[1].Name { // the main traced arm's figures are keyed by client alone
				k = c
			}
			d.Ratio[k] = newSpread(ratios(column(runs[a.Name], perSecond), column(runs[untracedArm.Name], perSecond)))
			d.TracerCPUPer1k[k] = newSpread(per1k(runs[a.Name], tracerCPU))
			d.SpanCompleteness[k] = newSpread(column(runs[a.Name], func(r armRun) float64 { return r.Spans / r.Requests }))
			var dropped float64
			for _, r := range runs[a.Name] {
				dropped += r.Dropped
			}
			d.Dropped[k] = uint64(dropped)
			if c == "kafka-produce" {
				d.Propagated[c+"/"+a.Name] = newSpread(column(runs[a.Name], func(r armRun) float64 { return r.KafkaWritten / r.Requests }))
			}
			if a.Name == noPropagationArm().Name {
				d.WriterRatio[c] = newSpread(ratios(column(runs[d.Arms[1].Name], perSecond), column(runs[a.Name], perSecond)))
			}
		}
	}
	return d, nil
}

// depVersions says which releases of modules, and which Go, the binary
// at path was built with: "lib/pq v1.10.9, go1.26.8", each module without
// its "github.com/".
func depVersions(path string, modules ...string) string {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return "?"
	}
	var vs []string
	for _, d := range bi.Deps {
		for _, m := range modules {
			if d.Path == m {
				vs = append(vs, strings.TrimPrefix(m, "github.com/")+" "+d.Version)
			}
		}
	}
	return strings.Join(append(vs, bi.GoVersion), ", ")
}

// dbsvcVersions says which library and Go releases dbsvc was built with.
func dbsvcVersions(path string) string {
	return depVersions(path, "github.com/lib/pq", "github.com/go-sql-driver/mysql", "github.com/jackc/pgx/v5", "github.com/redis/go-redis/v9")
}

// buildDBSvc builds the database test service (package dbtest's dbsvc)
// with the Go on PATH, from the module proxy.
func (h *harness) buildDBSvc(ctx context.Context) (string, error) {
	return h.buildProgram(ctx, "dbsvc", dbtest.Source(), dbTarget.GoMod(), fmt.Sprintf("the libraries of %s", dbTarget))
}

// buildProgram builds the one-file program source, with goMod as its
// go.mod, with the Go on PATH and from the module proxy, into bin/name
// of the work directory; what says what it is built with, for the log.
func (h *harness) buildProgram(ctx context.Context, name string, source []byte, goMod, what string) (string, error) {
	src := filepath.Join(h.work, name+"-src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), source, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte(goMod), 0o644); err != nil {
		return "", err
	}
	bin := filepath.Join(h.work, "bin", name)
	h.logf("db: building %s (%s, with the Go on PATH)", name, what)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %w: %s", name, err, out)
	}
	return bin, nil
}

// dbLoad is a running `dbsvc load` or `kafkaload load`, idle between
// runs, or a `kafkaload broker`: a program its standard input drives.
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
	l, _, err := startPiped(bin, append([]string{"load", "-workers", strconv.Itoa(workers)}, flags...), "listening on ", "dbsvc load")
	if err != nil {
		return nil, nil, err
	}
	return l.svc, l, nil
}

// startPiped starts bin with args and its standard input a pipe (closing
// it ends the program: dbLoad.stop), and returns what follows prefix on the
// first line of its output, which must begin with it. name names the
// program in errors.
func startPiped(bin string, args []string, prefix, name string) (*dbLoad, string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, "", err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s: %w", name, err)
	}
	svc := &service{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(svc.done) }()
	sc := bufio.NewScanner(out)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), prefix) {
		svc.stop()
		return nil, "", fmt.Errorf("%s did not start: %q", name, sc.Text())
	}
	return &dbLoad{svc: svc, in: in, out: sc}, strings.TrimPrefix(sc.Text(), prefix), nil
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

// kafkaloadSource is the Kafka broker and load generator of the section,
// built with the Go on PATH against kafkaloadGoMod's releases.
//
//go:embed testdata/kafkaload/main.go
var kafkaloadSource []byte

// kafkaloadGoMod pins kafka-go (the newest release kafkatest.Matrix
// tests) and kfake with the franz-go it builds with (kafkatest's pins).
const kafkaloadGoMod = `// Generated by the bench harness.

module example.com/kafkaload

go 1.26

require (
	github.com/segmentio/kafka-go v0.4.51
	github.com/twmb/franz-go v1.22.3
	github.com/twmb/franz-go/pkg/kfake v0.0.0-20260918054303-01f206a7e32c
)
`

// buildKafkaLoad builds kafkaload with the Go on PATH, from the module
// proxy.
func (h *harness) buildKafkaLoad(ctx context.Context) (string, error) {
	return h.buildProgram(ctx, "kafkaload", kafkaloadSource, kafkaloadGoMod, "kafka-go and kfake")
}

// kafkaloadVersions says which kafka-go, franz-go and Go releases
// kafkaload was built with.
func kafkaloadVersions(path string) string {
	return depVersions(path, "github.com/segmentio/kafka-go", "github.com/twmb/franz-go")
}

// startKafkaBroker starts `kafkaload broker` and returns it with its
// address: a process of its own, so that the traced load process does
// only the client's work (in it, the broker's CPU would count as the
// client's, and its writes would pass the context writer's socket program
// as a kafka-go process's). stop closes its stdin (it exits) and kills it
// if it has not within 5 s.
func startKafkaBroker(bin string) (*dbLoad, string, error) {
	b, addr, err := startPiped(bin, []string{"broker"}, "broker ", "kafkaload broker")
	if err != nil {
		return nil, "", err
	}
	go func() {
		for b.out.Scan() { // the rest of its output, unread
		}
	}()
	return b, addr, nil
}
