package collectortest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Collector is a running collector started by [Start].
type Collector struct {
	grpcAddr, httpAddr string // host:port of the OTLP receivers
	cmd                *exec.Cmd
	logs               *logBuffer
	exited             chan struct{} // closed when cmd has been waited for
	waitErr            error         // cmd.Wait's result, set before exited closes

	stopOnce sync.Mutex
	stopped  bool
	stopErr  error
}

// Option changes how [Start] configures the collector.
type Option func(*settings)

type settings struct {
	debugVerbosity string
}

// DebugVerbosity sets the verbosity of the debug exporter, which writes
// every span the collector receives to its log: "detailed" (the default,
// every attribute of every span), "normal" (one line per span) or "basic"
// (one line per batch). "" leaves the debug exporter out.
func DebugVerbosity(v string) Option {
	return func(s *settings) { s.debugVerbosity = v }
}

// startAttempts bounds the retries when another process takes one of the
// free ports between choosing it and the collector binding it.
const startAttempts = 3

// readyTimeout bounds the wait for the collector's receivers to listen.
const readyTimeout = 60 * time.Second

// Start builds the collector if needed (see [Build]) and starts it on
// 127.0.0.1 with an OTLP/gRPC and an OTLP/HTTP receiver on free ports, a
// batch processor (200 ms) and an OTLP/HTTP exporter that forwards every
// trace to forwardTo, the base URL of an OTLP/HTTP receiver
// ("http://127.0.0.1:PORT", as [otlptest.Receiver.Endpoint] returns; the
// exporter appends /v1/traces). Unless an option says otherwise the debug
// exporter writes every span to the collector's log in detail too.
//
// Start returns once both receivers accept connections. The collector's
// internal metrics are off, so that several collectors can run at once.
// It is stopped when the test ends (see [Collector.Stop]); its log is
// printed when the test has failed, or when it exits on its own or
// with an error.
func Start(tb testing.TB, forwardTo string, opts ...Option) *Collector {
	tb.Helper()
	s := settings{debugVerbosity: "detailed"}
	for _, o := range opts {
		o(&s)
	}
	bin := Build(tb)
	dir := tb.TempDir()
	for attempt := 1; ; attempt++ {
		c, err := start(bin, dir, forwardTo, s)
		switch {
		case err == nil:
			tb.Cleanup(func() {
				if err := c.Stop(); err != nil {
					tb.Errorf("collectortest: %v\ncollector log:\n%s", err, c.logTail())
				} else if tb.Failed() {
					tb.Logf("collector log:\n%s", c.logTail())
				}
			})
			return c
		case c == nil:
			tb.Fatalf("collectortest: start %s: %v", bin, err)
		case attempt < startAttempts && strings.Contains(c.Logs(), "address already in use"):
			continue // another process took a port
		default:
			tb.Fatalf("collectortest: start %s: %v\ncollector log:\n%s", bin, err, c.logTail())
		}
	}
}

// start runs one collector and waits until it is ready. When it fails, the
// returned Collector, if any, holds the reason and the log.
func start(bin, dir, forwardTo string, s settings) (*Collector, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	c := &Collector{
		grpcAddr: fmt.Sprintf("127.0.0.1:%d", ports[0]),
		httpAddr: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		logs:     &logBuffer{},
		exited:   make(chan struct{}),
	}
	config := filepath.Join(dir, fmt.Sprintf("config-%d.yaml", ports[0]))
	if err := os.WriteFile(config, []byte(c.config(forwardTo, s)), 0o644); err != nil {
		return nil, err
	}
	c.cmd = exec.Command(bin, "--config", "file:"+config)
	c.cmd.Stdout = c.logs
	c.cmd.Stderr = c.logs
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive a killed test binary
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		c.waitErr = c.cmd.Wait()
		close(c.exited)
	}()
	if err := c.waitReady(); err != nil {
		c.kill()
		c.waitErr = err
		return c, err
	}
	return c, nil
}

