// Package proctest starts the service programs of the end-to-end tests:
// programs that print where they listen on a line of their standard output
// ("http 127.0.0.1:PORT", "broker ...") once they are ready.
package proctest

import (
	"bufio"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// Serve starts cmd and returns what follows prefix on the first line of
// its standard output that begins with it: where the program listens. The
// program is killed and waited for when the test ends; the rest of its
// standard output is read and discarded, so that it never blocks on a full
// pipe. cmd's standard error is the caller's to set. The test fails at
// once when the program cannot start, or ends its output without such a
// line (what names names the program in that message).
func Serve(t testing.TB, cmd *exec.Cmd, prefix, what string) string {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", what, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	sc := bufio.NewScanner(stdout)
	addr := ""
	for addr == "" && sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			addr = a
		}
	}
	if addr == "" {
		t.Fatalf("%s did not say where it listens (no %q line)", what, prefix)
	}
	go io.Copy(io.Discard, stdout)
	return addr
}
