package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// FootprintCase is the tracer's cost with a number of traced processes.
type FootprintCase struct {
	Processes int `json:"processes"`
	// Idle is VmRSS sampled after the probes are attached, with no traffic;
	// Loaded is VmRSS sampled during the load; Peak is VmHWM at the end.
	// Bytes.
	Idle   Spread `json:"idle_rss_bytes"`
	Loaded Spread `json:"loaded_rss_bytes"`
	Peak   uint64 `json:"peak_rss_bytes"`
	// IdleCPU and LoadedCPU are the tracer's utime+stime over the idle and
	// loaded windows, in cores (1 = one CPU busy all the time).
	IdleCPU   float64 `json:"idle_cpu_cores"`
	LoadedCPU float64 `json:"loaded_cpu_cores"`
	// Requests is how many requests the load had answered; CPUPer1k the
	// tracer's CPU per thousand of them, in ms (each makes 3 spans).
	Requests uint64  `json:"requests"`
	CPUPer1k float64 `json:"tracer_cpu_ms_per_1k_requests"`
	// BPF is what the tracer's BPF maps and programs hold in the kernel
	// (the memlock of each in /proc/PID/fdinfo), measured while attached.
	BPFMemlock uint64 `json:"bpf_memlock_bytes"`
	BPFMaps    int    `json:"bpf_maps"`
	BPFProgs   int    `json:"bpf_programs"`
	// Attach is, per process, the time from its exec to its probes being
	// in place (the tracer's "exec_to_attached"), in ms; AttachAll the
	// time from starting the first process to the last one attached.
	Attach    Spread  `json:"exec_to_attached_ms"`
	AttachAll float64 `json:"all_attached_s"`
	// ServiceRSS is one traced service's VmRSS at the end, for scale.
	ServiceRSS uint64 `json:"service_rss_bytes"`
	Spans      uint64 `json:"spans"`
	Dropped    uint64 `json:"dropped"`
	// DroppedBy says why, from the tracer's totals.
	DroppedBy map[string]uint64 `json:"dropped_by,omitempty"`
}

// Footprint is section 4: the tracer's resident memory and CPU as the
// number of traced processes grows.
type Footprint struct {
	Load    string          `json:"load"`
	Command string          `json:"command"`
	Cases   []FootprintCase `json:"cases"`
}

// footprintConns is the load of every footprint case: closed-loop
// connections sending GET /items/1 to each process in turn, the same for
// 1 or 200 processes, so that the cases differ in processes, not in spans.
const footprintConns = 8

// footprint runs the tracer under discovery (a rule on the executable
// name) over 1, 10, 50 and then 200 copies of the example service (one
// binary), each started after the tracer, idle and then under load.
func (h *harness) footprint(ctx context.Context) (*Footprint, error) {
	dir := filepath.Join(h.work, "footprint")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// A name of this run's own: the rules must select no other process
	// on the machine (another run of the bench, say).
	name := fmt.Sprintf("offsetdb-fp-%d", os.Getpid())
	bin := filepath.Join(dir, name)
	if err := copyFile(h.serviceBin, bin); err != nil {
		return nil, err
	}
	rules := filepath.Join(dir, "discovery.yaml")
	if err := os.WriteFile(rules, []byte("discovery:\n  services:\n    - exe_path: "+name+"\n"), 0o644); err != nil {
		return nil, err
	}
	args := []string{"--exe", filepath.Base(bin), "--discovery", rules}
	f := &Footprint{
		Load:    fmt.Sprintf("%d closed-loop connections sending GET /items/1 to every process in turn, %s", footprintConns, h.runDuration),
		Command: "OTEL_TRACES_EXPORTER=none tracer " + strings.Join(args, " "),
	}
	for _, n := range h.footprintTargets {
		h.logf("footprint: %d traced processes", n)
		c, err := h.footprintCase(ctx, bin, args, n)
		if err != nil {
			return nil, fmt.Errorf("%d processes: %w", n, err)
		}
		f.Cases = append(f.Cases, c)
	}
	return f, nil
}

