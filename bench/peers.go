package main

import (
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Peers is the peers section: our tracer against a peer on the same
// service, OpenTelemetry Go auto-instrumentation (go.opentelemetry.io/auto,
// built from the module proxy), on the context section's chain client → A → B
// (two copies of tracer/testdata/chain). Every round runs every arm once,
// the order reversed every other round, each run starting the services and
// the tracing processes afresh.
type Peers struct {
	Rounds   int     `json:"rounds"`
	Duration float64 `json:"run_seconds"`
	// Binary is the Go release the chain services were built with.
	Binary string      `json:"binary"`
	Peer   PeerSetup   `json:"peer"`
	Parts  []PeersPart `json:"parts"`
	// ContextLinks is the links check of every traced arm once more on a
	// route whose handler passes its request's context to the client call
	// (ContextRoute): the peer finds a client span's parent through the
	// request's context.Context, ours through the goroutine.
	ContextRoute string       `json:"context_route"`
	ContextLinks []ChainLinks `json:"context_links"`
}

// PeerSetup is how the peer was built and run on this machine.
type PeerSetup struct {
	Name    string `json:"name"`
	Module  string `json:"module"` // module@version
	Build   string `json:"build"`  // "cached" or how long the build took
	Command string `json:"command"`
	// AsShipped is the error the peer stopped with when run unchanged
	// against B; empty when it loaded.
	AsShipped string `json:"as_shipped_error,omitempty"`
	// Workaround is how the measured runs ran it instead; empty when it ran
	// as shipped.
	Workaround string `json:"workaround,omitempty"`
	// Notes are the warnings and errors it logged while loading (each once),
	// from the first measured run: what it says about context propagation.
	Notes []string `json:"notes,omitempty"`
	// LoadSeconds is how long each instance took from its start to
	// "instrumentation loaded successfully" (uprobes attached).
	LoadSeconds Spread `json:"load_seconds"`
}

// PeersPart is one route of the chain measured with every arm.
type PeersPart struct {
	Name               string `json:"name"`
	Route              string `json:"route"` // with B's address as "B"
	Workers            int    `json:"workers"`
	Arms               []arm  `json:"arms"`
	SpansPerRequest    int    `json:"spans_per_request"`
	OutgoingPerRequest int    `json:"outgoing_per_request"`
	// PerSecond, P50 and P99 (ms) hold each arm's figure per round; the
	// ratios are each traced arm's over the untraced run of the same round.
	PerSecond map[string]Spread `json:"requests_per_second"`
	P50       map[string]Spread `json:"p50_ms"`
	P99       map[string]Spread `json:"p99_ms"`
	Ratio     map[string]Spread `json:"throughput_ratio"`
	P50Ratio  map[string]Spread `json:"p50_ratio"`
	P99Ratio  map[string]Spread `json:"p99_ratio"`
	// ServiceCPUPer1k is A's and B's CPU time (ms, user+system) per 1000
	// requests; TracerCPUPer1k that of the tracing processes (our one
	// tracer, or the peer's two instances).
	ServiceCPUPer1k map[string]Spread `json:"services_cpu_ms_per_1k_requests"`
	TracerCPUPer1k  map[string]Spread `json:"tracer_cpu_ms_per_1k_requests"`
	// OursOverPeer is, per round, each of our traced arms' requests/s over
	// the peer's.
	OursOverPeer map[string]Spread `json:"ours_over_peer_throughput"`
	// Outgoing is our tracer's "outgoing trace context" exit line summed
	// over the rounds (the arms that write context).
	Outgoing map[string]*OutgoingContext `json:"outgoing,omitempty"`
	// Links is, per traced arm, one more run exporting every span over OTLP
	// to the harness: are the spans of a request one trace?
	Links []ChainLinks `json:"links"`
}

// ChainLinks is what the spans of one run exporting to the harness say
// about the trace of each request: A's client spans should be children of
// A's server span, B's server spans children of A's client spans.
type ChainLinks struct {
	Arm      string  `json:"arm"`
	Seconds  float64 `json:"run_seconds"`
	Requests uint64  `json:"requests"` // to A, warm-up included
	AServers uint64  `json:"a_server_spans"`
	AClients uint64  `json:"a_client_spans"`
	BServers uint64  `json:"b_server_spans"`
	// AClientChildOfAServer counts A's client spans whose parent is one of
	// A's server spans.
	AClientChildOfAServer uint64 `json:"a_client_spans_child_of_a_server"`
	// BChildOfAClient counts B's server spans whose parent is one of A's
	// client spans (their request carried A's traceparent); BRoot those
	// without a parent.
	BChildOfAClient uint64 `json:"b_server_spans_child_of_a_client"`
	BRoot           uint64 `json:"b_server_spans_without_parent"`
}

// The peer: OpenTelemetry Go auto-instrumentation, its CLI package.
const (
	otelAutoModule  = "go.opentelemetry.io/auto"
	otelAutoVersion = "v0.24.0"
	otelAutoCLI     = "./cli"
	// otelAutoLoaded is the line each instance logs once its probes are
	// attached.
	otelAutoLoaded = "instrumentation loaded successfully"
)

// otelAutoArm is the peer's arm: one instance per process (it attaches to
// one pid), spans built by its OTel SDK pipeline and exported nowhere, like
// our arms.
var otelAutoArm = arm{Name: "OTel Go auto " + otelAutoVersion, Env: []string{"OTEL_TRACES_EXPORTER=none"}}

// peersArms are the arms of both parts: untraced, ours read-only, ours with
// propagation (goroutine context on, the default), the peer.
func peersArms() []arm {
	env := []string{"OTEL_TRACES_EXPORTER=none"}
	return []arm{
		untracedArm,
		{Name: "ours, read-only (--context-propagation=false)", Env: env, Flags: []string{"--context-propagation=false"}},
		{Name: "ours, with propagation", Env: env},
		otelAutoArm,
	}
}

// peersSettings are the peers section's flags.
type peersSettings struct {
	rounds   int
	duration time.Duration
	workers  int
}

func (c *peersSettings) flags(fs *flag.FlagSet) {
	fs.IntVar(&c.rounds, "peers-rounds", 3, "rounds of the peers section (each runs every arm of a part once)")
	fs.DurationVar(&c.duration, "peers-duration", 5*time.Second, "length of each peers run (after a 1 s warm-up)")
	fs.IntVar(&c.workers, "peers-workers", 16, "closed-loop callers of the peers section's chain (a quarter of them on the fan-out)")
}

// peerRunner starts the peer's instances; wrap, when set, runs each inside
// the workaround (see otelAutoSetup).
type peerRunner struct {
	bin  string
	wrap []string

	mu    sync.Mutex
	loads []float64
	notes []string
}

func (h *harness) peers(ctx context.Context) (*Peers, error) {
	dir := filepath.Join(h.work, "peers")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	a, b := filepath.Join(dir, "offsetdb-bench-chain-a"), filepath.Join(dir, "offsetdb-bench-chain-b")
	h.logf("peers: building tracer/testdata/chain")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", a, "./tracer/testdata/chain")
	cmd.Dir = h.repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./tracer/testdata/chain: %w: %s", err, out)
	}
	if err := copyFile(a, b); err != nil {
		return nil, err
	}
	p := &Peers{Rounds: h.peersCfg.rounds, Duration: h.peersCfg.duration.Seconds(), Binary: "?"}
	if bi, err := buildinfo.ReadFile(a); err == nil {
		p.Binary = bi.GoVersion
	}
	peer, err := h.otelAutoSetup(ctx, b, &p.Peer)
	if err != nil {
		return nil, err
	}
	parts := []struct {
		name, route      string
		workers          int
		spans, outPerReq int
	}{
		{"two-hop chain", "/hop/ID?next=B", h.peersCfg.workers, 3, 1},
		{fmt.Sprintf("fan-out from %d goroutines", contextFanN), fmt.Sprintf("/fan/ID?next=B&n=%d", contextFanN),
			max(1, h.peersCfg.workers/4), 1 + 2*contextFanN, contextFanN},
	}
	sink, err := startParentSink()
	if err != nil {
		return nil, err
	}
	defer sink.close()
	arms := peersArms()
	for _, pt := range parts {
		h.logf("peers: %s (%s), %d callers, %d rounds × %s", pt.name, pt.route, pt.workers, h.peersCfg.rounds, h.peersCfg.duration)
		part := PeersPart{Name: pt.name, Route: pt.route, Workers: pt.workers, Arms: arms,
			SpansPerRequest: pt.spans, OutgoingPerRequest: pt.outPerReq,
			PerSecond: map[string]Spread{}, P50: map[string]Spread{}, P99: map[string]Spread{},
			Ratio: map[string]Spread{}, P50Ratio: map[string]Spread{}, P99Ratio: map[string]Spread{},
			ServiceCPUPer1k: map[string]Spread{}, TracerCPUPer1k: map[string]Spread{},
			OursOverPeer: map[string]Spread{}, Outgoing: map[string]*OutgoingContext{}}
		runs, err := alternate(h.peersCfg.rounds, arms, func(ar arm) (armRun, error) {
			if ar.Name == otelAutoArm.Name {
				r, _, err := peer.run(ctx, a, b, pt.route, pt.workers, ar.Env, h.peersCfg.duration)
				return r, err
			}
			r, x, err := h.contextRun(ctx, a, b, pt.route, pt.workers, ar, h.peersCfg.duration)
			if err == nil && x.out != nil {
				x.out.Expected = (uint64(r.Requests) + uint64(x.warmUp)) * uint64(pt.outPerReq)
				if part.Outgoing[ar.Name] == nil {
					part.Outgoing[ar.Name] = &OutgoingContext{Reasons: map[string]uint64{}}
				}
				part.Outgoing[ar.Name].add(x.out)
			}
			return r, err
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pt.name, err)
		}
		perSecond := func(r armRun) float64 { return r.PerSecond }
		p50 := func(r armRun) float64 { return r.P50 }
		p99 := func(r armRun) float64 { return r.P99 }
		pick := func(a arm, f func(armRun) float64) []float64 { return column(runs[a.Name], f) }
		for _, ar := range arms {
			part.PerSecond[ar.Name] = newSpread(pick(ar, perSecond))
			part.P50[ar.Name], part.P99[ar.Name] = newSpread(pick(ar, p50)), newSpread(pick(ar, p99))
			part.ServiceCPUPer1k[ar.Name] = newSpread(per1k(runs[ar.Name], func(r armRun) float64 { return r.ServiceUser + r.ServiceSys }))
			if !ar.traced() {
				continue
			}
			part.Ratio[ar.Name] = newSpread(ratios(pick(ar, perSecond), pick(untracedArm, perSecond)))
			part.P50Ratio[ar.Name] = newSpread(ratios(pick(ar, p50), pick(untracedArm, p50)))
			part.P99Ratio[ar.Name] = newSpread(ratios(pick(ar, p99), pick(untracedArm, p99)))
			part.TracerCPUPer1k[ar.Name] = newSpread(per1k(runs[ar.Name], tracerCPU))
			if ar.Name != otelAutoArm.Name {
				part.OursOverPeer[ar.Name] = newSpread(ratios(pick(ar, perSecond), pick(otelAutoArm, perSecond)))
			}
		}
		for _, ar := range arms[1:] {
			l, err := h.peersLinks(ctx, peer, a, b, pt.route, pt.workers, ar, sink)
			if err != nil {
				return nil, fmt.Errorf("%s: links of %s: %w", pt.name, ar.Name, err)
			}
			part.Links = append(part.Links, l)
		}
		p.Parts = append(p.Parts, part)
	}
	p.ContextRoute = "/ctxhop/ID?next=B"
	for _, ar := range arms[1:] {
		l, err := h.peersLinks(ctx, peer, a, b, p.ContextRoute, h.peersCfg.workers, ar, sink)
		if err != nil {
			return nil, fmt.Errorf("%s: links of %s: %w", p.ContextRoute, ar.Name, err)
		}
		p.ContextLinks = append(p.ContextLinks, l)
	}
	p.Peer.Notes = peer.notes
	p.Peer.LoadSeconds = newSpread(peer.loads)
	return p, nil
}

