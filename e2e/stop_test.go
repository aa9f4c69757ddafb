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

// A worker asked to stop in the middle of a copy lets it checkpoint: the
// next worker resumes the pass from there (a second attempt, nothing found
// already copied, nothing lost or copied twice) instead of starting over.
func TestStoppedWorkerHandsItsCopyOn(t *testing.T) {
	dir := t.TempDir()
	est := testkit.NewEstate(t, 21, 1)

	srv := testkit.NewDevServer(t, "")
	c := srv.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := workerapp.Config{
		TaskQueue: contract.TaskQueue, Notifier: "outbox", OutboxDir: filepath.Join(dir, "outbox"), Estate: "sim",
		// Slow enough that the copy is mid-way when the worker stops.
		Sim:      config.Sim{Dir: est.Dir, TimeScale: 1, BytesPerSecond: 8 << 20},
		WavesDir: filepath.Join(dir, "waves"), ShutdownTimeout: 2 * time.Second,
		MaxConcurrentActivities: 5, MaxConcurrentLocalActivities: 5, MaxConcurrentWorkflowTasks: 5,
	}
	first, stopFirst := context.WithCancel(context.Background())
	firstDone := make(chan error, 1)
	go func() { firstDone <- workerapp.Run(first, cfg, c) }()

	ref := contract.MailboxRef{Key: "stop-1", Address: est.Roster[0].Address}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.MailboxWorkflowID(ref.Key), TaskQueue: contract.TaskQueue},
		contract.MailboxWorkflowName, contract.MailboxInput{Mailbox: ref, MigrateAt: time.Now().Add(2 * time.Second),
			NoticeLead: time.Second, ReminderLead: time.Second / 2})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return queryState(t, c, run.GetID()).Stage == contract.StageCopying }, time.Minute, 100*time.Millisecond)
	time.Sleep(7 * time.Second) // a batch in (about 38 MB of 131 MB, at 8 MB/s)
	stopFirst()
	require.NoError(t, <-firstDone)

	testkit.StartWorker(t, c, cfg)
	var res contract.MailboxResult
	require.NoError(t, run.Get(ctx, &res))
	assert.Equal(t, contract.OutcomeMigrated, res.Outcome, "%+v", res)
	st := queryState(t, c, run.GetID())
	assert.Equal(t, int32(2), st.Attempts[contract.StepCopyBulk], "the bulk pass went on in a second attempt")
	assert.Zero(t, res.Copied.Skipped, "it resumed from the checkpoint: nothing was found already copied")
	rep := est.VerifyAll(t, ctx)
	assert.Zero(t, rep.Totals.Lost)
	assert.Zero(t, rep.Totals.Duplicated)
	assert.Equal(t, 1, rep.Totals.CutOver)
}
