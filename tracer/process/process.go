// Package process finds, starts and watches the processes the tracer
// attaches to.
package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrGone reports a process that does not exist (any more).
var ErrGone = errors.New("process not found")

// ExePath returns the path through which a running process's executable
// can be opened, even if the file was replaced or lives in another mount
// namespace (a container): /proc/PID/exe. Name is the link's target, for
// display.
func ExePath(pid int) (path, name string, err error) {
	path = fmt.Sprintf("/proc/%d/exe", pid)
	name, err = os.Readlink(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", "", fmt.Errorf("pid %d: %w", pid, ErrGone)
	}
	if err != nil && errors.Is(err, os.ErrPermission) && os.Geteuid() == 0 {
		return "", "", fmt.Errorf("pid %d: %w (refused even to root: the process is outside what this tracer may inspect — a kernel thread, a process of another user namespace, or one the system protects such as this machine's pid 1)", pid, err)
	}
	if err != nil {
		return "", "", fmt.Errorf("pid %d: %w (tracing another user's process needs root or CAP_SYS_PTRACE)", pid, err)
	}
	return path, strings.TrimSuffix(name, " (deleted)"), nil
}

// Alive reports whether pid exists and is not a zombie.
func Alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses and may
	// itself contain spaces and parentheses.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}

// WaitExit returns nil once process pid has exited (or is a zombie, or
// never existed), or ctx.Err() when ctx is done first.
//
// It waits on a pidfd (Linux 5.3+), so it returns within microseconds of
// the exit without polling; where pidfd_open is unavailable it falls back to
// checking Alive every pollInterval.
func WaitExit(ctx context.Context, pid int) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return pollExit(ctx, pid)
	}
	defer unix.Close(fd)
	// A pipe closed when ctx is done wakes the poll below.
	r, w, err := os.Pipe()
	if err != nil {
		return pollExit(ctx, pid)
	}
	defer r.Close()
	stop := context.AfterFunc(ctx, func() { w.Close() })
	defer func() {
		if stop() {
			w.Close()
		}
	}()
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(r.Fd()), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return pollExit(ctx, pid)
		case fds[0].Revents != 0:
			// POLLIN: the process has exited. A zombie counts, as in Alive.
			return nil
		case fds[1].Revents != 0:
			return ctx.Err()
		}
	}
}

// pollInterval is how often WaitExit checks a process without a pidfd.
const pollInterval = 100 * time.Millisecond

func pollExit(ctx context.Context, pid int) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for Alive(pid) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Child is a program the tracer started. It is held stopped right after
// exec, so probes can be attached before it runs a single instruction of
// its own; Resume lets it go.
type Child struct {
	Cmd *exec.Cmd
	PID int
}

// Start starts argv stopped at its first instruction (via ptrace, detached
// again by Resume). The caller must call Resume from the same goroutine:
// ptrace requests must come from the thread that attached, so Start locks
// the goroutine to its OS thread until Resume.
func Start(argv []string, stdin io.Reader, stdout, stderr io.Writer) (*Child, error) {
	if len(argv) == 0 {
		return nil, errors.New("no command to run")
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	runtime.LockOSThread()
	cmd := exec.Command(path, argv[1:]...)
	// Leave nil streams nil: a typed nil would not mean "inherit /dev/null".
	if stdin != nil {
		cmd.Stdin = stdin
	}
	if stdout != nil {
		cmd.Stdout = stdout
	}
	if stderr != nil {
		cmd.Stderr = stderr
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Ptrace: true}
	if err := cmd.Start(); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	// The child stops with SIGTRAP once execve has completed.
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(cmd.Process.Pid, &ws, 0, nil); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("wait for %s to exec: %w", path, err)
	}
	if !ws.Stopped() {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("start %s: exited before it ran (status %v)", path, ws)
	}
	return &Child{Cmd: cmd, PID: cmd.Process.Pid}, nil
}

// Resume detaches from the stopped child and lets it run.
func (c *Child) Resume() error {
	defer runtime.UnlockOSThread()
	if err := syscall.PtraceDetach(c.PID); err != nil {
		return fmt.Errorf("resume pid %d: %w", c.PID, err)
	}
	return nil
}

// Wait waits for the child to exit. It returns its exit code; signals map
// to 128+signal as shells do.
func (c *Child) Wait() (int, error) {
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(c.PID, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return -1, err
		}
		switch {
		case ws.Exited():
			return ws.ExitStatus(), nil
		case ws.Signaled():
			return 128 + int(ws.Signal()), nil
		}
	}
}

// Match reports whether an executable path matches glob: the whole path if
// glob contains a '/', else the base name.
func Match(glob, exe string) bool {
	if strings.Contains(glob, "/") {
		ok, _ := filepath.Match(glob, exe)
		return ok
	}
	ok, _ := filepath.Match(glob, filepath.Base(exe))
	return ok
}

func pids() []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

func sortedKeys(m map[int]string) []int {
	ks := make([]int, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
