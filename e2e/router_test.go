package e2e_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"mailwave/contract"
	"mailwave/testkit"
	"mailwave/worker/config"
	"mailwave/worker/workerapp"
)

// The routing host's worker alone cuts mailboxes over, on its task queue:
// while it is down, the mailboxes wait in stage cutover with their cutover
// scheduled on that queue; once it is up, they complete. The fleet's worker
// never cuts over.
func TestCutoverWaitsForTheRoutingHost(t *testing.T) {
	const queue = "mta-test"
	dir := t.TempDir()
	est := testkit.NewEstate(t, 17, 2)
	srv := testkit.NewDevServer(t, "")
	c := srv.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := workerapp.Config{
		TaskQueue: contract.TaskQueue, Notifier: "outbox", OutboxDir: filepath.Join(dir, "outbox"),
		Estate: "sim", Sim: config.Sim{Dir: est.Dir, Instant: true}, CutoverQueue: queue,
		WavesDir:                filepath.Join(dir, "waves"),
		MaxConcurrentActivities: 5, MaxConcurrentLocalActivities: 5, MaxConcurrentWorkflowTasks: 5, ShutdownTimeout: 2 * time.Second,
	}
	testkit.StartWorker(t, c, cfg)

	var runs []client.WorkflowRun
	for i, r := range est.Roster {
		ref := contract.MailboxRef{Key: "route-" + string(rune('a'+i)), Address: r.Address, Org: r.Org}
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.MailboxWorkflowID(ref.Key), TaskQueue: contract.TaskQueue},
			contract.MailboxWorkflowName, contract.MailboxInput{Mailbox: ref, MigrateAt: time.Now().Add(3 * time.Second),
				NoticeLead: 2 * time.Second, ReminderLead: time.Second})
		require.NoError(t, err)
		runs = append(runs, run)
	}
	for _, run := range runs {
		require.Eventually(t, func() bool {
			d, err := c.DescribeWorkflowExecution(ctx, run.GetID(), "")
			if err != nil {
				return false
			}
			for _, a := range d.PendingActivities {
				if a.ActivityType.GetName() == contract.ActivityCutover {
					return true
				}
			}
			return false
		}, time.Minute, 200*time.Millisecond, "the cutover is scheduled and waits")
	}
	time.Sleep(3 * time.Second) // the fleet's worker has every chance to take it
	for _, run := range runs {
		assert.Equal(t, contract.StageCutover, queryState(t, c, run.GetID()).Stage)
		d, err := c.DescribeWorkflowExecution(ctx, run.GetID(), "")
		require.NoError(t, err)
		require.Len(t, d.PendingActivities, 1)
		assert.Equal(t, int32(1), d.PendingActivities[0].Attempt, "not tried by the fleet's worker")
	}
	rep := est.VerifyAll(t, ctx)
	assert.Zero(t, rep.Totals.CutOver, "no cutover while the routing host is down")

	router := cfg
	router.RouteOnly, router.TaskQueue = true, queue
	testkit.StartWorker(t, c, router)
	for _, run := range runs {
		var res contract.MailboxResult
		require.NoError(t, run.Get(ctx, &res))
		assert.Equal(t, contract.OutcomeMigrated, res.Outcome, "%+v", res)
	}
	rep = est.VerifyAll(t, ctx)
	assert.Equal(t, len(runs), rep.Totals.CutOver)
	assert.Zero(t, rep.Totals.Lost)
	assert.Zero(t, rep.Totals.Duplicated)
	if *recordDir != "" {
		recordHistory(t, c, runs[0].GetID(), filepath.Join(*recordDir, "mailbox_cutover_on_routing_host.json"))
	}
}
