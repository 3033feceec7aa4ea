package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
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
	t      *testing.T
	addr   string
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
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

// TestTracerLosesNothingWhileTheCollectorIsDown: through the whole tracer
// (uprobes, ring buffer, spans, export), a collector that is down for two
// seconds of steady traffic costs no span: every request has its span at
// the collector once it is back, and the tracer's counts say so.
func TestTracerLosesNothingWhileTheCollectorIsDown(t *testing.T) {
	uprobetest.RequireBPF(t)
	recv := otlptest.NewHTTP(t)
	proxy := newTCPProxy(t, strings.TrimPrefix(recv.Endpoint(), "http://"))

	cmd := exec.Command(tracerBinary(t), "--", buildLocalService(t))
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_ENDPOINT=http://"+proxy.addr,
		"OTEL_BSP_SCHEDULE_DELAY=100", "OTEL_METRICS_EXPORTER=none")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	line := make([]byte, 128)
	n, err := stdout.Read(line)
	require.NoError(t, err, "service did not start:\n%s", stderr)
	addr := strings.TrimSpace(strings.TrimPrefix(string(line[:n]), "listening on "))

	// 100 requests/s (one span each): 1 s up, 2 s down, 1 s up.
	sent := 0
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	isDown := false
	for now := range tick.C {
		el := now.Sub(start)
		if el >= 4*time.Second {
			break
		}
		if !isDown && el >= time.Second && el < 3*time.Second {
			proxy.down()
			isDown = true
		}
		if isDown && el >= 3*time.Second {
			proxy.up()
			isDown = false
		}
		resp, err := http.Get(fmt.Sprintf("http://%s/backend?n=%d", addr, sent))
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		sent++
	}
	got := recv.WaitForSpans(t, sent, 30*time.Second)
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), "stderr:\n%s", stderr)

	assert.Len(t, got, sent, "every request's span reached the collector once it was back")
	m := detachedCounts.FindStringSubmatch(stderr.String())
	require.NotNil(t, m, "no detached line:\n%s", stderr)
	assert.Equal(t, fmt.Sprint(sent), m[1], "spans")
	assert.Equal(t, fmt.Sprint(sent), m[2], "exported")
	assert.Equal(t, "0", m[3], "dropped")
	assert.Contains(t, stderr.String(), "export failed: keeping the spans", "the outage is logged")
	assert.Contains(t, stderr.String(), "export recovered", "and the recovery")
}