// peersLinks runs arm a once more for contextCheckDuration, every span
// exported over OTLP/HTTP to sink, and counts the parent links.
func (h *harness) peersLinks(ctx context.Context, peer *peerRunner, binA, binB, route string, workers int, a arm, sink *parentSink) (ChainLinks, error) {
	h.logf("peers: links of %q (OTLP to an in-run sink, %s)", a.Name, contextCheckDuration)
	env := []string{"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf", "OTEL_EXPORTER_OTLP_ENDPOINT=" + sink.endpoint}
	sink.reset()
	var (
		r      armRun
		warmUp int
		err    error
	)
	if a.Name == otelAutoArm.Name {
		r, warmUp, err = peer.run(ctx, binA, binB, route, workers, env, contextCheckDuration)
	} else {
		chk := a
		chk.Env = env
		var x contextExtra
		r, x, err = h.contextRun(ctx, binA, binB, route, workers, chk, contextCheckDuration)
		warmUp = x.warmUp
	}
	if err != nil {
		return ChainLinks{}, err
	}
	l := ChainLinks{Arm: a.Name, Seconds: contextCheckDuration.Seconds(), Requests: uint64(r.Requests) + uint64(warmUp)}
	l.AClients, l.BServers, l.BChildOfAClient, l.BRoot, _ = sink.counts()
	l.AServers, l.AClientChildOfAServer = sink.aLinks()
	return l, nil
}

