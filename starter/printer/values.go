package printer

import (
	"fmt"
	"time"
)

// Seconds is a length of time: a whole number of seconds in JSON, a
// duration ("2h10m5s") in text.
type Seconds int64

// SecondsOf rounds d to whole seconds.
func SecondsOf(d time.Duration) Seconds { return Seconds(d.Round(time.Second) / time.Second) }

// Text is the duration, e.g. "2h10m5s".
func (s Seconds) Text() string { return (time.Duration(s) * time.Second).String() }

// Share is a fraction: 0.0123 in JSON, "1.23%" in text.
type Share float64

// Text is the share as a percentage.
func (s Share) Text() string { return fmt.Sprintf("%.2f%%", 100*float64(s)) }

// Bytes is a size: bytes in JSON, "3.1 GB" (powers of 1000) in text.
type Bytes int64

// Text is the size in the largest unit that keeps it at 1 or more.
func (b Bytes) Text() string {
	const unit = 1000
	if b < unit {
		return fmt.Sprintf("%d B", int64(b))
	}
	n, exp := float64(b), 0
	for n >= unit && exp < 5 {
		n /= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", n, "kMGTPE"[exp-1])
}

// Ago says how long ago something was, d before now, to the second, for
// people: "40 s ago", "3 min 5 s ago", "2 h 5 min ago".
func Ago(d time.Duration) string {
	d = d.Round(time.Second)
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min %d s ago", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return fmt.Sprintf("%d h %d min ago", int(d.Hours()), int(d.Minutes())%60)
	}
}
