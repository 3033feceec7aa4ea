//go:build linux && (amd64 || arm64)

package server

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// The maps of the server object cost kernel memory for each traced binary,
// preallocated whether requests come or not; server_spans holds a whole
// record per entry, so it grows with the record's buffers (1 KiB path, 1
// KiB query, 128 bytes of user agent: 2872 bytes a record). The test
// measures what the kernel charges (memlock in the map's fdinfo; 23.6 MiB
// for server_spans, 14.4 MiB with the 512-byte path and query before) and
// fails when the maps grow past the budget docs/tracer.md states.
func TestServerMapsKernelMemory(t *testing.T) {
	uprobetest.RequireBPF(t)
	cs, err := spec()
	require.NoError(t, err)
	budget := map[string]int64{"server_spans": 24 << 20, "tls_goroutines": 1 << 20, "tls_conns": 1 << 20, "hijacked_responses": 1 << 20}
	for name, limit := range budget {
		m, err := ebpf.NewMap(cs.Maps[name])
		require.NoError(t, err, name)
		memlock, err := fdinfoMemlock(m.FD())
		m.Close()
		require.NoError(t, err, name)
		t.Logf("%s: %d entries of %d bytes: memlock %.1f MiB", name, cs.Maps[name].MaxEntries, cs.Maps[name].ValueSize, float64(memlock)/(1<<20))
		assert.LessOrEqual(t, memlock, limit, "%s: kernel memory over its budget", name)
	}
	assert.Equal(t, 2872, recordSize, "struct http_event changed size: update the docs' figures")
}

// fdinfoMemlock reads the kernel memory charged to the BPF map fd.
func fdinfoMemlock(fd int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "memlock:"); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no memlock in fdinfo of fd %d", fd)
}
