// Command tracer produces OpenTelemetry spans for the HTTP traffic of
// unmodified Go programs, with eBPF uprobes.
//
//	tracer [flags] -- CMD ARGS...   start CMD and trace it
//	tracer [flags] --pid N          trace a running process
//	tracer [flags] --exe GLOB       trace every process whose executable matches, now and later
//	tracer inspect [--json] PATH | --pid N
//
// Export follows the OpenTelemetry environment: OTEL_TRACES_EXPORTER (otlp,
// console, none), OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL
// (http/protobuf, grpc), OTEL_SERVICE_NAME (default: the executable's name),
// OTEL_RESOURCE_ATTRIBUTES.
//
// Stopping: when a traced process exits, or the tracer gets SIGINT or
// SIGTERM, the tracer reads the records already submitted, detaches (one
// uprobe_multi link per BPF program on Linux 6.6+: ~60 ms for the four
// links of a net/http service; one link per uprobe on older kernels: ~80 ms
// each, 1.5 s for its 19 uprobes) and flushes the spans, waiting at most flushTimeout (5 s) for
// the exporter. The whole stop is bounded by shutdownBudget (10 s): past
// it the tracer logs what it was still waiting for and exits anyway. Any
// step that takes more than a second is logged with what it waits for. A
// process that exits while others are traced (--exe) is detached and
// flushed at once; nothing of it is held while the others run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/offsetdb/offsetdb"
	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/export"
	"github.com/offsetdb/offsetdb/tracer/instrumentation"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/goroutine"
	"github.com/offsetdb/offsetdb/tracer/preflight"
	"github.com/offsetdb/offsetdb/tracer/process"
	"github.com/offsetdb/offsetdb/tracer/remotedb"
	"github.com/offsetdb/offsetdb/tracer/resolve"
	"github.com/offsetdb/offsetdb/tracer/spans"
	"github.com/offsetdb/offsetdb/tracer/target"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
)

var errUsage = errors.New("usage")

// errReported wraps a flag parsing error that the flag package has already
// printed with the usage: run exits 2 without printing it again.
var errReported = errors.New("reported")

// parseFlags parses args into fs, marking errors the flag package has
// already printed.
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return fmt.Errorf("%w: %w", errReported, err)
	}
	return err
}

// The stop budget, described in the package documentation.
const (
	// flushTimeout bounds the export of a process's last spans.
	flushTimeout = 5 * time.Second
	// shutdownBudget bounds the whole stop, from the exit or the signal
	// to the tracer's exit: detach, flush (flushTimeout) and margin.
	shutdownBudget = 10 * time.Second
)

// errNothingToTrace reports a Go binary on which every instrumentation is
// disabled; the warnings logged before it say why, field by field.
var errNothingToTrace = errors.New("no instrumentation can run (see the warnings above)")

const usage = `usage:
  tracer [flags] -- CMD ARGS...   start CMD and trace it
  tracer [flags] --pid N          trace a running process
  tracer [flags] --exe GLOB       trace matching processes, running and later started
  tracer inspect [flags] PATH     what would be traced in a binary (or --pid N)

flags:`

// options are the flags shared by tracing and inspect.
type options struct {
	offsetsDir string
	offsetsURL string
	cacheDir   string    // for offsetsURL
	logOut     io.Writer // the flag set's output, where resolver logs
	noEmbedded bool
	noDWARF    bool
	interp     bool
	logLevel   string
	// goroutineContext enables the goroutine context instrumentation.
	goroutineContext bool
}

