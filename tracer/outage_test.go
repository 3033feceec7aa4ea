package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/tracer/otlptest"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// tcpProxy forwards a port to a collector and can go down: its listener
// and every connection closed, so exporters get connection refused, as
// from a collector that is not running.
type tcpProxy struct {
	t      testing.TB
	addr   string
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

func newTCPProxy(t testing.TB, target string) *tcpProxy {
	p := &tcpProxy{t: t, target: target, conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.ln = ln
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[up] = true, true
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
}

// down closes the listener and every connection.
func (p *tcpProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

// up listens again on the same port.
func (p *tcpProxy) up() {
	p.mu.Lock()
	defer p.mu.Unlock()
	ln, err := net.Listen("tcp", p.addr)
	require.NoError(p.t, err)
	p.serve(ln)
}

var detachedCounts = regexp.MustCompile(`msg=detached pid=\d+ spans=(\d+) exported=(\d+) pending=0 dropped=(\d+) `)

// outageRun runs the test service under the tracer binary bin, sends
// GET /backend (one span each) at rate per second for before+down+after,
// with the collector unreachable during down, then waits up to wait for
// the spans and stops the tracer. It returns the requests sent, the spans
// the collector received and the tracer's stderr.
func outageRun(t testing.TB, bin string, rate int, before, down, after, wait time.Duration, tracerArgs ...string) (sent, received int, log string, usage *syscall.Rusage) {
	recv := otlptest.NewHTTP(t)
	proxy := newTCPProxy(t, strings.TrimPrefix(recv.Endpoint(), "http://"))

	cmd := exec.Command(bin, append(tracerArgs, "--", buildLocalService(t))...)
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_ENDPOINT=http://"+proxy.addr,
		"OTEL_BSP_SCHEDULE_DELAY=100", "OTEL_METRICS_EXPORTER=none")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	line := make([]byte, 128)
	n, err := stdout.Read(line)
	require.NoError(t, err, "service did not start:\n%s", stderr)
	addr := strings.TrimSpace(strings.TrimPrefix(string(line[:n]), "listening on "))

	// Every 10 ms the requests due by then, from 8 clients.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	work := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				resp, err := client.Get(fmt.Sprintf("http://%s/backend?n=%d", addr, i))
				if !assert.NoError(t, err) {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	tick := time.NewTicker(10 * time.Millisecond)
	start := time.Now()
	isDown := false
	for now := range tick.C {
		el := now.Sub(start)
		if el >= before+down+after {
			break
		}
		if !isDown && down > 0 && el >= before && el < before+down {
			proxy.down()
			isDown = true
		}
		if isDown && el >= before+down {
			proxy.up()
			isDown = false
		}
		for due := int(el.Seconds() * float64(rate)); sent < due; sent++ {
			work <- sent
		}
	}
	tick.Stop()
	close(work)
	wg.Wait()
	deadline := time.Now().Add(wait)
	for len(recv.Spans()) < sent && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	_ = cmd.Wait()
	usage, _ = cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return sent, len(recv.Spans()), stderr.String(), usage
}

// TestTracerLosesNothingWhileTheCollectorIsDown: through the whole tracer
// (uprobes, ring buffer, spans, export), a collector that is down for two
// seconds of steady traffic costs no span: every request has its span at
// the collector once it is back, and the tracer's counts say so.
func TestTracerLosesNothingWhileTheCollectorIsDown(t *testing.T) {
	uprobetest.RequireBPF(t)
	sent, received, log, _ := outageRun(t, tracerBinary(t), 100, time.Second, 2*time.Second, time.Second, 30*time.Second)
	assert.Equal(t, sent, received, "every request's span reached the collector once it was back")
	m := detachedCounts.FindStringSubmatch(log)
	require.NotNil(t, m, "no detached line:\n%s", log)
	assert.Equal(t, fmt.Sprint(sent), m[1], "spans")
	assert.Equal(t, fmt.Sprint(sent), m[2], "exported")
	assert.Equal(t, "0", m[3], "dropped")
	assert.Contains(t, log, "export failed: keeping the spans", "the outage is logged")
	assert.Contains(t, log, "export recovered", "and the recovery")
}

// BenchmarkTracerCollectorOutage measures the share of spans lost through
// the whole tracer when the collector is down for OFFSETDB_OUTAGE_SECONDS
// (default 5) in the middle of 1,000 requests/s lasting four times as
// long, and reports it with the spans the tracer counted as dropped and the
// tracer's CPU time and peak RSS, side by side: healthy (no outage: the
// baseline), outage with the memory buffer, outage with a 1,000-span buffer
// and --spool-dir (the overflow on disk). OFFSETDB_TRACER_BIN runs another
// tracer build (an older one, for a before/after figure). One iteration is
// one run of each:
//
//	OFFSETDB_OUTAGE_SECONDS=30 go test ./tracer -run '^$' -bench TracerCollectorOutage -benchtime 1x -timeout 0
func BenchmarkTracerCollectorOutage(b *testing.B) {
	uprobetest.RequireBPF(b)
	down := 5 * time.Second
	if v := os.Getenv("OFFSETDB_OUTAGE_SECONDS"); v != "" {
		d, err := time.ParseDuration(v + "s")
		require.NoError(b, err, "OFFSETDB_OUTAGE_SECONDS")
		down = d
	}
	bin := os.Getenv("OFFSETDB_TRACER_BIN")
	if bin == "" {
		bin = tracerBinary(b)
	}
	for _, arm := range []struct {
		name  string
		down  time.Duration
		spool bool
	}{{"healthy", 0, false}, {"outage-memory", down, false}, {"outage-spool", down, true}} {
		b.Run(arm.name, func(b *testing.B) {
			for b.Loop() {
				var args []string
				if arm.spool {
					args = []string{"--spool-dir", b.TempDir(), "--export-buffer", "1000"}
				}
				sent, received, log, usage := outageRun(b, bin, 1000, 3*down/2, arm.down, 3*down/2, 30*time.Second, args...)
				b.ReportMetric(100*float64(sent-received)/float64(sent), "lost_%")
				b.ReportMetric(float64(sent), "sent")
				if m := detachedCounts.FindStringSubmatch(log); m != nil {
					var dropped float64
					fmt.Sscan(m[3], &dropped)
					b.ReportMetric(dropped, "counted_dropped")
				}
				if usage != nil {
					cpu := time.Duration(usage.Utime.Nano() + usage.Stime.Nano())
					b.ReportMetric(cpu.Seconds()*1000/float64(sent)*1000, "tracer_cpu_ms/1k_req")
					b.ReportMetric(float64(usage.Maxrss)/1024, "tracer_maxrss_MiB")
				}
			}
		})
	}
}

// TestSpoolCarriesSpansAcrossATracerRestart: with --spool-dir, spans the
// collector never took — it was down for the whole first run, beyond a
// small --export-buffer — are on disk when the tracer stops, counted as
// spooled, and the next run of the tracer exports them first, each once,
// with the service that made them.
func TestSpoolCarriesSpansAcrossATracerRestart(t *testing.T) {
	uprobetest.RequireBPF(t)
	bin, service := tracerBinary(t), buildLocalService(t)
	spoolDir := t.TempDir()
	recv := otlptest.NewHTTP(t)
	proxy := newTCPProxy(t, strings.TrimPrefix(recv.Endpoint(), "http://"))
	proxy.down()

	start := func(args ...string) (*exec.Cmd, *syncBuffer, string) {
		cmd := exec.Command(bin, append([]string{"--spool-dir", spoolDir, "--export-buffer", "50"}, args...)...)
		cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_ENDPOINT=http://"+proxy.addr,
			"OTEL_BSP_SCHEDULE_DELAY=100", "OTEL_METRICS_EXPORTER=none", "OTEL_EXPORTER_OTLP_TIMEOUT=500")
		stderr := &syncBuffer{}
		cmd.Stderr = stderr
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
		})
		line := make([]byte, 128)
		n, err := stdout.Read(line)
		require.NoError(t, err, "service did not start:\n%s", stderr)
		return cmd, stderr, strings.TrimSpace(strings.TrimPrefix(string(line[:n]), "listening on "))
	}

	// First run: 300 requests while the collector is down.
	cmd, stderr, addr := start("--", service)
	const sent = 300
	for i := range sent {
		resp, err := http.Get(fmt.Sprintf("http://%s/backend?n=%d", addr, i))
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	time.Sleep(500 * time.Millisecond) // the last spans reach the processor
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	_ = cmd.Wait()
	log1 := stderr.String()
	assert.Contains(t, log1, "keeping the oldest spans in the spool", "beyond 50 spans in memory, the disk")
	assert.Regexp(t, fmt.Sprintf(`msg=totals spans=%d exported=0 pending=0 dropped=0 .* spooled=%d`, sent, sent), log1)
	assert.Contains(t, log1, fmt.Sprintf("msg=\"spool: spans kept for the next run\" dir=%s spans=%d", spoolDir, sent))
	assert.Empty(t, recv.Spans())

	// Second run: the collector is back; the spool goes out first.
	proxy.up()
	cmd, stderr, _ = start("--", service)
	got := recv.WaitForSpans(t, sent, 60*time.Second)
	time.Sleep(300 * time.Millisecond) // a duplicate would arrive by now
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	_ = cmd.Wait()
	log2 := stderr.String()
	assert.Contains(t, log2, fmt.Sprintf("msg=\"spool: exporting the spans a previous run left\" dir=%s spans=%d", spoolDir, sent))
	assert.Len(t, recv.Spans(), sent, "each span once")
	ids := map[string]bool{}
	for _, s := range got {
		ids[s.SpanID] = true
		assert.Equal(t, "GET /backend", s.Name)
		assert.Equal(t, filepath.Base(service), s.Resource["service.name"])
	}
	assert.Len(t, ids, sent)
	assert.Regexp(t, fmt.Sprintf(`msg=totals spans=%d exported=%d pending=0 dropped=0 `, sent, sent), log2)
	m, err := filepath.Glob(filepath.Join(spoolDir, "*.spool"))
	require.NoError(t, err)
	assert.Empty(t, m, "the spool is empty")
}
