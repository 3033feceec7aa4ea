package collectortest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cacheHelperEnv, when set to a cache entry's directory, makes
// TestCacheEntryBuildsOnceAcrossProcesses act as one of the processes
// competing for that entry.
const cacheHelperEnv = "COLLECTORTEST_CACHE_ENTRY"

// TestCacheEntryBuildsOnceAcrossProcesses starts three test processes that
// want the same cache entry at once: one builds it, the others wait and
// take its result, and nothing of the build is left behind.
func TestCacheEntryBuildsOnceAcrossProcesses(t *testing.T) {
	if entry := os.Getenv(cacheHelperEnv); entry != "" {
		bin := cacheEntry(t, entry, filepath.Join(entry, "prog"), func(_ context.Context, tmp string) error {
			f, err := os.OpenFile(filepath.Join(filepath.Dir(entry), "builds"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			fmt.Fprintf(f, "%d\n", os.Getpid())
			f.Close()
			time.Sleep(500 * time.Millisecond) // long enough for the others to be waiting
			return os.WriteFile(filepath.Join(tmp, "bin"), []byte("built"), 0o755)
		})
		fmt.Printf("bin=%s\n", bin)
		return
	}

	entry := filepath.Join(t.TempDir(), "entry")
	var wg sync.WaitGroup
	outs := make([]string, 3)
	errs := make([]error, 3)
	for i := range outs {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^TestCacheEntryBuildsOnceAcrossProcesses$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), cacheHelperEnv+"="+entry)
			out, err := cmd.CombinedOutput()
			outs[i], errs[i] = string(out), err
		})
	}
	wg.Wait()
	for i := range outs {
		require.NoError(t, errs[i], outs[i])
		assert.Contains(t, outs[i], "bin="+filepath.Join(entry, "prog")+"\n")
	}
	builds, err := os.ReadFile(filepath.Join(filepath.Dir(entry), "builds"))
	require.NoError(t, err)
	assert.Len(t, strings.Fields(string(builds)), 1, "builds by pid: %q", builds)
	got, err := os.ReadFile(filepath.Join(entry, "prog"))
	require.NoError(t, err)
	assert.Equal(t, "built", string(got))
	left, err := os.ReadDir(entry)
	require.NoError(t, err)
	require.Len(t, left, 1, "only the binary is left in the entry")
}

// skipRecorder is a testing.TB whose Skipf and Fatalf record the message
// and end the goroutine, so that a test can check what a helper skips with.
type skipRecorder struct {
	*testing.T
	skipped, fatal string
}

func (r *skipRecorder) Skipf(format string, args ...any) {
	r.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *skipRecorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestBuildSkipsWhenProxyUnreachable checks that Build and BuildOtelApp,
// with nothing cached, skip with "SKIPPED: module proxy unreachable" when
// GOPROXY points at a port nothing listens on.
func TestBuildSkipsWhenProxyUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := l.Addr().String()
	require.NoError(t, l.Close())
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("GOPROXY", "http://"+closed)

	for name, build := range map[string]func(testing.TB) string{"Build": Build, "BuildOtelApp": BuildOtelApp} {
		t.Run(name, func(t *testing.T) {
			r := &skipRecorder{T: t}
			done := make(chan string)
			go func() {
				var bin string
				defer func() { done <- bin }()
				bin = build(r)
			}()
			bin := <-done
			require.Empty(t, r.fatal)
			require.Empty(t, bin, "built without a proxy")
			assert.True(t, strings.HasPrefix(r.skipped, "SKIPPED: module proxy unreachable"), "skipped with %q", r.skipped)
		})
	}
}
