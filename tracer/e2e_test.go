package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb"
	"github.com/offsetdb/offsetdb/fieldset"
	"github.com/offsetdb/offsetdb/goversion"
	"github.com/offsetdb/offsetdb/offsetgen/toolchain"
	"github.com/offsetdb/offsetdb/offsets"
	"github.com/offsetdb/offsetdb/tracer/otlptest"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// eventTimeout bounds every wait of these tests for something the tracer
// or the service does (a log line, spans, an exit). The waits end on the
// event itself; the bound is generous so that only a test that would never
// pass reaches it, not one on a loaded CI machine.
const eventTimeout = 2 * time.Minute

// itemRequests is how many /items requests each traced run sends; each
// yields a server span, a client child and the server span of /backend.
const itemRequests = 5

// localBuild is a program these tests build once per test run with the
// local toolchain, into its own temporary directory.
type localBuild struct {
	name    string // file name of the binary; processes are matched by it
	pkg     string // package to build, relative to this directory
	ldflags string

	once sync.Once
	path string
	err  error
}

// localBuildDirs are the directories localBuild.get made, removed by
// TestMain once every test is done (each build is shared between tests).
var localBuildDirs struct {
	sync.Mutex
	dirs []string
}

func TestMain(m *testing.M) {
	code := m.Run()
	localBuildDirs.Lock()
	for _, dir := range localBuildDirs.dirs {
		os.RemoveAll(dir)
	}
	localBuildDirs.Unlock()
	os.Exit(code)
}

func (b *localBuild) get(t testing.TB) string {
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "tracer-test-")
		if err != nil {
			b.err = err
			return
		}
		localBuildDirs.Lock()
		localBuildDirs.dirs = append(localBuildDirs.dirs, dir)
		localBuildDirs.Unlock()
		b.path = filepath.Join(dir, b.name)
		cmd := exec.Command("go", "build", "-ldflags="+b.ldflags, "-o", b.path, b.pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("build %s: %v: %s", b.pkg, err, out)
		}
	})
	require.NoError(t, b.err)
	return b.path
}

var (
	tracerBuild          = &localBuild{name: "tracer", pkg: "."}
	localServiceBuild    = &localBuild{name: "offsetdb-attach-svc", pkg: "./testdata/service"}
	strippedServiceBuild = &localBuild{name: "svc-stripped", pkg: "./testdata/service", ldflags: "-s -w"}
)

// tracerBinary builds this command once per test run.
func tracerBinary(t testing.TB) string { return tracerBuild.get(t) }

// newestInDatabase is the newest Go release the embedded database covers.
func newestInDatabase(t *testing.T) string {
	db, err := offsets.Open(offsetdb.Data())
	require.NoError(t, err)
	s, err := db.Shard(offsets.StdModule)
	require.NoError(t, err)
	covs := s.Coverage["amd64"]
	for i := len(covs) - 1; i >= 0; i-- {
		if covs[i].Status == offsets.StatusOK {
			return covs[i].Version
		}
	}
	t.Fatal("embedded database has no amd64 release")
	return ""
}

// buildService builds testdata/service with the Go release v (fetched from
// the module proxy by offsetgen's toolchain package), normal and stripped.
func buildService(t *testing.T, v goversion.Version) (normal, stripped string) {
	return buildProgram(t, "service", v)
}

// buildProgram builds testdata/NAME with the Go release v (fetched from the
// module proxy by offsetgen's toolchain package, cached between runs),
// normal and stripped, into a temporary directory as NAME and
// NAME-stripped.
func buildProgram(t *testing.T, name string, v goversion.Version) (normal, stripped string) {
	return buildProgramCgo(t, name, v, false)
}

