package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// FootprintCase is the tracer's memory with a number of traced processes.
type FootprintCase struct {
	Processes int `json:"processes"`
	// Idle is VmRSS sampled after the probes are attached, with no traffic;
	// Loaded is VmRSS sampled during saturating load on every process;
	// Peak is VmHWM at the end. Bytes.
	Idle   Spread `json:"idle_rss_bytes"`
	Loaded Spread `json:"loaded_rss_bytes"`
	Peak   uint64 `json:"peak_rss_bytes"`
	// ServiceRSS is one traced service's VmRSS at the end, for scale.
	ServiceRSS uint64 `json:"service_rss_bytes"`
	Spans      uint64 `json:"spans"`
	Dropped    uint64 `json:"dropped"`
}

// Footprint is section 4: the tracer's resident memory.
type Footprint struct {
	Load  string          `json:"load"`
	Cases []FootprintCase `json:"cases"`
}

// footprint runs the tracer with --exe over 1 and then 10 copies of the
// example service (one binary, so one glob), idle and then under load.
func (h *harness) footprint(ctx context.Context) (*Footprint, error) {
	dir := filepath.Join(h.work, "footprint")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "offsetdb-bench-svc")
	if err := copyFile(h.serviceBin, bin); err != nil {
		return nil, err
	}
	f := &Footprint{Load: fmt.Sprintf("wrk -t1 -c%d on /items/1 of every process at once, %s", max(1, h.wrkConns/10), h.runDuration)}
	for _, n := range []int{1, 10} {
		h.logf("footprint: %d traced processes", n)
		c, err := h.footprintCase(ctx, bin, n)
		if err != nil {
			return nil, fmt.Errorf("%d processes: %w", n, err)
		}
		f.Cases = append(f.Cases, c)
	}
	return f, nil
}

func (h *harness) footprintCase(ctx context.Context, bin string, n int) (FootprintCase, error) {
	c := FootprintCase{Processes: n}
	t, err := startTracer(h.tracerBin, []string{"--exe", filepath.Base(bin)}, []string{"OTEL_TRACES_EXPORTER=none"}, 0)
	if err != nil {
		return c, err
	}
	tracerStopped := false
	defer func() {
		if !tracerStopped {
			t.stop(ctx)
		}
	}()
	var svcs []*service
	defer func() {
		for _, s := range svcs {
			s.stop()
		}
	}()
	for range n {
		s, err := startService(bin)
		if err != nil {
			return c, err
		}
		svcs = append(svcs, s)
	}
	if err := t.waitAttached(n, 60*time.Second); err != nil {
		return c, err
	}
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
	c.Idle = newSpread(sample(2 * time.Second))

	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, s := range svcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = runWrk(ctx, s.url("/items/1"), 1, max(1, h.wrkConns/10), h.runDuration)
		}()
	}
	c.Loaded = newSpread(sample(h.runDuration - 500*time.Millisecond))
	wg.Wait()
	if err := firstErr(errs...); err != nil {
		return c, err
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
		return c, fmt.Errorf("tracer detached from %d processes, want %d", st.Detached, n)
	}
	c.Spans, c.Dropped = st.Spans, st.Dropped
	return c, nil
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
