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
// flushed at once; nothing of it is held while the others run. A second
// SIGINT or SIGTERM cuts the flush short: the detach still ends (it reads
// the records already submitted), the exporter gets abortGrace (0.5 s) for
// the spans in memory, what is not exported then is counted as
// dropped_export_failed, and the tracer exits.
//
// Exit status (docs/tracer.md#exit-status):
//
//	0  stopped as asked, or the traced process (--pid) exited
//	1  tracing failed (attach, read, a flush cut short by the budget)
//	2  bad flag, argument or setting (the message names it)
//	3  nothing could be traced: no instrumentation can run on the binary
//	   (with -- CMD: CMD ran untraced and exited 0)
//	4  missing privileges or kernel features (the message names them)
//	with -- CMD: CMD's own status otherwise
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel"
	"golang.org/x/sys/unix"

	"github.com/offsetdb/offsetdb"
	"github.com/offsetdb/offsetdb/fieldset"
	"github.com/offsetdb/offsetdb/gobinary"
	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/discovery"
	"github.com/offsetdb/offsetdb/tracer/export"
	"github.com/offsetdb/offsetdb/tracer/instrumentation"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/goroutine"
	"github.com/offsetdb/offsetdb/tracer/kube"
	"github.com/offsetdb/offsetdb/tracer/preflight"
	"github.com/offsetdb/offsetdb/tracer/process"
	"github.com/offsetdb/offsetdb/tracer/remotedb"
	"github.com/offsetdb/offsetdb/tracer/resolve"
	"github.com/offsetdb/offsetdb/tracer/spans"
	"github.com/offsetdb/offsetdb/tracer/target"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
)

var errUsage = errors.New("usage")

// errBadSetting wraps a flag or environment value that cannot be used; the
// message names the setting. run exits exitUsage.
var errBadSetting = errors.New("invalid setting")

// Exit status, as the package documentation lists it.
const (
	exitOK            = 0
	exitError         = 1
	exitUsage         = 2
	exitNothingTraced = 3
	exitPrivileges    = 4
)

// parseFlags parses args into fs. A bad flag is a setting error, one line
// like the others, not the flag package's message followed by the whole
// usage; -h prints the usage on stdout, as `tracer help` does.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	out := fs.Output()
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(out)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fs.Usage()
		return err
	case err != nil:
		hint := "tracer help lists the flags"
		if fs.Name() != "tracer" {
			hint = "tracer " + fs.Name() + " -h lists its flags"
		}
		return fmt.Errorf("%w: %w (%s)", errBadSetting, err, hint)
	}
	return nil
}

// The stop budget, described in the package documentation.
const (
	// flushTimeout bounds the export of a process's last spans.
	flushTimeout = 5 * time.Second
	// abortGrace is what is left of the flush after a second signal:
	// enough for a console exporter or a collector that answers to take
	// the spans already in memory, short enough to feel immediate.
	abortGrace = 500 * time.Millisecond
	// shutdownBudget bounds the whole stop, from the exit or the signal
	// to the tracer's exit: detach, flush (flushTimeout) and margin.
	shutdownBudget = 10 * time.Second
)

// errNothingToTrace reports a Go binary on which every instrumentation is
// disabled; the warnings logged before it say why, field by field.
var errNothingToTrace = errors.New("no instrumentation can run (see the warnings above)")

// errNotGoProgram reports a process whose executable is not a Go binary:
// like errNothingToTrace, nothing can be traced (exit status 3).
var errNotGoProgram = errors.New("the tracer attaches to Go programs only (tracer inspect PATH tells whether a binary is one)")

