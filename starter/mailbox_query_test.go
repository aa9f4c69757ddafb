package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The filters make the visibility query over the contract's search
// attributes, every value checked.
func TestMailboxFiltersBuildTheQuery(t *testing.T) {
	now := time.Date(2026, 12, 5, 22, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		filter mailboxFilter
		want   string
	}{
		{"none", mailboxFilter{}, "WorkflowType = 'MailboxMigration'"},
		{"every filter", mailboxFilter{wave: "2026-12-05-night", stage: "copying", org: "Trust A & Co (north)", errorType: "Throttled",
			olderThan: 2 * time.Hour, paused: true},
			"WorkflowType = 'MailboxMigration' AND MailwaveWave = '2026-12-05-night' AND MailwaveStage = 'copying' AND " +
				"MailwaveOrg = 'Trust A & Co (north)' AND MailwaveErrorType = 'Throttled' AND " +
				"MailwaveStageSince < '2026-12-05T20:00:00Z' AND MailwavePaused = true"},
		{"older than without a stage: running ones", mailboxFilter{olderThan: 90 * time.Minute},
			"WorkflowType = 'MailboxMigration' AND MailwaveStageSince < '2026-12-05T20:30:00Z' AND ExecutionStatus = 'Running'"},
		{"error type", mailboxFilter{errorType: "MailboxNotFound"},
			"WorkflowType = 'MailboxMigration' AND MailwaveErrorType = 'MailboxNotFound'"},
		{"running", mailboxFilter{org: "trust-b", running: true},
			"WorkflowType = 'MailboxMigration' AND MailwaveOrg = 'trust-b' AND ExecutionStatus = 'Running'"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q, err := tc.filter.query(now)
			require.NoError(t, err)
			assert.Equal(t, tc.want, q)
		})
	}
}

// A value that could end its quotes, or is not one of the contract's, is
// refused with an error naming the flag.
func TestMailboxFiltersRefuseBadValues(t *testing.T) {
	cases := []struct {
		filter mailboxFilter
		want   string
	}{
		{mailboxFilter{wave: "w' OR 1=1 --"}, "--wave"},
		{mailboxFilter{stage: "copying' OR MailwaveStage != '"}, "--stage"},
		{mailboxFilter{stage: "stuck"}, "not a stage; the stages are scheduled, notice_t14"},
		{mailboxFilter{org: "St John's"}, "--org \"St John's\": only letters, digits, spaces"},
		{mailboxFilter{org: `trust"a`}, "--org"},
		{mailboxFilter{org: `trust\a`}, "--org"},
		{mailboxFilter{org: "trust\na"}, "--org"},
		{mailboxFilter{org: " leading space"}, "--org"},
		{mailboxFilter{org: string(make([]byte, 65))}, "--org"},
		{mailboxFilter{errorType: "Mailbox NotFound"}, "--error-type"},
		{mailboxFilter{errorType: "x'"}, "--error-type"},
		{mailboxFilter{olderThan: -time.Hour}, "--older-than -1h0m0s"},
	}
	for _, tc := range cases {
		_, err := tc.filter.query(time.Now())
		assert.ErrorContains(t, err, tc.want, "%+v", tc.filter)
	}
	long := ""
	for range 65 {
		long += "a"
	}
	_, err := mailboxFilter{org: long}.query(time.Now())
	assert.ErrorContains(t, err, "--org: 65 bytes; at most 64")
}

func TestStuckAndReportQueries(t *testing.T) {
	q, err := stuckQuery("w1")
	require.NoError(t, err)
	assert.Equal(t, "WorkflowType = 'MailboxMigration' AND MailwaveWave = 'w1' AND ExecutionStatus = 'Running' AND "+
		"(MailwaveStage IN ('notice_t14', 'notice_t1', 'copying', 'cutover', 'notice_success', 'paused') OR MailwavePaused = true)", q)
	_, err = stuckQuery("w1'")
	assert.ErrorContains(t, err, "--wave")

	q, err = reportQuery("")
	require.NoError(t, err)
	assert.Equal(t, "WorkflowType = 'MailboxMigration'", q)
	q, err = reportQuery("w1")
	require.NoError(t, err)
	assert.Equal(t, "WorkflowType = 'MailboxMigration' AND MailwaveWave = 'w1'", q)
}

// A mailbox is held back when paused, in a working stage too long, or on
// an activity past the attempts allowed; waiting for a date is not.
func TestJudgeStuck(t *testing.T) {
	now := time.Date(2026, 12, 5, 22, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return now.Add(-d) }
	five, two := int32(5), int32(2)
	rows := []mailboxRow{
		{Key: "copying-long", Stage: "copying", Since: at(3 * time.Hour), Age: 3 * 3600, Activity: "CopyMailbox", Attempt: &two},
		{Key: "copying-short", Stage: "copying", Since: at(time.Hour), Age: 3600, Activity: "CopyMailbox", Attempt: &two},
		{Key: "failing", Stage: "copying", Since: at(time.Minute), Age: 60, Activity: "CopyMailbox", Attempt: &five},
		{Key: "paused", Stage: "waiting_start", Since: at(time.Minute), Paused: true},
		{Key: "waiting-long", Stage: "waiting_t1", Since: at(48 * time.Hour)},
		{Key: "both", Stage: "cutover", Since: at(5 * time.Hour), Age: 5 * 3600, Activity: "Cutover", Attempt: &five},
	}
	got := judgeStuck(rows, now.Add(-2*time.Hour), 2*time.Hour, 3)
	var keys []string
	for _, r := range got {
		keys = append(keys, r.Key)
	}
	assert.Equal(t, []string{"both", "copying-long", "failing", "paused"}, keys, "longest in their stage first")
	assert.Equal(t, []string{"cutover for 5h0m0s (over 2h0m0s)", "Cutover on attempt 5 (over 3)"}, got[0].Reasons)
	assert.Equal(t, []string{"copying for 3h0m0s (over 2h0m0s)"}, got[1].Reasons)
	assert.Equal(t, []string{"CopyMailbox on attempt 5 (over 3)"}, got[2].Reasons)
	assert.Equal(t, []string{"paused"}, got[3].Reasons)
}

// Progress stays quiet for a quick listing and speaks, on its own lines
// when not on a terminal, for a long one.
func TestProgressOnlyForALongListing(t *testing.T) {
	var b strings.Builder
	p := newProgress(&b)
	p.show("listed %d mailboxes", 1000)
	p.done()
	assert.Empty(t, b.String(), "quick: nothing shown")

	p = newProgress(&b)
	p.start = time.Now().Add(-2 * time.Second)
	p.show("listed %d mailboxes", 1000)
	p.show("listed %d mailboxes", 2000) // within the second: held
	p.done()
	assert.Equal(t, "listed 1000 mailboxes\nlisted 2000 mailboxes\n", b.String())
}
