package e2e_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
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
	"mailwave/contract/searchattr"
	"mailwave/identity"
	"mailwave/mail/port"
	"mailwave/mail/sim"
	"mailwave/testkit"
	"mailwave/worker/config"
	"mailwave/worker/workerapp"
)

// -record-histories DIR writes real histories for the replay tests.
var recordDir = flag.String("record-histories", "", "write recorded workflow histories (JSON) into this directory")

// TestMailboxesEndToEnd runs 50 mailboxes through a real worker on a real
// dev server against the simulated estate, with transient and throttling
// faults injected, and checks the outcome through the verifier and the
// outbox: everything cut over, nothing lost, nothing twice, one file per
// notice.
func TestMailboxesEndToEnd(t *testing.T) {
	const n = 50
	dir := t.TempDir()
	estateDir, outboxDir := filepath.Join(dir, "estate"), filepath.Join(dir, "outbox")
	_, err := sim.Generate(estateDir, sim.GenerateOptions{Seed: 7, Mailboxes: n})
	require.NoError(t, err)

	srv := testkit.NewDevServer(t, "")
	c := srv.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()

	cfg := workerapp.Config{
		TaskQueue: contract.TaskQueue,
		Notifier:  "outbox", OutboxDir: outboxDir,
		Estate: "sim",
		Sim: config.Sim{
			Dir: estateDir, TimeScale: 1e6, BytesPerSecond: 1 << 30,
			TransientRate: 0.02, ThrottleRate: 0.02, ThrottleRetryAfter: 300 * time.Millisecond,
		},
		MaxConcurrentActivities: 50, MaxConcurrentLocalActivities: 50, MaxConcurrentWorkflowTasks: 20,
		ShutdownTimeout: 5 * time.Second,
	}
	testkit.StartWorker(t, c, cfg)

	est, err := sim.Open(estateDir, sim.Options{})
	require.NoError(t, err)
	roster, err := est.Roster()
	require.NoError(t, err)
	require.Len(t, roster, n)
	keyer, err := identity.NewKeyer([]byte("integration-test-secret"))
	require.NoError(t, err)

	migrateAt := time.Now().Add(6 * time.Second)
	runs := make([]client.WorkflowRun, n)
	keys := make([]string, n)
	for i, e := range roster {
		keys[i], err = keyer.Key(e.Address)
		require.NoError(t, err)
		runs[i], err = c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: contract.MailboxWorkflowID(keys[i]), TaskQueue: contract.TaskQueue,
		}, contract.MailboxWorkflowName, contract.MailboxInput{
			Mailbox:   contract.MailboxRef{Key: keys[i], Address: e.Address, Org: e.Org, DisplayName: e.DisplayName},
			WaveID:    "it-wave",
			MigrateAt: migrateAt, NoticeLead: 4 * time.Second, ReminderLead: 2 * time.Second,
		})
		require.NoError(t, err)
	}
	// Hold the first mailbox a while at a step boundary, then let it go.
	require.NoError(t, c.SignalWorkflow(ctx, runs[0].GetID(), "", contract.SignalPause, contract.PauseRequest{Reason: "test"}))
	time.AfterFunc(8*time.Second, func() {
		assert.NoError(t, c.SignalWorkflow(ctx, runs[0].GetID(), "", contract.SignalResume, nil))
	})

	addresses := make([]string, n)
	for i, run := range runs {
		var res contract.MailboxResult
		if err := run.Get(ctx, &res); err != nil {
			t.Fatalf("mailbox %d did not finish: %v\n%s", i, err, describe(c, run.GetID()))
		}
		assert.Equal(t, contract.OutcomeMigrated, res.Outcome, "mailbox %d: %+v", i, res)
		assert.Greater(t, res.Copied.Items, int64(0), "mailbox %d copied nothing", i)
		addresses[i] = roster[i].Address
	}
	var first contract.MailboxResult
	require.NoError(t, runs[0].Get(ctx, &first))
	assert.False(t, first.FinishedAt.Before(migrateAt.Add(2*time.Second)), "the paused mailbox was held")

	rep, err := est.Verify(ctx, addresses)
	require.NoError(t, err)
	assert.Equal(t, n, rep.Totals.CutOver, rep.Summary())
	assert.Zero(t, rep.Totals.Lost, rep.Summary())
	assert.Zero(t, rep.Totals.Duplicated, rep.Summary())
	for _, row := range rep.Rows {
		assert.Equal(t, row.SourceItems, row.TargetItems, "mailbox %s", row.Key)
		assert.Zero(t, row.Duplicates, "mailbox %s", row.Key)
		assert.Equal(t, port.RouteTarget, row.Route, "mailbox %s", row.Key)
		assert.Equal(t, 1, row.Cutovers, "mailbox %s", row.Key)
	}

	files, err := filepath.Glob(filepath.Join(outboxDir, "*.eml"))
	require.NoError(t, err)
	assert.Len(t, files, 3*n, "exactly one file per notice kind per mailbox")
	for _, key := range keys {
		for _, kind := range contract.NoticeKinds {
			assert.FileExists(t, filepath.Join(outboxDir, fmt.Sprintf("%s-%s.eml", key, kind)))
		}
	}

	// No address reaches a workflow ID or a search attribute.
	list, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Query: fmt.Sprintf("%s = 'it-wave'", searchattr.Wave.GetName()), PageSize: 1000,
	})
	require.NoError(t, err)
	require.Len(t, list.GetExecutions(), n)
	for _, ex := range list.GetExecutions() {
		assert.NotContains(t, ex.GetExecution().GetWorkflowId(), "@")
		for name, p := range ex.GetSearchAttributes().GetIndexedFields() {
			assert.NotContains(t, string(p.GetData()), "@", "search attribute %s", name)
		}
		stage := ex.GetSearchAttributes().GetIndexedFields()[searchattr.Stage.GetName()]
		assert.Equal(t, `"migrated"`, string(stage.GetData()))
	}

	// A mailbox the source does not have ends in needs support, naming the
	// step, and is never cut over.
	ghostKey, err := keyer.Key("nobody@org999.nhs.example")
	require.NoError(t, err)
	ghost, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: contract.MailboxWorkflowID(ghostKey), TaskQueue: contract.TaskQueue,
	}, contract.MailboxWorkflowName, contract.MailboxInput{
		Mailbox:   contract.MailboxRef{Key: ghostKey, Address: "nobody@org999.nhs.example"},
		MigrateAt: time.Now().Add(2 * time.Second), NoticeLead: time.Second, ReminderLead: time.Second / 2,
	})
	require.NoError(t, err)
	var ghostRes contract.MailboxResult
	require.NoError(t, ghost.Get(ctx, &ghostRes))
	assert.Equal(t, contract.OutcomeNeedsSupport, ghostRes.Outcome)
	assert.Equal(t, contract.StepCopyBulk, ghostRes.FailedStep)
	assert.Equal(t, contract.ErrTypeMailboxNotFound, ghostRes.ErrorType)
	assert.NoFileExists(t, filepath.Join(outboxDir, ghostKey+"-success.eml"))

	if *recordDir != "" {
		recordHistory(t, c, runs[0].GetID(), filepath.Join(*recordDir, "mailbox_migrated_paused.json"))
		recordHistory(t, c, ghost.GetID(), filepath.Join(*recordDir, "mailbox_needs_support.json"))
	}
}

// describe tells where a workflow is stuck: its pending activities and the
// state its query reports.
func describe(c client.Client, id string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	desc, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return err.Error()
	}
	out := fmt.Sprintf("status %s, pending activities %v", desc.GetWorkflowExecutionInfo().GetStatus(), desc.GetPendingActivities())
	if v, err := c.QueryWorkflow(ctx, id, "", contract.QueryState); err == nil {
		var st contract.MailboxState
		if v.Get(&st) == nil {
			out += fmt.Sprintf("\nstate %+v", st)
		}
	}
	return out
}

// recordHistory writes a workflow's latest run's history.
func recordHistory(t *testing.T, c client.Client, id, path string) {
	t.Helper()
	recordRun(t, c, id, "", path)
}

// recordRun writes one run's history as the Temporal CLI would.
func recordRun(t *testing.T, c client.Client, id, runID, path string) {
	t.Helper()
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
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, b, 0o644))
	t.Logf("recorded %d events of %s into %s", len(events), id, path)
}
