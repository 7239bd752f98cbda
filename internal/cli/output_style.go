package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// style colours text for a terminal and leaves it plain everywhere else: piped output,
// files, golden tests and anyone who set NO_COLOR (https://no-color.org) read the same
// words without escape codes.
type style struct{ on bool }

// styleFor colours w only when it is a character device (a terminal) and NO_COLOR is unset
// or empty. The mode check needs no terminal library: a pipe or file is never a char device.
func styleFor(w io.Writer) style {
	if os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return style{}
	}
	f, ok := w.(*os.File)
	if !ok {
		return style{}
	}
	fi, err := f.Stat()
	return style{on: err == nil && fi.Mode()&os.ModeCharDevice != 0}
}

const (
	ansiRed    = "31"
	ansiGreen  = "32"
	ansiYellow = "33"
	ansiBlue   = "34"
	ansiCyan   = "36"
	ansiDim    = "2"
	ansiBold   = "1"
)

func (s style) paint(code, text string) string {
	if !s.on || text == "" {
		return text
	}
	return "\x1b[" + code + "m" + text + "\x1b[0m"
}

// state colours a state or status word by what it asks of a person: green is done, yellow
// waits for someone, red went wrong, cyan is under way.
func (s style) state(word string) string {
	switch word {
	case "completed", "done", "available", "shared", "pass", "ok", "PRIMARY", "in sync":
		return s.paint(ansiGreen, word)
	case "awaiting-approval", "paused", "pending", "inconclusive", "rolling-back", "catching up":
		return s.paint(ansiYellow, word)
	case "failed", "blocked", "rolled-back", "cancelled", "fail", "FAIL", "DOWN":
		return s.paint(ansiRed, word)
	case "running", "copying", "STARTUP2", "initial sync":
		return s.paint(ansiCyan, word)
	}
	return word
}

// barWidth keeps a bar plus its label inside 80 columns next to a short title.
const barWidth = 20

// progressBar draws done of total as [#####...............] 25%. With colour on, the filled
// part is green.
func (s style) progressBar(done, total float64) string {
	if total <= 0 {
		return ""
	}
	frac := min(max(done/total, 0), 1)
	filled := int(frac * barWidth)
	return "[" + s.paint(ansiGreen, strings.Repeat("#", filled)) + strings.Repeat(".", barWidth-filled) + fmt.Sprintf("] %3d%%", int(frac*100))
}

// waitBar draws a wait that started at start and lasts d, as of now, with the time left:
// "[#########...........]  45%  2m10s left". A wait past its end says so instead of a
// negative time.
func (s style) waitBar(start time.Time, d time.Duration, now time.Time) string {
	if d <= 0 || start.IsZero() {
		return ""
	}
	el := now.Sub(start)
	left := d - el
	tail := roundDur(left) + " left"
	if left <= 0 {
		tail = "due"
	}
	return s.progressBar(float64(el), float64(d)) + "  " + tail
}

// etaBar draws done of total items of work begun at start, with the time left estimated
// from the pace so far (unknown until one item is done).
func (s style) etaBar(done, total int, start, now time.Time) string {
	out := s.progressBar(float64(done), float64(total)) + fmt.Sprintf("  %d of %d", done, total)
	if done > 0 && done < total && !start.IsZero() {
		per := now.Sub(start) / time.Duration(done)
		out += "  about " + roundDur(per*time.Duration(total-done)) + " left"
	}
	return out
}

// roundDur prints a duration at the precision a person reads a countdown at.
func roundDur(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
}
