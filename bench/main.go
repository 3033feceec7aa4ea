// Command bench is `make bench`: it measures the tracer's overhead and the
// generator's cost on this machine, each figure against a baseline measured
// in the same run, and writes bench/results.md, bench/results.json and the
// results table of README.md (between its bench markers).
//
//	go run ./bench [flags]          everything (the tracer parts need root)
//	go run ./bench -sections micro  only some sections
//
// Sections: overhead (per-request cost, traced vs untraced, alternating),
// grpc (unary gRPC calls/s and latency, traced vs untraced, alternating),
// context (a two-hop chain untraced vs traced read-only vs with trace
// context propagation; a fan-out from goroutines with and without
// --goroutine-context),
// peers (the same chain traced by our tracer and by OpenTelemetry Go
// auto-instrumentation, built from the module proxy),
// db (database/sql, pgx and go-redis calls/s against real PostgreSQL,
// MariaDB and Redis, kafka-go produce and consume against a kfake broker,
// traced vs untraced, alternating),
// pipeline (spans/s through the ring buffer, where drops begin), footprint
// (tracer RSS with 1 and 10 traced processes), resolution (offsets for a
// 100 MB+ binary: database vs DWARF fallback vs a full debug/dwarf walk),
// generator (one Go release cold; a no-op regeneration), micro (the Go
// benchmarks of the hot paths). See bench/README.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// harness holds the settings and built binaries every section uses.
type harness struct {
	repo, work, outDir, readme          string
	tracerBin, serviceBin, offsetgenBin string
	grpcloadBin                         string

	pairs            int
	runDuration      time.Duration
	rate             int
	wrkThreads       int
	wrkConns         int
	grpcPairs        int
	grpcDuration     time.Duration
	grpcWorkers      int
	dbPairs          int
	dbDuration       time.Duration
	dbWorkers        int
	rampConns        []int
	footprintTargets []int
	rampRounds       int
	rampDuration     time.Duration
	stalls           []time.Duration
	resolveRounds    int
	genVersion       string
	genRepeats       int
	genNoOpRuns      int
	microRounds      int
	microBenchTime   string
	contextCfg       contextSettings
	peersCfg         peersSettings

	start time.Time
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench [%5.0fs] %s\n", time.Since(h.start).Seconds(), fmt.Sprintf(format, args...))
}

// Results is bench/results.json.
type Results struct {
	Machine     Machine            `json:"machine"`
	Commit      string             `json:"commit"`
	Started     string             `json:"started"`
	WallSeconds float64            `json:"wall_seconds"`
	Sections    map[string]float64 `json:"section_seconds"`
	Skipped     map[string]string  `json:"skipped,omitempty"` // section → why
	// Kept holds, for each section carried over from an earlier
	// results.json (-keep), when and at which commit it was measured.
	Kept       map[string]string `json:"kept,omitempty"`
	Overhead   *Overhead         `json:"overhead,omitempty"`
	GRPC       *GRPC             `json:"grpc,omitempty"`
	Context    *Context          `json:"context,omitempty"`
	Peers      *Peers            `json:"peers,omitempty"`
	DB         *DB               `json:"db,omitempty"`
	Pipeline   *Pipeline         `json:"pipeline,omitempty"`
	Footprint  *Footprint        `json:"footprint,omitempty"`
	Resolution *Resolution       `json:"resolution,omitempty"`
	Generator  *Generator        `json:"generator,omitempty"`
	Micro      *Micro            `json:"micro,omitempty"`
}

var allSections = []string{"overhead", "grpc", "db", "context", "peers", "pipeline", "footprint", "resolution", "generator", "micro"}

