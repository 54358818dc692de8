package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/posthouse/posthouse/mailimport"
)

// progressBar shows how far an import, migration or export is on stderr:
// a bar redrawn in place on a terminal, a plain line now and then
// otherwise (logs, pipes).
type progressBar struct {
	w     io.Writer
	label string
	tty   bool
	width int

	mu    sync.Mutex
	last  time.Time
	start time.Time
	drawn bool
}

// Redraw and plain-line intervals.
const (
	barInterval  = 100 * time.Millisecond
	lineInterval = 5 * time.Second
)

func newProgressBar(env *adminEnv, label string) *progressBar {
	p := &progressBar{w: env.stderr, label: label, start: time.Now(), width: 80}
	if f, ok := env.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 40 {
			p.width = w
		}
	}
	p.last = p.start
	return p
}

// update is mailimport's Progress callback.
func (p *progressBar) update(pr mailimport.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	interval := lineInterval
	if p.tty {
		interval = barInterval
	}
	if now.Sub(p.last) < interval {
		return
	}
	p.last = now
	p.draw(pr)
}

// fraction is how much is done, -1 if unknown.
func fraction(pr mailimport.Progress) float64 {
	switch {
	case pr.SourceBytes > 0:
		return min(1, float64(pr.SourceRead)/float64(pr.SourceBytes))
	case pr.Total > 0:
		return min(1, float64(pr.Messages+pr.Skipped)/float64(pr.Total))
	}
	return -1
}

func (p *progressBar) draw(pr mailimport.Progress) {
	f := fraction(pr)
	text := fmt.Sprintf("%d messages, %s", pr.Messages, formatBytes(pr.Bytes))
	if pr.Skipped > 0 {
		text += fmt.Sprintf(", %d skipped", pr.Skipped)
	}
	if pr.Total > 0 && pr.SourceBytes == 0 {
		text = fmt.Sprintf("%d/%d ", pr.Messages+pr.Skipped, pr.Total) + text
	}
	if !p.tty {
		pct := ""
		if f >= 0 {
			pct = fmt.Sprintf(" (%.0f%%)", 100*f)
		}
		fmt.Fprintf(p.w, "%s: %s%s\n", p.label, text, pct)
		return
	}
	bar := ""
	if f >= 0 {
		n := 24
		full := int(f * float64(n))
		bar = fmt.Sprintf("[%s%s] %3.0f%% ", strings.Repeat("#", full), strings.Repeat(".", n-full), 100*f)
	}
	line := fmt.Sprintf("%s %s%s  %s", p.label, bar, text, pr.Folder)
	if len(line) > p.width-1 {
		line = line[:p.width-1]
	}
	fmt.Fprintf(p.w, "\r\x1b[K%s", line)
	p.drawn = true
}

// finish clears the bar.
func (p *progressBar) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.drawn {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}

// formatBytes prints n in B, KB, MB or GB (powers of 1000).
func formatBytes(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f KB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

// printSummary writes what an import or migration did, one fact a line.
func printSummary(w io.Writer, s mailimport.Summary, dur time.Duration) {
	fmt.Fprintf(w, "messages: %d\n", s.Messages)
	fmt.Fprintf(w, "bytes: %d (%s)\n", s.Bytes, formatBytes(s.Bytes))
	fmt.Fprintf(w, "mailboxes: %d", len(s.Mailboxes))
	if len(s.Mailboxes) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(s.Mailboxes, ", "))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "skipped: %d", s.SkippedTotal())
	reasons := make([]string, 0, len(s.Skipped))
	for r := range s.Skipped {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for i, r := range reasons {
		sep := ", "
		if i == 0 {
			sep = " ("
		}
		fmt.Fprintf(w, "%s%d %s", sep, s.Skipped[r], r)
	}
	if len(reasons) > 0 {
		fmt.Fprint(w, ")")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "time: %s\n", dur.Round(time.Millisecond))
}
