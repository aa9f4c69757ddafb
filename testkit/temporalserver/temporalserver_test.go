package temporalserver_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"mailwave/contract"
	"mailwave/testkit"
	"mailwave/testkit/postgres"
	"mailwave/testkit/temporalserver"
	"mailwave/worker/config"
	"mailwave/worker/workerapp"
)

// The production shape: the Temporal server on PostgreSQL behind mTLS runs
// a mailbox through a mailwave worker, and keeps it through a kill of the
// server and a restart of PostgreSQL. Without the client certificate the
// frontend is not reached.
func TestServerOnPostgresWithMTLS(t *testing.T) {
	pg := postgres.StartT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "mailwave-temporal-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	srv, err := temporalserver.Start(ctx, temporalserver.Options{Dir: dir, PG: pg})
	require.NoError(t, err)
	t.Cleanup(srv.Stop)

	noCert := srv.Connect()
	noCert.TLSCert, noCert.TLSKey, noCert.Keys, noCert.DialTimeout = "", "", testkit.TestKeyRing(), 3*time.Second
	_, err = noCert.Dial(ctx, nil)
	require.Error(t, err, "mTLS: no client certificate, no entry")

	o := srv.Connect()
	o.Keys = testkit.TestKeyRing()
	c, err := o.Dial(ctx, nil)
	require.NoError(t, err)
	defer c.Close()

	est := testkit.NewEstate(t, 5, 2)
	testkit.StartWorker(t, c, workerapp.Config{
		TaskQueue: contract.TaskQueue, Notifier: "outbox", OutboxDir: filepath.Join(t.TempDir(), "outbox"),
		Estate: "sim", Sim: config.Sim{Dir: est.Dir, TimeScale: 3600, BytesPerSecond: 1 << 30}, WavesDir: t.TempDir(),
		MaxConcurrentActivities: 5, MaxConcurrentLocalActivities: 5, MaxConcurrentWorkflowTasks: 5, ShutdownTimeout: 5 * time.Second,
	})
	var runs []client.WorkflowRun
	for i, r := range est.Roster {
		ref := contract.MailboxRef{Key: "pg-" + string(rune('a'+i)), Address: r.Address, Org: r.Org}
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.MailboxWorkflowID(ref.Key), TaskQueue: contract.TaskQueue},
			contract.MailboxWorkflowName, contract.MailboxInput{Mailbox: ref, MigrateAt: time.Now().Add(8 * time.Second),
				NoticeLead: 4 * time.Second, ReminderLead: 2 * time.Second})
		require.NoError(t, err)
		runs = append(runs, run)
	}
	// Faults while the mailboxes wait for their notices.
	time.Sleep(2 * time.Second)
	srv.Kill()
	require.NoError(t, srv.Restart(ctx))
	pg.Kill()
	require.NoError(t, pg.Restart(ctx))

	for _, run := range runs {
		var res contract.MailboxResult
		require.NoError(t, run.Get(ctx, &res))
		assert.Equal(t, contract.OutcomeMigrated, res.Outcome, "%+v", res)
	}
	rep := est.VerifyAll(t, ctx)
	assert.Zero(t, rep.Totals.Lost)
	assert.Zero(t, rep.Totals.Duplicated)
	assert.Equal(t, len(est.Roster), rep.Totals.CutOver)
}
