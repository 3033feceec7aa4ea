//go:build linux && (amd64 || arm64)

package propagation

import (
	"io"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	grpcclient "github.com/offsetdb/offsetdb/tracer/instrumentation/grpc/client"
	"github.com/offsetdb/offsetdb/tracer/instrumentation/kafkago"
	httpclient "github.com/offsetdb/offsetdb/tracer/instrumentation/nethttp/client"
	"github.com/offsetdb/offsetdb/tracer/uprobe"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

func startWriter(t *testing.T) *Writer {
	t.Helper()
	uprobetest.RequireBPF(t)
	root, err := CgroupRoot()
	require.NoError(t, err)
	w, err := Start(root)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, w.Close()) })
	return w
}

// tcpPair returns both ends of a TCP connection on the loopback, closed at
// the end of the test.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	server = <-accepted
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// A connection opened before the writer started is adopted into its
// sockhash, and bytes written on it arrive unchanged: the writer adds
// nothing to a write no traced request was queued for.
func TestAdoptedSocketsPassBytesUnchanged(t *testing.T) {
	client, server := tcpPair(t)

	w := startWriter(t)
	n, err := w.Adopt(os.Getpid())
	require.NoError(t, err)
	assert.Equal(t, 2, n, "both ends of the connection adopted")
	n, err = w.Adopt(os.Getpid())
	require.NoError(t, err)
	assert.Equal(t, 0, n, "a socket is adopted once")

	msg := []byte("GET /items/1 HTTP/1.1\r\nHost: example.com\r\n\r\n")
	_, err = client.Write(msg)
	require.NoError(t, err)
	got := make([]byte, len(msg))
	_, err = io.ReadFull(server, got)
	require.NoError(t, err)
	assert.Equal(t, string(msg), string(got))

	st, err := w.Stats()
	require.NoError(t, err)
	assert.Zero(t, st.Written)
}

func TestSocketInodesOfAMissingProcess(t *testing.T) {
	_, err := socketInodes(1 << 30)
	assert.ErrorContains(t, err, "list sockets of pid")
}

// Every map the client instrumentations declare from bpf/propagation.h is
// one the writer hands them (Maps); a map left out would be a private copy
// in each client object that the writer never reads.
func TestWriterSharesEveryPropagationMap(t *testing.T) {
	writer, err := loadWriter()
	require.NoError(t, err)
	shared := startWriter(t).Maps()
	for _, inst := range []uprobe.Instrumentation{httpclient.Instrumentation(), grpcclient.Instrumentation(), kafkago.Instrumentation()} {
		spec, err := inst.Spec()
		require.NoError(t, err)
		for name := range spec.Maps {
			if _, inWriter := writer.Maps[name]; inWriter && !strings.HasPrefix(name, ".") {
				assert.Contains(t, shared, name, "map %s of %s is also the writer's but not shared", name, inst.Name)
			}
		}
	}
}
