//go:build linux && (amd64 || arm64)

package server_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sys/unix"

	"github.com/offsetdb/offsetdb/tracer/spans"
	"github.com/offsetdb/offsetdb/tracer/uprobe/uprobetest"
)

// buildPIE builds the traced program as a position-independent
// executable, whose type descriptors are at a load bias from the
// addresses in its symbol table.
func buildPIE(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "target-pie")
	cmd := exec.Command("go", "build", "-trimpath", "-buildmode=pie", "-o", out, "../../../testdata/service")
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false", "GOWORK=off")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build -buildmode=pie: %s", b)
	return out
}

// The span of a handler that panicked over HTTP/1.1 carries an
// "exception" event: the panic value's type (named from the symbol table:
// none in a stripped binary), its message when it is a string or a
// runtime error declared as one (none for another error: the tracer does
// not call Error), and the stack trace net/http logged, cut at 4 KiB. A
// string longer than 512 bytes is cut, and the event says so.
func TestAttachRecordsExceptionOfPanickingHandler(t *testing.T) {
	uprobetest.RequireBPF(t)
	buildTarget(t)
	long := strings.Repeat("0123456789", 100)
	cases := []struct {
		path, typ, message string
		messageCut         bool
		frame              string // a function the stack trace names
	}{
		{path: "/panic", typ: "string", message: "panicking on purpose", frame: "main.main.func"},
		{path: "/panic-error", typ: "*main.serviceError", frame: "main.main.func"},
		{path: "/panic-nilmap", typ: "runtime.plainError", message: "assignment to entry in nil map", frame: "main.main.func"},
		{path: "/panic-nil", typ: "runtime.errorString", message: "invalid memory address or nil pointer dereference", frame: "main.main.func"},
		{path: "/panic-index", typ: "runtime.boundsError", frame: "main.main.func"},
		{path: "/panic-long", typ: "string", message: long[:512], messageCut: true, frame: "main.main.func"},
	}
	builds := []struct {
		name, path string
		symbols    bool
	}{
		{"plain", target.plain, true},
		{"stripped", target.stripped, false},
		{"pie", buildPIE(t), true},
	}
	for _, b := range builds {
		t.Run(b.name, func(t *testing.T) {
			addr, wait := traced(t, b.path, target.values)
			for _, c := range cases {
				assert.Zero(t, send(t, "http://"+addr+c.path), "%s answered", c.path)
			}
			// Each panic's span; /panic's client call and the backend's span.
			evs := wait(len(cases) + 2)
			for _, c := range cases {
				got := byPath(evs, trace.SpanKindServer, c.path)
				require.Len(t, got, 1, c.path)
				ev := got[0]
				assert.True(t, ev.Panicked, c.path)
				require.NotNil(t, ev.Exception, "%s: exception", c.path)
				x := ev.Exception
				typ, message := c.typ, c.message
				if !b.symbols {
					typ, message = "", "" // no type names: the message cannot be told a string
				}
				assert.Equal(t, typ, x.Type, "%s: type", c.path)
				assert.Equal(t, message, x.Message, "%s: message", c.path)
				assert.Equal(t, c.messageCut && message != "", x.MessageCut, "%s: message cut", c.path)
				assert.True(t, strings.HasPrefix(x.Stacktrace, "goroutine "), "%s: stack trace %q", c.path, x.Stacktrace)
				assert.Contains(t, x.Stacktrace, c.frame, "%s", c.path)
				assert.Contains(t, x.Stacktrace, "net/http.HandlerFunc.ServeHTTP", "%s", c.path)
				if x.StacktraceCut {
					assert.Len(t, x.Stacktrace, 4096, "%s: a cut stack trace fills the buffer", c.path)
				}

				span, err := ev.Span()
				require.NoError(t, err)
				assert.Equal(t, codes.Error, span.Status, c.path)
				assert.Contains(t, span.Attributes, semconv.ErrorTypeKey.String("panic"), c.path)
				var want []attribute.KeyValue
				if typ != "" {
					want = append(want, semconv.ExceptionType(typ))
				}
				if message != "" {
					want = append(want, semconv.ExceptionMessage(message))
				}
				want = append(want, semconv.ExceptionStacktrace(x.Stacktrace))
				var cut []string
				if c.messageCut && message != "" {
					cut = append(cut, "exception.message")
				}
				if x.StacktraceCut {
					cut = append(cut, "exception.stacktrace")
				}
				if cut != nil {
					want = append(want, attribute.StringSlice("offsetdb.truncated", cut))
				}
				assert.Equal(t, []spans.Event{{Name: "exception", Time: ev.End, Attributes: want}}, span.Events, c.path)
			}
			// No exception on spans that did not panic.
			for _, ev := range evs {
				if !ev.Panicked {
					assert.Nil(t, ev.Exception, "%s %s", ev.Kind, ev.Path)
				}
			}
		})
	}
}

