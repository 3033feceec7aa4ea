package process

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

func TestMatch(t *testing.T) {
	assert.True(t, Match("myservice", "/usr/bin/myservice"))
	assert.True(t, Match("my*", "/usr/bin/myservice"))
	assert.False(t, Match("other", "/usr/bin/myservice"))
	assert.True(t, Match("/usr/bin/*", "/usr/bin/myservice"))
	assert.False(t, Match("/opt/*", "/usr/bin/myservice"))
}

func TestStartHoldsChildUntilResume(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	c, err := Start([]string{"sh", "-c", "touch " + marker}, nil, os.Stdout, os.Stderr)
	require.NoError(t, err)
	time.Sleep(200 * time.Millisecond)
	_, statErr := os.Stat(marker)
	assert.True(t, os.IsNotExist(statErr), "the child must not run before Resume")
	path, name, err := ExePath(c.PID)
	require.NoError(t, err)
	assert.NotEmpty(t, path)
	assert.Contains(t, name, "sh")
	require.NoError(t, c.Resume())
	code, err := c.Wait()
	require.NoError(t, err)
	assert.Equal(t, 0, code)
	assert.FileExists(t, marker)
}

func TestStartReportsMissingCommand(t *testing.T) {
	_, err := Start([]string{"/no/such/program"}, nil, nil, nil)
	assert.ErrorContains(t, err, "/no/such/program")
}

func TestExePathOfGoneProcess(t *testing.T) {
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	_, _, err := ExePath(cmd.Process.Pid)
	assert.ErrorIs(t, err, ErrGone)
	assert.False(t, Alive(cmd.Process.Pid))
}

func TestWatchSeesStartAndExit(t *testing.T) {
	// A copy of sleep with a name no other process has.
	dir := t.TempDir()
	sleep, err := exec.LookPath("sleep")
	require.NoError(t, err)
	data, err := os.ReadFile(sleep)
	require.NoError(t, err)
	exe := filepath.Join(dir, "offsetdb-watch-test")
	require.NoError(t, os.WriteFile(exe, data, 0o755))

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	events := Watch(ctx, "offsetdb-watch-*", WatchOptions{Interval: 50 * time.Millisecond})
	cmd := exec.Command(exe, "1")
	require.NoError(t, cmd.Start())
	ev := <-events
	assert.Equal(t, cmd.Process.Pid, ev.PID)
	assert.False(t, ev.Exited)
	assert.Equal(t, exe, ev.Exe)
	require.NoError(t, cmd.Wait())
	ev = <-events
	assert.Equal(t, cmd.Process.Pid, ev.PID)
	assert.True(t, ev.Exited)
}

func TestWaitExitReturnsWhenTheProcessExitsOrCtxIsDone(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, WaitExit(ctx, cmd.Process.Pid), context.Canceled, "a running process")

	exited := make(chan error, 1)
	go func() { exited <- WaitExit(context.Background(), cmd.Process.Pid) }()
	require.NoError(t, cmd.Process.Kill())
	select {
	case err := <-exited:
		assert.NoError(t, err, "a zombie has exited")
	case <-time.After(30 * time.Second):
		t.Fatal("WaitExit still waiting after the process was killed")
	}
	cmd.Wait()
	assert.NoError(t, WaitExit(context.Background(), cmd.Process.Pid), "a reaped process")
}

// copyOf copies the executable found as name to dir/newName, so that a
// glob can match it and no other process.
func copyOf(t *testing.T, name, newName string) string {
	path, err := exec.LookPath(name)
	require.NoError(t, err)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	exe := filepath.Join(t.TempDir(), newName)
	require.NoError(t, os.WriteFile(exe, data, 0o755))
	return exe
}

// state returns the state letter of /proc/PID/stat ('T' for stopped).
func state(t *testing.T, pid int) byte {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(t, err)
	s := string(data)
	return s[strings.LastIndexByte(s, ')')+2]
}

func TestWatchHoldsANewProcessAtItsExecUntilResumed(t *testing.T) {
	uprobetest.RequireBPF(t) // root, as the connector needs
	exe := copyOf(t, "sleep", "offsetdb-hold-test")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	events := Watch(ctx, "offsetdb-hold-*", WatchOptions{Interval: time.Hour, Hold: true})
	time.Sleep(100 * time.Millisecond) // the watch is subscribed
	cmd := exec.Command(exe, "0.2")
	start := time.Now()
	require.NoError(t, cmd.Start())
	ev := <-events
	require.Equal(t, cmd.Process.Pid, ev.PID)
	require.True(t, ev.Held, "the connector is used (a poll every hour would not see it)")
	assert.False(t, ev.Exec.IsZero())
	t.Logf("exec seen %v after Start", ev.Exec.Sub(start))
	time.Sleep(500 * time.Millisecond) // longer than the program runs
	assert.Equal(t, byte('T'), state(t, ev.PID), "held: stopped")
	require.NoError(t, ev.Resume())
	require.NoError(t, cmd.Wait(), "runs to its end once resumed")
	ev = <-events
	assert.True(t, ev.Exited)
	assert.Equal(t, cmd.Process.Pid, ev.PID)
}
