package discovery_test

import (
	"io"
	"log/slog"
	"os"
	"strconv"
	"testing"

	"github.com/offsetdb/offsetdb/tracer/discovery"
)

// BenchmarkSelectsEveryProcess is the cost of one re-evaluation tick over
// every process of this machine, with a rule on the executable and one on
// listening ports (the most expensive selector: each process's fds and TCP
// tables are read). Reported per process.
func BenchmarkSelectsEveryProcess(b *testing.B) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatal(err)
	}
	var pids []int
	var exes []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, _ := os.Readlink("/proc/" + e.Name() + "/exe")
		pids, exes = append(pids, pid), append(exes, exe)
	}
	for _, tc := range []struct{ name, rules string }{
		{"exe_path", `- exe_path: "*/checkout*"`},
		{"open_ports", `- open_ports: "8080-8089"`},
		{"exe_path_and_open_ports", `- {exe_path: "*/checkout*", open_ports: "8080-8089"}`},
	} {
		c, err := discovery.Parse([]byte("discovery:\n  services:\n    " + tc.rules + "\n"))
		if err != nil {
			b.Fatal(err)
		}
		s := discovery.NewSelector(c, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				for i, pid := range pids {
					s.Selects(pid, exes[i])
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pids)), "ns/process")
			b.ReportMetric(float64(len(pids)), "processes")
		})
	}
}
