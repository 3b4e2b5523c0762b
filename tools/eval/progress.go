package main

// Progress on stderr: a bar redrawn in place on a terminal, one line at the
// end otherwise (a log file or a pipe gets no carriage returns).

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// isTerminal reports whether w is a character device (a terminal), the
// test the bar is drawn on.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progress is the state the bar shows.
type progress struct {
	Total   int           // images this run classifies (resumed ones excluded)
	Done    int           // of those, finished (scored or failed)
	Elapsed time.Duration // since the first model began loading
	Scored  int           // all scored images so far, resumed ones included
	Wrong1  int           // of those, wrong at top-1
}

const barWidth = 24

// line renders the bar: "[#####-----]  41.2%  412/1000  13.2 img/s  ETA 44s  top-1 err 24.5%".
func (p progress) line() string {
	frac := 1.0
	if p.Total > 0 {
		frac = float64(p.Done) / float64(p.Total)
	}
	fill := int(frac * barWidth)
	var b strings.Builder
	fmt.Fprintf(&b, "[%s%s] %5.1f%%  %d/%d", strings.Repeat("#", fill), strings.Repeat("-", barWidth-fill), 100*frac, p.Done, p.Total)
	rate := p.rate()
	if rate > 0 {
		fmt.Fprintf(&b, "  %.1f img/s  ETA %s", rate, roundDuration(time.Duration(float64(p.Total-p.Done)/rate*float64(time.Second))))
	} else {
		b.WriteString("  -- img/s  ETA --")
	}
	if p.Scored > 0 {
		fmt.Fprintf(&b, "  top-1 err %.1f%%", 100*float64(p.Wrong1)/float64(p.Scored))
	}
	return b.String()
}

// rate is images per second so far, over the whole run (loading included,
// so the ETA does not promise too much early on).
func (p progress) rate() float64 {
	if p.Done == 0 || p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Done) / p.Elapsed.Seconds()
}

// roundDuration shortens d for display: whole seconds, or tenths under 10s.
func roundDuration(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}
