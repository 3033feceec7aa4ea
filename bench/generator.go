package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// GeneratorCost is one version's cost split, as `offsetgen generate
// --report` writes it, in seconds.
type GeneratorCost struct {
	Version string             `json:"version"`
	Phases  map[string]float64 `json:"phases_seconds"` // download, verify, unpack, build amd64, ...
	Total   float64            `json:"total_seconds"`
}

// Generator is section 5: what one Go release costs the generator cold,
// and what a run that has nothing to do costs.
type Generator struct {
	Command string          `json:"command"`
	Wall    Spread          `json:"cold_wall_seconds"`
	Costs   []GeneratorCost `json:"costs"`
	// Phases are the phase times over the cold runs (seconds).
	Phases map[string]Spread `json:"phases_seconds"`
	// NoOp is the wall time of `offsetgen generate --out <copy of data>`
	// when the copy is up to date (runs after the first), seconds;
	// NoOpFirst the first such run.
	NoOpCommand string  `json:"noop_command"`
	NoOp        Spread  `json:"noop_wall_seconds"`
	NoOpFirst   float64 `json:"noop_first_wall_seconds"`
	// NoOpRatio is NoOp over the cold one-version run.
	NoOpRatio float64 `json:"noop_over_cold_ratio"`
}

// phaseOrder is the order phases are shown in.
var phaseOrder = []string{"download", "verify", "unpack", "build amd64", "extract amd64", "build arm64", "extract arm64"}

func (h *harness) generator(ctx context.Context) (*Generator, error) {
	g := &Generator{Phases: map[string]Spread{}}
	g.Command = fmt.Sprintf("offsetgen generate --versions %s --arch amd64,arm64 --out TMP --cache TMP --report FILE (cold cache)", h.genVersion)
	var walls []float64
	phases := map[string][]float64{}
	for i := range h.genRepeats {
		h.logf("generator: cold run %d of %d for go%s", i+1, h.genRepeats, h.genVersion)
		dir, err := os.MkdirTemp(h.work, "gen-cold-")
		if err != nil {
			return nil, err
		}
		report := filepath.Join(dir, "report.md")
		wall, _, _, err := timedRun(ctx, h.repo, nil, h.offsetgenBin, "generate", "--versions", h.genVersion,
			"--arch", "amd64,arm64", "--out", filepath.Join(dir, "out"), "--cache", filepath.Join(dir, "cache"), "--report", report)
		if err != nil {
			return nil, err
		}
		b, err := os.ReadFile(report)
		if err != nil {
			return nil, err
		}
		costs, err := parseCostTable(string(b))
		if err != nil {
			return nil, err
		}
		if len(costs) != 1 {
			return nil, fmt.Errorf("report of a one-version run has %d rows", len(costs))
		}
		walls = append(walls, wall.Seconds())
		g.Costs = append(g.Costs, costs...)
		for k, v := range costs[0].Phases {
			phases[k] = append(phases[k], v)
		}
		os.RemoveAll(dir) // toolchains are large
	}
	g.Wall = newSpread(walls)
	for k, vs := range phases {
		g.Phases[k] = newSpread(vs)
	}

	dataCopy := filepath.Join(h.work, "data-copy")
	if err := copyDir(filepath.Join(h.repo, "data"), dataCopy); err != nil {
		return nil, err
	}
	cache := filepath.Join(h.work, "gen-noop-cache")
	g.NoOpCommand = "offsetgen generate --out <copy of data> --cache TMP (run 2 and later)"
	var noop []float64
	for i := range h.genNoOpRuns + 1 {
		h.logf("generator: no-op run %d of %d", i+1, h.genNoOpRuns+1)
		wall, _, _, err := timedRun(ctx, h.repo, nil, h.offsetgenBin, "generate", "--out", dataCopy, "--cache", cache)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			g.NoOpFirst = wall.Seconds()
			continue
		}
		noop = append(noop, wall.Seconds())
	}
	g.NoOp = newSpread(noop)
	if g.Wall.Median > 0 {
		g.NoOpRatio = g.NoOp.Median / g.Wall.Median
	}
	return g, nil
}

// parseCostTable reads the markdown table of `offsetgen generate --report`:
// a header row naming the columns (version, then phases), a separator, and
// one row per version with durations like "1.23s".
func parseCostTable(md string) ([]GeneratorCost, error) {
	var header []string
	var costs []GeneratorCost
	for _, line := range strings.Split(md, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		switch {
		case header == nil:
			header = cells
			if len(header) < 2 || header[0] != "version" {
				return nil, fmt.Errorf("cost report: unexpected header %q", line)
			}
		case strings.HasPrefix(cells[0], "-"):
		default:
			if len(cells) != len(header) {
				return nil, fmt.Errorf("cost report: row %q has %d cells, header %d", line, len(cells), len(header))
			}
			c := GeneratorCost{Version: cells[0], Phases: map[string]float64{}}
			for i, cell := range cells[1:] {
				d, err := parseSeconds(cell)
				if err != nil {
					return nil, fmt.Errorf("cost report: %s of %s: %w", header[i+1], c.Version, err)
				}
				c.Phases[header[i+1]] = d
				c.Total += d
			}
			costs = append(costs, c)
		}
	}
	if header == nil {
		return nil, fmt.Errorf("cost report: no table in %q", md)
	}
	return costs, nil
}

// parseSeconds reads "1.23s" (or any time.Duration, or a bare number of seconds).
func parseSeconds(s string) (float64, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d.Seconds(), nil
	}
	return strconv.ParseFloat(s, 64)
}

// copyDir copies the regular files of src (not recursively) into dst.
func copyDir(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
