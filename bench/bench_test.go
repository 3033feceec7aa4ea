package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/layout"
)

func TestSpreadGivesMedianAndRangeIgnoringNaN(t *testing.T) {
	for _, c := range []struct {
		name string
		in   []float64
		want Spread
	}{
		{"odd", []float64{3, 1, 2}, Spread{Median: 2, Min: 1, Max: 3, N: 3, Values: []float64{3, 1, 2}}},
		{"even", []float64{4, 1, 2, 3}, Spread{Median: 2.5, Min: 1, Max: 4, N: 4, Values: []float64{4, 1, 2, 3}}},
		{"nan dropped", ratios([]float64{1, 2}, []float64{0, 4}), Spread{Median: 0.5, Min: 0.5, Max: 0.5, N: 1, Values: []float64{0.5}}},
		{"empty", nil, Spread{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, newSpread(c.in))
		})
	}
	assert.Equal(t, "2.0 [1.0..3.0] ms", newSpread([]float64{1, 2, 3}).format("%.1f", " ms"))
	assert.Equal(t, "n/a", Spread{}.format("%.1f", ""))
	assert.Equal(t, []float64{-1, 2}, deltas([]float64{1, 5}, []float64{2, 3}))
}

func TestPercentileIsNearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	assert.Equal(t, 50*time.Millisecond, percentile(ds, 50))
	assert.Equal(t, 99*time.Millisecond, percentile(ds, 99))
	assert.Equal(t, 100*time.Millisecond, percentile(ds, 100))
	assert.Equal(t, time.Duration(0), percentile(nil, 50))
}

func TestParseStatCPUCountsFieldsFromTheLastParenthesis(t *testing.T) {
	stat := "4242 (we ird) name)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 12 0 100 1000000 500 18446744073709551615\n"
	user, sys, err := parseStatCPU(stat)
	require.NoError(t, err)
	assert.Equal(t, 2500*time.Millisecond, user) // 250 ticks at 100 Hz
	assert.Equal(t, 500*time.Millisecond, sys)
	_, _, err = parseStatCPU("garbage")
	assert.Error(t, err)
}

func TestParseContextSwitchesAddsBothKinds(t *testing.T) {
	assert.Equal(t, uint64(130), parseContextSwitches("Name:\tx\nvoluntary_ctxt_switches:\t100\nnonvoluntary_ctxt_switches:\t30\n"))
}

func TestParseMemStatusReadsRSSAndPeak(t *testing.T) {
	rss, hwm, err := parseMemStatus("Name:\ttracer\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\nThreads:\t9\n")
	require.NoError(t, err)
	assert.Equal(t, uint64(40<<20), rss)
	assert.Equal(t, uint64(50<<20), hwm)
	_, _, err = parseMemStatus("Name:\tkthread\n")
	assert.Error(t, err)
}

func TestParseDetachedSumsEveryDetachLine(t *testing.T) {
	log := `time=2026-11-21T07:00:00Z level=INFO msg=attached pid=10 binary=/x go=go1.26.8 instrumentations="net/http server"
time=2026-11-21T07:00:05Z level=WARN msg="events dropped: the ring buffer was full" pid=10 dropped=7
time=2026-11-21T07:00:05Z level=INFO msg=detached pid=10 spans=1200 dropped=7 errors=0
time=2026-11-21T07:00:05Z level=INFO msg=detached pid=11 spans=30 dropped=0 errors=2`
	assert.Equal(t, tracerStats{Detached: 2, Spans: 1230, Dropped: 7, Errors: 2}, parseDetached(log))
}

