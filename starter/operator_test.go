package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"mailwave/contract"
	"mailwave/contract/searchattr"
	"mailwave/starter/printer"
	"mailwave/starter/report"
	"mailwave/testkit"
)

// The operator views are tested against stand-ins for the mailbox and wave
// workflows: registered under the real workflow types on a test task
// queue, they publish search attributes and memos exactly as the contract
// says, and nothing else.
const (
	fakeQueue     = "starter-test-fakes"
	fakeWaveQueue = "starter-test-wave"
	signalFinish  = "finish"
	alwaysFails   = "AlwaysFails"
)

// fakeMailbox is what a stand-in mailbox publishes.
type fakeMailbox struct {
	Key, Org, Wave string
	Stage          contract.Stage
	StageSince     time.Time
	Paused         bool
	ErrorType      string
	// Summary, when set, is published in the memo and the workflow ends.
	Summary *contract.MailboxSummary
	// FailActivity runs an activity that always fails, retried every
	// half second.
	FailActivity bool
}

func fakeMailboxWorkflow(ctx workflow.Context, in fakeMailbox) error {
	updates := []temporal.SearchAttributeUpdate{
		searchattr.Stage.ValueSet(string(in.Stage)), searchattr.StageSince.ValueSet(in.StageSince),
		searchattr.Org.ValueSet(in.Org), searchattr.Wave.ValueSet(in.Wave),
	}
	if in.Paused {
		updates = append(updates, searchattr.Paused.ValueSet(true))
	}
	if in.ErrorType != "" {
		updates = append(updates, searchattr.ErrorType.ValueSet(in.ErrorType))
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
		return err
	}
	if in.Summary != nil {
		return workflow.UpsertMemo(ctx, map[string]any{contract.MemoSummary: *in.Summary})
	}
	if in.FailActivity {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 10 * time.Second,
			RetryPolicy: &temporal.RetryPolicy{InitialInterval: 500 * time.Millisecond, BackoffCoefficient: 1,
				MaximumInterval: 500 * time.Millisecond, MaximumAttempts: 10_000},
		})
		return workflow.ExecuteActivity(ctx, alwaysFails).Get(ctx, nil)
	}
	workflow.GetSignalChannel(ctx, signalFinish).Receive(ctx, nil)
	return nil
}

func alwaysFailsActivity(context.Context) error {
	return temporal.NewApplicationError("the target refused the batch, back off", contract.ErrTypeThrottled)
}

// fakeWaveWorkflow answers the progress query with p and publishes it in
// its memo, as the wave does, until told to finish.
func fakeWaveWorkflow(ctx workflow.Context, p contract.WaveProgress) (contract.WaveResult, error) {
	if err := workflow.SetQueryHandler(ctx, contract.QueryProgress, func() (contract.WaveProgress, error) { return p, nil }); err != nil {
		return contract.WaveResult{}, err
	}
	published := p
	published.PublishedAt = workflow.Now(ctx)
	if err := workflow.UpsertMemo(ctx, map[string]any{contract.MemoProgress: published}); err != nil {
		return contract.WaveResult{}, err
	}
	workflow.GetSignalChannel(ctx, signalFinish).Receive(ctx, nil)
	return contract.WaveResult{WaveID: p.WaveID, Total: p.Total, Migrated: p.Total, StartedAt: p.StartedAt,
		FinishedAt: workflow.Now(ctx), Duration: workflow.Now(ctx).Sub(p.StartedAt), Runs: 1}, nil
}

// runStarterSplit runs the starter as a process and returns its standard
// output and error apart, and its exit code.
func runStarterSplit(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := starterCommand(args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return stdout.String(), stderr.String(), exit.ExitCode()
	}
	require.NoError(t, err)
	return stdout.String(), stderr.String(), 0
}

// starterCommand is the starter run as runStarterSplit runs it.
func starterCommand(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "MAILWAVE_RUN_STARTER=1", "MAILWAVE_KEY_SECRET="+testSecret)
	cmd.Env = append(cmd.Env, testkit.TestKeysEnv()...)
	return cmd
}

// operatorEstate is the stand-ins of wave w1 (and one of w2), as started.
type operatorEstate struct {
	mailboxes []fakeMailbox
	progress  contract.WaveProgress
}