func (o *options) register(fs *flag.FlagSet) {
	fs.StringVar(&o.offsetsDir, "offsets-dir", "", "extra offset database directory (written by offsetgen), consulted before the embedded one")
	fs.StringVar(&o.offsetsURL, "offsets-url", os.Getenv("OFFSETDB_URL"), "URL of a published offset database archive (offsets-DATE.tar.gz, with URL.sha256 beside it), consulted after --offsets-dir and before the embedded one; verified, cached, and reused from the cache when the server is unreachable (env OFFSETDB_URL)")
	fs.StringVar(&o.cacheDir, "offsets-cache", "", "cache directory for --offsets-url (default $XDG_CACHE_HOME/offsetdb/remote)")
	o.logOut = fs.Output()
	fs.BoolVar(&o.noEmbedded, "no-embedded-offsets", false, "do not use the database embedded in the tracer (offsets then come from --offsets-dir or the target's DWARF)")
	fs.BoolVar(&o.noDWARF, "no-dwarf", false, "do not read offsets from the target's DWARF")
	fs.BoolVar(&o.interp, "interpolate-offsets", false, "for a Go release the database never built, use the offsets of the builds around it in its release line when they agree (provenance says interpolated)")
	fs.StringVar(&o.logLevel, "log-level", envOr("OTEL_LOG_LEVEL", "info"), "log level: debug, info, warn, error (env OTEL_LOG_LEVEL)")
	fs.BoolVar(&o.goroutineContext, "goroutine-context", true, "let goroutines started while a request is handled inherit its span, so their calls are its children (two uprobe hits per go statement; false to turn off)")
}

func (o *options) resolver() (*resolve.Resolver, error) {
	r := &resolve.Resolver{NoDWARF: o.noDWARF, Interpolate: o.interp}
	if o.offsetsDir != "" {
		db, err := offsets.OpenDir(o.offsetsDir)
		if err != nil {
			return nil, fmt.Errorf("--offsets-dir: %w", err)
		}
		r.DBs = append(r.DBs, db)
	}
	if o.offsetsURL != "" {
		if db := o.publishedDB(); db != nil {
			r.DBs = append(r.DBs, db)
		}
	}
	if !o.noEmbedded {
		db, err := offsets.Open(offsetdb.Data())
		if err != nil {
			return nil, fmt.Errorf("embedded offset database: %w", err)
		}
		r.DBs = append(r.DBs, db)
	}
	return r, nil
}

// publishedDB fetches the database at --offsets-url (or its cached copy).
// A failure is logged and the tracer goes on without it: --offsets-dir, the
// embedded database and DWARF still answer.
func (o *options) publishedDB() *offsets.DB {
	log := o.logger(o.logOut).With("url", o.offsetsURL)
	dir := o.cacheDir
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			log.Error("not using the published offset database: no cache directory (give --offsets-cache)", "err", err)
			return nil
		}
		dir = filepath.Join(base, "offsetdb", "remote")
	}
	db, err := remotedb.Fetch(context.Background(), o.offsetsURL, remotedb.Options{CacheDir: dir})
	switch {
	case err != nil:
		log.Error("not using the published offset database", "err", err)
		return nil
	case db.Stale != nil:
		log.Warn("published offset database unreachable: using the last good cached copy", "sha256", db.SHA256, "dir", db.Dir, "err", db.Stale)
	default:
		log.Info("using the published offset database", "sha256", db.SHA256, "dir", db.Dir, "downloaded", db.Downloaded)
	}
	return db.DB
}

func (o *options) logger(w io.Writer) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(o.logLevel)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// instrumentations are every instrumentation this tracer ships, less the
// goroutine context one when --goroutine-context=false.
func (o *options) instrumentations() []uprobe.Instrumentation {
	all := instrumentation.All()
	if o.goroutineContext {
		return all
	}
	return slices.DeleteFunc(all, func(inst uprobe.Instrumentation) bool { return inst.Name == goroutine.Name })
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	var err error
	if len(args) > 0 && args[0] == "inspect" {
		err = runInspect(args[1:], stdout, stderr)
	} else {
		var code int
		code, err = runTrace(args, stdout, stderr)
		if err == nil {
			return code
		}
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errReported):
		return 2
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "tracer: %v\n%s\n", err, strings.SplitN(usage, "\n\nflags:", 2)[0])
		return 2
	}
	fmt.Fprintf(stderr, "tracer: %v\n", err)
	return 1
}

