package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/internal/proctest"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// corruptOffsetsDir returns a database directory whose shard does not match
// the checksum its index records, as offsetgen verify would reject.
func corruptOffsetsDir(t *testing.T) string {
	dir := t.TempDir()
	table := offsets.NewTable(offsets.StdModule, []offsets.FieldID{{Package: "net/http", Struct: "Request", Field: "Method"}})
	require.NoError(t, offsets.WriteShard(dir, table.Shard()))
	shard := filepath.Join(dir, offsets.ShardFile(offsets.StdModule))
	f, err := os.OpenFile(shard, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString("tampered")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	return dir
}

// TestCLIRejectsBadSettingsNamingThem: every setting is checked at start,
// before anything is loaded; a bad one exits 2 with a message that names
// it, and nothing runs.
func TestCLIRejectsBadSettingsNamingThem(t *testing.T) {
	junkDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(junkDir, "index.json"), []byte("junk"), 0o644))
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // in stderr
	}{
		{"no mode", nil, nil, "give exactly one of -- CMD, --pid or --exe"},
		{"two modes", []string{"--pid", "1", "--exe", "x"}, nil, "give exactly one"},
		{"bad boolean", []string{"--context-propagation=maybe", "--pid", "1"}, nil, `tracer: invalid setting: invalid boolean value "maybe" for -context-propagation`},
		{"unknown flag", []string{"--nosuch", "--pid", "1"}, nil, "tracer: invalid setting: flag provided but not defined: -nosuch"},
		{"bad glob", []string{"--exe", "["}, nil, `--exe "[": syntax error in pattern`},
		{"exe twice", []string{"--exe", "a", "--exe", "b"}, nil, `-exe: given twice ("a", then "b")`},
		{"misspelt discovery key", []string{"--discovery", writeFile(t, "discovery:\n  services:\n    - exe_paht: \"*/x\"\n")}, nil, `discovery configuration: unknown field "exe_paht"`},
		{"bad log level", []string{"--log-level", "bogus", "--pid", "1"}, nil, `--log-level (or OTEL_LOG_LEVEL) "bogus"`},
		{"bad log level from env", []string{"--pid", "1"}, map[string]string{"OTEL_LOG_LEVEL": "loud"}, `OTEL_LOG_LEVEL) "loud"`},
		{"bad log format", []string{"--log-format", "xml", "--pid", "1"}, nil, `--log-format "xml"`},
		{"endpoint not a URL", []string{"--pid", "1"}, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "not-a-url"}, `OTEL_EXPORTER_OTLP_ENDPOINT="not-a-url"`},
		{"traces endpoint without host", []string{"--pid", "1"}, map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://"}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
		{"unknown exporter", []string{"--pid", "1"}, map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, `OTEL_TRACES_EXPORTER="zipkin"`},
		{"unknown protocol", []string{"--pid", "1"}, map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "udp"}, `OTEL_EXPORTER_OTLP_PROTOCOL="udp"`},
		{"bad queue size", []string{"--pid", "1"}, map[string]string{"OTEL_BSP_MAX_QUEUE_SIZE": "-5"}, "OTEL_BSP_MAX_QUEUE_SIZE"},
		{"bad export timeout", []string{"--pid", "1"}, map[string]string{"OTEL_EXPORTER_OTLP_TIMEOUT": "soon"}, "OTEL_EXPORTER_OTLP_TIMEOUT"},
		{"bad metric interval", []string{"--pid", "1"}, map[string]string{"OTEL_METRIC_EXPORT_INTERVAL": "1m"}, "OTEL_METRIC_EXPORT_INTERVAL"},
		{"bad metrics exporter", []string{"--pid", "1"}, map[string]string{"OTEL_METRICS_EXPORTER": "statsd"}, `OTEL_METRICS_EXPORTER="statsd"`},
		{"spool size without spool", []string{"--pid", "1", "--spool-size", "10"}, nil, "--spool-size bounds --spool-dir, which is not given"},
		{"spool size zero", []string{"--pid", "1", "--spool-dir", "/tmp", "--spool-size", "0"}, nil, "--spool-size 0: want a positive number of MiB"},
		{"bad Prometheus address", []string{"--pid", "1", "--prometheus-address", "9464"}, nil, `--prometheus-address "9464": want HOST:PORT`},
		{"bad Prometheus port", []string{"--pid", "1"}, map[string]string{"OTEL_METRICS_EXPORTER": "otlp,prometheus", "OTEL_EXPORTER_PROMETHEUS_PORT": "x"}, `OTEL_EXPORTER_PROMETHEUS_PORT="x"`},
		{"offsets URL not a URL", []string{"--offsets-url", "not-a-url", "--pid", "1"}, nil, `--offsets-url (or OFFSETDB_URL) "not-a-url"`},
		{"offsets URL from env", []string{"--pid", "1"}, map[string]string{"OFFSETDB_URL": "file:///etc/passwd"}, "OFFSETDB_URL"},
		{"export concurrency", []string{"--export-concurrency", "0", "--pid", "1"}, nil, "--export-concurrency 0"},
		{"export buffer", []string{"--export-buffer", "-1", "--pid", "1"}, nil, "--export-buffer -1"},
		{"offsets dir unreadable", []string{"--offsets-dir", junkDir, "--no-embedded-offsets", "inspect", "/bin/true"}, nil, "--offsets-dir " + junkDir},
		{"offsets dir fails verify", []string{"inspect", "--offsets-dir", corruptOffsetsDir(t), "/bin/true"}, nil, "sha256"},
		{"error as JSON", []string{"--log-format", "json", "--log-level", "bogus", "--pid", "1"}, nil, `{"time":`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"OTEL_LOG_LEVEL", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER",
				"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_EXPORTER_OTLP_TIMEOUT", "OFFSETDB_URL", "OTEL_METRIC_EXPORT_INTERVAL",
				"OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_PROMETHEUS_PORT"} {
				t.Setenv(k, tt.env[k])
			}
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			assert.Equal(t, exitUsage, code, "stderr:\n%s", stderr.String())
			assert.Contains(t, stderr.String(), tt.want)
			assert.NotContains(t, stderr.String(), "msg=attached")
		})
	}
}