func summary(key, org, wave string, outcome contract.Outcome, step contract.Step, errType string, grade contract.Consistency,
	items, bad, bytes int64, took time.Duration) *contract.MailboxSummary {
	start := time.Date(2026, 12, 5, 20, 0, 0, 0, time.UTC)
	notices := []contract.NoticeKind{contract.NoticeT14, contract.NoticeT1}
	if outcome == contract.OutcomeMigrated {
		notices = append(notices, contract.NoticeSuccess)
	}
	return &contract.MailboxSummary{Key: key, Org: org, WaveID: wave, Outcome: outcome, FailedStep: step, ErrorType: errType,
		SourceItems: items, TargetItems: items - bad, Bytes: bytes, BadItems: bad, Consistency: grade, NoticesSent: notices,
		StartedAt: start, FinishedAt: start.Add(took)}
}

func newOperatorEstate(now time.Time) operatorEstate {
	nf, bc := contract.ErrTypeMailboxNotFound, contract.ErrTypeBadCredentials
	done := func(key, org, wave string, s *contract.MailboxSummary) fakeMailbox {
		stage := contract.StageMigrated
		if s.Outcome == contract.OutcomeNeedsSupport {
			stage = contract.StageNeedsSupport
		}
		return fakeMailbox{Key: key, Org: org, Wave: wave, Stage: stage, StageSince: s.FinishedAt, ErrorType: s.ErrorType, Summary: s}
	}
	return operatorEstate{
		mailboxes: []fakeMailbox{
			done("a-migrated-1", "trust-a", "w1", summary("a-migrated-1", "trust-a", "w1", contract.OutcomeMigrated, "", "",
				contract.ConsistencyPerfect, 120, 0, 3_000_000, 40*time.Minute)),
			done("a-migrated-2", "trust-a", "w1", summary("a-migrated-2", "trust-a", "w1", contract.OutcomeMigrated, "", "",
				contract.ConsistencyGood, 300, 2, 9_000_000, 95*time.Minute)),
			done("a-missing", "trust-a", "w1", summary("a-missing", "trust-a", "w1", contract.OutcomeNeedsSupport,
				contract.StepCopyBulk, nf, contract.ConsistencyPoor, 0, 0, 0, 20*time.Minute)),
			done("b-missing", "trust-b", "w1", summary("b-missing", "trust-b", "w1", contract.OutcomeNeedsSupport,
				contract.StepCopyBulk, nf, contract.ConsistencyPoor, 0, 0, 0, 21*time.Minute)),
			done("b-badcreds", "trust-b", "w1", summary("b-badcreds", "trust-b", "w1", contract.OutcomeNeedsSupport,
				contract.StepCopyBulk, bc, contract.ConsistencyPoor, 0, 0, 0, 22*time.Minute)),
			{Key: "b-copying-long", Org: "trust-b", Wave: "w1", Stage: contract.StageCopying, StageSince: now.Add(-3 * time.Hour)},
			{Key: "b-failing", Org: "trust-b", Wave: "w1", Stage: contract.StageCopying, StageSince: now.Add(-time.Minute), FailActivity: true},
			{Key: "a-paused", Org: "trust-a", Wave: "w1", Stage: contract.StageWaitingStart, StageSince: now.Add(-time.Minute), Paused: true},
			{Key: "a-waiting", Org: "trust-a", Wave: "w1", Stage: contract.StageWaitingT1, StageSince: now.Add(-48 * time.Hour)},
			done("c-missing", "trust-c", "w2", summary("c-missing", "trust-c", "w2", contract.OutcomeNeedsSupport,
				contract.StepCopyBulk, nf, contract.ConsistencyPoor, 0, 0, 0, 5*time.Minute)),
		},
		progress: contract.WaveProgress{WaveID: "w1", Total: 9, Started: 9, Waiting: 2, Active: 2, Migrated: 2, NeedsSupport: 3,
			Copied: contract.CopyStats{Items: 418, Bytes: 12_000_000}, Cap: 5, Runs: 1, StartedAt: now.Add(-4 * time.Hour)},
	}
}