// otelAutoSetup builds the peer (cached) and runs it once unchanged against
// a copy of the chain, recording in s how that went. When it refuses to load
// because the kernel refuses bpf_probe_write_user while it believed
// otherwise (it reads /sys/kernel/security/lockdown, which is often not
// mounted, and takes a missing file for "none"), the measured runs mount
// securityfs in a private mount namespace of each instance, so that it reads
// the kernel's real lockdown mode and loads its variant without context
// propagation; the host's mounts are not touched.
func (h *harness) otelAutoSetup(ctx context.Context, chain string, s *PeerSetup) (*peerRunner, error) {
	s.Name = "OpenTelemetry Go auto-instrumentation"
	s.Module = otelAutoModule + "@" + otelAutoVersion
	bin, build, err := h.otelAutoBinary(ctx)
	if err != nil {
		return nil, err
	}
	s.Build = build
	pr := &peerRunner{bin: bin}
	s.Command = "OTEL_GO_AUTO_TARGET_PID=PID OTEL_SERVICE_NAME=NAME OTEL_TRACES_EXPORTER=none otel-go-instrumentation (one instance per process)"
	h.logf("peers: running %s as shipped against one service", s.Module)
	svc, err := startService(chain)
	if err != nil {
		return nil, err
	}
	defer svc.stop()
	t, _, err := pr.start(ctx, svc.pid(), "offsetdb-bench-chain-b", []string{"OTEL_TRACES_EXPORTER=none"})
	if err == nil {
		stopPeer(t)
		return pr, nil
	}
	s.AsShipped = err.Error()
	h.logf("peers: as shipped: %s", s.AsShipped)
	if !strings.Contains(s.AsShipped, "bpf_probe_write_user") {
		return nil, fmt.Errorf("%s as shipped: %w", s.Module, err)
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		return nil, fmt.Errorf("%s as shipped: %s; the workaround needs unshare (util-linux): %w", s.Module, s.AsShipped, err)
	}
	pr.wrap = []string{"unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount -t securityfs securityfs /sys/kernel/security && exec "$0"`}
	s.Workaround = "each instance runs in a private mount namespace with securityfs mounted on /sys/kernel/security " +
		"(`unshare --mount --propagation private sh -c 'mount -t securityfs securityfs /sys/kernel/security && exec otel-go-instrumentation'`), " +
		"so it reads the kernel's lockdown mode and loads its net/http client probe without header injection"
	return pr, nil
}

// otelAutoBinary returns the peer's CLI, built once into
// ~/.cache/offsetdb-bench from the module proxy: the module is copied out of
// the module cache, its BPF objects generated with bpf2go and clang (the
// module zip leaves them out) and its replace of go.opentelemetry.io/auto/sdk
// by a directory the zip also leaves out dropped for the released version
// it requires. It returns how long the build took, or "cached".
func (h *harness) otelAutoBinary(ctx context.Context) (bin, build string, err error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", "", err
	}
	dir := filepath.Join(cache, "offsetdb-bench", "otel-go-auto-"+otelAutoVersion)
	bin = filepath.Join(dir, "otel-go-instrumentation")
	if _, err := os.Stat(bin); err == nil {
		return bin, "cached", nil
	}
	h.logf("peers: building %s@%s (minutes the first time; cached in %s)", otelAutoModule, otelAutoVersion, dir)
	start := time.Now()
	goCmd := func(dir string, env []string, args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				err = fmt.Errorf("%w: %s", err, lastLines(string(ee.Stderr), 10))
			}
			return out, fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
		}
		return out, nil
	}
	download := func(mod string) (dir, sum, goModSum string, err error) {
		out, err := goCmd(os.TempDir(), []string{"GOFLAGS=-mod=mod"}, "mod", "download", "-json", mod)
		if err != nil {
			return "", "", "", err
		}
		var m struct{ Dir, Sum, GoModSum string }
		if err := json.Unmarshal(out, &m); err != nil {
			return "", "", "", fmt.Errorf("go mod download %s: %w", mod, err)
		}
		return m.Dir, m.Sum, m.GoModSum, nil
	}
	modDir, _, _, err := download(otelAutoModule + "@" + otelAutoVersion)
	if err != nil {
		return "", "", err
	}
	src := filepath.Join(dir, "src")
	if err := os.RemoveAll(src); err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	if out, err := exec.CommandContext(ctx, "cp", "-r", modDir, src).CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("copy %s: %w: %s", modDir, err, out)
	}
	if out, err := exec.CommandContext(ctx, "chmod", "-R", "u+w", src).CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("chmod %s: %w: %s", src, err, out)
	}
	// The sdk module it requires, at the version its go.mod names.
	const sdk = "go.opentelemetry.io/auto/sdk"
	out, err := goCmd(src, nil, "mod", "edit", "-json")
	if err != nil {
		return "", "", err
	}
	var gm struct {
		Require []struct{ Path, Version string }
	}
	if err := json.Unmarshal(out, &gm); err != nil {
		return "", "", fmt.Errorf("go mod edit -json: %w", err)
	}
	var sdkVersion string
	for _, r := range gm.Require {
		if r.Path == sdk {
			sdkVersion = r.Version
		}
	}
	if sdkVersion == "" {
		return "", "", fmt.Errorf("%s requires no %s", otelAutoModule, sdk)
	}
	_, sum, goModSum, err := download(sdk + "@" + sdkVersion)
	if err != nil {
		return "", "", err
	}
	if _, err := goCmd(src, nil, "mod", "edit", "-dropreplace", sdk); err != nil {
		return "", "", err
	}
	f, err := os.OpenFile(filepath.Join(src, "go.sum"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return "", "", err
	}
	_, err = fmt.Fprintf(f, "%s %s %s\n%s %s/go.mod %s\n", sdk, sdkVersion, sum, sdk, sdkVersion, goModSum)
	if err := firstErr(err, f.Close()); err != nil {
		return "", "", err
	}
	cflags := "BPF2GO_CFLAGS=-I" + filepath.Join(src, "internal/include/libbpf") + " -I" + filepath.Join(src, "internal/include")
	if _, err := goCmd(src, []string{cflags}, "generate", "./internal/pkg/instrumentation/bpf/..."); err != nil {
		return "", "", fmt.Errorf("%w (needs clang and llvm-strip)", err)
	}
	if _, err := goCmd(src, []string{"CGO_ENABLED=0"}, "build", "-o", bin+".tmp", otelAutoCLI); err != nil {
		return "", "", err
	}
	if err := os.Rename(bin+".tmp", bin); err != nil {
		return "", "", err
	}
	return bin, fmt.Sprintf("%.0f s", time.Since(start).Seconds()), nil
}

