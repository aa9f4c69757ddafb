package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"mailwave/contract"
	"mailwave/mail/sim"
	"mailwave/roster/estate"
	"mailwave/roster/rosterstore"
	"mailwave/worker/config"
)

// TestAMailboxMovedToAnotherNight runs a programme on the dev server (a
// night of 6 every 6 seconds, told 12 seconds ahead, reminded 6 seconds
// ahead, copies at 1 GB/s so that a copy takes a second or two) and moves
// mailboxes of its first night as an operator would:
//
//   - one told its T-14 is moved (mailbox reschedule) to the T of a later
//     night: it leaves its wave, deferred (Rescheduled) there and in the
//     estate, its user gets the corrected notice with the new date, and the
//     night of that date takes it first and migrates it;
//   - another is moved to the same night with wave remove;
//   - one inside its T-1 window is refused, with the reason;
//   - one whose copy has started (held by a pause after its first pass) is
//     refused (wave remove), with the reason, in the summary and the
//     refusals' CSV.
func TestAMailboxMovedToAnotherNight(t *testing.T) {
	e := newProgrammeEnv(t, sim.GenerateOptions{Seed: 7, Mailboxes: 60, Orgs: 2}, config.Sim{TimeScale: 1e6, BytesPerSecond: 1000})
	waves, outboxDir, srv, est, run, starter := e.waves, e.outbox, e.srv, e.sim, e.run, e.must
	e.readyAll("org000", "org001")
	ctx := context.Background()
	c := srv.Client()
	store, err := estate.Open(ctx, waves)
	require.NoError(t, err)
	defer store.Close()
	rosters, err := rosterstore.Open(ctx, waves)
	require.NoError(t, err)
	defer rosters.Close()

	starter("programme", "schedule", "--name", "nightly", "--every", "6s", "--lead", "12s", "--reminder", "6s",
		"--size", "6", "--zone", "UTC", "--concurrency", "5", "--error-budget", "100")

	// The first night chosen, and its roster.
	var first estate.NightCounts
	require.Eventually(t, func() bool {
		nights, err := store.Nights(ctx)
		if err != nil || len(nights) == 0 {
			return false
		}
		first = nights[0]
		rows, err := rosters.All(ctx, first.Name)
		return err == nil && len(rows) == first.Chosen
	}, 60*time.Second, 100*time.Millisecond, "no night chosen")
	// No other night may be chosen until A's: every night of the date
	// would take a mailbox reserved for it. The first night goes on.
	starter("programme", "pause", "nightly", "--reason", "until the night A is moved to")
	rows, err := rosters.All(ctx, first.Name)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(rows), 4)
	night1, err := store.Night(ctx, first.Name)
	require.NoError(t, err)
	state := func(key string) contract.MailboxState {
		var st contract.MailboxState
		v, err := c.QueryWorkflow(ctx, contract.MailboxWorkflowID(key), "", contract.QueryState)
		if err == nil {
			_ = v.Get(&st)
		}
		return st
	}
	// stageOf waits for one of the night's mailboxes (not in skip) to be
	// at stage, and returns its row.
	stageOf := func(stage contract.Stage, within time.Duration, skip ...string) (row int) {
		t.Helper()
		require.Eventually(t, func() bool {
			for i, r := range rows {
				if !slices.Contains(skip, r.Key) && state(r.Key).Stage == stage {
					row = i
					return true
				}
			}
			return false
		}, within, 50*time.Millisecond, "no mailbox of %s at %s", first.Name, stage)
		return row
	}

	// A: told its T-14, moved to a later night's T (on the schedule's
	// grid: each night's T is its firing, on a multiple of 6 s, plus 12 s).
	a := rows[stageOf(contract.StageWaitingT1, 10*time.Second)]
	before := state(a.Key)
	t1 := before.MigrateAt
	to := t1.Add(8 * 6 * time.Second)
	firstRun, err := c.DescribeWorkflowExecution(ctx, contract.MailboxWorkflowID(a.Key), "")
	require.NoError(t, err)
	out := starter("mailbox", "reschedule", "--address", a.Address, "--to", to.Format(time.RFC3339),
		"--reason", "on leave that night", "--by", "e2e")
	assert.Contains(t, out, fmt.Sprintf("mailbox %s moved from %s to %s; its user is sent the new date",
		a.Key, t1.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339)))

	// D, another told its T-14, moved to the same night with wave remove.
	d := rows[stageOf(contract.StageWaitingT1, 5*time.Second, a.Key)]
	out = starter("wave", "remove", "--wave", first.Name, "--mailboxes", writeCSV(t, "d.csv", "address\n"+d.Address+"\n"),
		"--to", to.Format(time.RFC3339), "--reason", "the same ward")
	assert.Contains(t, out, "moved 1 of wave "+first.Name+" to "+to.UTC().Format(time.RFC3339)+" (1 told the new date), refused 0")

	out = starter("mailbox", "status", "--address", a.Address)
	assert.Contains(t, out, "moved     from "+timeText(t1)+" to "+timeText(to)+" by e2e (on leave that night)")

	// B: inside its T-1 window, refused with the reason.
	b := rows[stageOf(contract.StageWaitingStart, 15*time.Second, a.Key, d.Key)]
	out, errOut, code := run("mailbox", "reschedule", "--address", b.Address, "--to", to.Format(time.RFC3339), "--reason", "too late")
	assert.NotZero(t, code, "refused: %s", out)
	assert.Contains(t, errOut, "cannot be moved inside its T-1 window: it began at "+t1.Add(-6*time.Second).UTC().Format("2006-01-02 15:04 MST"))

	// C: its copy started, refused through wave remove, with the reason
	// in the summary and the CSV. C is the night's largest left, paused
	// (from here, at once) while it copies, so it holds before its next
	// pass until the refusal is seen.
	var cc = rows[0]
	var largest int64 = -1
	for _, r := range rows {
		if p, ok := est.Profile(r.Address); ok && !slices.Contains([]string{a.Key, b.Key, d.Key}, r.Key) && p.Bytes > largest {
			cc, largest = r, p.Bytes
		}
	}
	require.Eventually(t, func() bool { return state(cc.Key).Stage == contract.StageCopying }, 20*time.Second, 10*time.Millisecond,
		"mailbox C never copied")
	require.NoError(t, c.SignalWorkflow(ctx, contract.MailboxWorkflowID(cc.Key), "", contract.SignalPause, contract.PauseRequest{Reason: "e2e"}))
	require.Eventually(t, func() bool { return state(cc.Key).Stage == contract.StagePaused }, 20*time.Second, 50*time.Millisecond,
		"mailbox C (%d bytes) was not held after its first pass: %s", largest, state(cc.Key).Stage)
	list := writeCSV(t, "remove.csv", "address\n"+cc.Address+"\n")
	refusals := filepath.Join(e.dir, "refusals.csv")
	out, errOut, code = run("wave", "remove", "--wave", first.Name, "--mailboxes", list, "--to", to.Format(time.RFC3339),
		"--reason", "too late", "--csv", refusals)
	assert.NotZero(t, code, "refused: %s", out)
	assert.Contains(t, out, "refused CopyStarted: 1")
	assert.Contains(t, errOut, "1 of 1 mailboxes refused")
	f, err := os.Open(refusals)
	require.NoError(t, err)
	recs, err := csv.NewReader(f).ReadAll()
	f.Close()
	require.NoError(t, err)
	require.Len(t, recs, 2)
	assert.Equal(t, []string{cc.Address, cc.Key, contract.ErrTypeRescheduleCopyStarted}, recs[1][:3])
	assert.Contains(t, recs[1][3], "its copy has started")
	require.NoError(t, c.SignalWorkflow(ctx, contract.MailboxWorkflowID(cc.Key), "", contract.SignalResume, contract.ResumeRequest{}))

	// A left its first night in the estate (deferred there, back in the
	// pool, kept for its new date); the schedule is resumed within the
	// firing before A's night, whose night takes it first.
	require.Eventually(t, func() bool {
		n, err := store.Night(ctx, first.Name)
		if err != nil {
			return false
		}
		for _, m := range n.Mailboxes {
			if m.Key == a.Key {
				return m.Outcome == estate.Deferred
			}
		}
		return false
	}, 60*time.Second, 200*time.Millisecond, "A never deferred on its first night in the estate")
	firing := to.Add(-12 * time.Second)
	require.Greater(t, time.Until(firing), 4*time.Second, "A's night is too near")
	time.Sleep(time.Until(firing.Add(-3 * time.Second)))
	starter("programme", "resume", "nightly")
	newWave := contract.NightWaveID("nightly", to)
	nightResult := func(wave string) (contract.NightResult, bool) {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: "WorkflowType = '" + contract.NightWorkflowName + "' AND ExecutionStatus = 'Completed'"})
		require.NoError(t, err)
		for _, e := range resp.GetExecutions() {
			var res contract.NightResult
			if c.GetWorkflow(ctx, e.GetExecution().GetWorkflowId(), "").Get(ctx, &res) == nil && res.WaveID == wave {
				return res, true
			}
		}
		return contract.NightResult{}, false
	}
	var newNight contract.NightResult
	require.Eventually(t, func() (ok bool) {
		newNight, ok = nightResult(newWave)
		return ok
	}, 90*time.Second, time.Second, "A's night never ended")
	starter("programme", "pause", "nightly", "--reason", "the test has seen enough")

	// The first night: A deferred in its wave (by its reason) and in the
	// estate.
	res1, ok := nightResult(first.Name)
	require.True(t, ok, "the first night ended")
	assert.Equal(t, 2, res1.Wave.Deferred, "A and D deferred in their first wave")
	assert.Equal(t, []contract.ReasonCount{{Reason: contract.ErrTypeRescheduled, Count: 2}}, res1.Wave.DeferredBy)
	assert.Equal(t, 2, res1.Deferred)
	assert.Equal(t, len(night1.Mailboxes)-2, res1.Migrated, "the others migrated, B and C among them")

	// Their corrected notices, with the new date, in the outbox.
	for _, m := range []string{a.Key, d.Key} {
		eml, err := os.ReadFile(filepath.Join(outboxDir, m+"-rescheduled.eml"))
		require.NoError(t, err)
		assert.Contains(t, string(eml), contract.RescheduledMessageID(m, to))
		assert.Contains(t, string(eml), to.UTC().Format("Monday 2 January 2006 at 15:04 MST"))
		_, err = os.Stat(filepath.Join(outboxDir, m+"-t14.eml"))
		assert.NoError(t, err, "its first T-14 went out")
	}

	// The night of their new date took them first and migrated them.
	assert.Equal(t, to.UTC(), newNight.MigrateAt.UTC())
	n2, err := store.Night(ctx, newWave)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(n2.Mailboxes), 2)
	assert.Equal(t, slices.Sorted(slices.Values([]string{a.Key, d.Key})), keysOf(n2.Mailboxes[:2]), "the reserved first")
	for _, m := range n2.Mailboxes[:2] {
		assert.Equal(t, estate.Migrated, m.Outcome)
		assert.True(t, m.ReservedFor.IsZero(), "the reservation cleared")
	}
	last := state(a.Key)
	assert.Equal(t, newWave, last.WaveID)
	assert.Equal(t, contract.StageMigrated, last.Stage)
	assert.Equal(t, to.UTC(), last.MigrateAt.UTC())
	// Its new night told it its T-14 for the new date in a notice of its
	// own (the advance notices' IDs carry their date): a user whose move
	// landed elsewhere would not be left with the correction's date.
	for _, m := range []string{a.Key, d.Key} {
		eml, err := os.ReadFile(filepath.Join(outboxDir, m+"-t14.eml"))
		require.NoError(t, err)
		assert.Contains(t, string(eml), contract.AdvanceNoticeMessageID(m, contract.NoticeT14, to))
	}

	if *recordHistories != "" {
		recordRun(t, c, contract.MailboxWorkflowID(a.Key), firstRun.GetWorkflowExecutionInfo().GetExecution().GetRunId(),
			filepath.Join(*recordHistories, "mailbox_rescheduled.json"))
	}
}

// recordRun writes one run's history, as the Temporal CLI would.
func recordRun(t *testing.T, c client.Client, id, runID, path string) {
	ctx := context.Background()
	var events []*historypb.HistoryEvent
	it := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		events = append(events, ev)
	}
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(&historypb.History{Events: events})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o644))
	t.Logf("recorded %d events into %s", len(events), path)
}