// start starts the stand-ins and waits until the server lists what they
// published and the failing activity is past its third attempt.
func (e operatorEstate) start(t *testing.T, c client.Client) (waveWorker worker.Worker) {
	t.Helper()
	ctx := context.Background()
	w := worker.New(c, fakeQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(fakeMailboxWorkflow, workflow.RegisterOptions{Name: contract.MailboxWorkflowName})
	w.RegisterActivityWithOptions(alwaysFailsActivity, activity.RegisterOptions{Name: alwaysFails})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	waveWorker = worker.New(c, fakeWaveQueue, worker.Options{})
	waveWorker.RegisterWorkflowWithOptions(fakeWaveWorkflow, workflow.RegisterOptions{Name: contract.WaveWorkflowName})
	require.NoError(t, waveWorker.Start())

	for _, m := range e.mailboxes {
		_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.MailboxWorkflowID(m.Key), TaskQueue: fakeQueue},
			contract.MailboxWorkflowName, m)
		require.NoError(t, err)
	}
	_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.WaveWorkflowID("w1"), TaskQueue: fakeWaveQueue},
		contract.WaveWorkflowName, e.progress)
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: "WorkflowType = 'MailboxMigration' AND MailwaveOrg IS NOT NULL"})
		if err != nil || len(resp.GetExecutions()) != len(e.mailboxes) {
			return false
		}
		closed := 0
		for _, ex := range resp.GetExecutions() {
			if ex.GetCloseTime() != nil && ex.GetMemo().GetFields()[contract.MemoSummary] != nil {
				closed++
			}
		}
		return closed == 6
	}, time.Minute, 200*time.Millisecond, "the stand-ins publish")
	require.Eventually(t, func() bool {
		desc, err := c.DescribeWorkflowExecution(ctx, contract.MailboxWorkflowID("b-failing"), "")
		return err == nil && len(desc.GetPendingActivities()) == 1 && desc.GetPendingActivities()[0].GetAttempt() > 4
	}, time.Minute, 200*time.Millisecond, "the failing activity is retried")
	return waveWorker
}