// start runs one instance of the peer against pid, with service name
// name and env, and waits until its probes are attached. It returns the
// instance and how long that took; on failure the instance has exited or
// been stopped, and the error is what it logged as its error.
func (pr *peerRunner) start(ctx context.Context, pid int, name string, env []string) (*tracerSession, float64, error) {
	args := append(append([]string(nil), pr.wrap...), pr.bin)
	env = append([]string{fmt.Sprintf("OTEL_GO_AUTO_TARGET_PID=%d", pid), "OTEL_SERVICE_NAME=" + name}, env...)
	start := time.Now()
	t, err := startTracer(args[0], args[1:], env, 0)
	if err != nil {
		return nil, 0, err
	}
	if err := t.waitLog(otelAutoLoaded, 120*time.Second); err != nil {
		stopPeer(t)
		if e := peerError(t.logText()); e != "" {
			return nil, 0, errors.New(e)
		}
		return nil, 0, fmt.Errorf("%s did not log %q: %s", filepath.Base(pr.bin), otelAutoLoaded, lastLines(t.logText(), 5))
	}
	load := time.Since(start).Seconds()
	pr.mu.Lock()
	pr.loads = append(pr.loads, load)
	if pr.notes == nil {
		pr.notes = peerNotes(t.logText())
	}
	pr.mu.Unlock()
	return t, load, ctx.Err()
}