func TestParseDetachedReadsKafkaWritten(t *testing.T) {
	log := `time=2026-11-30T07:00:00Z level=INFO msg=attached pid=10 binary=/x go=go1.26.8 instrumentations=kafka-go
time=2026-11-30T07:00:05Z level=INFO msg="outgoing trace context" written=0 written_http2=0 application_set=0 not_written=3 kafka_written=4100 kafka_application_set=0 kafka_unmatched=2
time=2026-11-30T07:00:05Z level=INFO msg=detached pid=10 spans=4102 dropped=0 errors=0
time=2026-11-30T07:00:05Z level=INFO msg=totals spans=4102 dropped=0 errors=0 kafka_written=99`
	assert.Equal(t, tracerStats{Detached: 1, Spans: 4102, KafkaWritten: 4100}, parseDetached(log))
}

func TestParseWrkReadsCountsAndErrors(t *testing.T) {
	out := `Running 10s test @ http://127.0.0.1:40000/backend
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms    1.00ms  30.00ms   90.00%
    Req/Sec    15.00k     1.00k   17.00k    70.00%
  300123 requests in 10.00s, 40.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  30012.30
Transfer/sec:      4.00MB
`
	r, err := parseWrk(out)
	require.NoError(t, err)
	assert.Equal(t, wrkResult{Requests: 300123, PerSecond: 30012.30, Non2xx: 4, SockErrors: 3}, r)
	_, err = parseWrk("unable to connect")
	assert.Error(t, err)
}

func TestParseCostTableReadsPhasesByHeader(t *testing.T) {
	md := "| version | download | verify | unpack | build amd64 | extract amd64 | build arm64 | extract arm64 |\n" +
		"|---|---|---|---|---|---|---|---|\n" +
		"| go1.22.5 | 10.50s | 0.20s | 3.00s | 20.00s | 0.30s | 25.00s | 0.30s |\n"
	costs, err := parseCostTable(md)
	require.NoError(t, err)
	require.Len(t, costs, 1)
	assert.Equal(t, "go1.22.5", costs[0].Version)
	assert.Equal(t, 10.5, costs[0].Phases["download"])
	assert.Equal(t, 25.0, costs[0].Phases["build arm64"])
	assert.InDelta(t, 59.3, costs[0].Total, 1e-9)
	_, err = parseCostTable("no table")
	assert.Error(t, err)
}

func TestParseBenchOutputStripsProcsSuffix(t *testing.T) {
	out := "goos: linux\nBenchmarkLookup/cached-2         \t  100000\t      5476 ns/op\t    1143 B/op\t      26 allocs/op\n" +
		"BenchmarkDecodeRecord-2   \t     100\t      5459 ns/op\t 123.11 MB/s\t      64 B/op\t       5 allocs/op\nPASS\n"
	lines := parseBenchOutput(out)
	require.Len(t, lines, 2)
	assert.Equal(t, "BenchmarkLookup/cached", lines[0].Name)
	assert.Equal(t, 5476.0, lines[0].Values["ns/op"])
	assert.Equal(t, 5.0, lines[1].Values["allocs/op"])
	assert.Equal(t, 123.11, lines[1].Values["MB/s"])
}

func TestSpliceBetweenMarkersKeepsTheRest(t *testing.T) {
	doc := "# x\n\n## How it compares\n\ntable\n<!-- bench:begin (generated by make bench) -->\nold\n<!-- bench:end -->\n\n## Next\n"
	got, err := spliceBetweenMarkers(doc, "new\nlines\n")
	require.NoError(t, err)
	assert.Equal(t, "# x\n\n## How it compares\n\ntable\n<!-- bench:begin (generated by make bench) -->\nnew\nlines\n<!-- bench:end -->\n\n## Next\n", got)
	again, err := spliceBetweenMarkers(got, "new\nlines\n")
	require.NoError(t, err)
	assert.Equal(t, got, again, "splicing is idempotent")
	_, err = spliceBetweenMarkers("no markers", "x")
	assert.Error(t, err)
}