func runTrace(args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("tracer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, usage); fs.PrintDefaults() }
	var o options
	o.register(fs)
	pid := fs.Int("pid", 0, "trace the running process with this PID")
	exe := fs.String("exe", "", "trace every process whose executable matches this glob (base name, or full path if it has a '/')")
	perLink := fs.Bool("per-uprobe-links", false, "attach every uprobe with a link of its own even where the kernel has uprobe_multi links (Linux 6.6+); slower to detach: ~80 ms per uprobe")
	if err := parseFlags(fs, args); err != nil {
		return 0, err
	}
	argv := fs.Args()
	modes := 0
	for _, set := range []bool{len(argv) > 0, *pid != 0, *exe != ""} {
		if set {
			modes++
		}
	}
	if modes != 1 {
		return 0, fmt.Errorf("%w: give exactly one of -- CMD, --pid or --exe", errUsage)
	}
	log := o.logger(stderr)
	if err := preflight.Check(); err != nil {
		return 0, err
	}
	r, err := o.resolver()
	if err != nil {
		return 0, err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	t := &tracing{resolver: r, log: log, stdout: stdout, perLink: *perLink, insts: o.instrumentations()}
	switch {
	case len(argv) > 0:
		return t.command(ctx, argv)
	case *pid != 0:
		return 0, t.pid(ctx, *pid)
	default:
		return 0, t.watch(ctx, *exe)
	}
}

// tracing holds what every traced process shares.
type tracing struct {
	resolver *resolve.Resolver
	log      *slog.Logger
	stdout   io.Writer
	perLink  bool // uprobe.Options.PerLink
	insts    []uprobe.Instrumentation
}

// plan inspects a process's executable and logs what cannot run.
func (t *tracing) plan(pid int) (*target.Plan, string, error) {
	path, name, err := process.ExePath(pid)
	if err != nil {
		return nil, "", err
	}
	p, err := target.NewPlan(path, t.resolver, t.insts)
	if err != nil {
		return nil, "", fmt.Errorf("pid %d (%s): %w", pid, name, err)
	}
	for _, d := range p.Disabled {
		t.log.Warn(d.String(), "pid", pid, "exe", name)
	}
	for inst, fields := range p.Degraded {
		for _, f := range fields {
			t.log.Warn("instrumentation runs without a field", "instrumentation", inst, "pid", pid, "exe", name, "field", f.ID.String(),
				"reason", f.Err, "fix", resolve.Hint(p.Binary, []resolve.Field{f}))
		}
	}
	for _, a := range p.Assumptions {
		t.log.Warn("assumption", "pid", pid, "exe", name, "what", a)
	}
	for inst, skipped := range p.Skipped {
		for _, s := range skipped {
			level := slog.LevelInfo
			if s.OutsideVersions {
				level = slog.LevelDebug // an alternative for other versions: expected
			}
			t.log.Log(context.Background(), level, "optional probe skipped", "instrumentation", inst, "pid", pid, "exe", name, "reason", s.Err)
		}
	}
	if len(p.NotUsed) > 0 {
		t.log.Debug("instrumentations of libraries the binary does not link", "pid", pid, "exe", name, "instrumentations", strings.Join(p.NotUsed, ", "))
	}
	if len(p.Enabled) == 0 {
		p.Binary.Close()
		return nil, "", fmt.Errorf("pid %d (%s): %w", pid, name, errNothingToTrace)
	}
	p.Attach.PerLink = t.perLink
	return p, name, nil
}

// trace traces one process with its own TracerProvider (service.name is its
// executable's name) and flushes its spans when it ends.
func (t *tracing) trace(ctx context.Context, pid int, p *target.Plan, name string, attached func()) error {
	defer p.Binary.Close()
	tp, err := export.NewTracerProvider(ctx, export.Options{ServiceName: filepath.Base(name), PID: pid, Executable: name, Console: t.stdout})
	if err != nil {
		return err
	}
	defer func() {
		defer target.LogIfSlow(t.log, "flushing spans to the exporter", "pid", pid, "timeout", flushTimeout)()
		sctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil {
			t.log.Error("flush spans", "pid", pid, "err", err)
		}
	}()
	rec, err := spans.NewRecorder(tp)
	if err != nil {
		return err
	}
	st, err := target.Trace(ctx, p, pid, rec, t.log, attached)
	t.log.Info("detached", "pid", pid, "spans", st.Spans, "dropped", st.Dropped, "errors", st.Errors, "unsampled", st.Unsampled)
	return err
}

// command starts argv held at its first instruction, attaches, lets it run,
// and returns its exit code. A signal to the tracer is passed on to it.
func (t *tracing) command(ctx context.Context, argv []string) (int, error) {
	child, err := process.Start(argv, os.Stdin, os.Stdout, os.Stderr)
	if err != nil {
		return 0, err
	}
	p, name, err := t.plan(child.PID)
	if errors.Is(err, errNothingToTrace) {
		// The program is what matters: run it untraced rather than not at all.
		t.log.Error("running the program untraced", "pid", child.PID, "err", err)
		if err := child.Resume(); err != nil {
			return 0, err
		}
		return t.wait(ctx, child), nil
	}
	if err != nil {
		child.Cmd.Process.Kill()
		child.Resume()
		child.Wait()
		return 0, err
	}
	traceCtx, cancel := context.WithCancel(context.Background())
	attached := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- t.trace(traceCtx, child.PID, p, name, func() { close(attached) })
	}()
	select {
	case <-attached:
	case err := <-done:
		child.Cmd.Process.Kill()
		child.Resume()
		child.Wait()
		cancel()
		return 0, err
	}
	if err := child.Resume(); err != nil {
		cancel()
		return 0, err
	}
	code := t.wait(ctx, child)
	cancel()
	return code, t.finish(done, fmt.Sprintf("pid %d", child.PID))
}

// finish waits for a trace told to stop (its process exited, or a signal
// came) to detach and flush, at most shutdownBudget.
func (t *tracing) finish(done <-chan error, what string) error {
	budget := time.NewTimer(shutdownBudget)
	defer budget.Stop()
	select {
	case err := <-done:
		return err
	case <-budget.C:
		return fmt.Errorf("%s: detach and flush still running after %v (see \"still waiting\" above): exiting without them", what, shutdownBudget)
	}
}

// wait waits for the child and returns its exit code. On a signal to the
// tracer it stops the child (SIGTERM, then SIGKILL after 5s) and returns 0:
// the user asked for the stop.
func (t *tracing) wait(ctx context.Context, child *process.Child) int {
	exited := make(chan int, 1)
	go func() {
		code, _ := child.Wait()
		exited <- code
	}()
	select {
	case code := <-exited:
		return code
	case <-ctx.Done():
	}
	t.log.Info("signal received: stopping the traced program", "pid", child.PID)
	child.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		child.Cmd.Process.Kill()
		<-exited
	}
	return 0
}