// rootSections need root (BPF and uprobes).
var rootSections = []string{"overhead", "grpc", "db", "context", "peers", "pipeline", "footprint"}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "fullwalk" {
		if err := runFullWalk(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench fullwalk:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	h := &harness{start: time.Now()}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&h.repo, "repo", ".", "repository root")
	fs.StringVar(&h.outDir, "out", "bench", "directory for results.md, results.json and micro.txt")
	fs.StringVar(&h.readme, "readme", "README.md", "README whose bench markers receive the results table (empty: none)")
	fs.StringVar(&h.work, "work", "", "scratch directory (default: a new temporary directory, removed afterwards)")
	keep := fs.Bool("keep", false, "keep the sections of the existing results.json that this run does not measure (they say when they were measured)")
	render := fs.Bool("render", false, "only re-render results.md and the README table from the existing results.json")
	sections := fs.String("sections", strings.Join(allSections, ","), "comma-separated sections to run")
	fs.IntVar(&h.pairs, "pairs", 3, "untraced/traced run pairs per overhead figure")
	fs.DurationVar(&h.runDuration, "duration", 10*time.Second, "length of each overhead and footprint run")
	fs.IntVar(&h.rate, "rate", 500, "fixed request rate (req/s) of the latency runs")
	fs.IntVar(&h.grpcPairs, "grpc-pairs", 3, "rounds of the grpc section (each runs every arm once)")
	fs.DurationVar(&h.grpcDuration, "grpc-duration", 8*time.Second, "length of each grpc run")
	fs.IntVar(&h.grpcWorkers, "grpc-workers", 16, "concurrent callers of the grpc load generator")
	fs.IntVar(&h.dbPairs, "db-pairs", 3, "rounds of the db section per client (each runs untraced and traced once; kafka-produce also traced with --context-propagation=false)")
	fs.DurationVar(&h.dbDuration, "db-duration", 5*time.Second, "length of each db run")
	fs.IntVar(&h.dbWorkers, "db-workers", 8, "concurrent callers of the db load generator")
	fs.IntVar(&h.wrkThreads, "wrk-threads", 2, "wrk threads")
	fs.IntVar(&h.wrkConns, "wrk-conns", 64, "wrk connections at saturation")
	ramp := fs.String("ramp", "8,64,512", "wrk connections of the pipeline ramp's steps")
	fs.IntVar(&h.rampRounds, "ramp-rounds", 2, "rounds over the pipeline ramp")
	fs.DurationVar(&h.rampDuration, "ramp-duration", 5*time.Second, "length of each pipeline step")
	targets := fs.String("footprint-targets", "1,10,50,200", "traced process counts of the footprint section")
	stalls := fs.String("stalls", "20ms,50ms,100ms,200ms", "reader stalls (tracer stopped) of the pipeline section, under saturating load")
	fs.IntVar(&h.resolveRounds, "resolve-rounds", 3, "rounds over the three offset resolution paths")
	fs.StringVar(&h.genVersion, "gen-version", "1.22.5", "Go release the generator builds cold")
	fs.IntVar(&h.genRepeats, "gen-repeats", 1, "cold generator runs")
	fs.IntVar(&h.genNoOpRuns, "gen-noop-runs", 2, "timed no-op generator runs (after one untimed)")
	fs.IntVar(&h.microRounds, "count", 5, "rounds of the Go benchmarks")
	fs.StringVar(&h.microBenchTime, "benchtime", "300ms", "-test.benchtime of the Go benchmarks")
	h.contextCfg.flags(fs)
	h.peersCfg.flags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, s := range strings.Split(*ramp, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-ramp: %q is not a connection count", s)
		}
		h.rampConns = append(h.rampConns, n)
	}
	for _, s := range strings.Split(*targets, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-footprint-targets: %q is not a process count", s)
		}
		h.footprintTargets = append(h.footprintTargets, n)
	}
	for _, s := range strings.Split(*stalls, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d <= 0 {
			return fmt.Errorf("-stalls: %q is not a duration", s)
		}
		h.stalls = append(h.stalls, d)
	}
	want := strings.Split(*sections, ",")
	for _, s := range want {
		if !slices.Contains(allSections, s) {
			return fmt.Errorf("-sections: unknown section %q (have %s)", s, strings.Join(allSections, ", "))
		}
	}
	var err error
	if h.repo, err = filepath.Abs(h.repo); err != nil {
		return err
	}
	if !filepath.IsAbs(h.outDir) {
		h.outDir = filepath.Join(h.repo, h.outDir)
	}
	if h.readme != "" && !filepath.IsAbs(h.readme) {
		h.readme = filepath.Join(h.repo, h.readme)
	}
	if h.work == "" {
		if h.work, err = os.MkdirTemp("", "offsetdb-bench-"); err != nil {
			return err
		}
		defer os.RemoveAll(h.work)
	}
	if *render {
		b, err := os.ReadFile(filepath.Join(h.outDir, "results.json"))
		if err != nil {
			return err
		}
		var res Results
		if err := json.Unmarshal(b, &res); err != nil {
			return fmt.Errorf("results.json: %w", err)
		}
		return h.write(&res)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	res := &Results{Machine: thisMachine(), Started: h.start.UTC().Format(time.RFC3339), Sections: map[string]float64{}, Skipped: map[string]string{}}
	if out, err := exec.Command("git", "-C", h.repo, "describe", "--always", "--dirty").Output(); err == nil {
		res.Commit = strings.TrimSpace(string(out))
	}
	h.logf("machine: %s", res.Machine)
	if err := h.build(ctx); err != nil {
		return err
	}
	var failed []string
	for _, name := range allSections {
		if !slices.Contains(want, name) {
			continue
		}
		if slices.Contains(rootSections, name) && os.Geteuid() != 0 {
			res.Skipped[name] = "needs root (BPF and uprobes): run make bench as root"
			h.logf("%s: skipped: %s", name, res.Skipped[name])
			continue
		}
		if name == "overhead" || name == "pipeline" {
			if _, err := exec.LookPath("wrk"); err != nil {
				res.Skipped[name] = "wrk not found (apt-get install wrk)"
				continue
			}
		}
		start := time.Now()
		err := h.section(ctx, name, res)
		res.Sections[name] = time.Since(start).Seconds()
		if err != nil {
			res.Skipped[name] = "failed: " + err.Error()
			failed = append(failed, name)
			h.logf("%s: FAILED: %v", name, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		h.logf("%s: done in %.0fs", name, res.Sections[name])
	}
	res.WallSeconds = time.Since(h.start).Seconds()
	if *keep {
		if err := h.keepEarlier(res, want); err != nil {
			return fmt.Errorf("-keep: %w", err)
		}
	}
	if err := h.write(res); err != nil {
		return err
	}
	h.logf("wrote %s and %s in %.0fs", filepath.Join(h.outDir, "results.md"), filepath.Join(h.outDir, "results.json"), res.WallSeconds)
	if len(failed) > 0 {
		return fmt.Errorf("sections failed: %s", strings.Join(failed, ", "))
	}
	return ctx.Err()
}

func (h *harness) section(ctx context.Context, name string, res *Results) (err error) {
	switch name {
	case "overhead":
		res.Overhead, err = h.overhead(ctx)
	case "grpc":
		res.GRPC, err = h.grpc(ctx)
	case "context":
		res.Context, err = h.traceContext(ctx)
	case "peers":
		res.Peers, err = h.peers(ctx)
	case "db":
		res.DB, err = h.db(ctx)
	case "pipeline":
		res.Pipeline, err = h.pipeline(ctx)
	case "footprint":
		res.Footprint, err = h.footprint(ctx)
	case "resolution":
		res.Resolution, err = h.resolution(ctx)
	case "generator":
		res.Generator, err = h.generator(ctx)
	case "micro":
		res.Micro, err = h.micro(ctx)
	default:
		err = errors.New("unknown section")
	}
	return err
}

// build compiles the tracer (embedding the current data/), the example
// service, grpcload and offsetgen into the scratch directory.
func (h *harness) build(ctx context.Context) error {
	binDir := filepath.Join(h.work, "bin")
	h.tracerBin = filepath.Join(binDir, "tracer")
	h.serviceBin = filepath.Join(binDir, "example-service")
	h.offsetgenBin = filepath.Join(binDir, "offsetgen")
	h.grpcloadBin = filepath.Join(binDir, "grpcload")
	h.logf("building tracer, example service, grpcload and offsetgen")
	for pkg, out := range map[string]string{"./tracer": h.tracerBin, "./tracer/testdata/service": h.serviceBin, "./offsetgen": h.offsetgenBin, "./bench/grpcload": h.grpcloadBin} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
		cmd.Dir = h.repo
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w: %s", pkg, err, b)
		}
	}
	return nil
}

