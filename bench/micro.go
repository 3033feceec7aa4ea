package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// microPackage is a package whose hot-path benchmarks the harness runs.
type microPackage struct {
	Dir   string // relative to the repository
	Bench string // -test.bench regexp
}

var microPackages = []microPackage{
	{"tracer/instrumentation/nethttp/server", "^BenchmarkDecodeRecord$"},
	{"tracer/spans", "^BenchmarkRecord$"},
	{"offsets", "^BenchmarkLookup$"},
	{"tracer/resolve", "^BenchmarkResolve$"},
	{"layout", "^Benchmark(Fields|FullWalk)$"},
}

// microRatios are benchmark pairs reported as a ratio per round: the
// measured path over its baseline.
var microRatios = [][2]string{
	{"layout.BenchmarkFields", "layout.BenchmarkFullWalk"},
	{"resolve.BenchmarkResolve/database", "resolve.BenchmarkResolve/dwarf"},
}

// MicroResult is one benchmark over the rounds.
type MicroResult struct {
	Name        string `json:"name"` // package.BenchmarkName/sub
	NsPerOp     Spread `json:"ns_per_op"`
	BytesPerOp  Spread `json:"bytes_per_op"`
	AllocsPerOp Spread `json:"allocs_per_op"`
}

// MicroRatio is a benchmark's ns/op over its baseline's, per round.
type MicroRatio struct {
	Name     string `json:"name"`
	Baseline string `json:"baseline"`
	Ratio    Spread `json:"ratio"`
}

// Micro is the Go benchmarks of the hot paths.
type Micro struct {
	Rounds    int           `json:"rounds"`
	BenchTime string        `json:"benchtime"`
	Results   []MicroResult `json:"results"`
	Ratios    []MicroRatio  `json:"ratios"`
	Raw       string        `json:"raw_file"` // benchstat-readable output
}

// micro compiles each package's test binary once, then runs the rounds
// package after package (-test.count=1 each), so drift over the run spreads
// over every benchmark instead of landing on the last ones.
func (h *harness) micro(ctx context.Context) (*Micro, error) {
	dir := filepath.Join(h.work, "micro")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	bins := map[string]string{}
	for _, p := range microPackages {
		bin := filepath.Join(dir, strings.ReplaceAll(p.Dir, "/", "_")+".test")
		cmd := exec.CommandContext(ctx, "go", "test", "-c", "-o", bin, "./"+p.Dir)
		cmd.Dir = h.repo
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go test -c ./%s: %w: %s", p.Dir, err, out)
		}
		bins[p.Dir] = bin
	}
	samples := map[string]map[string][]float64{} // name → unit → per round
	var names []string
	var raw strings.Builder
	for round := range h.microRounds {
		h.logf("micro: round %d of %d", round+1, h.microRounds)
		for _, p := range microPackages {
			cmd := exec.CommandContext(ctx, bins[p.Dir], "-test.run=^$", "-test.bench="+p.Bench,
				"-test.benchmem", "-test.count=1", "-test.benchtime="+h.microBenchTime)
			cmd.Dir = filepath.Join(h.repo, p.Dir)
			out, err := cmd.CombinedOutput()
			if err != nil {
				return nil, fmt.Errorf("benchmarks of %s: %w: %s", p.Dir, err, out)
			}
			raw.Write(out)
			lines := parseBenchOutput(string(out))
			if len(lines) == 0 {
				return nil, fmt.Errorf("benchmarks of %s: no result lines in %s", p.Dir, out)
			}
			for _, l := range lines {
				name := filepath.Base(p.Dir) + "." + l.Name
				if samples[name] == nil {
					samples[name] = map[string][]float64{}
					names = append(names, name)
				}
				for unit, v := range l.Values {
					samples[name][unit] = append(samples[name][unit], v)
				}
			}
		}
	}
	m := &Micro{Rounds: h.microRounds, BenchTime: h.microBenchTime, Raw: filepath.Join(h.outDir, "micro.txt")}
	if err := os.WriteFile(m.Raw, []byte(raw.String()), 0o644); err != nil {
		return nil, err
	}
	for _, n := range names {
		s := samples[n]
		m.Results = append(m.Results, MicroResult{Name: n,
			NsPerOp: newSpread(s["ns/op"]), BytesPerOp: newSpread(s["B/op"]), AllocsPerOp: newSpread(s["allocs/op"])})
	}
	for _, r := range microRatios {
		a, b := samples[r[0]], samples[r[1]]
		if a == nil || b == nil {
			continue
		}
		m.Ratios = append(m.Ratios, MicroRatio{Name: r[0], Baseline: r[1], Ratio: newSpread(ratios(a["ns/op"], b["ns/op"]))})
	}
	return m, nil
}

// benchLine is one result line of `go test -bench`.
type benchLine struct {
	Name   string             // without the -GOMAXPROCS suffix
	Values map[string]float64 // unit → value
}

var benchLineRE = regexp.MustCompile(`^(Benchmark\S+?)(-\d+)?\s+(\d+)\s+(.*)$`)

func parseBenchOutput(out string) []benchLine {
	var lines []benchLine
	for _, line := range strings.Split(out, "\n") {
		m := benchLineRE.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		f := strings.Fields(m[4])
		bl := benchLine{Name: m[1], Values: map[string]float64{}}
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			bl.Values[f[i+1]] = v
		}
		if _, ok := bl.Values["ns/op"]; ok {
			lines = append(lines, bl)
		}
	}
	return lines
}