// buildProgramCgo is buildProgram, with cgo enabled when cgo is set: a
// binary that the external linker links, against the C library, into
// NAME-cgo and NAME-cgo-stripped.
func buildProgramCgo(t *testing.T, name string, v goversion.Version, cgo bool) (normal, stripped string) {
	cacheDir, err := os.UserCacheDir()
	require.NoError(t, err)
	cacheDir = filepath.Join(cacheDir, "offsetdb-test")
	cache := &toolchain.Cache{Dir: filepath.Join(cacheDir, "toolchains"),
		Proxy: &toolchain.Proxy{URL: toolchain.ProxyURLFromEnv(), ConfigDir: filepath.Join(cacheDir, "sumdb")}}
	goroot, _, err := cache.Toolchain(context.Background(), v)
	if err != nil && strings.Contains(err.Error(), "unreachable") {
		t.Skipf("SKIPPED: module proxy unreachable, cannot fetch %s: %v", v, err)
	}
	require.NoError(t, err)

	src := t.TempDir()
	files, err := filepath.Glob(filepath.Join("testdata", name, "*.go"))
	require.NoError(t, err)
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(src, filepath.Base(f)), data, 0o644))
	}
	// The go directive selects ServeMux behaviour (patterns from 1.22 on).
	gomod := fmt.Sprintf("module example.com/%s\n\ngo %d.%d\n", name, v.Major, v.Minor)
	require.NoError(t, os.WriteFile(filepath.Join(src, "go.mod"), []byte(gomod), 0o644))
	out := t.TempDir()
	build := func(bin string, ldflags string) string {
		bin = filepath.Join(out, bin)
		cmd := exec.Command(filepath.Join(goroot, "bin", "go"), "build", "-ldflags="+ldflags, "-o", bin, ".")
		cmd.Dir = src
		cmd.Env = []string{"PATH=" + filepath.Join(goroot, "bin") + ":/usr/bin:/bin", "HOME=" + out, "GOROOT=" + goroot,
			"GOPATH=" + filepath.Join(out, "gopath"), "GOCACHE=" + filepath.Join(cacheDir, "gocache-"+v.String()),
			"GOFLAGS=", "GOTOOLCHAIN=local", "GO111MODULE=on", "GOPROXY=off", "CGO_ENABLED=0", "GOENV=off"}
		if cgo {
			cmd.Env = append(cmd.Env, "CGO_ENABLED=1")
		}
		msg, err := cmd.CombinedOutput()
		require.NoError(t, err, "build %s with %s: %s", name, v, msg)
		return bin
	}
	if cgo {
		return build(name+"-cgo", "-linkmode=external"), build(name+"-cgo-stripped", "-linkmode=external -s -w")
	}
	return build(name, ""), build(name+"-stripped", "-s -w")
}

// tracedRun is one traced run of the service.
type tracedRun struct {
	cmd    *exec.Cmd
	addr   string
	stderr *syncBuffer
	recv   *otlptest.Receiver
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startTraced starts `tracer FLAGS -- service` exporting over OTLP/HTTP to a
// fresh receiver, and waits for the service to listen.
func startTraced(t *testing.T, service string, flags ...string) *tracedRun {
	recv := otlptest.NewHTTP(t)
	args := append(append([]string{}, flags...), "--", service)
	cmd := exec.Command(tracerBinary(t), args...)
	cmd.Env = append(os.Environ(),
		"OTEL_TRACES_EXPORTER=otlp",
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_EXPORTER_OTLP_ENDPOINT="+recv.Endpoint(),
		"OTEL_BSP_SCHEDULE_DELAY=100",
	)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	r := &tracedRun{cmd: cmd, stderr: &syncBuffer{}, recv: recv}
	cmd.Stderr = r.stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case line, ok := <-lines:
		require.True(t, ok, "service exited early; tracer stderr:\n%s", r.stderr)
		addr, found := strings.CutPrefix(line, "listening on ")
		require.True(t, found, "unexpected first line %q", line)
		r.addr = addr
	case <-time.After(eventTimeout):
		t.Fatalf("service did not start; tracer stderr:\n%s", r.stderr)
	}
	go func() {
		for range lines {
		}
	}()
	return r
}

func (r *tracedRun) get(t *testing.T, path string) int {
	resp, err := http.Get("http://" + r.addr + path)
	require.NoError(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// stop sends SIGTERM: the tracer must flush, detach and exit 0.
func (r *tracedRun) stop(t *testing.T) { stopTracer(t, r.cmd, r.stderr) }

// stopTracer sends the tracer run by cmd SIGTERM: it must flush, detach
// and exit 0 within eventTimeout.
func stopTracer(t *testing.T, cmd *exec.Cmd, stderr *syncBuffer) {
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "tracer exit; stderr:\n%s", stderr)
	case <-time.After(eventTimeout):
		t.Fatalf("tracer did not exit after SIGTERM; stderr:\n%s", stderr)
	}
}

// exercise sends the standard requests and checks the answers.
func (r *tracedRun) exercise(t *testing.T) {
	for i := 1; i <= itemRequests; i++ {
		require.Equal(t, http.StatusOK, r.get(t, fmt.Sprintf("/items/%d", i)))
	}
	require.Equal(t, http.StatusInternalServerError, r.get(t, "/fail"))
}