// run is one run of the peer's arm: B and A started afresh, one instance
// of the peer attached to each (by pid: it cannot attach before the process
// exists), then the chain's load; the instances are stopped (SIGINT: they
// flush their exporter) before the services.
func (pr *peerRunner) run(ctx context.Context, binA, binB, route string, workers int, env []string, d time.Duration) (r armRun, warmUp int, err error) {
	svcB, err := startService(binB)
	if err != nil {
		return r, 0, err
	}
	defer svcB.stop()
	svcA, err := startService(binA)
	if err != nil {
		return r, 0, err
	}
	defer svcA.stop()
	var (
		wg   sync.WaitGroup
		inst [2]*tracerSession
		errs [2]error
	)
	for i, svc := range []*service{svcA, svcB} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inst[i], _, errs[i] = pr.start(ctx, svc.pid(), filepath.Base(svc.cmd.Path), env)
		}()
	}
	wg.Wait()
	stopAll := func() error {
		var errStop error
		for _, t := range inst {
			if t != nil {
				errStop = firstErr(errStop, stopPeer(t))
			}
		}
		return errStop
	}
	if err := firstErr(errs[0], errs[1]); err != nil {
		stopAll()
		return r, 0, err
	}
	r, warmUp, err = chainLoad(ctx, svcA, svcB, route, workers, d, []int{inst[0].pid(), inst[1].pid()})
	return r, warmUp, firstErr(err, stopAll())
}

