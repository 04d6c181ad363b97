package cli

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// progress reports long work: on a terminal a line redrawn in place (count, rate, ETA),
// elsewhere nothing until the summary line, so logs and pipes stay clean.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	what  string
	tty   bool
	begun time.Time
	drawn time.Time
	shown bool
}

func newProgress(w io.Writer, what string) *progress {
	return &progress{w: w, what: what, tty: isTerminal(w), begun: time.Now()}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// update redraws the line with done of total (total 0: unknown), at most 5 times a second.
func (p *progress) update(done, total uint64) {
	if !p.tty {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.drawn) < 200*time.Millisecond {
		return
	}
	p.drawn, p.shown = now, true
	elapsed := now.Sub(p.begun).Seconds()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(done) / elapsed
	}
	line := fmt.Sprintf("%s: %d", p.what, done)
	if total > 0 {
		line += fmt.Sprintf("/%d (%d%%)", total, done*100/total)
	}
	line += fmt.Sprintf("  %.0f/s", rate)
	if total > done && rate > 0 {
		line += "  ETA " + time.Duration(float64(total-done)/rate*float64(time.Second)).Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "\r\033[K%s", line)
}

// finish clears the progress line and prints the summary.
func (p *progress) finish(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintf(p.w, format+" in %s\n", append(args, time.Since(p.begun).Round(time.Millisecond))...)
}