// checkSpans asserts what one exercise must produce.
func checkSpans(t *testing.T, got []otlptest.Span, v goversion.Version, addr string) {
	byID := map[string]otlptest.Span{}
	var items, backends, clients, fails []otlptest.Span
	for _, s := range got {
		byID[s.SpanID] = s
		assert.True(t, s.End.After(s.Start), "span %s has a duration", s.Name)
		path, _ := s.Attributes["url.path"].(string)
		switch {
		case s.Kind == "client":
			clients = append(clients, s)
		case strings.HasPrefix(path, "/items/"):
			items = append(items, s)
		case path == "/backend":
			backends = append(backends, s)
		case path == "/fail":
			fails = append(fails, s)
		default:
			t.Errorf("unexpected span %+v", s)
		}
	}
	require.Len(t, items, itemRequests)
	require.Len(t, clients, itemRequests)
	require.Len(t, backends, itemRequests)
	require.Len(t, fails, 1)

	patterns := !v.Less(goversion.MustParse("go1.22.0"))
	for _, s := range items {
		if patterns {
			assert.Equal(t, "GET /items/{id}", s.Name)
			assert.Equal(t, "/items/{id}", s.Attributes["http.route"])
		} else {
			assert.Equal(t, "GET", s.Name)
		}
		assert.Equal(t, "server", s.Kind)
		assert.Equal(t, "GET", s.Attributes["http.request.method"])
		assert.Equal(t, int64(200), s.Attributes["http.response.status_code"])
		assert.Equal(t, "127.0.0.1", s.Attributes["server.address"])
		assert.Equal(t, "127.0.0.1", s.Attributes["client.address"])
		assert.Equal(t, "1.1", s.Attributes["network.protocol.version"])
		assert.Equal(t, "unset", s.StatusCode)
		assert.Empty(t, s.ParentSpanID)
	}
	for _, c := range clients {
		parent, ok := byID[c.ParentSpanID]
		require.True(t, ok, "client span %s has its server span as parent", c.SpanID)
		assert.Contains(t, parent.Attributes["url.path"], "/items/")
		assert.Equal(t, parent.TraceID, c.TraceID, "client span is in the server span's trace")
		assert.Equal(t, "GET", c.Name)
		item := strings.TrimPrefix(parent.Attributes["url.path"].(string), "/items/")
		assert.Equal(t, "http://"+addr+"/backend?item="+item, c.Attributes["url.full"])
		assert.Equal(t, "127.0.0.1", c.Attributes["server.address"])
		assert.NotZero(t, c.Attributes["server.port"])
		assert.Equal(t, int64(200), c.Attributes["http.response.status_code"])
		assert.False(t, c.Start.Before(parent.Start) || c.End.After(parent.End), "client span lies within its parent")
	}
	f := fails[0]
	assert.Equal(t, "error", f.StatusCode, "5xx server span is an error")
	assert.Equal(t, int64(500), f.Attributes["http.response.status_code"])
}

// inspect runs `tracer inspect --json` and returns the provenance of every
// field of every instrumentation.
func inspect(t *testing.T, bin string, flags ...string) map[string]string {
	out, err := exec.Command(tracerBinary(t), append(append([]string{"inspect", "--json"}, flags...), bin)...).Output()
	require.NoError(t, err)
	var in inspection
	require.NoError(t, json.Unmarshal(out, &in))
	prov := map[string]string{}
	for _, ii := range in.Instrumentations {
		if ii.NotUsed {
			assert.False(t, strings.HasPrefix(ii.Name, "net/http"), "%s: the service links net/http", ii.Name)
			continue // gRPC: the service does not link grpc-go
		}
		require.True(t, ii.Enabled, "%s: %s", ii.Name, ii.Reason)
		for _, f := range ii.Fields {
			prov[f.Field] = f.Status + " " + f.Provenance
		}
	}
	return prov
}