// stopPeer sends SIGINT to an instance of the peer (it flushes its
// exporter and exits) and waits up to 30 s before killing it.
func stopPeer(t *tracerSession) error {
	t.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-t.done:
		return nil
	case <-time.After(30 * time.Second):
		t.cmd.Process.Kill()
		<-t.done
		return fmt.Errorf("peer did not exit within 30s of SIGINT: %s", lastLines(t.logText(), 5))
	}
}

// peerLogLine is what peerError and peerNotes read of the peer's log lines
// (log/slog JSON).
type peerLogLine struct {
	Level string `json:"level"`
	Msg   string `json:"msg"`
	Error string `json:"error"`
}

// peerError returns the error of the last ERROR line of the peer's log,
// "msg: error"; empty when there is none.
func peerError(log string) string {
	var last string
	for _, line := range strings.Split(log, "\n") {
		var l peerLogLine
		if i := strings.IndexByte(line, '{'); i < 0 || json.Unmarshal([]byte(line[i:]), &l) != nil || l.Level != "ERROR" {
			continue
		}
		last = l.Msg
		if l.Error != "" {
			last += ": " + l.Error
		}
	}
	return last
}

// peerNotes returns, once each, the warnings and errors in the peer's log
// and the text it writes to stderr outside its JSON lines (its context
// propagation notice has no newline, so it prefixes the next JSON line).
func peerNotes(log string) []string {
	var notes []string
	seen := map[string]bool{}
	add := func(s string) {
		if s = strings.TrimSpace(s); s != "" && !seen[s] {
			seen[s] = true
			notes = append(notes, s)
		}
	}
	for _, line := range strings.Split(log, "\n") {
		i := strings.IndexByte(line, '{')
		if i < 0 {
			add(line)
			continue
		}
		add(line[:i])
		var l peerLogLine
		if json.Unmarshal([]byte(line[i:]), &l) != nil || (l.Level != "WARN" && l.Level != "ERROR") {
			continue
		}
		s := l.Level + " " + l.Msg
		if l.Error != "" {
			s += ": " + l.Error
		}
		add(s)
	}
	return notes
}

