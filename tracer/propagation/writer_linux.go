//go:build linux && (amd64 || arm64)

package propagation

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Writer is the loaded and attached socket-layer writer.
type Writer struct {
	objs    writerObjects
	sockops link.Link
	skmsg   bool // inject_traceparent attached to the sockhash
}

// Start loads the writer and attaches it: the sock_ops program to the
// cgroup v2 hierarchy at cgroupRoot (see CgroupRoot), the sk_msg program to
// its sockhash. An error says which step the kernel refused; the caller
// then traces without sending context. Close detaches everything.
func Start(cgroupRoot string) (_ *Writer, err error) {
	w := &Writer{}
	if err := loadWriterObjects(&w.objs, nil); err != nil {
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
		TracedProcessesMap:  w.objs.TracedProcesses,
		ContextStatsMap:     w.objs.ContextStats,
	}
}

// Stats reads the counters.
func (w *Writer) Stats() (Stats, error) {
	var st Stats
	fields := []*uint64{&st.Written, &st.AppSet, &st.TLS, &st.Stale, &st.LineTooLong, &st.NotHTTP1, &st.WriteFailed}
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
	errs = append(errs, w.objs.Close())
	return errors.Join(errs...)
}
