package main

import (
	"bufio"
	"context"
	"debug/buildinfo"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// GRPC is the grpc section: what the gRPC instrumentations cost a unary
// call, traced against untraced in alternating rounds.
type GRPC struct {
	Pairs    int     `json:"pairs"`
	Duration float64 `json:"run_seconds"`
	Workers  int     `json:"workers"`
	// Binary says which grpc-go and Go releases grpcload was built with.
	Binary string `json:"binary"`
	Arms   []arm  `json:"arms"`
	// CallsPerSecond, P50 and P99 (ms) hold each arm's figure per pair;
	// the ratios are each traced arm's figure over the untraced run of the
	// same pair.
	CallsPerSecond map[string]Spread `json:"calls_per_second"`
	P50            map[string]Spread `json:"p50_ms"`
	P99            map[string]Spread `json:"p99_ms"`
	Ratio          map[string]Spread `json:"throughput_ratio"`
	P50Ratio       map[string]Spread `json:"p50_ratio"`
	P99Ratio       map[string]Spread `json:"p99_ratio"`
	// ServerUserPer1k and ServerSysPer1k are the server's CPU time (ms) per
	// 1000 calls; TracerCPUPer1k the tracer's.
	ServerUserPer1k map[string]Spread `json:"server_user_cpu_ms_per_1k_calls"`
	ServerSysPer1k  map[string]Spread `json:"server_sys_cpu_ms_per_1k_calls"`
	TracerCPUPer1k  map[string]Spread `json:"tracer_cpu_ms_per_1k_calls"`
	// SpanCompleteness is spans recorded over calls × spans per call.
	SpanCompleteness map[string]Spread `json:"span_completeness"`
	Dropped          map[string]uint64 `json:"dropped"`
}

// grpcSpansPerCall is how many spans one unary call yields in an arm: a
// server span, and a client span when the load generator is traced too.
func grpcSpansPerCall(a arm) int {
	if a.Attach > 1 {
		return 2
	}
	return 1
}

// grpcArms are the arms of the grpc section: untraced, the server traced,
// the server traced without the goroutine context instrumentation (the
// server starts a goroutine per RPC: two more uprobe hits each), and both
// the server and the load generator traced (one tracer, --exe on
// grpcload's path, which both run).
func grpcArms(bin string) []arm {
	env := []string{"OTEL_TRACES_EXPORTER=none"}
	return []arm{
		untracedArm,
		{Name: "server traced (exporter none)", Env: env},
		{Name: "server traced, --goroutine-context=false (exporter none)", Env: env, Flags: []string{"--goroutine-context=false"}},
		{Name: "server and client traced (exporter none)", Env: env, Target: []string{"--exe", bin}, Attach: 2},
	}
}

func (h *harness) grpc(ctx context.Context) (*GRPC, error) {
	svc, err := startService(h.grpcloadBin, "serve")
	if err != nil {
		return nil, err
	}
	defer svc.stop()
	client, err := startGRPCLoad(h.grpcloadBin, svc.addr, h.grpcWorkers)
	if err != nil {
		return nil, err
	}
	defer client.stop()
	latFile := filepath.Join(h.work, "grpc-latencies")
	if _, err := client.run(2*time.Second, latFile); err != nil { // warm up
		return nil, err
	}
	g := &GRPC{Pairs: h.grpcPairs, Duration: h.grpcDuration.Seconds(), Workers: h.grpcWorkers, Binary: binaryVersions(h.grpcloadBin),
		CallsPerSecond: map[string]Spread{}, P50: map[string]Spread{}, P99: map[string]Spread{},
		Ratio: map[string]Spread{}, P50Ratio: map[string]Spread{}, P99Ratio: map[string]Spread{},
		ServerUserPer1k: map[string]Spread{}, ServerSysPer1k: map[string]Spread{}, TracerCPUPer1k: map[string]Spread{},
		SpanCompleteness: map[string]Spread{}, Dropped: map[string]uint64{}}
	g.Arms = grpcArms(h.grpcloadBin)
	h.logf("grpc: %d workers of unary Check calls, %d pairs × %s", h.grpcWorkers, h.grpcPairs, h.grpcDuration)
	runs, err := alternate(h.grpcPairs, g.Arms, func(a arm) (armRun, error) {
		return h.withTracer(ctx, svc, a, func(*tracerSession) (armRun, error) {
			r, err := client.run(h.grpcDuration, latFile)
			if err == nil && r.Errors > 0 {
				err = fmt.Errorf("%d of %d calls failed", r.Errors, r.Errors+len(r.Latencies))
			}
			return armRun{
				Requests: float64(len(r.Latencies)), PerSecond: float64(len(r.Latencies)) / r.Seconds,
				P50: ms(percentile(r.Latencies, 50)), P99: ms(percentile(r.Latencies, 99)),
			}, firstErr(err, ctx.Err())
		})
	})
	if err != nil {
		return nil, err
	}
	pick := func(a arm, f func(armRun) float64) []float64 { return column(runs[a.Name], f) }
	perSecond := func(r armRun) float64 { return r.PerSecond }
	p50 := func(r armRun) float64 { return r.P50 }
	p99 := func(r armRun) float64 { return r.P99 }
	for _, a := range g.Arms {
		g.CallsPerSecond[a.Name] = newSpread(pick(a, perSecond))
		g.P50[a.Name], g.P99[a.Name] = newSpread(pick(a, p50)), newSpread(pick(a, p99))
		g.ServerUserPer1k[a.Name] = newSpread(per1k(runs[a.Name], serviceUser))
		g.ServerSysPer1k[a.Name] = newSpread(per1k(runs[a.Name], serviceSys))
		if !a.traced() {
			continue
		}
		g.Ratio[a.Name] = newSpread(ratios(pick(a, perSecond), pick(untracedArm, perSecond)))
		g.P50Ratio[a.Name] = newSpread(ratios(pick(a, p50), pick(untracedArm, p50)))
		g.P99Ratio[a.Name] = newSpread(ratios(pick(a, p99), pick(untracedArm, p99)))
		g.TracerCPUPer1k[a.Name] = newSpread(per1k(runs[a.Name], tracerCPU))
		g.SpanCompleteness[a.Name] = newSpread(pick(a, func(r armRun) float64 {
			return r.Spans / (r.Requests * float64(grpcSpansPerCall(a)))
		}))
		var d float64
		for _, r := range runs[a.Name] {
			d += r.Dropped
		}
		g.Dropped[a.Name] = uint64(d)
	}
	return g, nil
}

// binaryVersions says which grpc-go and Go releases a binary was built
// with: "grpc-go v1.84.0, go1.26.8".
func binaryVersions(path string) string {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return "?"
	}
	grpcVersion := "?"
	for _, d := range bi.Deps {
		if d.Path == "google.golang.org/grpc" {
			grpcVersion = d.Version
		}
	}
	return fmt.Sprintf("grpc-go %s, %s", grpcVersion, bi.GoVersion)
}