func TestAlternateReversesOrderEveryOtherPair(t *testing.T) {
	var order []string
	arms := []arm{{Name: "a"}, {Name: "b", Env: []string{}}}
	runs, err := alternate(3, arms, func(a arm) (armRun, error) {
		order = append(order, a.Name)
		return armRun{Requests: float64(len(order))}, nil
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b", "b", "a", "a", "b"}, order)
	assert.Equal(t, []float64{1, 4, 5}, column(runs["a"], func(r armRun) float64 { return r.Requests }))
}

func TestOpenLoopKeepsTheRate(t *testing.T) {
	if testing.Short() {
		t.Skip("takes a second")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	r := openLoop(context.Background(), srv.URL, 200, time.Second)
	assert.Equal(t, 200, r.Sent)
	assert.Zero(t, r.Errors)
	assert.Len(t, r.Latencies, 200)
	assert.Less(t, percentile(r.Latencies, 50), 50*time.Millisecond)
}

func TestFullWalkAgreesWithTheTargetedReader(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	dir := t.TempDir()
	src := "package main\n\nimport \"net/http\"\n\nfunc main() {\n\thttp.Get(\"http://127.0.0.1:1/\")\n\thttp.ListenAndServe(\"127.0.0.1:0\", nil)\n}\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/target\n\ngo 1.22\n"), 0o644))
	cmd := exec.Command("go", "build", "-o", "target", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	path := filepath.Join(dir, "target")

	ids := fieldIDs()
	found, missing, err := fullWalk(path, ids)
	require.NoError(t, err)
	f, err := layout.Open(path)
	require.NoError(t, err)
	defer f.Close()
	want, err := f.Fields(ids)
	var me *layout.MissingError
	if !errors.As(err, &me) {
		require.NoError(t, err)
	}
	assert.Len(t, found, len(want))
	assert.Len(t, missing, len(ids)-len(want))
	for id, w := range want {
		// debug/dwarf keeps no names of pointer types, so types are not compared.
		assert.Equal(t, w.Offset, found[id].Offset, "%s", id)
		assert.Equal(t, w.Size, found[id].Size, "%s", id)
	}
}

func TestParseGRPCLoadLineReadsCallsErrorsAndSeconds(t *testing.T) {
	r, err := parseGRPCLoadLine("calls=90922 errors=3 seconds=3.002424\n")
	require.NoError(t, err)
	assert.Equal(t, grpcLoadRun{Errors: 3, Seconds: 3.002424, callsSaid: 90922}, r)
	for _, bad := range []string{"", "calls=1 errors=0", "calls=1 errors=0 seconds=0", "grpcload: connection refused"} {
		_, err := parseGRPCLoadLine(bad)
		assert.Error(t, err, "%q", bad)
	}
}

func TestDecodeLatenciesReadsLittleEndianNanoseconds(t *testing.T) {
	got, err := decodeLatencies([]byte{0x40, 0x42, 0x0f, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0})
	require.NoError(t, err)
	assert.Equal(t, []time.Duration{time.Millisecond, 1}, got)
	_, err = decodeLatencies(make([]byte, 9))
	assert.Error(t, err)
}

func TestGRPCArmsExpectOneSpanPerTracedProcess(t *testing.T) {
	arms := grpcArms("/bin/grpcload")
	require.Len(t, arms, 4)
	assert.False(t, arms[0].traced())
	assert.Nil(t, arms[1].Target, "the server arm traces --pid SERVICE")
	assert.Equal(t, 1, grpcSpansPerCall(arms[1]))
	assert.Equal(t, []string{"--goroutine-context=false"}, arms[2].Flags)
	assert.Equal(t, 1, grpcSpansPerCall(arms[2]))
	assert.Equal(t, []string{"--exe", "/bin/grpcload"}, arms[3].Target)
	assert.Equal(t, 2, grpcSpansPerCall(arms[3]))
}

func TestKeepEarlierCarriesOverSectionsNotRun(t *testing.T) {
	dir := t.TempDir()
	old := Results{Commit: "abc", Machine: Machine{NProc: 2, CPU: "AMD EPYC"}, Started: "2026-11-21T08:24:20Z", Sections: map[string]float64{"micro": 24, "grpc": 90},
		Micro: &Micro{Rounds: 5}, GRPC: &GRPC{Workers: 8}}
	b, err := json.Marshal(old)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "results.json"), b, 0o644))
	h := &harness{outDir: dir}
	res := &Results{Commit: "def", Sections: map[string]float64{"grpc": 100}, GRPC: &GRPC{Workers: 16}}
	require.NoError(t, h.keepEarlier(res, []string{"grpc"}))
	assert.Equal(t, 16, res.GRPC.Workers, "the section run now wins")
	require.NotNil(t, res.Micro)
	assert.Equal(t, 5, res.Micro.Rounds)
	assert.Equal(t, "def", res.Commit)
	assert.Equal(t, map[string]string{"micro": "2026-11-21, commit abc, 2 × AMD EPYC"}, res.Kept)
	assert.Equal(t, map[string]float64{"grpc": 100, "micro": 24}, res.Sections)
}

