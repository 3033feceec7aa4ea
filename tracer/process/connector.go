package process

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// The kernel's process events connector (linux/connector.h, linux/cn_proc.h).
const (
	cnIdxProc         = 1
	cnValProc         = 1
	procCNMcastListen = 1
	procEventNone     = 0x00000000
	procEventExec     = 0x00000002
	procEventExit     = 0x80000000

	nlmsgHdrLen = 16 // struct nlmsghdr
	cnMsgLen    = 20 // struct cn_msg without data
	procHdrLen  = 16 // struct proc_event up to event_data
)

// procEvent is one exec or exit the connector reported.
type procEvent struct {
	what uint32
	tgid int       // the process (thread group) it concerns
	pid  int       // the thread; exits of threads other than the leader are not process exits
	at   time.Time // when it happened, by the kernel's timestamp
	read time.Time // when the tracer read it
}

// connector is a netlink socket subscribed to the process events
// connector: the kernel sends it a message for every fork, exec and exit
// on the host, as they happen, so that a new process is seen within
// microseconds of its exec instead of at the next poll.
type connector struct {
	fd  int
	buf []byte
}

// errOverrun reports that the socket's receive buffer overflowed: events
// were lost, and the caller should rescan /proc.
var errOverrun = errors.New("process events lost: receive buffer overrun")

// listenConnector subscribes to the process events connector. It needs
// CAP_NET_ADMIN (root) in the initial network namespace and a kernel with
// CONFIG_PROC_EVENTS; it waits up to a second for the kernel's
// acknowledgement, so that an unavailable connector is an error here
// rather than silence later.
func listenConnector() (*connector, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, fmt.Errorf("netlink connector socket: %w", err)
	}
	c := &connector{fd: fd, buf: make([]byte, 8192)}
	if err := c.subscribe(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return c, nil
}

func (c *connector) subscribe() error {
	_ = unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	if err := unix.Bind(c.fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		return fmt.Errorf("bind netlink connector socket: %w", err)
	}
	msg := make([]byte, nlmsgHdrLen+cnMsgLen+4)
	ne := binary.NativeEndian
	ne.PutUint32(msg[0:], uint32(len(msg)))       // nlmsg_len
	ne.PutUint16(msg[4:], unix.NLMSG_DONE)        // nlmsg_type
	ne.PutUint32(msg[12:], uint32(unix.Getpid())) // nlmsg_pid
	ne.PutUint32(msg[16:], cnIdxProc)             // cn_msg.id.idx
	ne.PutUint32(msg[20:], cnValProc)             // cn_msg.id.val
	ne.PutUint16(msg[32:], 4)                     // cn_msg.len
	ne.PutUint32(msg[36:], procCNMcastListen)     // op
	if err := unix.Sendto(c.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("subscribe to process events: %w", err)
	}
	if err := c.setTimeout(time.Second); err != nil {
		return err
	}
	// The kernel answers the subscription with a PROC_EVENT_NONE; events
	// may come before it.
	for {
		evs, err := c.read()
		if err != nil {
			return fmt.Errorf("no acknowledgement from the process events connector: %w", err)
		}
		for _, ev := range evs {
			if ev.what == procEventNone {
				return nil
			}
		}
	}
}

// setTimeout bounds each read, so that a reader notices it should stop.
func (c *connector) setTimeout(d time.Duration) error {
	tv := unix.NsecToTimeval(d.Nanoseconds())
	if err := unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("netlink connector socket timeout: %w", err)
	}
	return nil
}

// read waits for the next datagram (at most the socket's timeout: then
// EAGAIN) and returns the exec, exit and acknowledgement events in it.
func (c *connector) read() ([]procEvent, error) {
	n, _, err := unix.Recvfrom(c.fd, c.buf, 0)
	if errors.Is(err, unix.ENOBUFS) {
		return nil, errOverrun
	}
	if err != nil {
		return nil, err
	}
	read := time.Now()
	var mono unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono) // the clock of proc_event.timestamp_ns (ktime_get_ns)
	ne := binary.NativeEndian
	var evs []procEvent
	for b := c.buf[:n]; len(b) >= nlmsgHdrLen; {
		size := int(ne.Uint32(b))
		if size < nlmsgHdrLen || size > len(b) {
			break
		}
		m := b[nlmsgHdrLen:size]
		b = b[min(len(b), (size+3)&^3):]
		if len(m) < cnMsgLen+procHdrLen || ne.Uint32(m) != cnIdxProc || ne.Uint32(m[4:]) != cnValProc {
			continue
		}
		data := m[cnMsgLen:]
		ev := procEvent{what: ne.Uint32(data), read: read, at: read}
		if ts := int64(ne.Uint64(data[8:])); ts > 0 && ts <= mono.Nano() {
			ev.at = read.Add(-time.Duration(mono.Nano() - ts))
		}
		body := data[procHdrLen:]
		switch ev.what {
		case procEventExec, procEventExit:
			if len(body) < 8 {
				continue
			}
			ev.pid, ev.tgid = int(ne.Uint32(body)), int(ne.Uint32(body[4:]))
		case procEventNone:
		default:
			continue
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

func (c *connector) close() error { return unix.Close(c.fd) }