// linked is "n of m (p%)".
func linked(n, m uint64) string {
	if m == 0 {
		return "0 of 0"
	}
	return fmt.Sprintf("%d of %d (%.1f%%)", n, m, 100*float64(n)/float64(m))
}

// peersSummaryRows are the peers section's headline figures.
func peersSummaryRows(p *Peers) [][3]string {
	var rows [][3]string
	u := untracedArm.Name
	for _, pt := range p.Parts {
		var res []string
		for _, a := range pt.Arms[1:] {
			res = append(res, fmt.Sprintf("%s: ×%s req/s, p50 ×%s, p99 ×%s", a.Name,
				pt.Ratio[a.Name].format("%.3f", ""), pt.P50Ratio[a.Name].format("%.2f", ""), pt.P99Ratio[a.Name].format("%.2f", "")))
		}
		for _, a := range pt.Arms[1:] {
			if s, ok := pt.OursOverPeer[a.Name]; ok {
				res = append(res, fmt.Sprintf("%s ÷ %s req/s: ×%s", a.Name, otelAutoArm.Name, s.format("%.2f", "")))
			}
		}
		res = append(res, linksSummary(pt.Links))
		rows = append(rows, [3]string{
			fmt.Sprintf("Against a peer (%s %s), %s (`%s`: %d spans per request; %d callers closed loop, %.0fs per run; %s)",
				p.Peer.Name, otelAutoVersion, pt.Name, pt.Route, pt.SpansPerRequest, pt.Workers, p.Duration, p.Binary),
			fmt.Sprintf("untraced %s req/s, p50 %s, p99 %s", pt.PerSecond[u].format("%.0f", ""), pt.P50[u].format("%.3f", " ms"), pt.P99[u].format("%.3f", " ms")),
			strings.Join(res, "; "),
		})
	}
	if len(p.ContextLinks) > 0 {
		rows = append(rows, [3]string{
			fmt.Sprintf("Against a peer, the handler passing its request's context to the client call (`%s`, %.0fs run per arm exporting to the harness)", p.ContextRoute, p.ContextLinks[0].Seconds),
			"—", linksSummary(p.ContextLinks)})
	}
	return rows
}

// linksSummary says, per arm, which share of A's client spans are children
// of A's server span and which share of B's server spans continue A's
// trace.
func linksSummary(links []ChainLinks) string {
	pct := func(n, m uint64) string {
		if m == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(m))
	}
	var out []string
	for _, l := range links {
		out = append(out, fmt.Sprintf("%s %s / %s", l.Arm, pct(l.AClientChildOfAServer, l.AClients), pct(l.BChildOfAClient, l.BServers)))
	}
	return "one trace per request (A's client spans under A's server span / B's server spans under A's client span): " + strings.Join(out, ", ")
}

