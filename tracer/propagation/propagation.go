// Package propagation sends the W3C trace context of client spans to the
// next service: it adds a traceparent header to the HTTP/1.x requests that
// traced processes send, at the socket layer, without writing into the
// processes.
//
// Writing the header into a Go request (bpf_probe_write_user) is refused by
// kernels in lockdown=integrity, common with Secure Boot, and allocating
// memory in a target risks the target. Instead, the net/http client
// instrumentation queues each request's context for the thread that will
// write it (bpf/propagation.h), and the programs of writer.c add the header
// to the request's bytes as they leave: a sock_ops program on the cgroup v2
// root puts the TCP sockets traced processes connect into a sockhash, and
// an sk_msg program on it inserts "traceparent: 00-<trace>-<span>-<flags>"
// after the request line of each queued request. Nothing else in the
// request changes; a write the program cannot change safely goes out as
// written and is counted (Stats).
//
// The same sk_msg program appends a traceparent header field to the
// HEADERS frames of traced gRPC calls (HTTP/2), and a traceparent record
// header to the records of kafka-go's Produce requests, each matched to
// its WriteMessages call's producer span by a fingerprint of the message
// (writer.c; docs/tracer.md, Outgoing).
//
// Limits: plaintext only (https, gRPC and Kafka over TLS are encrypted
// before the socket sees them); sockets connected before
// Start are watched only once Writer.Adopt is given their process; the
// request line must end within the first 1,024 bytes of the write
// (net/http writes it first, in one write). Start needs CAP_BPF, CAP_NET_ADMIN and
// CAP_SYS_ADMIN (or root) and a cgroup v2 hierarchy; it does not need
// CAP_SYS_RESOURCE nor bpf_probe_write_user.
package propagation

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// ErrNoCgroup2 is returned by CgroupRoot when no cgroup v2 hierarchy is mounted.
var ErrNoCgroup2 = errors.New("no cgroup v2 hierarchy mounted")

// The maps the net/http client instrumentation shares with the writer
// (bpf/propagation.h), by name, for uprobe.Options.Shared.
const (
	OutgoingRequestsMap = "outgoing_requests"
	OutgoingByConnMap   = "outgoing_by_conn"
	OutgoingSeenMap     = "outgoing_seen"
	OutgoingH2Map       = "outgoing_h2"
	OutgoingH2Streams   = "outgoing_h2_streams"
	OutgoingH2Sids      = "outgoing_h2_sids"
	KafkaOutgoingMap    = "kafka_outgoing"
	KafkaProducersMap   = "kafka_producers"
	TracedProcessesMap  = "traced_processes"
	ContextStatsMap     = "context_stats"
)

// ContextWriterConst is the `volatile const __u8` of the client object that
// turns queueing on; set it to 1 (uprobe.Options.Constants) when a Writer runs.
const ContextWriterConst = "context_writer"

// CgroupRoot returns the mount point of the cgroup v2 hierarchy, from
// /proc/self/mountinfo: /sys/fs/cgroup on most systems, /sys/fs/cgroup/unified
// on hybrid ones. Attached there, the writer sees every process.
func CgroupRoot() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("find cgroup v2 mount: %w", err)
	}
	defer f.Close()
	return cgroup2Mount(f)
}

// cgroup2Mount returns the first cgroup2 mount point in a mountinfo file.
func cgroup2Mount(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		// 36 35 0:30 / /sys/fs/cgroup rw,... shared:9 - cgroup2 cgroup2 rw
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		if fs := strings.Fields(post); len(fs) > 0 && fs[0] == "cgroup2" {
			if f := strings.Fields(pre); len(f) >= 5 {
				return unescapeMount(f[4]), nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("find cgroup v2 mount: %w", err)
	}
	return "", ErrNoCgroup2
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Stats counts what became of client requests' trace context since Start,
// over every traced process (bpf/propagation.h, enum context_stat).
type Stats struct {
	Written      uint64 // traceparent added to the request
	AppSet       uint64 // the application had set its own traceparent: left alone
	TLS          uint64 // https: nothing can be added to encrypted bytes
	Stale        uint64 // not written within 200 ms of queueing, or by another thread
	LineTooLong  uint64 // request line not complete within the first 1,024 bytes of the write
	NotHTTP1     uint64 // the bytes were not an HTTP/1.x request line
	WriteFailed  uint64 // the kernel refused to grow the message; sent unchanged
	H2Written    uint64 // HTTP/2 (gRPC): traceparent field appended to the call's HEADERS frame
	H2NotWritten uint64 // HTTP/2: the HEADERS frame was split (CONTINUATION), padded or too large
	// Missed counts requests that left without the header: the first
	// requests of a connection written on another thread than the one
	// that queued them (the goroutine moved), before the writer knew the
	// connection. HTTP/1.x: a request that got a response but that the
	// writer never saw leave; HTTP/2: a client stream's HEADERS frame
	// without context.
	Missed uint64

	KafkaWritten     uint64 // Kafka: traceparent header added to a produced record
	KafkaAppSet      uint64 // Kafka: the record carried the application's own traceparent: left alone
	KafkaUnmatched   uint64 // Kafka: a record no WriteMessages call listed (produced another way, or the listing was lost)
	KafkaUnsupported uint64 // Kafka: a Produce request left alone (compressed, magic != 2, several topics, partitions or batches, too many records or headers); counted once per request
	KafkaTooLarge    uint64 // Kafka: a Produce request not whole in one write, or over 32 KiB with its headers added; counted once per request
	KafkaRequests    uint64 // Kafka: Produce requests rewritten (their records given KafkaWritten headers)
	KafkaWriteFailed uint64 // Kafka: a Produce request left alone because the kernel refused to grow or expose it, or the per-CPU buffer was taken; counted once per request
}

// NotWritten is the number of HTTP requests and gRPC calls that left
// without our traceparent for a reason other than the application's own:
// the counterpart of Written + H2Written. Kafka is counted apart, by
// record (KafkaWritten, KafkaAppSet, KafkaUnmatched) and by request left
// alone (KafkaUnsupported, KafkaTooLarge, KafkaWriteFailed).
func (s Stats) NotWritten() uint64 {
	return s.TLS + s.Stale + s.LineTooLong + s.NotHTTP1 + s.WriteFailed + s.H2NotWritten + s.Missed
}
