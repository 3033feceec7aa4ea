//go:build linux && (amd64 || arm64)

package propagation

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Writer is the loaded and attached socket-layer writer.
type Writer struct {
	objs    writerObjects
	sockops link.Link
	skmsg   bool // inject_traceparent attached to the sockhash

	adoptMu   sync.Mutex
	adoptObjs *adoptObjects // nil until the first Adopt
	adoptIter *link.Iter
}

// Start loads the writer and attaches it: the sock_ops program to the
// cgroup v2 hierarchy at cgroupRoot (see CgroupRoot), the sk_msg program to
// its sockhash. An error says which step the kernel refused; the caller
// then traces without sending context. Close detaches everything.
func Start(cgroupRoot string) (_ *Writer, err error) {
	w := &Writer{}
	spec, err := loadWriter()
	if err != nil {
		return nil, fmt.Errorf("load the trace-context writer: %w", err)
	}
	// A Kafka request buffer per CPU, by CPU number (writer.c, kafka_bufs).
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("load the trace-context writer: %w", err)
	}
	spec.Maps["kafka_bufs"].MaxEntries = uint32(cpus)
	if err := spec.LoadAndAssign(&w.objs, nil); err != nil {
		return nil, fmt.Errorf("load the trace-context writer: %w", err)
	}
	defer func() {
		if err != nil {
			w.Close()
		}
	}()
	if err := link.RawAttachProgram(link.RawAttachProgramOptions{
		Target:  w.objs.Sockets.FD(),
		Program: w.objs.InjectTraceparent,
		Attach:  ebpf.AttachSkMsgVerdict,
	}); err != nil {
		return nil, fmt.Errorf("attach the sk_msg program to its sockhash: %w", err)
	}
	w.skmsg = true
	w.sockops, err = link.AttachCgroup(link.CgroupOptions{
		Path:    cgroupRoot,
		Attach:  ebpf.AttachCGroupSockOps,
		Program: w.objs.TrackSockets,
	})
	if err != nil {
		return nil, fmt.Errorf("attach the sock_ops program to cgroup %s: %w", cgroupRoot, err)
	}
	return w, nil
}

// Maps returns the maps the net/http client instrumentation shares with
// the writer, by name, for uprobe.Options.Shared.
func (w *Writer) Maps() map[string]*ebpf.Map {
	return map[string]*ebpf.Map{
		OutgoingRequestsMap: w.objs.OutgoingRequests,
		OutgoingByConnMap:   w.objs.OutgoingByConn,
		OutgoingSeenMap:     w.objs.OutgoingSeen,
		OutgoingH2Map:       w.objs.OutgoingH2,
		OutgoingH2Streams:   w.objs.OutgoingH2Streams,
		OutgoingH2Sids:      w.objs.OutgoingH2Sids,
		KafkaOutgoingMap:    w.objs.KafkaOutgoing,
		KafkaProducersMap:   w.objs.KafkaProducers,
		TracedProcessesMap:  w.objs.TracedProcesses,
		ContextStatsMap:     w.objs.ContextStats,
	}
}

// Stats reads the counters.
func (w *Writer) Stats() (Stats, error) {
	var st Stats
	fields := []*uint64{&st.Written, &st.AppSet, &st.TLS, &st.Stale, &st.LineTooLong, &st.NotHTTP1, &st.WriteFailed, &st.H2Written, &st.H2NotWritten, &st.Missed,
		&st.KafkaWritten, &st.KafkaAppSet, &st.KafkaUnmatched, &st.KafkaUnsupported, &st.KafkaTooLarge, &st.KafkaRequests, &st.KafkaWriteFailed}
	for i, f := range fields {
		var perCPU []uint64
		if err := w.objs.ContextStats.Lookup(uint32(i), &perCPU); err != nil {
			return Stats{}, fmt.Errorf("read trace-context counters: %w", err)
		}
		for _, n := range perCPU {
			*f += n
		}
	}
	return st, nil
}