// grpcLoad is a running grpcload load process, idle between runs.
type grpcLoad struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

// grpcLoadRun is what one run of the load generator measured.
type grpcLoadRun struct {
	Latencies []time.Duration // of the successful calls
	Errors    int
	Seconds   float64 // the run's length, start to the last worker's end
	callsSaid int     // calls its summary line reported
}

func startGRPCLoad(bin, addr string, workers int) (*grpcLoad, error) {
	cmd := exec.Command(bin, "load", "-addr", addr, "-workers", strconv.Itoa(workers))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s load: %w", bin, err)
	}
	return &grpcLoad{cmd: cmd, in: in, out: bufio.NewScanner(out)}, nil
}

// run makes the load generator call for d, its latencies passing through
// file.
func (c *grpcLoad) run(d time.Duration, file string) (grpcLoadRun, error) {
	if _, err := fmt.Fprintf(c.in, "run %s %s\n", d, file); err != nil {
		return grpcLoadRun{}, fmt.Errorf("grpcload: %w", err)
	}
	if !c.out.Scan() {
		return grpcLoadRun{}, fmt.Errorf("grpcload exited during a run: %v", c.out.Err())
	}
	r, err := parseGRPCLoadLine(c.out.Text())
	if err != nil {
		return r, err
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return r, err
	}
	if r.Latencies, err = decodeLatencies(b); err != nil {
		return r, err
	}
	if calls := len(r.Latencies); calls != r.callsSaid {
		return r, fmt.Errorf("grpcload: said %d calls, wrote %d latencies", r.callsSaid, calls)
	}
	return r, nil
}

// stop closes the load generator's stdin, which ends it.
func (c *grpcLoad) stop() {
	c.in.Close()
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

var grpcLoadLine = regexp.MustCompile(`^calls=(\d+) errors=(\d+) seconds=([\d.]+)$`)

// parseGRPCLoadLine reads grpcload's "calls=N errors=E seconds=S" line;
// the calls are checked against the latencies file.
func parseGRPCLoadLine(line string) (grpcLoadRun, error) {
	m := grpcLoadLine.FindStringSubmatch(strings.TrimSpace(line))
	if m == nil {
		return grpcLoadRun{}, fmt.Errorf("grpcload: unexpected output %q", line)
	}
	calls, _ := strconv.Atoi(m[1])
	errs, _ := strconv.Atoi(m[2])
	secs, _ := strconv.ParseFloat(m[3], 64)
	if secs <= 0 {
		return grpcLoadRun{}, fmt.Errorf("grpcload: a run of %q seconds", m[3])
	}
	return grpcLoadRun{Errors: errs, Seconds: secs, callsSaid: calls}, nil
}

// decodeLatencies reads grpcload's latencies file: little-endian uint64
// nanoseconds.
func decodeLatencies(b []byte) ([]time.Duration, error) {
	if len(b)%8 != 0 {
		return nil, fmt.Errorf("grpcload latencies: %d bytes is not a whole number of uint64", len(b))
	}
	out := make([]time.Duration, len(b)/8)
	for i := range out {
		out[i] = time.Duration(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return out, nil
}