// config returns the collector's configuration.
func (c *Collector) config(forwardTo string, s settings) string {
	exporters := "[otlp_http]"
	debug := ""
	if s.debugVerbosity != "" {
		exporters = "[otlp_http, debug]"
		debug = fmt.Sprintf("  debug:\n    verbosity: %s\n", s.debugVerbosity)
	}
	return fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %q
      http:
        endpoint: %q
processors:
  batch:
    timeout: 200ms
exporters:
  otlp_http:
    endpoint: %q
    retry_on_failure:
      initial_interval: 100ms
      max_interval: 1s
%sservice:
  telemetry:
    logs:
      level: info
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: %s
`, c.grpcAddr, c.httpAddr, forwardTo, debug, exporters)
}

// waitReady waits until both receivers accept connections, the collector
// exits, or readyTimeout passes.
func (c *Collector) waitReady() error {
	deadline := time.Now().Add(readyTimeout)
	for _, addr := range []string{c.grpcAddr, c.httpAddr} {
		for {
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				conn.Close()
				break
			}
			select {
			case <-c.exited:
				return fmt.Errorf("collector exited before listening on %s: %v", addr, c.waitErr)
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("collector not listening on %s after %s", addr, readyTimeout)
			}
		}
	}
	return nil
}

// HTTPEndpoint returns the base URL of the collector's OTLP/HTTP receiver,
// "http://127.0.0.1:PORT": the value for OTEL_EXPORTER_OTLP_ENDPOINT with
// OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf (the exporter appends /v1/traces).
func (c *Collector) HTTPEndpoint() string { return "http://" + c.httpAddr }

// GRPCEndpoint returns the URL of the collector's OTLP/gRPC receiver,
// "http://127.0.0.1:PORT": the value for OTEL_EXPORTER_OTLP_ENDPOINT with
// OTEL_EXPORTER_OTLP_PROTOCOL=grpc (the http scheme means no TLS).
func (c *Collector) GRPCEndpoint() string { return "http://" + c.grpcAddr }

// Logs returns what the collector has written to its standard output and
// error so far: its own log and, with the debug exporter, the spans.
func (c *Collector) Logs() string { return c.logs.String() }

// Stop stops the collector with SIGTERM, which makes it flush the batch
// processor and the exporter's queue to forwardTo first, and waits for it
// (SIGKILL after 15 s). It returns an error when the collector had
// already exited, did not stop in time or exited with an error. Stop may
// be called more than once, and is called when the test ends: a test that
// wants every span forwarded before it reads the receiver can call it early.
func (c *Collector) Stop() error {
	c.stopOnce.Lock()
	defer c.stopOnce.Unlock()
	if c.stopped {
		return c.stopErr
	}
	c.stopped = true
	select {
	case <-c.exited:
		c.stopErr = fmt.Errorf("collector exited before it was stopped: %v", c.waitErr)
		return c.stopErr
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		if c.waitErr != nil {
			c.stopErr = fmt.Errorf("collector stopped with %v", c.waitErr)
		}
	case <-time.After(15 * time.Second):
		c.kill()
		c.stopErr = errors.New("collector did not stop within 15s of SIGTERM; killed")
	}
	return c.stopErr
}

// kill ends the process at once and waits for it.
func (c *Collector) kill() {
	if c == nil || c.cmd == nil || c.cmd.Process == nil {
		return
	}
	_ = c.cmd.Process.Kill()
	<-c.exited
}

// logTailBytes bounds the log printed on failure; Logs has all of it.
const logTailBytes = 64 << 10

// logTail returns the end of the log, at most logTailBytes.
func (c *Collector) logTail() string {
	s := c.logs.String()
	if len(s) <= logTailBytes {
		return s
	}
	s = s[len(s)-logTailBytes:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return fmt.Sprintf("[... %d bytes before; Collector.Logs has all of it]\n%s", len(c.logs.String())-len(s), s)
}

// freePorts returns n distinct TCP ports that were free on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// logBuffer is an io.Writer safe for concurrent use, collecting a log.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
