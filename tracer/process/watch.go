package process

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"syscall"
	"time"
)

// Event is a matching process appearing or exiting.
type Event struct {
	PID    int
	Exe    string // the executable's path (link target)
	Exited bool
	// Exec is when the process called exec, by the kernel's clock; zero
	// for a process found running, or found by polling. Seen is when the
	// tracer read that exec: the process ran for Seen-Exec before a hold.
	Exec, Seen time.Time
	// Held says the process was stopped (SIGSTOP) at its exec, before it
	// could run its first instruction past the runtime's start, and stays
	// stopped until Resume. Only with WatchOptions.Hold and the connector.
	Held bool
}

// Resume continues a process an Event reported as Held. It is harmless on
// a process that is not stopped, or gone.
func (e Event) Resume() error {
	if !e.Held {
		return nil
	}
	if err := syscall.Kill(e.PID, syscall.SIGCONT); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// WatchOptions tune Watch.
type WatchOptions struct {
	// Interval is how often /proc is polled where the process events
	// connector is unavailable.
	Interval time.Duration
	// Hold stops each new matching process as soon as its exec is seen
	// (SIGSTOP), so that the caller can attach before it runs; the caller
	// must call Event.Resume. A shell that started the process as a
	// foreground job reports it as stopped, then continued.
	Hold bool
	// Log receives the choice of connector or polling; slog.Default() when nil.
	Log *slog.Logger
}

// Watch reports processes whose executable matches glob: those running
// now, those started later, and their exits, until ctx is done (then it
// closes the channel). Processes of the caller itself are never reported.
//
// New processes come from the kernel's process events connector (netlink
// cn_proc; root): the exec of a matching program is reported within
// microseconds, before the program has done anything that matters, and
// with opts.Hold it is stopped there. Where the connector is unavailable
// (no CAP_NET_ADMIN, another network namespace, a kernel without
// CONFIG_PROC_EVENTS), Watch says so on opts.Log and polls /proc every
// opts.Interval instead: a new process then runs untraced until the next
// poll.
func Watch(ctx context.Context, glob string, opts WatchOptions) <-chan Event {
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	conn, err := listenConnector()
	if err != nil {
		log.Warn("process events connector unavailable: polling /proc for new processes instead; their first requests may go untraced",
			"interval", opts.Interval, "err", err)
		return poll(ctx, glob, opts.Interval)
	}
	log.Debug("watching process execs through the kernel's process events connector")
	ch := make(chan Event)
	// The reader never waits for the caller, which may be busy attaching
	// to the previous process: the next exec must be seen, and held, at
	// once. Events queue in between, without bound.
	queue := make(chan Event)
	go forward(ctx, queue, ch)
	w := &watcher{glob: glob, hold: opts.Hold, self: os.Getpid(), known: map[int]string{}, readAt: map[int]time.Time{}, ch: queue, ctx: ctx}
	if err := conn.setTimeout(200 * time.Millisecond); err != nil {
		log.Warn("process events connector", "err", err)
	}
	// Subscribed first, then scanned, before Watch returns: a process
	// started in between is in the scan or in the events, and readAt
	// tells the exec event of a scanned process (handle); one started
	// after Watch returns is seen at its exec, and held.
	scanned := w.scan()
	go func() {
		defer close(queue)
		defer conn.close()
		if !scanned {
			return
		}
		for ctx.Err() == nil {
			evs, err := conn.read()
			switch {
			case errors.Is(err, errOverrun):
				log.Warn("process events lost (receive buffer overrun): rescanning /proc")
				if !w.scan() {
					return
				}
				continue
			case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EINTR):
				continue
			case err != nil:
				log.Error("process events connector failed: polling /proc from now on", "err", err)
				for ev := range poll(ctx, glob, opts.Interval) {
					if !w.send(ev) {
						return
					}
				}
				return
			}
			for _, ev := range evs {
				if !w.handle(ev) {
					return
				}
			}
		}
	}()
	return ch
}

// forward passes events from in to out in order, holding any number of
// them while out is not read, and closes out after in is closed. Held
// processes still queued when ctx is done are resumed.
func forward(ctx context.Context, in <-chan Event, out chan<- Event) {
	defer close(out)
	var pending []Event
	for in != nil || len(pending) > 0 {
		var send chan<- Event
		var next Event
		if len(pending) > 0 {
			send, next = out, pending[0]
		}
		select {
		case ev, ok := <-in:
			if !ok {
				in = nil
				if ctx.Err() != nil {
					for _, ev := range pending {
						_ = ev.Resume()
					}
					return
				}
				continue
			}
			pending = append(pending, ev)
		case send <- next:
			pending = pending[1:]
		case <-ctx.Done():
			for _, ev := range pending {
				_ = ev.Resume()
			}
			pending = nil
			for ev := range in {
				_ = ev.Resume()
			}
			return
		}
	}
}