// TestCLISubcommandsTakeFlagsBeforeOrAfter: "tracer --log-level debug
// inspect X" inspects X, as "tracer inspect --log-level debug X" does; a
// flag's value or a command after -- is never taken for a subcommand.
func TestCLISubcommandsTakeFlagsBeforeOrAfter(t *testing.T) {
	tests := []struct {
		args     []string
		wantCmd  string
		wantRest []string
	}{
		{[]string{"inspect", "X"}, "inspect", []string{"X"}},
		{[]string{"--log-level", "debug", "inspect", "X"}, "inspect", []string{"--log-level", "debug", "X"}},
		{[]string{"--log-level=debug", "--no-dwarf", "inspect", "--json", "X"}, "inspect", []string{"--log-level=debug", "--no-dwarf", "--json", "X"}},
		{[]string{"--exe", "inspect"}, "", []string{"--exe", "inspect"}},
		{[]string{"--", "inspect", "X"}, "", []string{"--", "inspect", "X"}},
		{[]string{"--pid", "1", "help"}, "help", []string{"--pid", "1"}},
		{[]string{"help"}, "help", []string{}},
	}
	for _, tt := range tests {
		cmd, rest := subcommand(tt.args)
		assert.Equal(t, tt.wantCmd, cmd, "%q", tt.args)
		assert.Equal(t, tt.wantRest, rest, "%q", tt.args)
	}

	var stdout, stderr bytes.Buffer
	code := run([]string{"--log-level", "debug", "inspect", "--json", tracerBinary(t)}, &stdout, &stderr)
	require.Equal(t, exitOK, code, "stderr:\n%s", stderr.String())
	assert.Contains(t, stdout.String(), `"go_version"`)
}

// TestCLIHelpNamesTheDefaultEndpoint: "tracer help" and --help print the
// usage on stdout and exit 0; it names where spans go by default and how to
// see them without a collector, and the exit statuses.
func TestCLIHelpNamesTheDefaultEndpoint(t *testing.T) {
	var stdout, stderr bytes.Buffer
	require.Equal(t, exitOK, run([]string{"help"}, &stdout, &stderr))
	for _, want := range []string{"http://localhost:4318", "OTEL_TRACES_EXPORTER", "console", "-log-format", "-export-buffer", "Exit status", "3 nothing could be"} {
		assert.Contains(t, stdout.String(), want)
	}
	stdout.Reset()
	stderr.Reset()
	require.Equal(t, exitOK, run([]string{"--help"}, &stdout, &stderr))
	assert.Contains(t, stdout.String(), "http://localhost:4318", "on stdout, as the comment says (it went to stderr)")
	stdout.Reset()
	require.Equal(t, exitOK, run([]string{"inspect", "-h"}, &stdout, &stderr))
	assert.Contains(t, stdout.String(), "-json")
}

// buildNoHTTP builds a Go program that links no instrumented library.
func buildNoHTTP(t *testing.T) string {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nimport \"time\"\n\nfunc main() { time.Sleep(2 * time.Second) }\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module nohttp\n\ngo 1.22\n"), 0o644))
	cmd := exec.Command("go", "build", "-o", "nohttp", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	return filepath.Join(dir, "nohttp")
}

// TestCLINothingToTraceExits3: a Go program the tracer starts but cannot
// trace still runs, and the tracer exits 3 rather than 0, which would look
// like success; --pid on such a process exits 3 at once.
func TestCLINothingToTraceExits3(t *testing.T) {
	uprobetest.RequireBPF(t)
	bin := buildNoHTTP(t)
	cmd := exec.Command(tracerBinary(t), "--", bin)
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "%s", out)
	assert.Equal(t, exitNothingTraced, exit.ExitCode(), "%s", out)
	assert.Contains(t, string(out), "the program ran untraced")

	prog := exec.Command(bin)
	require.NoError(t, prog.Start())
	defer func() {
		_ = prog.Process.Kill()
		_ = prog.Wait()
	}()
	cmd = exec.Command(tracerBinary(t), "--pid", strconv.Itoa(prog.Process.Pid))
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	out, err = cmd.CombinedOutput()
	require.ErrorAs(t, err, &exit, "%s", out)
	assert.Equal(t, exitNothingTraced, exit.ExitCode(), "%s", out)
	assert.Contains(t, string(out), "no instrumentation can run")
}