const usage = `usage:
  tracer [flags] -- CMD ARGS...   start CMD and trace it
  tracer [flags] --pid N          trace a running process
  tracer [flags] --exe GLOB       trace matching processes, running and later started
  tracer inspect [flags] PATH     what would be traced in a binary (or --pid N)
  tracer help                     this text

Spans go where OTEL_TRACES_EXPORTER says: otlp (default) to OTEL_EXPORTER_OTLP_ENDPOINT,
by default http://localhost:4318 (OTLP/HTTP; grpc: http://localhost:4317, with
OTEL_EXPORTER_OTLP_PROTOCOL=grpc); console prints one JSON line per span on stdout, for a
first look; none discards them. The tracer's own metrics (spans exported and dropped, by
reason) go to the same OTLP endpoint (OTEL_METRICS_EXPORTER=none to turn off; prometheus, or
--prometheus-address, serves them at http://localhost:9464/metrics).

Exit status: 0 stopped as asked; 1 tracing failed; 2 bad flag or setting; 3 nothing could be
traced; 4 missing privileges or kernel features; with -- CMD, CMD's status otherwise.

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
	logFormat  string
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
	fs.StringVar(&o.logFormat, "log-format", "text", "log format on stderr: text (log/slog key=value) or json (one object per line)")
	fs.BoolVar(&o.goroutineContext, "goroutine-context", true, "let goroutines started while a request is handled inherit its span, so their calls are its children (two uprobe hits per go statement; false to turn off)")
}

// check validates the settings shared by tracing and inspect, so that a
// bad value stops the tracer at start with a message naming it
// (errBadSetting) instead of failing later or being ignored.
func (o *options) check() error {
	if _, err := o.level(); err != nil {
		return err
	}
	if o.logFormat != "text" && o.logFormat != "json" {
		return fmt.Errorf("%w: --log-format %q: want text or json", errBadSetting, o.logFormat)
	}
	if o.offsetsURL != "" {
		u, err := url.Parse(o.offsetsURL)
		if err == nil && (u.Scheme != "http" && u.Scheme != "https" || u.Host == "") {
			err = errors.New("want an http:// or https:// URL of an offsets-DATE.tar.gz archive")
		}
		if err != nil {
			return fmt.Errorf("%w: --offsets-url (or OFFSETDB_URL) %q: %w", errBadSetting, o.offsetsURL, err)
		}
	}
	return nil
}

// level parses --log-level.
func (o *options) level() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(o.logLevel)); err != nil {
		return l, fmt.Errorf("%w: --log-level (or OTEL_LOG_LEVEL) %q: want debug, info, warn or error", errBadSetting, o.logLevel)
	}
	return l, nil
}

func (o *options) resolver() (*resolve.Resolver, error) {
	r := &resolve.Resolver{NoDWARF: o.noDWARF, Interpolate: o.interp}
	if o.offsetsDir != "" {
		// The same checks as offsetgen verify: a database that fails them
		// would answer wrong offsets, or none, without a word.
		db, err := offsets.OpenDir(o.offsetsDir)
		if err == nil {
			err = offsets.Verify(os.DirFS(o.offsetsDir))
		}
		if err != nil {
			return nil, fmt.Errorf("%w: --offsets-dir %s: %w (offsetgen verify --data %s says the same)", errBadSetting, o.offsetsDir, err, o.offsetsDir)
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

// logger returns the logger everything the tracer says goes through, in
// --log-format at --log-level (info if it does not parse: check reports
// that). It also receives the OpenTelemetry SDK's errors and logs, so that
// exporter failures come out in the same format.
func (o *options) logger(w io.Writer) *slog.Logger {
	l, err := o.level()
	if err != nil {
		l = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: l}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if o.logFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	log := slog.New(h)
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("OpenTelemetry SDK", "err", err)
	}))
	otel.SetLogger(logr.FromSlogHandler(h.WithAttrs([]slog.Attr{slog.String("component", "otel")})))
	return log
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
	code := exitOK
	switch cmd, rest := subcommand(args); cmd {
	case "help":
		fs, _ := traceFlags(stdout)
		fs.Usage()
		return exitOK
	case "inspect":
		err = runInspect(rest, stdout, stderr)
	default:
		code, err = runTrace(args, stdout, stderr)
	}
	switch {
	case err == nil:
		return code
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "tracer: %v\n%s\n", err, strings.SplitN(usage, "\n\n", 2)[0])
		return exitUsage
	}
	code = exitError
	switch {
	case errors.Is(err, errBadSetting), errors.Is(err, export.ErrBadSetting),
		errors.Is(err, export.ErrUnknownExporter), errors.Is(err, export.ErrUnknownProtocol),
		errors.Is(err, discovery.ErrConfig):
		code = exitUsage
	case errors.Is(err, errNothingToTrace), errors.Is(err, errNotGoProgram):
		code = exitNothingTraced
	case errors.Is(err, preflight.ErrPrivileges), errors.Is(err, preflight.ErrKernel):
		code = exitPrivileges
	}
	if jsonLogs(args) {
		// The last word in the format of the others.
		slog.New(slog.NewJSONHandler(stderr, nil)).Error("tracer: "+err.Error(), "exit_status", code)
	} else {
		fmt.Fprintf(stderr, "tracer: %v\n", err)
	}
	return code
}

// jsonLogs reports whether args ask for --log-format json (before "--").
func jsonLogs(args []string) bool {
	for i, a := range args {
		switch {
		case a == "--":
			return false
		case a == "--log-format=json" || a == "-log-format=json":
			return true
		case (a == "--log-format" || a == "-log-format") && i+1 < len(args):
			return args[i+1] == "json"
		}
	}
	return false
}

// subcommand finds "inspect" or "help" among args, before or after the
// flags (tracer --log-level debug inspect X), and returns it with the other
// arguments. Nothing after "--" (a command to run) and no flag's value is
// taken for a subcommand.
func subcommand(args []string) (string, []string) {
	fs, _ := traceFlags(io.Discard)
	inspectFlags := flag.NewFlagSet("inspect", flag.ContinueOnError)
	inspectFlags.Bool("json", false, "")
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			name := strings.TrimLeft(a, "-")
			if strings.Contains(name, "=") {
				continue
			}
			f := fs.Lookup(name)
			if f == nil {
				f = inspectFlags.Lookup(name)
			}
			if f == nil {
				continue // unknown: the flag package says so
			}
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
				i++ // its value
			}
			continue
		}
		if a == "inspect" || a == "help" {
			return a, append(slices.Clone(args[:i]), args[i+1:]...)
		}
		return "", args // the first argument that is not a flag is not a subcommand
	}
	return "", args
}

// traceSettings are the flags of tracing only.
type traceSettings struct {
	options
	pid           int
	exe           string
	perLink       bool
	buffer        export.BufferOptions
	statsInterval time.Duration
	promAddr      string
	spoolDir      string
	spoolMiB      int
	holdNew       bool
	// writeContext: write W3C traceparent into outgoing requests (contextprop.go).
	writeContext bool
	// cgroupRoot: where the trace-context writer attaches ("" finds it).
	cgroupRoot string
	// kube: Kubernetes pod metadata on the spans (package kube).
	kube *kube.Flags
	// discovery: rules selecting the processes to trace (package discovery).
	discovery *discovery.Flags
}

// traceFlags returns the flag set of tracing, writing usage to w.
func traceFlags(w io.Writer) (*flag.FlagSet, *traceSettings) {
	fs := flag.NewFlagSet("tracer", flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), usage); fs.PrintDefaults() }
	var s traceSettings
	s.register(fs)
	fs.IntVar(&s.pid, "pid", 0, "trace the running process with this PID")
	fs.Var((*onceString)(&s.exe), "exe", "trace every process whose executable matches this glob (base name, or full path if it has a '/'); one glob: a --discovery file selects by several")
	fs.BoolVar(&s.perLink, "per-uprobe-links", false, "attach every uprobe with a link of its own even where the kernel has uprobe_multi links (Linux 6.6+); slower to detach: ~80 ms per uprobe")
	fs.IntVar(&s.buffer.MaxQueue, "export-buffer", 0, fmt.Sprintf("spans held per traced process while the collector is slow or away; beyond it the oldest are dropped and counted (default OTEL_BSP_MAX_QUEUE_SIZE, else %d: a minute at 1,000 spans/s)", export.DefaultMaxQueue))
	fs.IntVar(&s.buffer.Concurrency, "export-concurrency", export.DefaultConcurrency, "exports in flight at once per traced process, so that a slow collector does not hold the rest back")
	fs.BoolVar(&s.writeContext, "context-propagation", true, "add the W3C traceparent of each client or producer span to outgoing plaintext HTTP/1.x requests, gRPC calls and kafka-go Produce records, at the socket layer (nothing is written into the processes; false: continue incoming trace context only)")
	fs.StringVar(&s.cgroupRoot, "cgroup-root", "", "cgroup v2 hierarchy the trace-context writer attaches to (default: the first cgroup2 mount in /proc/self/mountinfo; in a container, mount the host's /sys/fs/cgroup and name it here)")
	fs.BoolVar(&s.holdNew, "exe-hold", true, "with --exe, stop each new matching process at its exec (SIGSTOP) until its probes are attached (SIGCONT), so that its first request is traced; false: it runs at once and its first requests may go untraced; false by default for --exe '*' unless given")
	s.kube = kube.RegisterFlags(fs)
	s.discovery = discovery.RegisterFlags(fs)
	fs.DurationVar(&s.statsInterval, "stats-interval", time.Minute, "how often to log the span counts (spans, exported, dropped by reason) while tracing; 0: only at exit")
	fs.StringVar(&s.spoolDir, "spool-dir", "", "keep the spans beyond --export-buffer on disk in this directory while the collector is away, and those not exported at exit for the next run, which exports them first (default: memory only)")
	fs.IntVar(&s.spoolMiB, "spool-size", export.DefaultSpoolSize>>20, "bound of --spool-dir in MiB; beyond it the oldest spans are dropped and counted as dropped_queue_full")
	fs.StringVar(&s.promAddr, "prometheus-address", "", "also serve the tracer's own metrics (span counts by reason) for Prometheus at http://HOST:PORT/metrics; like OTEL_METRICS_EXPORTER=prometheus with OTEL_EXPORTER_PROMETHEUS_HOST/_PORT (default localhost:9464)")
	return fs, &s
}

// flagSet reports whether the flag name was given on the command line.
// onceString is a string flag that refuses to be given twice, where the
// flag package would silently keep the last value.
type onceString string

func (o *onceString) String() string { return string(*o) }

func (o *onceString) Set(v string) error {
	if *o != "" {
		return fmt.Errorf("given twice (%q, then %q): it takes one value", string(*o), v)
	}
	*o = onceString(v)
	return nil
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// check validates the tracing settings (see options.check).
func (s *traceSettings) check() error {
	if err := s.options.check(); err != nil {
		return err
	}
	if s.exe != "" {
		if _, err := filepath.Match(s.exe, ""); err != nil {
			return fmt.Errorf("%w: --exe %q: %w", errBadSetting, s.exe, err)
		}
	}
	if s.pid < 0 {
		return fmt.Errorf("%w: --pid %d: want a process ID", errBadSetting, s.pid)
	}
	if _, _, err := contextSettings(); err != nil {
		return fmt.Errorf("%w: %w", errBadSetting, err)
	}
	if s.buffer.MaxQueue < 0 {
		return fmt.Errorf("%w: --export-buffer %d: want a positive number of spans", errBadSetting, s.buffer.MaxQueue)
	}
	if s.buffer.Concurrency <= 0 {
		return fmt.Errorf("%w: --export-concurrency %d: want at least 1", errBadSetting, s.buffer.Concurrency)
	}
	if s.statsInterval < 0 {
		return fmt.Errorf("%w: --stats-interval %v: want 0 or more", errBadSetting, s.statsInterval)
	}
	if s.spoolMiB <= 0 || s.spoolMiB > 1<<30 {
		return fmt.Errorf("%w: --spool-size %d: want a positive number of MiB (at most 1 PiB)", errBadSetting, s.spoolMiB)
	}
	if s.promAddr != "" {
		if _, err := export.PrometheusAddress(s.promAddr); err != nil {
			return err
		}
	}
	return nil
}

func runTrace(args []string, stdout, stderr io.Writer) (int, error) {
	fs, s := traceFlags(stderr)
	if err := parseFlags(fs, args, stdout); err != nil {
		return 0, err
	}
	argv := fs.Args()
	if s.discovery.Enabled() && s.exe == "" && s.pid == 0 && len(argv) == 0 {
		s.exe = "*" // the discovery rules select
	}
	if s.exe == "*" && !flagSet(fs, "exe-hold") {
		// Holding would stop every exec on the host for a moment, and a
		// shell sees its foreground job stopped: only when asked.
		s.holdNew = false
	}
	modes := 0
	for _, set := range []bool{len(argv) > 0, s.pid != 0, s.exe != ""} {
		if set {
			modes++
		}
	}
	if modes != 1 {
		return 0, fmt.Errorf("%w: give exactly one of -- CMD, --pid or --exe", errUsage)
	}
	if err := s.check(); err != nil {
		return 0, err
	}
	if flagSet(fs, "spool-size") && s.spoolDir == "" {
		return 0, fmt.Errorf("%w: --spool-size bounds --spool-dir, which is not given", errBadSetting)
	}
	dest, err := export.Destination()
	if err != nil {
		return 0, err
	}
	log := s.logger(stderr)
	if err := preflight.Check(); err != nil {
		return 0, err
	}
	r, err := s.resolver()
	if err != nil {
		return 0, err
	}
	counts := new(export.Counts)
	stopSpool, err := s.startSpool(counts, log)
	if err != nil {
		return 0, err
	}
	defer stopSpool(context.Background()) // on an early return; a no-op after the call below
	mp, err := export.NewMeterProvider(context.Background(), counts, s.buffer.MaxQueue, s.promAddr)
	if err != nil {
		return 0, err
	}
	log.Info("exporting spans", dest...)
	if mp != nil && mp.PrometheusAddr() != nil {
		log.Info("serving the tracer's metrics for Prometheus", "url", "http://"+mp.PrometheusAddr().String()+"/metrics")
	}
	cp, err := newContextProp(s.writeContext, s.cgroupRoot, log)
	if err != nil {
		return 0, err
	}
	defer cp.close(log)

	ctx, abort, stopSignals := signals(log)
	defer stopSignals()
	t := &tracing{resolver: r, log: log, stdout: stdout, perLink: s.perLink, insts: s.instrumentations(),
		context: cp, counts: counts, buffer: s.buffer, abort: abort, holdNew: s.holdNew}
	if t.kube, err = s.kube.Start(ctx, log); err != nil {
		return 0, err
	}
	if t.selector, err = s.discovery.Selector(t.kube, log); err != nil {
		return 0, err
	}
	stopLoader := t.startLoader(s.perLink)
	stopStats := t.logStats(s.statsInterval)
	code, err := t.run(ctx, argv, s.pid, s.exe)
	stopLoader()
	stopSpool(abort)
	stopStats()
	log.Info("totals", counts.Snapshot().Attrs()...)
	if mp != nil {
		mctx, cancel := context.WithTimeout(abort, 2*time.Second)
		if err := mp.Shutdown(mctx); err != nil {
			log.Warn("export the tracer's own metrics", "err", err)
		}
		cancel()
	}
	return code, err
}

// startSpool opens --spool-dir, if given, for every process's export
// buffer and starts exporting what a previous run left there, counting it
// in counts. The returned function, called at exit (or on an early
// return; once), flushes that replay until ctx is done or 2 s have passed
// and says what stays for the next run.
func (s *traceSettings) startSpool(counts *export.Counts, log *slog.Logger) (func(context.Context), error) {
	if s.spoolDir == "" {
		return func(context.Context) {}, nil
	}
	spool, err := export.OpenSpool(s.spoolDir, int64(s.spoolMiB)<<20, log)
	if err != nil {
		return nil, fmt.Errorf("%w: --spool-dir %s: %w", errBadSetting, s.spoolDir, err)
	}
	segs, spans := spool.Left()
	replay, err := spool.StartReplay(export.Options{Buffer: s.buffer, Log: log}, counts.Child())
	if err != nil {
		spool.Close()
		return nil, err
	}
	if replay == nil {
		log.Warn("--spool-dir: spans are not exported over OTLP (OTEL_TRACES_EXPORTER), so the spool is not used", "dir", s.spoolDir, "spans_left", spans)
		spool.Close()
		return func(context.Context) {}, nil
	}
	if spans > 0 {
		log.Info("spool: exporting the spans a previous run left", "dir", s.spoolDir, "spans", spans, "segments", segs)
	}
	s.buffer.Spool = spool
	var once sync.Once
	return func(ctx context.Context) {
		once.Do(func() {
			// The processes' flushes have had their time: a short one for
			// what they handed over; the rest stays for the next run.
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			if err := replay.Shutdown(ctx); err != nil && !errors.Is(err, export.ErrKeptInSpool) {
				log.Warn("spool: flush", "err", err)
			}
			if segs, spans := spool.Left(); spans > 0 {
				log.Info("spool: spans kept for the next run", "dir", s.spoolDir, "spans", spans, "segments", segs)
			}
			spool.Close()
		})
	}, nil
}

// run traces in the mode the flags chose.
func (t *tracing) run(ctx context.Context, argv []string, pid int, exe string) (int, error) {
	switch {
	case len(argv) > 0:
		return t.command(ctx, argv)
	case pid != 0:
		return 0, t.pid(ctx, pid)
	default:
		return 0, t.watch(ctx, exe)
	}
}

// signals returns a context cancelled by the first SIGINT or SIGTERM (stop
// tracing, detach, flush) and one cancelled by the second (cut the flush
// short: abortGrace, see flushContext).
func signals(log *slog.Logger) (stop, abort context.Context, release func()) {
	stop, cancelStop := context.WithCancelCause(context.Background())
	abort, cancelAbort := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			log.Info("signal received: stopping; a second one cuts the flush short", "signal", sig.String())
			cancelStop(stopSignal{sig})
		case <-done:
			return
		}
		select {
		case sig := <-sigs:
			log.Warn("second signal: cutting the flush short (the exporter gets flush_grace, once detached, for the spans in memory; what is not exported then is counted as dropped_export_failed, or kept in --spool-dir for the next run)",
				"signal", sig.String(), "flush_grace", abortGrace)
			cancelAbort()
		case <-done:
		}
	}()
	return stop, abort, func() {
		signal.Stop(sigs)
		close(done)
		cancelStop(nil)
		cancelAbort()
	}
}

// stopSignal is the cause of the stop context when a signal ended it: the
// signal, which `tracer -- CMD` passes on to CMD.
type stopSignal struct{ sig os.Signal }

func (s stopSignal) Error() string { return "stopped by " + s.sig.String() }

// logStats logs the tracer's span counts every interval while they change,
// until the returned function is called.
func (t *tracing) logStats(interval time.Duration) (stop func()) {
	if interval <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		var last export.Snapshot
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if s := t.counts.Snapshot(); s != last {
				last = s
				t.log.Info("spans so far", s.Attrs()...)
			}
		}
	}()
	return func() { close(done) }
}

// startLoader makes the Loader every process is attached through (each
// binary's BPF collections loaded once, one ring buffer) and counts what
// it loses in BPF every second, into the tracer's counts: no process's
// own. The returned function, called once every process is detached,
// unloads it and counts the rest.
func (t *tracing) startLoader(perLink bool) (stop func()) {
	opts := uprobe.Options{PerLink: perLink}
	t.context.apply(&opts)
	t.loader = uprobe.NewLoader(&opts)
	lost := target.NewLostCounter(t.loader, func(d target.Stats) {
		t.counts.Add(export.RingBufferFull, int(d.Dropped))
		t.counts.Add(export.InFlightLost, int(d.InFlightLost))
		t.counts.Add(export.Invalid, int(d.Errors))
	})
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				lost.Report()
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
		if err := t.loader.Close(); err != nil {
			t.log.Warn("unload", "err", err)
		}
		lost.Report()
		target.LogLost(t.log, target.Stats{Dropped: t.loader.Drops(), InFlightLost: t.loader.InFlightLost(), SkippedRuns: t.loader.SkippedRuns()})
		if n := t.loader.Unattributed(); n > 0 {
			t.log.Warn("records of no traced process (read after their process was detached): their spans are lost", "unattributed", n)
		}
	}
}

// tracing holds what every traced process shares.
type tracing struct {
	// loader attaches every process: BPF collections once per binary,
	// one ring buffer.
	loader   *uprobe.Loader
	resolver *resolve.Resolver
	log      *slog.Logger
	stdout   io.Writer
	perLink  bool // uprobe.Options.PerLink
	insts    []uprobe.Instrumentation
	context  *contextProp
	// counts are the tracer's span counts; each process counts into a
	// child.
	counts *export.Counts
	buffer export.BufferOptions
	// abort is cancelled by a second signal: flushes stop abortGrace
	// after it, or after they start (flushContext).
	abort context.Context
	// kube describes each process's pod; nil outside Kubernetes.
	kube *kube.Metadata
	// selector filters the --exe watch by the discovery rules; nil: no rules.
	selector *discovery.Selector
	// holdNew stops each new --exe process at its exec until attached.
	holdNew bool

	// plans are the plans of the executables being traced, by file: the
	// processes of one executable share its plan (see plan).
	plansMu sync.Mutex
	plans   map[fileID]*sharedPlan
}

// fileID identifies an executable file.
type fileID struct{ dev, ino uint64 }

// sharedPlan is the plan of one executable and how many traced processes
// use it. ready is closed once plan or err is set.
type sharedPlan struct {
	ready chan struct{}
	plan  *target.Plan
	err   error
	refs  int
	freed sync.Once // releaseGarbage
}

// plan returns the plan of a process's executable, made by the first of
// its processes and shared by the next ones until the last is detached
// (releasePlan): inspecting the binary and resolving its offsets costs
// ~13 MB of allocations and tens of ms for the example service, once per
// executable rather than per process. What cannot run is logged once per
// executable. Each process gets its own copy of the Plan struct.
func (t *tracing) plan(pid int) (*target.Plan, string, error) {
	path, name, err := process.ExePath(pid)
	if err != nil {
		return nil, "", err
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, "", fmt.Errorf("pid %d (%s): %w", pid, name, process.ErrGone)
	}
	id := fileID{dev: st.Dev, ino: st.Ino}
	t.plansMu.Lock()
	if t.plans == nil {
		t.plans = make(map[fileID]*sharedPlan)
	}
	sp, ok := t.plans[id]
	if !ok {
		sp = &sharedPlan{ready: make(chan struct{})}
		t.plans[id] = sp
	}
	sp.refs++
	t.plansMu.Unlock()
	if !ok {
		sp.plan, sp.err = t.newPlan(pid, path, name)
		close(sp.ready)
	}
	<-sp.ready
	if sp.err != nil {
		t.plansMu.Lock()
		if sp.refs--; sp.refs == 0 && t.plans[id] == sp {
			delete(t.plans, id)
		}
		t.plansMu.Unlock()
		return nil, "", fmt.Errorf("pid %d (%s): %w", pid, name, sp.err)
	}
	p := *sp.plan
	t.context.adopt(pid, t.log)
	return &p, name, nil
}

// releaseGarbage returns the heap garbage of inspecting an executable and
// loading its BPF objects to the operating system, once per executable,
// after its first process is attached: that is tens of MB for a moment
// (the pclntab, the symbol table, DWARF), which the Go runtime would
// otherwise keep mapped for minutes, a large share of an idle tracer's
// RSS. The cost is one garbage collection of a small heap.
func (t *tracing) releaseGarbage(p *target.Plan) {
	t.plansMu.Lock()
	var sp *sharedPlan
	for _, s := range t.plans {
		if s.plan != nil && s.plan.Binary == p.Binary {
			sp = s
		}
	}
	t.plansMu.Unlock()
	if sp != nil {
		sp.freed.Do(debug.FreeOSMemory)
	}
}

// releasePlan is called once per plan returned by plan, when its process
// is detached: the executable's binary is closed with its last process.
func (t *tracing) releasePlan(p *target.Plan) {
	t.plansMu.Lock()
	defer t.plansMu.Unlock()
	for id, sp := range t.plans {
		if sp.plan != nil && sp.plan.Binary == p.Binary {
			if sp.refs--; sp.refs == 0 {
				delete(t.plans, id)
				sp.plan.Binary.Close()
			}
			return
		}
	}
}

// newPlan inspects the executable at path, which process pid runs, and
// logs what cannot run.
func (t *tracing) newPlan(pid int, path, name string) (*target.Plan, error) {
	p, err := target.NewPlan(path, t.resolver, t.insts)
	if errors.Is(err, gobinary.ErrNotGo) || errors.Is(err, gobinary.ErrNotELF) {
		return nil, fmt.Errorf("%w: %w", err, errNotGoProgram)
	}
	if err != nil {
		return nil, err
	}
	for _, d := range p.Disabled {
		t.log.Warn(d.String(), "pid", pid, "exe", name)
	}
	for inst, fields := range p.Degraded {
		var pending []resolve.Field
		for _, f := range fields {
			if module, ok := resolve.Module(p.Binary, f.ID); ok && fieldset.IsPending(module, f.ID) {
				pending = append(pending, f) // said once below
				continue
			}
			t.log.Warn("instrumentation runs without a field", "instrumentation", inst, "pid", pid, "exe", name, "field", f.ID.String(),
				"reason", f.Err, "fix", resolve.Hint(p.Binary, []resolve.Field{f}))
		}
		if len(pending) > 0 {
			names := make([]string, len(pending))
			for i, f := range pending {
				names[i] = f.ID.String()
			}
			t.log.Info("instrumentation runs without fields the offset database does not cover yet (fieldset/*.pending) and the binary has no DWARF",
				"instrumentation", inst, "pid", pid, "exe", name, "fields", strings.Join(names, ","), "fix", resolve.Hint(p.Binary, pending))
		}
	}
	for _, a := range p.Assumptions {
		t.log.Warn("assumption", "pid", pid, "exe", name, "what", a)
	}
	absent := 0
	for inst, skipped := range p.Skipped {
		for _, s := range skipped {
			level := slog.LevelInfo
			switch {
			case s.OutsideVersions || s.NotLinked:
				level = slog.LevelDebug // an alternative for other versions, or a library not used: expected
			case errors.Is(s.Err, gobinary.ErrSymbolNotFound):
				// The program does not use that function (a server that
				// never hijacks has no (*response).Hijack): summed below.
				level = slog.LevelDebug
				absent++
			}
			t.log.Log(context.Background(), level, "optional probe skipped", "instrumentation", inst, "pid", pid, "exe", name, "reason", s.Err)
		}
	}
	if absent > 0 {
		t.log.Info("optional probes left out: their functions are not in the binary (features the program does not use)",
			"pid", pid, "exe", name, "probes", absent, "list", "tracer inspect "+name)
	}
	if len(p.NotUsed) > 0 {
		t.log.Debug("instrumentations of libraries the binary does not link", "pid", pid, "exe", name, "instrumentations", strings.Join(p.NotUsed, ", "))
	}
	// The goroutine context makes no span of its own: alone, nothing
	// would be traced.
	if !slices.ContainsFunc(p.Enabled, func(inst uprobe.Instrumentation) bool { return inst.Name != goroutine.Name }) {
		p.Binary.Close()
		return nil, errNothingToTrace
	}
	p.Attach.PerLink = t.perLink
	t.context.apply(&p.Attach)
	p.Loader = t.loader
	return p, nil
}

// trace traces one process with its own TracerProvider (service.name is its
// executable's name) and flushes its spans when it ends. Its last line,
// "detached", has the process's span counts after the flush:
// spans = exported + dropped_queue_full + dropped_rejected +
// dropped_export_failed.
func (t *tracing) trace(ctx context.Context, pid int, p *target.Plan, name string, attached func()) error {
	defer t.releasePlan(p)
	counts := t.counts.Child()
	res := t.kube.Resource(pid, name)
	tp, err := export.NewTracerProvider(ctx, export.Options{ServiceName: res.ServiceName, Attributes: res.Attributes, PID: pid, Executable: name, Console: t.stdout,
		Counts: counts, Buffer: t.buffer, Log: t.log.With("pid", pid)})
	if err != nil {
		return err
	}
	rec, err := spans.NewRecorder(tp)
	if err != nil {
		_ = tp.Shutdown(context.Background())
		return err
	}
	// Events that become no span are counted as they come, so that the
	// periodic line has them too; what BPF loses is counted tracer-wide
	// (startLoader).
	p.Count = func(d target.Stats) {
		counts.Add(export.Invalid, int(d.Errors))
		counts.Add(export.Unsampled, int(d.Unsampled))
	}
	_, err = target.Trace(ctx, p, pid, rec, t.log, func() {
		if attached != nil {
			attached()
		}
		t.releaseGarbage(p)
	})
	counts.Add(export.Unsampled, int(rec.NotSampled()))
	func() {
		defer target.LogIfSlow(t.log, "flushing spans to the exporter", "pid", pid, "timeout", flushTimeout)()
		sctx, cancel := t.flushContext()
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil {
			if errors.Is(err, export.ErrKeptInSpool) {
				t.log.Info("flush spans: the collector did not take them in time; they stay in the spool", "pid", pid, "detail", err)
			} else {
				t.log.Error("flush spans", "pid", pid, "err", err)
			}
		}
	}()
	t.log.Info("detached", append([]any{"pid", pid}, counts.Snapshot().Attrs()...)...)
	return err
}

// errSecondSignal is why a flush was cut short by a second signal.
var errSecondSignal = errors.New("second signal")

// flushContext bounds a process's flush: flushTimeout, or abortGrace once
// a second signal has come, counted from that signal or from the start of
// the flush if the signal came before (while detaching). The context is
// never done when returned: the SDK's TracerProvider.Shutdown does not
// call its span processor's Shutdown with a done context, and the spans
// left in the processor would be counted as pending for good.
func (t *tracing) flushContext() (context.Context, context.CancelFunc) {
	ctx, cancelCause := context.WithCancelCause(context.Background())
	ctx, cancelTimeout := context.WithTimeout(ctx, flushTimeout)
	// A grace timer left running by the cancel below cancels a context
	// already cancelled: nothing.
	stop := context.AfterFunc(t.abort, func() {
		time.AfterFunc(abortGrace, func() { cancelCause(errSecondSignal) })
	})
	return ctx, func() {
		stop()
		cancelTimeout()
		cancelCause(context.Canceled)
	}
}

// command starts argv held at its first instruction, attaches, lets it run,
// and returns its exit code. A signal to the tracer is passed on to it.
func (t *tracing) command(ctx context.Context, argv []string) (int, error) {
	child, err := process.Start(argv, os.Stdin, os.Stdout, os.Stderr)
	if err != nil {
		return 0, err
	}
	p, name, err := t.plan(child.PID)
	if errors.Is(err, errNothingToTrace) || errors.Is(err, errNotGoProgram) {
		// The program is what matters: run it untraced rather than not at
		// all, and say so in the exit status when its own says nothing.
		t.log.Error("running the program untraced", "pid", child.PID, "err", err)
		if err := child.Resume(); err != nil {
			return 0, err
		}
		code := t.wait(ctx, child)
		if code == exitOK {
			t.log.Error("the program ran untraced: exiting with status 3", "pid", child.PID)
			code = exitNothingTraced
		}
		return code, nil
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

// resume continues a process the watch held at its exec; once is enough,
// more is harmless.
func (t *tracing) resume(ev process.Event) {
	if err := ev.Resume(); err != nil {
		t.log.Error("resume a process held at its exec", "pid", ev.PID, "err", err)
	}
}

// finish waits for a trace told to stop (its process exited, or a signal
// came) to detach and flush, at most shutdownBudget. A second signal does
// not end the wait: it cuts the flushes short (flushContext), and the
// detach, which reads the records already submitted, ends on its own; so
// every span is counted by the time the traces are done.
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
// tracer it passes that signal on to the child (SIGTERM when the stop had
// another cause), then SIGKILL after 5 s or at a second signal, and
// returns 0: the user asked for the stop.
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
	var sig os.Signal = syscall.SIGTERM
	var cause stopSignal
	if errors.As(context.Cause(ctx), &cause) {
		sig = cause.sig
	}
	t.log.Info("stopping the traced program", "pid", child.PID, "signal", sig.String())
	child.Cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		child.Cmd.Process.Kill()
		<-exited
	case <-t.abort.Done():
		t.log.Warn("killing the traced program: a second signal came before it exited", "pid", child.PID)
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
	events := process.Watch(ctx, glob, process.WatchOptions{Interval: 500 * time.Millisecond, Hold: t.holdNew, Log: t.log})
	events = discovery.Filter(ctx, events, t.selector, time.Second)
	t.log.Info("watching for processes", "exe", glob, "hold_new", t.holdNew) // subscribed: every later exec is seen
	var wg sync.WaitGroup
	// The trace of each pid, until it has detached. A pid can be reported
	// new again before its earlier trace has ended: a process that exec'd
	// through a wrapper (env, sh -c exec, runc init) is seen at the
	// wrapper's exec already running the traced program, then again at
	// that program's own exec. The later trace waits for the earlier one
	// to detach, since one process is attached once.
	type pidTrace struct {
		cancel context.CancelFunc
		done   chan struct{}
		// superseded: a later event for the pid holds the process
		// (SIGSTOP) for its own trace, which resumes it once attached.
		superseded atomic.Bool
	}
	var mu sync.Mutex
	traces := map[int]*pidTrace{}
	for ev := range events {
		mu.Lock()
		prev := traces[ev.PID]
		mu.Unlock()
		if prev != nil {
			prev.cancel() // exited, or its program replaced
			if ev.Held {
				prev.superseded.Store(true)
			}
		}
		if ev.Exited {
			continue
		}
		p, name, err := t.plan(ev.PID)
		if err != nil {
			t.resume(ev)
			t.log.Warn("not tracing", "pid", ev.PID, "err", err)
			continue
		}
		pctx, cancel := context.WithCancel(ctx)
		cur := &pidTrace{cancel: cancel, done: make(chan struct{})}
		mu.Lock()
		traces[ev.PID] = cur
		mu.Unlock()
		wg.Add(1)
		go func(ev process.Event) {
			defer wg.Done()
			defer func() {
				mu.Lock()
				if traces[ev.PID] == cur {
					delete(traces, ev.PID)
				}
				mu.Unlock()
				close(cur.done)
			}()
			defer func() {
				if !cur.superseded.Load() {
					t.resume(ev) // if it was not attached
				}
			}()
			if prev != nil {
				<-prev.done
			}
			attached := func() {
				if !cur.superseded.Load() { // else the later trace resumes it, attached
					t.resume(ev)
				}
				if !ev.Exec.IsZero() {
					t.log.Info("new process traced from its start", "pid", ev.PID, "exec_to_attached", time.Since(ev.Exec).Round(time.Microsecond),
						"exec_seen_after", ev.Seen.Sub(ev.Exec).Round(time.Microsecond), "held", ev.Held)
				}
			}
			if err := t.trace(pctx, ev.PID, p, name, attached); err != nil {
				t.log.Warn("tracing ended", "pid", ev.PID, "err", err)
			}
		}(ev)
	}
	mu.Lock()
	for _, tr := range traces {
		tr.cancel()
	}
	mu.Unlock()
	all := make(chan error, 1)
	go func() { wg.Wait(); all <- nil }()
	return t.finish(all, "traced processes")
}