// watcher is the state of one Watch on the connector.
type watcher struct {
	ctx   context.Context
	glob  string
	hold  bool
	self  int
	known map[int]string
	// readAt is when the executable of a process reported at its exec
	// was read: an exec event of the same process from before then is of
	// the program already read (see handle).
	readAt map[int]time.Time
	ch     chan<- Event
}

func (w *watcher) send(ev Event) bool {
	select {
	case w.ch <- ev:
		return true
	case <-w.ctx.Done():
		if ev.Held {
			_ = ev.Resume()
		}
		return false
	}
}

// scan reports the matching processes running now that are not known yet,
// and the known ones that are gone.
func (w *watcher) scan() bool {
	seen := map[int]bool{}
	for _, pid := range pids() {
		if pid == w.self {
			continue
		}
		if _, ok := w.known[pid]; ok {
			seen[pid] = true
			continue
		}
		_, exe, err := ExePath(pid)
		readAt := time.Now() // as in handle: after the read
		if err != nil || !Match(w.glob, exe) || !Alive(pid) {
			continue
		}
		w.known[pid] = exe
		// A process started while the watch began can be found here
		// before its exec event is handled: that event is then of the
		// program already read (handle).
		w.readAt[pid] = readAt
		seen[pid] = true
		if !w.send(Event{PID: pid, Exe: exe}) {
			return false
		}
	}
	for _, pid := range sortedKeys(w.known) {
		if !seen[pid] {
			exe := w.known[pid]
			delete(w.known, pid)
			delete(w.readAt, pid)
			if !w.send(Event{PID: pid, Exe: exe, Exited: true}) {
				return false
			}
		}
	}
	return true
}

// handle turns one connector event into Events.
func (w *watcher) handle(ev procEvent) bool {
	switch ev.what {
	case procEventExit:
		if ev.pid != ev.tgid {
			return true // a thread, not the process
		}
		delete(w.readAt, ev.tgid)
		if exe, ok := w.known[ev.tgid]; ok {
			delete(w.known, ev.tgid)
			return w.send(Event{PID: ev.tgid, Exe: exe, Exited: true})
		}
	case procEventExec:
		if ev.tgid == w.self {
			return true
		}
		if at, ok := w.readAt[ev.tgid]; ok && ev.at.Before(at) {
			// This exec happened before the read of the executable at the
			// process's previous exec event was done, so that read saw
			// this program: a process started through a wrapper that
			// execs it (env, sh -c 'exec …', runc init) is reported once.
			return true
		}
		if exe, ok := w.known[ev.tgid]; ok {
			// The process replaced its program: what was traced is gone.
			delete(w.known, ev.tgid)
			if !w.send(Event{PID: ev.tgid, Exe: exe, Exited: true}) {
				return false
			}
		}
		_, exe, err := ExePath(ev.tgid)
		// Taken once the read is done: an exec before then may be what the
		// read saw (a wrapper's exec reported, its program already read).
		readAt := time.Now()
		if err != nil || !Match(w.glob, exe) {
			delete(w.readAt, ev.tgid)
			return true
		}
		held := w.hold && syscall.Kill(ev.tgid, syscall.SIGSTOP) == nil
		w.known[ev.tgid] = exe
		w.readAt[ev.tgid] = readAt
		return w.send(Event{PID: ev.tgid, Exe: exe, Exec: ev.at, Seen: ev.read, Held: held})
	}
	return true
}

// poll is Watch without the connector: it polls /proc every interval.
func poll(ctx context.Context, glob string, interval time.Duration) <-chan Event {
	ch := make(chan Event)
	go func() {
		defer close(ch)
		known := map[int]string{}
		self := os.Getpid()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			seen := map[int]bool{}
			for _, pid := range pids() {
				if pid == self {
					continue
				}
				if _, ok := known[pid]; ok {
					seen[pid] = true
					continue
				}
				_, exe, err := ExePath(pid)
				if err != nil || !Match(glob, exe) || !Alive(pid) {
					continue
				}
				known[pid] = exe
				seen[pid] = true
				select {
				case ch <- Event{PID: pid, Exe: exe}:
				case <-ctx.Done():
					return
				}
			}
			for _, pid := range sortedKeys(known) {
				if seen[pid] && Alive(pid) {
					continue
				}
				exe := known[pid]
				delete(known, pid)
				select {
				case ch <- Event{PID: pid, Exe: exe, Exited: true}:
				case <-ctx.Done():
					return
				}
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}
