package main

import (
	"bufio"
	"os"
	"os/exec"
	"runtime"
	"strings"
)

// Machine describes where the figures were measured.
type Machine struct {
	NProc     int    `json:"nproc"`
	CPU       string `json:"cpu"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	MemTotal  string `json:"mem_total"`
}

func (m Machine) String() string {
	return strings.Join([]string{
		itoa(m.NProc) + " × " + m.CPU, "Linux " + m.Kernel, m.GoVersion, m.MemTotal + " RAM",
	}, ", ")
}

func thisMachine() Machine {
	m := Machine{NProc: runtime.NumCPU(), CPU: "unknown CPU", Kernel: "unknown", GoVersion: runtime.Version(), MemTotal: "unknown"}
	if out, err := exec.Command("nproc").Output(); err == nil {
		m.NProc = atoi(strings.TrimSpace(string(out)), m.NProc)
	}
	m.CPU = procField("/proc/cpuinfo", "model name", m.CPU)
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("go", "env", "GOVERSION").Output(); err == nil {
		m.GoVersion = strings.TrimSpace(string(out))
	}
	m.MemTotal = procField("/proc/meminfo", "MemTotal", m.MemTotal)
	if kb := atoi(strings.TrimSuffix(m.MemTotal, " kB"), 0); kb > 0 {
		m.MemTotal = itoa((kb+(1<<19))>>20) + " GiB"
	}
	return m
}

// procField returns the value of the first "key: value" line of a /proc file.
func procField(path, key, def string) string {
	f, err := os.Open(path)
	if err != nil {
		return def
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return def
}