func TestParseFdinfoCountsMapsAndProgramsByID(t *testing.T) {
	m := parseFdinfo(strings.NewReader("pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t1063\nmap_type:\t9\nkey_size:\t16\nvalue_size:\t1768\nmax_entries:\t8192\nmap_flags:\t0x0\nmap_extra:\t0x0\nmemlock:\t15139712\nmap_id:\t146096\nfrozen:\t0\n"))
	assert.Equal(t, fdinfo{id: "map_id 146096", memlock: 15139712}, m)
	p := parseFdinfo(strings.NewReader("pos:\t0\nprog_type:\t2\nprog_jited:\t1\nprog_tag:\tabc\nmemlock:\t4096\nprog_id:\t77\n"))
	assert.Equal(t, fdinfo{id: "prog_id 77", memlock: 4096}, p)
	assert.Equal(t, fdinfo{}, parseFdinfo(strings.NewReader("pos:\t0\nflags:\t02\n")), "not a BPF object")
}

func TestDBMarkdownShowsTheProducerWithTheWriterOff(t *testing.T) {
	off := noPropagationArm()
	assert.Equal(t, []string{"--context-propagation=false"}, off.Flags)
	assert.True(t, off.traced())
	one := func(v float64) Spread { return newSpread([]float64{v}) }
	d := &DB{Pairs: 1, Duration: 5, Workers: 8, Binary: "x", KafkaBinary: "segmentio/kafka-go v0.4.51", Clients: []string{"kafka-produce"},
		Arms: []arm{untracedArm, noneArm()}, ExtraArms: dbExtraArms(),
		CallsPerSecond: map[string]Spread{"kafka-produce/untraced": one(7000), "kafka-produce/" + noneArm().Name: one(4000), "kafka-produce/" + off.Name: one(5000)},
		Ratio:          map[string]Spread{"kafka-produce": one(0.571), "kafka-produce/" + off.Name: one(0.714)},
		Dropped:        map[string]uint64{"kafka-produce/" + off.Name: 3},
		Propagated:     map[string]Spread{"kafka-produce/" + noneArm().Name: one(1), "kafka-produce/" + off.Name: one(0)},
		WriterRatio:    map[string]Spread{"kafka-produce": one(0.8)},
	}
	md := dbMarkdown(d)
	assert.Contains(t, md, "| kafka-go Writer.WriteMessages, 1 message → kfake | 7000 | 4000 | 0.571 |")
	assert.Contains(t, md, "| kafka-go Writer.WriteMessages, 1 message → kfake, `--context-propagation=false` | 7000 | 5000 | 0.714 |")
	assert.Contains(t, md, "| 3 |\n")
	assert.Contains(t, md, "kafka-produce traced (exporter none): 1.0000; kafka-produce traced, --context-propagation=false (exporter none): 0.0000.")
	assert.Contains(t, md, "kafka-produce calls/s traced over traced with `--context-propagation=false` in the same pair: ×0.800.")
	assert.Contains(t, md, "segmentio/kafka-go v0.4.51")
}
