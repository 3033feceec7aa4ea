package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// userHZ is the unit of utime and stime in /proc/PID/stat: USER_HZ, which
// Linux fixes at 100 for user space whatever the kernel's own tick.
const userHZ = 100

// cpuTime returns the user and system CPU time process pid has used so
// far (all its threads), from /proc/PID/stat.
func cpuTime(pid int) (user, sys time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads utime and stime (fields 14 and 15) of a /proc/PID/stat
// line. The command name, field 2, may hold spaces and parentheses, so
// fields are counted from the last ')'.
func parseStatCPU(stat string) (user, sys time.Duration, err error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parse /proc stat: no command name in %q", stat)
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state): utime is field 14, f[11]; stime f[12].
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("parse /proc stat: %d fields after the command name", len(f))
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("parse /proc stat: %w", err)
	}
	return time.Duration(u) * time.Second / userHZ, time.Duration(s) * time.Second / userHZ, nil
}

// contextSwitches returns the voluntary and involuntary context switches of
// every thread of process pid, summed (threads that already exited are not
// counted: a lower bound).
func contextSwitches(pid int) (uint64, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()))
		if err != nil {
			continue // the thread exited
		}
		n += parseContextSwitches(string(b))
	}
	return n, nil
}

func parseContextSwitches(status string) uint64 {
	var n uint64
	for _, line := range strings.Split(status, "\n") {
		key, val, ok := strings.Cut(line, ":")
		if ok && (key == "voluntary_ctxt_switches" || key == "nonvoluntary_ctxt_switches") {
			v, _ := strconv.ParseUint(strings.TrimSpace(val), 10, 64)
			n += v
		}
	}
	return n
}

// memStatus returns VmRSS and VmHWM (peak RSS) of process pid in bytes.
func memStatus(pid int) (rss, hwm uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	return parseMemStatus(string(b))
}

func parseMemStatus(status string) (rss, hwm uint64, err error) {
	var foundRSS, foundHWM bool
	for _, line := range strings.Split(status, "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("parse /proc status: %s: %q", key, val)
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parse /proc status: %s: %w", key, err)
		}
		if key == "VmRSS" {
			rss, foundRSS = kb<<10, true
		} else {
			hwm, foundHWM = kb<<10, true
		}
	}
	if !foundRSS || !foundHWM {
		return 0, 0, errors.New("parse /proc status: no VmRSS or VmHWM")
	}
	return rss, hwm, nil
}

// service is a running example service.
type service struct {
	cmd  *exec.Cmd
	addr string // host:port it listens on
	done chan struct{}
}

// startService starts a service binary (the example service, or grpcload
// serve) with args and waits for its "listening on ADDR" line.
func startService(bin string, args ...string) (*service, error) {
	cmd := exec.Command(bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &service{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				select {
				case addr <- a:
				default:
				}
			}
		}
		io.Copy(io.Discard, out)
	}()
	go func() { cmd.Wait(); close(s.done) }()
	select {
	case s.addr = <-addr:
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("%s exited before listening", bin)
	case <-time.After(20 * time.Second):
		s.stop()
		return nil, fmt.Errorf("%s did not say where it listens within 20s", bin)
	}
}

func (s *service) pid() int { return s.cmd.Process.Pid }

func (s *service) url(path string) string { return "http://" + s.addr + path }

// stop kills the service and waits for it.
func (s *service) stop() {
	s.cmd.Process.Kill()
	<-s.done
}

// tracerSession is one running tracer process.
type tracerSession struct {
	cmd  *exec.Cmd
	done chan struct{}

	mu       sync.Mutex
	log      []string // stderr lines
	attached int      // "msg=attached" lines seen
	changed  chan struct{}
}

// tracerStats are the counters of the tracer's "msg=detached" lines, summed
// over the processes it traced.
type tracerStats struct {
	Detached int
	Spans    uint64
	Dropped  uint64
	Errors   uint64
	// DroppedBy is the totals line's dropped spans by reason
	// ("ring_buffer_full": 3), the reasons with none left out.
	DroppedBy map[string]uint64
	// KafkaWritten is the "outgoing trace context" line's kafka_written:
	// Kafka records given a traceparent by the context writer.
	KafkaWritten uint64
}

// startTracer runs the tracer with args and env (added to the harness's
// environment) and waits until want processes are attached.
func startTracer(bin string, args, env []string, want int) (*tracerSession, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = io.Discard
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start tracer: %w", err)
	}
	t := &tracerSession{cmd: cmd, done: make(chan struct{}), changed: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(errPipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			t.mu.Lock()
			t.log = append(t.log, sc.Text())
			if strings.Contains(sc.Text(), "msg=attached") {
				t.attached++
			}
			close(t.changed)
			t.changed = make(chan struct{})
			t.mu.Unlock()
		}
		cmd.Wait()
		close(t.done)
	}()
	if err := t.waitAttached(want, 60*time.Second); err != nil {
		t.stop(context.Background())
		return nil, fmt.Errorf("tracer %s: %w", strings.Join(args, " "), err)
	}
	return t, nil
}