func (t *tracing) pid(ctx context.Context, pid int) error {
	p, name, err := t.plan(pid)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- t.trace(ctx, pid, p, name, nil) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	case <-exited(ctx, pid):
	}
	return t.finish(done, fmt.Sprintf("pid %d", pid))
}

// exited is closed when process pid exits; never if ctx is done first.
func exited(ctx context.Context, pid int) <-chan struct{} {
	c := make(chan struct{})
	go func() {
		if process.WaitExit(ctx, pid) == nil {
			close(c)
		}
	}()
	return c
}

// watch traces every matching process until ctx is done; each is detached
// when it exits.
func (t *tracing) watch(ctx context.Context, glob string) error {
	t.log.Info("watching for processes", "exe", glob)
	var wg sync.WaitGroup
	cancels := map[int]context.CancelFunc{}
	for ev := range process.Watch(ctx, glob, 500*time.Millisecond) {
		if ev.Exited {
			if c, ok := cancels[ev.PID]; ok {
				c()
				delete(cancels, ev.PID)
			}
			continue
		}
		p, name, err := t.plan(ev.PID)
		if err != nil {
			t.log.Warn("not tracing", "pid", ev.PID, "err", err)
			continue
		}
		pctx, cancel := context.WithCancel(ctx)
		cancels[ev.PID] = cancel
		wg.Add(1)
		go func(pid int) {
			defer wg.Done()
			if err := t.trace(pctx, pid, p, name, nil); err != nil {
				t.log.Warn("tracing ended", "pid", pid, "err", err)
			}
		}(ev.PID)
	}
	for _, c := range cancels {
		c()
	}
	all := make(chan error, 1)
	go func() { wg.Wait(); all <- nil }()
	return t.finish(all, "traced processes")
}