// TestOperatorViewsOnARealServer lists, finds the stuck, reports and shows
// the status of stand-in mailboxes and a wave on a real dev server,
// through the starter as an operator runs it.
func TestOperatorViewsOnARealServer(t *testing.T) {
	srv := testkit.NewDevServer(t, "")
	now := time.Now().UTC()
	estate := newOperatorEstate(now)
	waveWorker := estate.start(t, srv.Client())
	server := []string{"--temporal-address", srv.FrontendHostPort()}
	starter := func(args ...string) (string, string, int) { return runStarterSplit(t, append(args, server...)...) }
	keysOf := func(rows []map[string]any) []string {
		var keys []string
		for _, r := range rows {
			keys = append(keys, r["key"].(string))
		}
		slices.Sort(keys)
		return keys
	}

	t.Run("mailbox list by error type", func(t *testing.T) {
		out, errOut, code := starter("mailbox", "list", "--error-type", "MailboxNotFound", "--output", "json")
		require.Zero(t, code, errOut)
		var rows []map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &rows), out)
		assert.Equal(t, []string{"a-missing", "b-missing", "c-missing"}, keysOf(rows))
		for _, r := range rows {
			assert.Equal(t, "MailboxNotFound", r["error_type"])
			assert.Equal(t, "needs_support", r["stage"])
			assert.Equal(t, "completed", r["status"])
		}

		out, errOut, code = starter("mailbox", "list", "--error-type", "MailboxNotFound", "--wave", "w1", "--org", "trust-b", "--output", "json")
		require.Zero(t, code, errOut)
		require.NoError(t, json.Unmarshal([]byte(out), &rows), out)
		assert.Equal(t, []string{"b-missing"}, keysOf(rows))
	})

	t.Run("mailbox list by stage, time in stage and pause", func(t *testing.T) {
		var rows []map[string]any
		out, errOut, code := starter("mailbox", "list", "--wave", "w1", "--stage", "copying", "--older-than", "2h", "--output", "json")
		require.Zero(t, code, errOut)
		require.NoError(t, json.Unmarshal([]byte(out), &rows), out)
		assert.Equal(t, []string{"b-copying-long"}, keysOf(rows))

		out, errOut, code = starter("mailbox", "list", "--paused", "--output", "json")
		require.Zero(t, code, errOut)
		require.NoError(t, json.Unmarshal([]byte(out), &rows), out)
		assert.Equal(t, []string{"a-paused"}, keysOf(rows))
		assert.Equal(t, true, rows[0]["paused"])

		out, errOut, code = starter("mailbox", "list", "--org", "St John's")
		assert.NotZero(t, code)
		assert.Empty(t, out)
		assert.Contains(t, errOut, `--org "St John's": only letters, digits, spaces`)
		_, errOut, code = starter("mailbox", "list", "--stage", "copying' OR 1=1")
		assert.NotZero(t, code)
		assert.Contains(t, errOut, "not a stage")
	})

	t.Run("text json and jsonl carry the same fields", func(t *testing.T) {
		jsonOut, errOut, code := starter("mailbox", "list", "--wave", "w1", "--output", "json")
		require.Zero(t, code, errOut)
		var rows []map[string]any
		require.NoError(t, json.Unmarshal([]byte(jsonOut), &rows))
		require.Len(t, rows, 9)
		jsonlOut, errOut, code := starter("mailbox", "list", "--wave", "w1", "--output", "jsonl")
		require.Zero(t, code, errOut)
		lines := strings.Split(strings.TrimSpace(jsonlOut), "\n")
		require.Len(t, lines, 9)
		byKey := map[string]map[string]any{}
		for _, r := range rows {
			assert.ElementsMatch(t, printer.Columns(mailboxRow{}), mapKeys(r))
			byKey[r["key"].(string)] = r
		}
		for _, line := range lines {
			var r map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &r), line)
			want := byKey[r["key"].(string)]
			delete(want, "age_seconds") // taken a moment apart
			delete(want, "attempt")     // the failing activity goes on
			delete(want, "next_retry")
			delete(r, "age_seconds")
			delete(r, "attempt")
			delete(r, "next_retry")
			assert.Equal(t, want, r)
		}
		text, errOut, code := starter("mailbox", "list", "--wave", "w1")
		require.Zero(t, code, errOut)
		tl := strings.Split(strings.TrimRight(text, "\n"), "\n")
		require.Len(t, tl, 10, text)
		assert.Equal(t, strings.Fields(strings.Join(printer.Titles(mailboxRow{}), " ")), strings.Fields(tl[0]))
		assert.Contains(t, text, "b-failing")

		text, errOut, code = starter("mailbox", "list", "--wave", "w1", "--limit", "4")
		require.Zero(t, code, errOut)
		assert.Len(t, strings.Split(strings.TrimRight(text, "\n"), "\n"), 6)
		assert.Contains(t, text, "... and 5 more (raise --limit to see them)")
		jsonOut, errOut, code = starter("mailbox", "list", "--wave", "w1", "--limit", "4", "--output", "json")
		require.Zero(t, code, errOut)
		require.NoError(t, json.Unmarshal([]byte(jsonOut), &rows))
		assert.Len(t, rows, 4)
		assert.Contains(t, errOut, "... and 5 more", "beside the JSON, not in it")
	})

	t.Run("wave stuck lists exactly the held back", func(t *testing.T) {
		out, errOut, code := starter("wave", "stuck", "--wave", "w1", "--output", "json")
		require.Zero(t, code, errOut)
		var rows []map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &rows), out)
		assert.Equal(t, []string{"a-paused", "b-copying-long", "b-failing"}, keysOf(rows))
		reasons := map[string][]any{}
		for _, r := range rows {
			reasons[r["key"].(string)] = r["reasons"].([]any)
			if r["key"] == "b-failing" {
				assert.Equal(t, alwaysFails, r["activity"])
				assert.Greater(t, r["attempt"], float64(3))
				assert.Equal(t, "Throttled: the target refused the batch, back off", r["last_failure"], "decoded through the codec")
				// next_retry is there while the activity waits to retry,
				// not while an attempt runs.
				if nr, ok := r["next_retry"].(string); ok {
					_, err := time.Parse(time.RFC3339Nano, nr)
					assert.NoError(t, err, "next_retry %q", nr)
				}
			}
		}
		assert.Equal(t, []any{"paused"}, reasons["a-paused"])
		require.Len(t, reasons["b-copying-long"], 1)
		assert.Regexp(t, `^copying for 3h0m\d+s \(over 2h0m0s\)$`, reasons["b-copying-long"][0])
		require.Len(t, reasons["b-failing"], 1)
		assert.Regexp(t, `^AlwaysFails on attempt \d+ \(over 3\)$`, reasons["b-failing"][0])

		out, errOut, code = starter("wave", "stuck", "--wave", "w1", "--older-than", "4h", "--attempts", "100000")
		require.Zero(t, code, errOut)
		assert.Contains(t, out, "a-paused")
		assert.NotContains(t, out, "b-copying-long")
		assert.NotContains(t, out, "b-failing")

		_, errOut, code = starter("wave", "stuck", "--wave", "nowhere")
		assert.NotZero(t, code)
		assert.Contains(t, errOut, `no wave "nowhere"`)
	})

	t.Run("report equals what the mailboxes published", func(t *testing.T) {
		csvPath := filepath.Join(t.TempDir(), "w1.csv")
		out, errOut, code := starter("wave", "report", "--wave", "w1", "--csv", csvPath, "--output", "json")
		require.Zero(t, code, errOut)
		assert.Contains(t, errOut, "9 mailboxes written to "+csvPath)
		f, err := os.Open(csvPath)
		require.NoError(t, err)
		recs, err := csv.NewReader(f).ReadAll()
		require.NoError(t, f.Close())
		require.NoError(t, err)
		require.Equal(t, report.CSVHeader, recs[0])
		want := map[string][]string{}
		for _, m := range estate.mailboxes {
			if m.Wave != "w1" {
				continue
			}
			if m.Summary != nil {
				want[m.Key] = report.FromSummary(*m.Summary).CSVRecord()
			} else {
				want[m.Key] = report.Mailbox{Key: m.Key, Org: m.Org, Wave: m.Wave, Outcome: report.OutcomeRemaining, Stage: string(m.Stage)}.CSVRecord()
			}
		}
		got := map[string][]string{}
		for _, rec := range recs[1:] {
			got[rec[0]] = rec
		}
		assert.Equal(t, want, got)
		assert.Equal(t, []string{"a-migrated-2", "trust-a", "w1", "migrated", "", "", "", "300", "298", "9000000", "2", "0", "good", "5700",
			"t14 t1 success", "2026-12-05T20:00:00Z", "2026-12-05T21:35:00Z"}, got["a-migrated-2"])

		var sum report.Summary
		require.NoError(t, json.Unmarshal([]byte(out), &sum), out)
		assert.Equal(t, "wave w1", sum.Scope)
		assert.Equal(t, []report.OrgSummary{
			{Org: "trust-a", Mailboxes: 5, Migrated: 2, NeedsSupport: 1, SupportShare: printer.Share(1.0 / 3), Budget: "over",
				Remaining: 2, Bytes: 12_000_000, Perfect: 1, Good: 1, Poor: 1},
			{Org: "trust-b", Mailboxes: 4, NeedsSupport: 2, SupportShare: 1, Budget: "over", Remaining: 2, Poor: 2},
		}, sum.Organisations)
		assert.Equal(t, 9, sum.Total.Mailboxes)
		assert.Equal(t, []report.Slow{
			{Key: "a-migrated-2", Org: "trust-a", Outcome: "migrated", Duration: 5700},
			{Key: "a-migrated-1", Org: "trust-a", Outcome: "migrated", Duration: 2400},
			{Key: "b-badcreds", Org: "trust-b", Outcome: "needs_support", Duration: 1320},
			{Key: "b-missing", Org: "trust-b", Outcome: "needs_support", Duration: 1260},
			{Key: "a-missing", Org: "trust-a", Outcome: "needs_support", Duration: 1200},
		}, sum.Slowest)

		text, errOut, code := starter("wave", "report", "--wave", "w1", "--support-budget", "0.5")
		require.Zero(t, code, errOut)
		assert.Contains(t, text, "wave w1: 9 mailboxes; support budget 50.00% of those finished")
		assert.Regexp(t, `trust-a +5 +2 +1 +33.33% +within`, text)
		assert.Regexp(t, `trust-b +4 +0 +2 +100.00% +over`, text)

		line, errOut, code := starter("report", "--output", "jsonl")
		require.Zero(t, code, errOut)
		assert.Equal(t, 1, strings.Count(line, "\n"))
		require.NoError(t, json.Unmarshal([]byte(line), &sum))
		assert.Equal(t, "programme", sum.Scope)
		assert.Equal(t, 10, sum.Total.Mailboxes)
		assert.Equal(t, 4, sum.Total.Remaining)
		assert.Equal(t, 4, sum.Total.NeedsSupport)
		assert.Equal(t, "trust-c", sum.Organisations[2].Org)
		assert.Equal(t, 1, sum.Organisations[2].NeedsSupport)
	})

	t.Run("wave status --watch prints until the wave ends", func(t *testing.T) {
		ctx := context.Background()
		id := contract.WaveWorkflowID("w-watch")
		p := contract.WaveProgress{WaveID: "w-watch", Total: 4, Started: 4, Waiting: 4, Cap: 2, Runs: 1, StartedAt: now}
		_, err := srv.Client().ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: fakeWaveQueue}, contract.WaveWorkflowName, p)
		require.NoError(t, err)
		// The wave finishes once the watch has printed two lines of it
		// running, however long the starter took to start.
		cmd := starterCommand(append([]string{"wave", "status", "--wave", "w-watch", "--watch", "--every", "300ms", "--output", "jsonl"}, server...)...)
		var errOut bytes.Buffer
		cmd.Stderr = &errOut
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		hung := time.AfterFunc(time.Minute, func() { _ = cmd.Process.Kill() })
		defer hung.Stop()
		t.Cleanup(func() { // a failed require below leaves no watch running
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
		var lines []string
		for sc := bufio.NewScanner(stdout); sc.Scan(); {
			lines = append(lines, sc.Text())
			if len(lines) == 2 {
				require.NoError(t, srv.Client().SignalWorkflow(ctx, id, "", signalFinish, nil))
			}
		}
		require.NoError(t, cmd.Wait(), errOut.String())
		out := strings.Join(lines, "\n")
		require.GreaterOrEqual(t, len(lines), 3, out)
		for i, line := range lines {
			var st map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &st), line)
			if i < len(lines)-1 {
				assert.Equal(t, "live", st["source"])
				assert.Equal(t, "running", st["state"])
				assert.Equal(t, float64(4), st["waiting"])
				continue
			}
			assert.Equal(t, "result", st["source"])
			assert.Equal(t, "finished", st["state"])
			assert.Equal(t, float64(4), st["migrated"])
		}
	})

	t.Run("wave status live then from the memo", func(t *testing.T) {
		out, errOut, code := starter("wave", "status", "--wave", "w1", "--output", "json")
		require.Zero(t, code, errOut)
		var st map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &st), out)
		assert.Equal(t, "live", st["source"])
		assert.Nil(t, st["published_at"])
		assert.Equal(t, float64(3), st["needs_support"])

		// No worker polls the wave's queue now: its query goes unanswered.
		waveWorker.Stop()
		start := time.Now()
		out, errOut, code = starter("wave", "status", "--wave", "w1", "--query-timeout", "1s", "--output", "json")
		require.Zero(t, code, errOut)
		assert.Less(t, time.Since(start), 20*time.Second)
		require.NoError(t, json.Unmarshal([]byte(out), &st), out)
		assert.Equal(t, "published", st["source"])
		published, err := time.Parse(time.RFC3339Nano, st["published_at"].(string))
		require.NoError(t, err)
		assert.WithinDuration(t, time.Now(), published, time.Minute)
		assert.GreaterOrEqual(t, st["published_age_seconds"], float64(0))
		for k, v := range map[string]float64{"total": 9, "migrated": 2, "needs_support": 3, "waiting": 2, "active": 2, "cap": 5, "copied_bytes": 12e6} {
			assert.Equal(t, v, st[k], k)
		}
		assert.ElementsMatch(t, printer.Columns(waveStatus{}), mapKeys(st))

		text, errOut, code := starter("wave", "status", "--wave", "w1", "--query-timeout", "1s")
		require.Zero(t, code, errOut)
		assert.Regexp(t, `as of +published \d+ (s|min \d+ s) ago \(\d{4}-\d\d-\d\dT[0-9:]+Z\): the wave did not answer in time`, text)
		assert.Contains(t, text, "needs support 3")

		jsonl, errOut, code := starter("wave", "status", "--wave", "w1", "--query-timeout", "0", "--output", "jsonl")
		require.Zero(t, code, errOut)
		assert.Equal(t, 1, strings.Count(jsonl, "\n"))
		require.NoError(t, json.Unmarshal([]byte(jsonl), &st))
		assert.Equal(t, "published", st["source"])
	})
}

func mapKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