// peersMarkdown is the peers section of results.md.
func peersMarkdown(p *Peers) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## 2d. Against a peer: %s\n\n", p.Peer.Name)
	fmt.Fprintf(&b, "The context section's chain (two copies of `tracer/testdata/chain`, %s, client → A → B on loopback, the harness calling A in a closed loop) "+
		"traced by our tracer (`tracer --exe %s`, started before the services) and by `%s` (its CLI, built from the module proxy: %s), "+
		"all exporting nothing (`OTEL_TRACES_EXPORTER=none`; the peer's spans still go through its OTel SDK batch processor). "+
		"The peer attaches to one pid per instance, so its arm runs two instances, started once B and A are up and waited for until each logs %q. "+
		"Each round runs every arm once, the order reversed every other round; %d rounds, a 1 s warm-up then %.0f s measured per run, every run starting afresh. "+
		"Ratios are over the untraced run of the same round; *ours ÷ peer* is per round too. CPU is A's and B's, and the tracing processes', utime+stime over the measured load.\n\n",
		p.Binary, contextChainGlob, p.Peer.Module, p.Peer.Build, otelAutoLoaded, p.Rounds, p.Duration)
	fmt.Fprintf(&b, "Each instance: `%s`. Load time per instance (start to probes attached): %s.\n\n", p.Peer.Command, p.Peer.LoadSeconds.format("%.1f", " s"))
	if p.Peer.AsShipped != "" {
		fmt.Fprintf(&b, "**As shipped it does not run here.** Against one copy of the chain it stopped with: `%s`\n\n", p.Peer.AsShipped)
	}
	if p.Peer.Workaround != "" {
		fmt.Fprintf(&b, "Measured instead with a workaround: %s.\n\n", p.Peer.Workaround)
	}
	if len(p.Peer.Notes) > 0 {
		b.WriteString("What it logged while loading (warnings, errors and its plain-text notices, each once):\n\n")
		for _, n := range p.Peer.Notes {
			fmt.Fprintf(&b, "- `%s`\n", n)
		}
	}
	for _, pt := range p.Parts {
		fmt.Fprintf(&b, "\n%s: `%s`, %d callers, %d spans per request.\n\n", strings.ToUpper(pt.Name[:1])+pt.Name[1:], pt.Route, pt.Workers, pt.SpansPerRequest)
		b.WriteString("| Arm | req/s | ratio to untraced | ours ÷ peer | p50 | p50 ratio | p99 | p99 ratio | A+B CPU / 1k req | tracing CPU / 1k req | traceparent written |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, a := range pt.Arms {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", a.Name, pt.PerSecond[a.Name].format("%.0f", ""),
				orDash(pt.Ratio, a.Name, "%.3f", ""), orDash(pt.OursOverPeer, a.Name, "%.2f", ""),
				pt.P50[a.Name].format("%.3f", " ms"), orDash(pt.P50Ratio, a.Name, "%.2f", ""),
				pt.P99[a.Name].format("%.3f", " ms"), orDash(pt.P99Ratio, a.Name, "%.2f", ""),
				orDash(pt.ServiceCPUPer1k, a.Name, "%.0f", " ms"), orDash(pt.TracerCPUPer1k, a.Name, "%.0f", " ms"), pt.Outgoing[a.Name].written())
		}
		if len(pt.Links) > 0 {
			fmt.Fprintf(&b, "\nConnected traces: one more %.0f s run of each traced arm, every span exported over OTLP/HTTP to a receiver in the harness.\n\n", pt.Links[0].Seconds)
			linksTable(&b, pt.Links, pt.SpansPerRequest)
		}
	}
	if len(p.ContextLinks) > 0 {
		fmt.Fprintf(&b, "\nConnected traces when the handler passes its request's context to the client call (`%s`, the call made with `req.WithContext(r.Context())`; "+
			"the routes above call `client.Get`, whose request carries `context.Background()`): one %.0f s run of each traced arm, %d callers, exporting as above.\n\n",
			p.ContextRoute, p.ContextLinks[0].Seconds, p.Parts[0].Workers)
		linksTable(&b, p.ContextLinks, 3)
	}
	return b.String()
}

// linksTable writes the table of the links checks of one route.
func linksTable(b *strings.Builder, links []ChainLinks, spansPerRequest int) {
	b.WriteString("| Arm | requests | spans received / expected | A's client spans children of A's server span | B's server spans children of A's client span | B's server spans without parent |\n|---|---|---|---|---|---|\n")
	for _, l := range links {
		fmt.Fprintf(b, "| %s | %d | %s | %s | %s | %d |\n", l.Arm, l.Requests,
			linked(l.AServers+l.AClients+l.BServers, l.Requests*uint64(spansPerRequest)),
			linked(l.AClientChildOfAServer, l.AClients), linked(l.BChildOfAClient, l.BServers), l.BRoot)
	}
}
