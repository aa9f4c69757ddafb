package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseLead(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"14d": 14 * 24 * time.Hour, "1d12h": 36 * time.Hour, "90s": 90 * time.Second, "0s": 0,
	} {
		got, err := parseLead(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "x", "-5m", "1dx", "d"} {
		_, err := parseLead(bad)
		assert.ErrorContains(t, err, "not a duration", bad)
	}
}

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 11, 21, 18, 0, 0, 0, time.UTC)
	got, err := parseWhen("+15d", now)
	require.NoError(t, err)
	assert.Equal(t, now.Add(15*24*time.Hour), got)
	got, err = parseWhen("2026-12-05 20:00", now)
	require.NoError(t, err)
	assert.Equal(t, time.Date(2026, 12, 5, 20, 0, 0, 0, time.UTC), got)
	got, err = parseWhen("2026-12-05T21:00:00+01:00", now)
	require.NoError(t, err)
	assert.Equal(t, time.Date(2026, 12, 5, 20, 0, 0, 0, time.UTC), got)
	_, err = parseWhen("next tuesday", now)
	assert.ErrorContains(t, err, "not a time")
}

func TestScheduleCheck(t *testing.T) {
	now := time.Date(2026, 11, 21, 18, 0, 0, 0, time.UTC)
	ok := schedule{MigrateAt: now.Add(15 * 24 * time.Hour), NoticeLead: 14 * 24 * time.Hour, ReminderLead: 24 * time.Hour}
	require.NoError(t, ok.check(now, false))

	past := ok
	past.MigrateAt = now.Add(-time.Minute)
	assert.ErrorContains(t, past.check(now, true), "in the past")

	short := ok
	short.MigrateAt = now.Add(3 * 24 * time.Hour)
	assert.ErrorContains(t, short.check(now, false), "less than the notice lead")
	assert.NoError(t, short.check(now, true), "allowed with --allow-short-notice")

	inverted := ok
	inverted.ReminderLead = 20 * 24 * time.Hour
	assert.ErrorContains(t, inverted.check(now, false), "longer than --notice-lead")
}
