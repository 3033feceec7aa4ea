//go:build linux && (amd64 || arm64)

package uprobe_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/tracer/instrumentation"
	"github.com/offsetdb/offsetdb/tracer/resolve"
	"github.com/offsetdb/offsetdb/tracer/target"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// BigBinaryEnv names a large Go binary for BenchmarkAttachDetach to measure
// besides the small test service, such as the one bench/bigbinary builds
// (143 MB): `cd bench/bigbinary && go build -o /tmp/bigbinary .`.
const BigBinaryEnv = "OFFSETDB_BIGBINARY"

// linkModes are the two ways Attach places uprobes.
var linkModes = []struct {
	name string
	opts uprobe.Options
}{
	{"per-link", uprobe.Options{PerLink: true}},
	{"multi-link", uprobe.Options{}},
}

// skipUnsupported skips a multi-link sub-benchmark on a kernel without
// uprobe_multi links.
func skipUnsupported(b *testing.B, opts uprobe.Options) {
	if err := uprobe.HaveMultiLinks(); !opts.PerLink && err != nil {
		b.Skipf("SKIPPED: %v", err)
	}
}

// BenchmarkAttachDetach measures attaching every instrumentation the tracer
// would enable to one running process, and detaching, per link mode. It
// reports attach-ms and detach-ms per target, and the uprobes and links of
// one attach.
//
//	sudo go test ./tracer/uprobe -run '^$' -bench AttachDetach -benchtime 5x
func BenchmarkAttachDetach(b *testing.B) {
	uprobetest.RequireBPF(b)
	bins := []struct{ name, path string }{{"service", buildService(b)}}
	if p := os.Getenv(BigBinaryEnv); p != "" {
		bins = append(bins, struct{ name, path string }{"bigbinary", p})
	}
	for _, bin := range bins {
		pid := startService(b, bin.path)
		plan := newPlan(b, bin.path)
		for _, mode := range linkModes {
			b.Run(bin.name+"/"+mode.name, func(b *testing.B) {
				skipUnsupported(b, mode.opts)
				var attach, detach time.Duration
				var links, uprobes int
				for b.Loop() {
					start := time.Now()
					s, err := uprobe.Attach(context.Background(), plan.Binary, pid, plan.Enabled, plan.Values(), &mode.opts)
					require.NoError(b, err)
					attached := time.Now()
					require.NoError(b, s.Close())
					attach += attached.Sub(start)
					detach += time.Since(attached)
					links, uprobes = s.Links()
				}
				b.ReportMetric(ms(attach)/float64(b.N), "attach-ms")
				b.ReportMetric(ms(detach)/float64(b.N), "detach-ms")
				b.ReportMetric(float64(links), "links")
				b.ReportMetric(float64(uprobes), "uprobes")
			})
		}
	}
}

// BenchmarkDetach50Targets measures detaching from 50 traced processes at
// once, as the tracer does when they exit together (each target is detached
// by its own goroutine). It reports detach-all-ms; attaching is not timed.
//
//	sudo go test ./tracer/uprobe -run '^$' -bench Detach50Targets -benchtime 3x
func BenchmarkDetach50Targets(b *testing.B) {
	uprobetest.RequireBPF(b)
	const n = 50
	path := buildService(b)
	plan := newPlan(b, path)
	pids := make([]int, n)
	for i := range pids {
		pids[i] = startService(b, path)
	}
	for _, mode := range linkModes {
		b.Run(mode.name, func(b *testing.B) {
			skipUnsupported(b, mode.opts)
			var total time.Duration
			for b.Loop() {
				b.StopTimer()
				sessions := make([]*uprobe.Session, n)
				for i, pid := range pids {
					s, err := uprobe.Attach(context.Background(), plan.Binary, pid, plan.Enabled, plan.Values(), &mode.opts)
					require.NoError(b, err)
					sessions[i] = s
				}
				b.StartTimer()
				start := time.Now()
				var wg sync.WaitGroup
				for _, s := range sessions {
					wg.Go(func() { s.Close() })
				}
				wg.Wait()
				total += time.Since(start)
			}
			b.ReportMetric(ms(total)/float64(b.N), "detach-all-ms")
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// buildService builds tracer/testdata/service, the tracer's test service
// (net/http server and client), with the local toolchain.
func buildService(b *testing.B) string {
	b.Helper()
	out := filepath.Join(b.TempDir(), "service")
	cmd := exec.Command("go", "build", "-o", out, "../testdata/service")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	msg, err := cmd.CombinedOutput()
	require.NoError(b, err, "build the test service: %s", msg)
	return out
}

// startService runs the service at path until the benchmark ends and
// returns its pid once it listens.
func startService(b *testing.B, path string) int {
	b.Helper()
	cmd := exec.Command(path)
	stdout, err := cmd.StdoutPipe()
	require.NoError(b, err)
	require.NoError(b, cmd.Start())
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	_, err = bufio.NewReader(stdout).ReadString('\n')
	require.NoError(b, err, "wait for %s to listen", path)
	return cmd.Process.Pid
}

// newPlan plans what the tracer would attach to the binary at path, with
// offsets from its DWARF.
func newPlan(b *testing.B, path string) *target.Plan {
	b.Helper()
	plan, err := target.NewPlan(path, &resolve.Resolver{}, instrumentation.All())
	require.NoError(b, err)
	b.Cleanup(func() { plan.Binary.Close() })
	require.NotEmpty(b, plan.Enabled, "%v", plan.Disabled)
	return plan
}

// BenchmarkLoaderAttachDetachAnotherProcess measures what a Loader does for
// a process of a binary it has loaded already (another process of it stays
// attached throughout): its uprobe links, and at detach the wait for the
// reader to hand on its last records. Compare attach-ms with
// BenchmarkAttachDetach, which loads every collection each time.
//
//	sudo go test ./tracer/uprobe -run '^$' -bench LoaderAttachDetach -benchtime 20x
func BenchmarkLoaderAttachDetachAnotherProcess(b *testing.B) {
	uprobetest.RequireBPF(b)
	path := buildService(b)
	plan := newPlan(b, path)
	first, other := startService(b, path), startService(b, path)
	for _, mode := range linkModes {
		b.Run(mode.name, func(b *testing.B) {
			skipUnsupported(b, mode.opts)
			ld := uprobe.NewLoader(&mode.opts)
			defer ld.Close()
			keep, err := ld.Attach(context.Background(), plan.Binary, first, plan.Enabled, plan.Values(), func(uprobe.Event) {})
			require.NoError(b, err)
			defer keep.Close()
			var attach, detach time.Duration
			for b.Loop() {
				start := time.Now()
				p, err := ld.Attach(context.Background(), plan.Binary, other, plan.Enabled, plan.Values(), func(uprobe.Event) {})
				require.NoError(b, err)
				attached := time.Now()
				require.NoError(b, p.Close())
				attach += attached.Sub(start)
				detach += time.Since(attached)
			}
			bins, colls := ld.Binaries()
			require.Equal(b, 1, bins)
			b.ReportMetric(ms(attach)/float64(b.N), "attach-ms")
			b.ReportMetric(ms(detach)/float64(b.N), "detach-ms")
			b.ReportMetric(float64(colls), "collections")
		})
	}
}