var detachedLine = regexp.MustCompile(`msg=detached pid=\d+ spans=(\d+) exported=(\d+) pending=0 dropped=(\d+) dropped_queue_full=0 dropped_rejected=0 dropped_export_failed=(\d+)`)

// TestCLISecondSignalCutsTheFlushShort: with the collector unreachable the
// flush at exit would wait its full budget; a second SIGTERM ends it at
// once, and the spans it gave up on are counted as dropped_export_failed,
// so that spans = exported + dropped still holds.
func TestCLISecondSignalCutsTheFlushShort(t *testing.T) {
	uprobetest.RequireBPF(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := "http://" + ln.Addr().String() // nothing listens once closed
	require.NoError(t, ln.Close())

	cmd := exec.Command(tracerBinary(t), "--", buildLocalService(t))
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_ENDPOINT="+closed, "OTEL_METRICS_EXPORTER=none")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	addr := serveTraced(t, cmd, stderr)
	for i := 1; i <= 5; i++ {
		get(t, addr, fmt.Sprintf("/items/%d", i))
	}

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	waitFor(t, stderr, "flushing spans")
	start := time.Now()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(eventTimeout):
		t.Fatalf("tracer still running after the second signal:\n%s", stderr)
	}
	assert.Less(t, time.Since(start), 3*time.Second, "the flush budget is 5 s; the second signal cuts it short")
	m := detachedLine.FindStringSubmatch(stderr.String())
	require.NotNil(t, m, "no detached line with the counts:\n%s", stderr)
	assert.Equal(t, "15", m[1], "3 spans per request")
	assert.Equal(t, "0", m[2], "nothing reached the collector")
	assert.Equal(t, m[1], m[4], "every span counted as dropped_export_failed")
}

// stopExpecting stops the tracer as stop does and checks its exit status.
func (r *tracedRun) stopExpecting(t *testing.T, code int) {
	require.NoError(t, r.cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "tracer exit; stderr:\n%s", r.stderr)
		assert.Equal(t, code, exit.ExitCode(), "tracer exit status; stderr:\n%s", r.stderr)
	case <-time.After(eventTimeout):
		t.Fatalf("tracer did not exit after SIGTERM; stderr:\n%s", r.stderr)
	}
}

// TestCLILogFormatJSON: with --log-format json every line the tracer logs
// is one JSON object, the counts included.
func TestCLILogFormatJSON(t *testing.T) {
	uprobetest.RequireBPF(t)
	cmd := exec.Command(tracerBinary(t), "--log-format", "json", "--", buildLocalService(t))
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	line := make([]byte, 128)
	_, err = stdout.Read(line) // "listening on": attached
	require.NoError(t, err)
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), "stderr:\n%s", stderr.String())
	var msgs []string
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &rec), "not JSON: %s", l)
		msgs = append(msgs, fmt.Sprint(rec["msg"]))
		if rec["msg"] == "totals" {
			assert.Contains(t, rec, "dropped_ring_buffer_full")
		}
	}
	assert.Contains(t, msgs, "attached")
	assert.Contains(t, msgs, "totals")
}

// TestCLIPeriodicLineCountsAsItGoes: the "spans so far" line has the
// counts while the process is traced, those of events that become no
// span (here a request whose caller did not sample its trace) included.
func TestCLIPeriodicLineCountsAsItGoes(t *testing.T) {
	uprobetest.RequireBPF(t)
	cmd := exec.Command(tracerBinary(t), "--stats-interval", "200ms", "--", buildLocalService(t))
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	addr := serveTraced(t, cmd, stderr)
	get(t, addr, "/items/1")
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/backend", nil)
	require.NoError(t, err)
	req.Header.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00") // not sampled
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()

	so := regexp.MustCompile(`msg="spans so far" spans=(\d+) .* unsampled=(\d+) discarded=(\d+)`)
	deadline := time.Now().Add(eventTimeout)
	for {
		if m := so.FindAllStringSubmatch(stderr.String(), -1); len(m) > 0 {
			last := m[len(m)-1]
			if last[1] == "3" && last[2] == "1" && last[3] == "3" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no \"spans so far\" line with spans=3 unsampled=1 discarded=3 while traced:\n%s", stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait())
}

// writeFile writes content to a new file in a test's temporary directory.
func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	return path
}

// serveTraced starts cmd, the tracer running the local test service with
// its standard error in stderr, and returns where the service listens. The
// tracer's log is shown when the test fails.
func serveTraced(t *testing.T, cmd *exec.Cmd, stderr *syncBuffer) string {
	t.Helper()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tracer log:\n%s", stderr)
		}
	})
	return proctest.Serve(t, cmd, "listening on ", "the traced service")
}
