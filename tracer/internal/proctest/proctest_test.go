package proctest

import (
	"fmt"
	"os/exec"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestServeReturnsTheAddressLine(t *testing.T) {
	cmd := exec.Command("sh", "-c", `echo starting; echo "http 127.0.0.1:1234"; echo more; sleep 30`)
	assert.Equal(t, "127.0.0.1:1234", Serve(t, cmd, "http ", "sh"))
	assert.NotNil(t, cmd.Process, "started; killed when the test ends")
}

func TestServeFailsWithoutTheLine(t *testing.T) {
	ft := &fakeT{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Serve(ft, exec.Command("sh", "-c", "echo nothing here"), "http ", "sh")
	}()
	<-done
	assert.Contains(t, ft.msg, `sh did not say where it listens (no "http " line)`)
}

// fakeT records Fatalf and ends the goroutine, as testing.T does.
type fakeT struct {
	testing.TB
	msg string
}

func (f *fakeT) Helper() {}

func (f *fakeT) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
