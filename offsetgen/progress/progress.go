// Package progress draws a one-line progress bar with an ETA for long
// generator runs. On a terminal it redraws in place; elsewhere (CI logs) it
// prints a line per completed step so logs stay readable.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Bar tracks done/total steps. It is safe for concurrent use.
type Bar struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	total int
	done  int
	start time.Time
	label string
}

// New returns a bar for total steps writing to w. A nil w disables output.
func New(w io.Writer, total int) *Bar {
	b := &Bar{w: w, total: total, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			b.tty = true
		}
	}
	return b
}

// Step marks one step done; label says which (a version, say).
func (b *Bar) Step(label string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done++
	b.label = label
	b.draw()
}

// Finish ends the bar's line.
func (b *Bar) Finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.w != nil && b.tty {
		fmt.Fprintln(b.w)
	}
}

// Line returns the bar as text: "[=====>    ] 12/115  go1.18.4  elapsed 3m2s  ETA 25m10s".
func (b *Bar) Line() string {
	const width = 30
	frac := 1.0
	if b.total > 0 {
		frac = float64(b.done) / float64(b.total)
	}
	fill := int(frac * width)
	bar := strings.Repeat("=", fill)
	if fill < width {
		bar += ">" + strings.Repeat(" ", width-fill-1)
	}
	elapsed := time.Since(b.start)
	eta := "?"
	if b.done > 0 && b.done <= b.total {
		eta = (time.Duration(float64(elapsed) / float64(b.done) * float64(b.total-b.done))).Round(time.Second).String()
	}
	return fmt.Sprintf("[%s] %d/%d  %-10s elapsed %s  ETA %s", bar, b.done, b.total, b.label, elapsed.Round(time.Second), eta)
}

func (b *Bar) draw() {
	if b.w == nil {
		return
	}
	if b.tty {
		fmt.Fprintf(b.w, "\r\033[K%s", b.Line())
		return
	}
	fmt.Fprintln(b.w, b.Line())
}