// A process maps its executable's read-only data in as it touches it, and
// a BPF program cannot fault a page in: the strings a panic is logged
// with (net/http's format, the runtime's error message) may be in pages
// the process never touched, more often in a PIE, whose random base moves
// its pages across the kernel's fault-around windows. With the
// executable's pages paged out before the panic, the span still ends (the
// format is told by its length) and carries the message (read by user
// space from /proc/PID/mem). Before, about half of such panics lost the
// message, and some the span.
func TestAttachRecordsPanicWhoseStringsAreNotMappedIn(t *testing.T) {
	uprobetest.RequireBPF(t)
	buildTarget(t)
	pie := buildPIE(t)
	for i := range 6 {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			addr, wait := tracedWithin(t, pie, target.values)
			pageOutExecutable(t, pie)
			assert.Zero(t, send(t, "http://"+addr+"/panic-nil"), "/panic-nil answered")
			evs, ok := wait(1, 10*time.Second)
			require.True(t, ok, "no span for the panic")
			got := byPath(evs, trace.SpanKindServer, "/panic-nil")
			require.Len(t, got, 1)
			require.NotNil(t, got[0].Exception)
			assert.Equal(t, "runtime.errorString", got[0].Exception.Type)
			assert.Equal(t, "invalid memory address or nil pointer dereference", got[0].Exception.Message)
		})
	}
}

// pageOutExecutable reclaims the pages of the mappings of the executable
// path in the one process that runs it (process_madvise MADV_PAGEOUT,
// Linux 5.10+): the process maps them in again as it touches them.
func pageOutExecutable(t *testing.T, path string) {
	t.Helper()
	var pids []int
	ents, err := os.ReadDir("/proc")
	require.NoError(t, err)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && exe == path {
			pids = append(pids, pid)
		}
	}
	require.Len(t, pids, 1, "processes running %s", path)
	maps, err := os.Open(fmt.Sprintf("/proc/%d/maps", pids[0]))
	require.NoError(t, err)
	defer maps.Close()
	var iov []uint64 // struct iovec: base, length
	sc := bufio.NewScanner(maps)
	for sc.Scan() {
		fs := strings.Fields(sc.Text()) // start-end perms offset dev inode path
		if len(fs) < 6 || fs[5] != path {
			continue
		}
		lo, hi, _ := strings.Cut(fs[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		require.NoError(t, errors.Join(err1, err2))
		iov = append(iov, start, end-start)
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, iov, "no mapping of %s", path)
	pidfd, err := unix.PidfdOpen(pids[0], 0)
	require.NoError(t, err)
	defer unix.Close(pidfd)
	_, _, errno := unix.Syscall6(unix.SYS_PROCESS_MADVISE, uintptr(pidfd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)/2), unix.MADV_PAGEOUT, 0, 0)
	if errno == unix.ENOSYS || errno == unix.EINVAL {
		t.Skipf("SKIPPED: process_madvise(MADV_PAGEOUT) not supported by this kernel: %v", errno)
	}
	require.Zero(t, errno, "process_madvise")
}