func (t *tracerSession) pid() int { return t.cmd.Process.Pid }

func (t *tracerSession) logText() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.log, "\n")
}

// stop sends SIGINT (the tracer flushes, detaches and exits 0), waits up to
// 30s, and returns the counters of its detach lines.
func (t *tracerSession) stop(ctx context.Context) (tracerStats, error) {
	t.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-t.done:
	case <-time.After(30 * time.Second):
		t.cmd.Process.Kill()
		<-t.done
		return tracerStats{}, fmt.Errorf("tracer did not exit within 30s of SIGINT: %s", t.logText())
	case <-ctx.Done():
		t.cmd.Process.Kill()
		<-t.done
		return tracerStats{}, ctx.Err()
	}
	st := parseDetached(t.logText())
	if st.Detached == 0 {
		return st, fmt.Errorf("tracer logged no detach line: %s", t.logText())
	}
	return st, nil
}

var (
	detachField    = regexp.MustCompile(`\b(spans|dropped|errors)=(\d+)`)
	droppedByField = regexp.MustCompile(`\bdropped_(\w+)=(\d+)`)
	kafkaWritten   = regexp.MustCompile(`\bkafka_written=(\d+)`)
)

// parseDetached counts the "msg=detached" lines of a tracer log (log/slog
// text: "... msg=detached pid=12 spans=3 dropped=0 errors=0") and sums
// their counters; the "msg=totals" line, when there is one, has the
// tracer's counters instead: what BPF lost (ring buffer full) is counted
// tracer-wide, in no process's line.
func parseDetached(log string) tracerStats {
	var st, totals tracerStats
	haveTotals := false
	for _, line := range strings.Split(log, "\n") {
		if m := kafkaWritten.FindStringSubmatch(line); m != nil && strings.Contains(line, "msg=\"outgoing trace context\"") {
			n, _ := strconv.ParseUint(m[1], 10, 64)
			st.KafkaWritten += n
			totals.KafkaWritten += n
		}
		sum := &st
		switch {
		case strings.Contains(line, "msg=detached"):
			st.Detached++
		case strings.Contains(line, "msg=totals"):
			haveTotals = true
			sum = &totals
			for _, m := range droppedByField.FindAllStringSubmatch(line, -1) {
				if n, _ := strconv.ParseUint(m[2], 10, 64); n > 0 {
					if totals.DroppedBy == nil {
						totals.DroppedBy = map[string]uint64{}
					}
					totals.DroppedBy[m[1]] += n
				}
			}
		default:
			continue
		}
		for _, m := range detachField.FindAllStringSubmatch(line, -1) {
			n, _ := strconv.ParseUint(m[2], 10, 64)
			switch m[1] {
			case "spans":
				sum.Spans += n
			case "dropped":
				sum.Dropped += n
			case "errors":
				sum.Errors += n
			}
		}
	}
	if haveTotals {
		totals.Detached = st.Detached
		return totals
	}
	return st
}

// timedRun runs a command to completion under /usr/bin/time and returns
// its wall time, its peak RSS and its stdout. The peak RSS comes from GNU
// time rather than this process's wait4: Linux carries ru_maxrss over exec,
// and Go starts children with vfork, so the child's figure would include
// this harness's own RSS.
func timedRun(ctx context.Context, dir string, env []string, name string, args ...string) (wall time.Duration, maxRSS uint64, stdout []byte, err error) {
	timeBin, err := exec.LookPath("/usr/bin/time")
	if err != nil {
		return 0, 0, nil, fmt.Errorf("GNU time is needed for peak RSS (apt-get install time): %w", err)
	}
	rssFile, err := os.CreateTemp("", "bench-rss-")
	if err != nil {
		return 0, 0, nil, err
	}
	rssFile.Close()
	defer os.Remove(rssFile.Name())
	cmd := exec.CommandContext(ctx, timeBin, append([]string{"-f", "%M", "-o", rssFile.Name(), name}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var errBuf strings.Builder
	cmd.Stderr = &errBuf
	start := time.Now()
	stdout, err = cmd.Output()
	wall = time.Since(start)
	if err != nil {
		return wall, 0, stdout, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, lastLines(errBuf.String(), 10))
	}
	b, err := os.ReadFile(rssFile.Name())
	if err != nil {
		return wall, 0, stdout, err
	}
	kb, err := strconv.ParseUint(lastLines(string(b), 1), 10, 64)
	if err != nil {
		return wall, 0, stdout, fmt.Errorf("peak RSS from GNU time: %w", err)
	}
	return wall, kb << 10, stdout, nil
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