func (h *harness) footprintCase(ctx context.Context, bin string, args []string, n int) (FootprintCase, error) {
	c := FootprintCase{Processes: n}
	t, err := startTracer(h.tracerBin, args, []string{"OTEL_TRACES_EXPORTER=none"}, 0)
	if err != nil {
		return c, err
	}
	tracerStopped := false
	defer func() {
		if !tracerStopped {
			t.stop(ctx)
		}
	}()
	// Processes started before the watch are found by its first scan,
	// not at their exec: no exec_to_attached.
	if err := t.waitLog("watching for processes", 30*time.Second); err != nil {
		return c, err
	}
	var svcs []*service
	defer func() {
		for _, s := range svcs {
			s.stop()
		}
	}()
	start := time.Now()
	for range n {
		s, err := startService(bin)
		if err != nil {
			return c, err
		}
		svcs = append(svcs, s)
	}
	if err := t.waitAttached(n, time.Minute+time.Duration(n)*time.Second); err != nil {
		return c, err
	}
	c.AttachAll = time.Since(start).Seconds()
	c.Attach = newSpread(execToAttached(t.logText()))
	sample := func(d time.Duration) []float64 {
		var out []float64
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
			if rss, _, err := memStatus(t.pid()); err == nil {
				out = append(out, float64(rss))
			}
		}
		return out
	}
	time.Sleep(time.Second)
	cpu0, err := cpuCores(t.pid())
	if err != nil {
		return c, err
	}
	t0 := time.Now()
	c.Idle = newSpread(sample(2 * time.Second))
	cpu1, err := cpuCores(t.pid())
	if err != nil {
		return c, err
	}
	c.IdleCPU = (cpu1 - cpu0).Seconds() / time.Since(t0).Seconds()
	if c.BPFMemlock, c.BPFMaps, c.BPFProgs, err = bpfMemlock(t.pid()); err != nil {
		return c, err
	}

	var urls []string
	for _, s := range svcs {
		urls = append(urls, s.url("/items/1"))
	}
	t0 = time.Now()
	done := make(chan uint64, 1)
	go func() { done <- spreadLoad(ctx, urls, footprintConns, h.runDuration) }()
	c.Loaded = newSpread(sample(h.runDuration - 500*time.Millisecond))
	c.Requests = <-done
	cpu2, err := cpuCores(t.pid())
	if err != nil {
		return c, err
	}
	c.LoadedCPU = (cpu2 - cpu1).Seconds() / time.Since(t0).Seconds()
	if c.Requests > 0 {
		c.CPUPer1k = float64((cpu2 - cpu1).Milliseconds()) / (float64(c.Requests) / 1000)
	}
	_, c.Peak, err = memStatus(t.pid())
	if err != nil {
		return c, err
	}
	c.ServiceRSS, _, _ = memStatus(svcs[0].pid())
	st, err := t.stop(ctx)
	tracerStopped = true
	if err != nil {
		return c, err
	}
	if st.Detached != n {
		return c, fmt.Errorf("tracer detached from %d processes, want %d: %s", st.Detached, n, t.logText())
	}
	c.Spans, c.Dropped, c.DroppedBy = st.Spans, st.Dropped, st.DroppedBy
	return c, nil
}

// cpuCores returns the CPU time process pid has used so far.
func cpuCores(pid int) (time.Duration, error) {
	u, s, err := cpuTime(pid)
	return u + s, err
}

// spreadLoad sends GET to urls in turn from conns closed-loop connections
// for d and returns how many answers came back 2xx.
func spreadLoad(ctx context.Context, urls []string, conns int, d time.Duration) uint64 {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var ok atomic.Uint64
	var wg sync.WaitGroup
	for w := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 5 * time.Second}
			defer client.CloseIdleConnections()
			for i := w; ctx.Err() == nil; i += conns {
				if get(ctx, client, urls[i%len(urls)]) {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return ok.Load()
}

var execToAttachedRe = regexp.MustCompile(`exec_to_attached=(\S+)`)

// execToAttached returns, in ms, the exec_to_attached of every "new
// process traced from its start" line of a tracer log.
func execToAttached(log string) []float64 {
	var out []float64
	for _, m := range execToAttachedRe.FindAllStringSubmatch(log, -1) {
		if d, err := time.ParseDuration(m[1]); err == nil {
			out = append(out, float64(d.Microseconds())/1000)
		}
	}
	return out
}

// bpfMemlock sums the memlock of the BPF maps and programs process pid
// holds, from /proc/PID/fdinfo, each once however many descriptors it has:
// what they cost the kernel.
func bpfMemlock(pid int) (bytes uint64, maps, progs int, err error) {
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, 0, err
	}
	seen := map[string]bool{}
	for _, e := range ents {
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		info := parseFdinfo(f)
		f.Close()
		if info.id == "" || seen[info.id] {
			continue
		}
		seen[info.id] = true
		if strings.HasPrefix(info.id, "map_id") {
			maps++
		} else {
			progs++
		}
		bytes += info.memlock
	}
	return bytes, maps, progs, nil
}

// fdinfo is what bpfMemlock reads of one /proc/PID/fdinfo file.
type fdinfo struct {
	id      string // "map_id 12" or "prog_id 7"; empty for other descriptors
	memlock uint64
}

func parseFdinfo(r io.Reader) fdinfo {
	var info fdinfo
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch key {
		case "map_id", "prog_id":
			info.id = key + " " + val
		case "memlock":
			info.memlock, _ = strconv.ParseUint(val, 10, 64)
		}
	}
	return info
}

// waitAttached waits until the tracer has attached to n processes.
func (t *tracerSession) waitAttached(n int, timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		t.mu.Lock()
		got, changed := t.attached, t.changed
		t.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-changed:
		case <-t.done:
			return fmt.Errorf("tracer exited after attaching to %d of %d processes: %s", got, n, t.logText())
		case <-deadline:
			return fmt.Errorf("tracer attached to %d of %d processes in %s: %s", got, n, timeout, t.logText())
		}
	}
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}