// Close detaches the programs and releases the maps; sockets leave the
// sockhash with it and send unchanged from then on.
func (w *Writer) Close() error {
	var errs []error
	if w.sockops != nil {
		errs = append(errs, w.sockops.Close())
	}
	if w.skmsg {
		errs = append(errs, link.RawDetachProgram(link.RawDetachProgramOptions{
			Target:  w.objs.Sockets.FD(),
			Program: w.objs.InjectTraceparent,
			Attach:  ebpf.AttachSkMsgVerdict,
		}))
	}
	if w.adoptIter != nil {
		errs = append(errs, w.adoptIter.Close())
	}
	if w.adoptObjs != nil {
		errs = append(errs, w.adoptObjs.Close())
	}
	errs = append(errs, w.objs.Close())
	return errors.Join(errs...)
}

// Adopt makes the writer watch the connections process pid opens from now
// on, and puts the established TCP sockets it holds into the
// writer's sockhash, so that connections it opened before Start (kept-alive
// connections of a service traced with --pid) carry trace context too. It
// returns how many sockets it added. The sockets are found through
// /proc/PID/fd and matched in the kernel by a BPF iterator over TCP
// sockets (adopt.c).
func (w *Writer) Adopt(pid int) (int, error) {
	// Its connections from now on are watched too (track_sockets).
	if err := w.objs.TracedProcesses.Put(uint32(pid), uint8(1)); err != nil {
		return 0, fmt.Errorf("watch connections of pid %d: %w", pid, err)
	}
	inodes, err := socketInodes(pid)
	if err != nil || len(inodes) == 0 {
		return 0, err
	}
	w.adoptMu.Lock()
	defer w.adoptMu.Unlock()
	if w.adoptObjs == nil {
		objs := &adoptObjects{}
		if err := loadAdoptObjects(objs, &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{"sockets": w.objs.Sockets}}); err != nil {
			return 0, fmt.Errorf("load the socket iterator: %w", err)
		}
		it, err := link.AttachIter(link.IterOptions{Program: objs.AdoptSockets})
		if err != nil {
			objs.Close()
			return 0, fmt.Errorf("attach the socket iterator: %w", err)
		}
		w.adoptObjs, w.adoptIter = objs, it
	}
	one := uint8(1)
	for _, ino := range inodes {
		if err := w.adoptObjs.Adopt.Put(ino, one); err != nil {
			return 0, fmt.Errorf("adopt sockets of pid %d: %w", pid, err)
		}
	}
	defer func() {
		for _, ino := range inodes {
			w.adoptObjs.Adopt.Delete(ino)
		}
	}()
	zero := uint32(0)
	var before uint64
	if err := w.adoptObjs.Adopted.Lookup(zero, &before); err != nil {
		return 0, fmt.Errorf("adopt sockets of pid %d: %w", pid, err)
	}
	rd, err := w.adoptIter.Open()
	if err != nil {
		return 0, fmt.Errorf("adopt sockets of pid %d: run the iterator: %w", pid, err)
	}
	_, err = io.Copy(io.Discard, rd)
	rd.Close()
	if err != nil {
		return 0, fmt.Errorf("adopt sockets of pid %d: run the iterator: %w", pid, err)
	}
	var after uint64
	if err := w.adoptObjs.Adopted.Lookup(zero, &after); err != nil {
		return 0, fmt.Errorf("adopt sockets of pid %d: %w", pid, err)
	}
	return int(after - before), nil
}

// socketInodes lists the inode numbers of the sockets process pid has
// open ("socket:[N]" links in /proc/PID/fd).
func socketInodes(pid int) ([]uint64, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list sockets of pid %d: %w", pid, err)
	}
	var out []uint64
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if n, ok := strings.CutPrefix(target, "socket:["); ok {
			if ino, err := strconv.ParseUint(strings.TrimSuffix(n, "]"), 10, 64); err == nil {
				out = append(out, ino)
			}
		}
	}
	return out, nil
}
