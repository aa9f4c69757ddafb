package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// parseLead reads a lead time: a Go duration ("90s", "36h") or whole days
// ("14d", "1d12h").
func parseLead(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.Atoi(s[:i])
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q is not a duration (try 14d, 36h or 90s)", s)
		}
		days = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration (try 14d, 36h or 90s)", s)
	}
	return days + d, nil
}

// parseWhen reads a migration time: RFC 3339 ("2026-12-05T20:00:00Z"), a
// date and time in UTC ("2026-12-05 20:00"), or "+DURATION" from now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, "+"); ok {
		d, err := parseLead(rest)
		if err != nil {
			return time.Time{}, err
		}
		return now.Add(d), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02 15:04", "2006-01-02T15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time (try 2026-12-05T20:00:00Z, \"2026-12-05 20:00\" in UTC, or +15d)", s)
}

// schedule is a mailbox's or a wave's timeline.
type schedule struct {
	MigrateAt    time.Time
	NoticeLead   time.Duration
	ReminderLead time.Duration
}

// check refuses a timeline that cannot be kept: a time in the past, a
// reminder before the notice, or less time than the notice lead unless the
// operator allows short notice (then the T-14 notice goes out at once).
func (s schedule) check(now time.Time, allowShortNotice bool) error {
	if !s.MigrateAt.After(now) {
		return fmt.Errorf("--migrate-at %s is in the past (it is now %s)", s.MigrateAt.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if s.ReminderLead > s.NoticeLead {
		return fmt.Errorf("--reminder-lead %s is longer than --notice-lead %s", s.ReminderLead, s.NoticeLead)
	}
	left := s.MigrateAt.Sub(now)
	if left < s.NoticeLead && !allowShortNotice {
		return fmt.Errorf("--migrate-at %s leaves %s, less than the notice lead of %s: users would not get their notice on time; "+
			"choose a later time or pass --allow-short-notice to send the notice now",
			s.MigrateAt.Format(time.RFC3339), left.Round(time.Minute), s.NoticeLead)
	}
	return nil
}
