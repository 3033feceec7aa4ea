package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/offsetgen/generate"
	"github.com/offsetdb/offsetdb/offsetgen/modgen"
)

func TestModuleReportSaysWhyNothingWasBuiltAndWhatEachVersionCost(t *testing.T) {
	rep := &modgen.Report{Versions: 3, Discovered: 1, Built: 2, Unavailable: 1, GoDependent: 1, BisectBuilds: 3,
		Costs: []modgen.Cost{
			{Version: "v1.0.0", Arch: "amd64", Toolchain: "go1.26.8", Build: 4 * time.Second, Read: time.Second},
			{Version: "v1.0.0", Arch: "amd64", Toolchain: "go1.21.13", Build: 2 * time.Second, Read: time.Second},
			{Version: "v1.1.0", Arch: "amd64", Toolchain: "go1.26.8", Build: 6 * time.Second},
		},
		Warnings: []string{"example.com/lib@v0.4.47: recorded unavailable: go.mod of example.com/lib@v0.4.47: proxy answered 404: not found"},
		Wall:     time.Minute}
	var out bytes.Buffer
	printModuleReport(&out, "example.com/lib", true, rep)
	assert.Equal(t, "example.com/lib: 3 versions selected (1 not on the proxy's list, 0 retracted skipped), 2 probes built, 0 already up to date, 1 versions unavailable, 0 probes failed, "+
		"1 field layouts depend on the Go release (3 bisection builds), in 1m0s\n"+
		"mean per version (3 probes over 2 versions): build/amd64 6s, read/amd64 1s\n"+
		"warning: example.com/lib@v0.4.47: recorded unavailable: go.mod of example.com/lib@v0.4.47: proxy answered 404: not found\n", out.String())

	out.Reset()
	printModuleReport(&out, "google.golang.org/grpc", false, &modgen.Report{Versions: 3, Built: 3, Pinned: 2, Wall: time.Second})
	assert.Equal(t, "google.golang.org/grpc: 3 versions selected (0 not on the proxy's list, 0 retracted skipped), 3 probes built, 0 already up to date, 0 versions unavailable, 0 probes failed, "+
		"2 versions without requirements built against dependencies of their release date, in 1s\n", out.String(), "versions built against pinned dependencies are counted")

	path := filepath.Join(t.TempDir(), "report.md")
	require.NoError(t, os.WriteFile(path, []byte("an earlier run's report\n"), 0o644))
	w := &reportWriter{path: path}
	require.NoError(t, w.write(costTable(&generate.Report{})), "the first table replaces the file")
	require.NoError(t, w.write(moduleCostTable("example.com/lib", w.started, rep)), "the next are appended")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, costTable(&generate.Report{})+"\n## example.com/lib\n\n| version | arch | toolchain | build | read |\n|---|---|---|---|---|\n"+
		"| v1.0.0 | amd64 | go1.26.8 | 4.00s | 1.00s |\n| v1.0.0 | amd64 | go1.21.13 | 2.00s | 1.00s |\n| v1.1.0 | amd64 | go1.26.8 | 6.00s | 0.00s |\n", string(data))
}