// keepEarlier copies into res the sections of the existing results.json
// that are not in want, each noted in res.Kept with its date, commit and
// machine.
// Sections are copied by their JSON key, which is the section's name.
func (h *harness) keepEarlier(res *Results, want []string) error {
	b, err := os.ReadFile(filepath.Join(h.outDir, "results.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var old Results
	var oldRaw map[string]json.RawMessage
	if err := errors.Join(json.Unmarshal(b, &old), json.Unmarshal(b, &oldRaw)); err != nil {
		return fmt.Errorf("results.json: %w", err)
	}
	cur, err := json.Marshal(res)
	if err != nil {
		return err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(cur, &raw); err != nil {
		return err
	}
	kept := map[string]string{}
	for _, name := range allSections {
		section, ok := oldRaw[name]
		if slices.Contains(want, name) || !ok {
			continue
		}
		raw[name] = section
		kept[name] = fmt.Sprintf("%.10s, commit %s, %d × %s", old.Started, old.Commit, old.Machine.NProc, old.Machine.CPU)
		if k, ok := old.Kept[name]; ok {
			kept[name] = k
		}
		if s, ok := old.Sections[name]; ok {
			res.Sections[name] = s
		}
	}
	if len(kept) == 0 {
		return nil
	}
	merged, err := json.Marshal(raw)
	if err != nil {
		return err
	}
	sections := res.Sections
	if err := json.Unmarshal(merged, res); err != nil {
		return err
	}
	res.Sections, res.Kept = sections, kept
	return nil
}

// write writes results.json, results.md and the README table.
func (h *harness) write(res *Results) error {
	if err := os.MkdirAll(h.outDir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(h.outDir, "results.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(h.outDir, "results.md"), []byte(resultsMarkdown(res)), 0o644); err != nil {
		return err
	}
	if h.readme == "" {
		return nil
	}
	readme, err := os.ReadFile(h.readme)
	if err != nil {
		return err
	}
	updated, err := spliceBetweenMarkers(string(readme), readmeTable(res))
	if err != nil {
		h.logf("README not updated: %v", err)
		return nil
	}
	return os.WriteFile(h.readme, []byte(updated), 0o644)
}

func itoa(n int) string { return strconv.Itoa(n) }

func atoi(s string, def int) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return def
	}
	return n
}