// TestTraceHTTPAcrossGoReleases is the tracer's end-to-end test: real
// toolchains, real uprobes, real OTLP on the wire, for the oldest register-
// ABI release, a 1.20, a 1.22 (route patterns) and the newest release the
// database knows, each normal, stripped (offsets from the database) and
// "unknown" (database withheld, offsets from DWARF).
func TestTraceHTTPAcrossGoReleases(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: downloads four toolchains")
	}
	versions := []string{"go1.17.13", "go1.20.14", "go1.22.12", newestInDatabase(t)}
	for _, vs := range versions {
		v := goversion.MustParse(vs)
		t.Run(vs, func(t *testing.T) {
			normal, stripped := buildService(t, v)
			variants := []struct {
				name  string
				bin   string
				flags []string
				dwarf bool // offsets must come from DWARF rather than the database
			}{
				{"normal", normal, nil, false},
				{"stripped", stripped, nil, false},
				{"unknown-version", normal, []string{"--no-embedded-offsets"}, true},
			}
			for _, va := range variants {
				t.Run(va.name, func(t *testing.T) {
					for field, p := range inspect(t, va.bin, va.flags...) {
						if strings.HasPrefix(p, "absent") {
							continue
						}
						if id, err := offsets.ParseFieldID(field); err == nil && fieldset.IsPending(offsets.StdModule, id) {
							// Not in the database yet (fieldset/std.pending): DWARF only.
							if va.name == "stripped" {
								assert.Contains(t, p, "unresolved", field)
							} else {
								assert.Contains(t, p, "dwarf", field)
							}
							continue
						}
						if va.dwarf {
							assert.Contains(t, p, "dwarf", field)
						} else {
							assert.Contains(t, p, "database std", field)
						}
					}
					r := startTraced(t, va.bin, va.flags...)
					r.exercise(t)
					want := 3*itemRequests + 1
					r.recv.WaitForSpans(t, want, eventTimeout)
					r.stop(t)
					got := r.recv.Spans()
					require.Len(t, got, want, "exactly one span per request; tracer stderr:\n%s", r.stderr)
					checkSpans(t, got, v, r.addr)
					assert.Contains(t, r.stderr.String(), "dropped=0")
				})
			}
		})
	}
}

// TestStrippedUnknownBinaryRunsUntraced: a stripped binary of a release the
// database does not know leaves nothing to read offsets from. The tracer
// says which fields are missing and what to run, and the program still
// runs, untraced.
func TestStrippedUnknownBinaryRunsUntraced(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: downloads a toolchain")
	}
	v := goversion.MustParse(newestInDatabase(t))
	_, stripped := buildService(t, v)
	r := startTraced(t, stripped, "--no-embedded-offsets")
	assert.Equal(t, http.StatusOK, r.get(t, "/items/1"), "the program still serves")
	r.stopExpecting(t, exitNothingTraced) // flushes: any span of the request would be in the receiver now
	assert.Empty(t, r.recv.Spans())
	stderr := r.stderr.String()
	assert.Contains(t, stderr, "net/http server disabled")
	assert.Contains(t, stderr, "net/http client disabled")
	assert.Contains(t, stderr, "net/http.Request.Method")
	assert.Contains(t, stderr, "offsetgen generate --versions "+strings.TrimPrefix(v.String(), "go"))
	assert.Contains(t, stderr, "no DWARF")
}

// TestOneInstrumentationDisabledAlone: with a database that lacks one field
// the server needs, the server instrumentation is disabled and the client
// one still produces spans.
func TestOneInstrumentationDisabledAlone(t *testing.T) {
	uprobetest.RequireBPF(t)
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: downloads a toolchain")
	}
	v := goversion.MustParse(newestInDatabase(t))
	_, stripped := buildService(t, v)

	// A database with every std field of v but net/http.response.status.
	db, err := offsets.Open(offsetdb.Data())
	require.NoError(t, err)
	s, err := db.Shard(offsets.StdModule)
	require.NoError(t, err)
	full, err := s.Expand()
	require.NoError(t, err)
	drop := offsets.FieldID{Package: "net/http", Struct: "response", Field: "status"}
	var keep []offsets.FieldID
	for _, id := range full.Fields {
		if id != drop {
			keep = append(keep, id)
		}
	}
	partial := offsets.NewTable(offsets.StdModule, keep)
	b := full.Builds["amd64"][v.String()]
	delete(b.Values, drop)
	require.NoError(t, partial.Set("amd64", b))
	dir := t.TempDir()
	require.NoError(t, offsets.WriteShard(dir, partial.Shard()))

	r := startTraced(t, stripped, "--no-embedded-offsets", "--offsets-dir", dir)
	for i := 1; i <= itemRequests; i++ {
		require.Equal(t, http.StatusOK, r.get(t, fmt.Sprintf("/items/%d", i)))
	}
	r.recv.WaitForSpans(t, itemRequests, eventTimeout)
	r.stop(t)
	got := r.recv.Spans()
	require.Len(t, got, itemRequests, "stderr:\n%s", r.stderr)
	for _, s := range got {
		assert.Equal(t, "client", s.Kind)
	}
	assert.Contains(t, r.stderr.String(), "net/http server disabled")
	assert.Contains(t, r.stderr.String(), "net/http.response.status")
}
