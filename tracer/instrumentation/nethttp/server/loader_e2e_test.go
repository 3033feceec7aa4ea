//go:build linux && (amd64 || arm64)

package server_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/offsetdb/offsetdb/gobinary"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/nethttp/client"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/nethttp/server"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// loaderTarget is one process traced through a Loader, with the records
// its handler was given.
type loaderTarget struct {
	cmd  *exec.Cmd
	addr string
	proc *uprobe.Process

	mu      sync.Mutex
	paths   []string // url.path of each server record
	records int
	foreign []uint32 // Event.PID of records that are not this process's
}

func (lt *loaderTarget) pid() int { return lt.cmd.Process.Pid }

// serverPaths returns the paths of the server records the process's
// handler was given so far.
func (lt *loaderTarget) serverPaths() []string {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	return append([]string(nil), lt.paths...)
}

// startThroughLoader starts the program at path and attaches the net/http
// server and client instrumentations to it through ld.
func startThroughLoader(t *testing.T, ld *uprobe.Loader, path string) *loaderTarget {
	t.Helper()
	lt := &loaderTarget{cmd: exec.Command(path)}
	stdout, err := lt.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, lt.cmd.Start())
	t.Cleanup(func() {
		lt.cmd.Process.Kill()
		lt.cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "read the target's address")
	lt.addr = strings.TrimPrefix(strings.TrimSpace(line), "listening on ")

	bin, err := gobinary.Open(path)
	require.NoError(t, err)
	defer bin.Close()
	insts := []uprobe.Instrumentation{server.Instrumentation(), client.Instrumentation()}
	lt.proc, err = ld.Attach(context.Background(), bin, lt.pid(), insts, target.values, func(ev uprobe.Event) {
		lt.mu.Lock()
		defer lt.mu.Unlock()
		lt.records++
		if ev.PID != uint32(lt.pid()) {
			lt.foreign = append(lt.foreign, ev.PID)
			return
		}
		if !assert.NoError(t, ev.Err) {
			return
		}
		if ev.Span.Kind == trace.SpanKindServer {
			for _, a := range ev.Span.Attributes {
				if a.Key == "url.path" {
					lt.paths = append(lt.paths, a.Value.AsString())
				}
			}
		}
	})
	require.NoError(t, err)
	t.Cleanup(func() { lt.proc.Close() })
	return lt
}

// request sends GET /items/<the process's pid> and waits until its
// handler has the server span of that request: the span of /items and the
// span of the /backend call it makes.
func (lt *loaderTarget) request(t *testing.T) {
	t.Helper()
	path := fmt.Sprintf("/items/%d", lt.pid())
	require.Equal(t, http.StatusOK, send(t, "http://"+lt.addr+path))
	deadline := time.Now().Add(time.Minute)
	for !contains(lt.serverPaths(), path) {
		if time.Now().After(deadline) {
			require.Failf(t, "timeout", "pid %d: no server span of %s; got %v", lt.pid(), path, lt.serverPaths())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// Processes of one binary traced through one Loader share one set of BPF
// collections and one ring buffer, and each process's handler gets its
// own records and no other's; a process that exits is detached without
// disturbing the others, a new one joins the same collections, a second
// binary gets collections of its own, and the last process of a binary
// unloads them.
func TestLoaderSharesCollectionsPerBinaryAndHandsRecordsToTheirProcess(t *testing.T) {
	uprobetest.RequireBPF(t)
	buildTarget(t)
	ld := uprobe.NewLoader(nil)
	defer func() { assert.NoError(t, ld.Close()) }()

	const n = 4
	var plain []*loaderTarget
	for range n {
		plain = append(plain, startThroughLoader(t, ld, target.plain))
	}
	bins, colls := ld.Binaries()
	assert.Equal(t, 1, bins, "one binary")
	assert.Equal(t, 2, colls, "one collection per instrumentation, for all %d processes", n)

	for _, lt := range plain {
		lt.request(t)
	}

	// The first process exits; the others keep being traced.
	first := plain[0]
	require.NoError(t, first.cmd.Process.Kill())
	first.cmd.Wait()
	require.NoError(t, first.proc.Close())
	for _, lt := range plain[1:] {
		lt.request(t)
	}
	// A new process of the same binary joins its collections.
	plain = append(plain, startThroughLoader(t, ld, target.plain))
	plain[n].request(t)
	bins, colls = ld.Binaries()
	assert.Equal(t, 1, bins)
	assert.Equal(t, 2, colls)

	// A second binary in the same Loader.
	other := startThroughLoader(t, ld, target.stripped)
	other.request(t)
	plain[1].request(t)
	bins, colls = ld.Binaries()
	assert.Equal(t, 2, bins, "the stripped build is another file")
	assert.Equal(t, 4, colls)

	for _, lt := range append(plain, other) {
		lt.mu.Lock()
		assert.Empty(t, lt.foreign, "pid %d was handed records of other processes", lt.pid())
		for _, p := range lt.paths {
			assert.Contains(t, []string{fmt.Sprintf("/items/%d", lt.pid()), "/backend"}, p, "pid %d", lt.pid())
		}
		lt.mu.Unlock()
	}

	for _, lt := range plain[1:] {
		require.NoError(t, lt.proc.Close())
	}
	bins, colls = ld.Binaries()
	assert.Equal(t, 1, bins, "the plain build's collections are unloaded with its last process")
	assert.Equal(t, 2, colls)
	other.request(t)
	require.NoError(t, other.proc.Close())
	bins, _ = ld.Binaries()
	assert.Zero(t, bins)

	assert.Zero(t, ld.Drops(), "records the ring buffer had no room for")
	assert.Zero(t, ld.Unattributed(), "records of no traced process")
}

// A process is attached once per Loader, and a Loader attaches to a pid,
// never to every process of a binary.
func TestLoaderRefusesSecondAttachAndPIDZero(t *testing.T) {
	uprobetest.RequireBPF(t)
	buildTarget(t)
	ld := uprobe.NewLoader(nil)
	defer ld.Close()
	lt := startThroughLoader(t, ld, target.plain)

	bin, err := gobinary.Open(target.plain)
	require.NoError(t, err)
	defer bin.Close()
	insts := []uprobe.Instrumentation{server.Instrumentation()}
	_, err = ld.Attach(context.Background(), bin, lt.pid(), insts, target.values, func(uprobe.Event) {})
	assert.ErrorIs(t, err, uprobe.ErrAlreadyTraced)
	_, err = ld.Attach(context.Background(), bin, 0, insts, target.values, func(uprobe.Event) {})
	assert.ErrorContains(t, err, "one process at a time")

	lt.request(t) // the refusals left the first attach alone
	bins, _ := ld.Binaries()
	assert.Equal(t, 1, bins)
}
