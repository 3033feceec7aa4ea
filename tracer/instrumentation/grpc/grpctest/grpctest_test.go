package grpctest

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/goversion"
)

// TestMatrixServesEveryRPC builds grpcsvc for every Target of Matrix, runs
// it without any tracer, and checks each RPC's status code and the HTTP
// front end: what the instrumentation tests will trace must work untraced.
//
// It needs the module proxy (toolchains and grpc-go modules; skipped when
// unreachable), not root. A first run downloads eight toolchains and builds
// for several minutes; later runs take the binaries from the cache.
func TestMatrixServesEveryRPC(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: downloads Go toolchains and grpc-go modules from the module proxy")
	}
	closed := closedPort(t)
	for _, target := range Matrix {
		target := target
		t.Run(target.String(), func(t *testing.T) {
			t.Parallel()
			bin := target.Build(t)
			grpcAddr, httpAddr := serve(t, bin, "-http", "127.0.0.1:0")

			want := []string{
				"hello:ok OK",
				"hello:notfound NotFound",
				"hello:panic Internal",
				"hello:slow DeadlineExceeded",
				"hello:grpc:" + grpcAddr + " OK",
				"hello:http:http://" + httpAddr + "/ping OK",
				"get OK",
				"list OK",
				"record OK",
				"chat OK",
			}
			var rpcs []string
			for _, w := range want {
				rpcs = append(rpcs, w[:strings.LastIndex(w, " ")])
			}
			assert.Equal(t, want, call(t, bin, grpcAddr, rpcs...))
			assert.Equal(t, []string{"hello:ok Unavailable"}, call(t, bin, closed, "hello:ok"), "a closed port")

			for _, tc := range []struct {
				path string
				code int
				body string
			}{
				{"/ping", http.StatusOK, "pong"},
				{"/hello?name=ok", http.StatusOK, "hello ok"},
				{"/hello?name=notfound", http.StatusBadGateway, "NotFound"},
			} {
				code, body := get(t, "http://"+httpAddr+tc.path)
				assert.Equal(t, tc.code, code, tc.path)
				assert.Equal(t, tc.body, body, tc.path)
			}
		})
	}
}

// TestWrapperGoModChoosesExamplesByRelease: the examples are a package of
// grpc-go before v1.30.0 and a module after; grpc-go without a go.mod gets
// dependencies of its time; v1.30.x and v1.31.x have no usable examples.
func TestWrapperGoModChoosesExamplesByRelease(t *testing.T) {
	v := goversion.MustParse("go1.21.13")
	for _, tc := range []struct {
		grpc    string
		has     []string
		hasNot  []string
		errWith string
	}{
		{grpc: "v1.0.0", has: []string{"go 1.21\n", "google.golang.org/grpc v1.0.0", "golang.org/x/net v0.0.0-20180826012351-8a410e7b638d"},
			hasNot: []string{"grpc/examples"}},
		{grpc: "v1.20.0", has: []string{"google.golang.org/grpc v1.20.0"}, hasNot: []string{"grpc/examples", "golang.org/x/net"}},
		{grpc: "v1.32.0", has: []string{"google.golang.org/grpc/examples v0.0.0-20201112215255-90f1b3ee835b"}},
		{grpc: "v1.54.0", has: []string{"google.golang.org/grpc/examples v0.0.0-20230224211313-3775f633ce20"}},
		{grpc: "v1.72.0", has: []string{"google.golang.org/grpc/examples v0.0.0-20230224211313-3775f633ce20"}},
		{grpc: "v1.85.0", has: []string{"google.golang.org/grpc/examples v0.0.0-20260825154716-030ee8becb20"}},
		{grpc: "v1.31.0", errWith: "no published google.golang.org/grpc/examples snapshot"},
		{grpc: "v1.60.0-dev", errWith: "want a release"},
		{grpc: "1.60.0", errWith: "want a release"},
	} {
		t.Run(tc.grpc, func(t *testing.T) {
			gomod, err := wrapperGoMod(tc.grpc, v)
			if tc.errWith != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.errWith)
				return
			}
			require.NoError(t, err)
			for _, s := range tc.has {
				assert.Contains(t, gomod, s)
			}
			for _, s := range tc.hasNot {
				assert.NotContains(t, gomod, s)
			}
		})
	}
}

// closedPort returns the address of a port nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// serve starts `grpcsvc serve` and returns its gRPC and HTTP addresses.
func serve(t *testing.T, bin string, flags ...string) (grpcAddr, httpAddr string) {
	cmd := exec.Command(bin, append([]string{"serve", "-addr", "127.0.0.1:0"}, flags...)...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("grpcsvc serve stderr:\n%s", stderr.String())
		}
	})
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		io.Copy(io.Discard, stdout)
	}()
	deadline := time.After(10 * time.Second)
	for grpcAddr == "" || (len(flags) > 0 && httpAddr == "") {
		select {
		case line, ok := <-lines:
			require.True(t, ok, "grpcsvc serve exited before listening")
			if a, ok := strings.CutPrefix(line, "grpc "); ok {
				grpcAddr = a
			} else if a, ok := strings.CutPrefix(line, "http "); ok {
				httpAddr = a
			}
		case <-deadline:
			t.Fatal("grpcsvc serve did not say where it listens within 10 s")
		}
	}
	return grpcAddr, httpAddr
}

// call runs `grpcsvc call` and returns its output lines.
func call(t *testing.T, bin, addr string, rpcs ...string) []string {
	cmd := exec.Command(bin, append([]string{"call", "-addr", addr}, rpcs...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "grpcsvc call: %s", stderr.String())
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

func get(t *testing.T, url string) (int, string) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, strings.TrimSpace(string(body))
}
