package uprobe

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// WallTime converts a bpf_ktime_get_ns() timestamp, nanoseconds of
// CLOCK_MONOTONIC, to wall-clock time.
//
// The offset between the two clocks is measured once per process, on the
// first call, to within a few microseconds; later steps of the wall clock
// (NTP, settimeofday) are not followed, so that the durations between
// converted times stay exact.
func WallTime(ktime uint64) time.Time {
	return time.Unix(0, bootOffset()+int64(ktime))
}

// bootOffset is wall-clock minus CLOCK_MONOTONIC, in nanoseconds: the Unix
// time at which the monotonic clock read zero.
var bootOffset = sync.OnceValue(func() int64 {
	best := int64(-1)
	var offset int64
	// Take the tightest of a few brackets of time.Now by two monotonic reads.
	for range 5 {
		var before, after unix.Timespec
		_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &before)
		wall := time.Now().UnixNano()
		_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &after)
		width := after.Nano() - before.Nano()
		if best < 0 || width < best {
			best = width
			offset = wall - (before.Nano()+after.Nano())/2
		}
	}
	return offset
})
