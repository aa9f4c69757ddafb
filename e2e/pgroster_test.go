package e2e_test

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
	"mailwave/identity"
	"mailwave/roster/rosterstore"
	"mailwave/testkit"
	"mailwave/testkit/postgres"
	"mailwave/worker/config"
	"mailwave/worker/workerapp"
)

// A wave whose roster is in the shared PostgreSQL store is run by a worker
// whose private directory holds no roster at all: nothing is read from a
// local file.
func TestWaveRosterInPostgres(t *testing.T) {
	pg := postgres.StartT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	require.NoError(t, pg.Exec(ctx, "postgres", "CREATE DATABASE mailwave"))
	dsn := pg.DSN("mailwave")

	est := testkit.NewEstate(t, 11, 30)
	keyer, err := identity.NewKeyer([]byte("pg-roster-secret-0123456"))
	require.NoError(t, err)
	mailboxes := est.Mailboxes(t, keyer)
	store, err := rosterstore.Open(ctx, dsn)
	require.NoError(t, err)
	defer store.Close()
	require.NoError(t, store.Write(ctx, "pg-wave", mailboxes))

	private := t.TempDir() // the worker's own directory: empty
	srv := testkit.NewDevServer(t, "")
	testkit.StartWorker(t, srv.Client(), workerapp.Config{
		TaskQueue: contract.TaskQueue, Notifier: "outbox", OutboxDir: filepath.Join(private, "outbox"),
		Estate: "sim", Sim: config.Sim{Dir: est.Dir, Instant: true}, WavesDir: dsn,
		MaxConcurrentActivities: 20, MaxConcurrentLocalActivities: 20, MaxConcurrentWorkflowTasks: 20, ShutdownTimeout: 5 * time.Second,
	})
	run, err := srv.Client().ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.WaveWorkflowID("pg-wave"), TaskQueue: contract.TaskQueue},
		contract.WaveWorkflowName, contract.WaveInput{WaveID: "pg-wave", Total: len(mailboxes), Cap: 10,
			MigrateAt: time.Now().Add(3 * time.Second), NoticeLead: 2 * time.Second, ReminderLead: time.Second})
	require.NoError(t, err)
	var res contract.WaveResult
	require.NoError(t, run.Get(ctx, &res))
	assert.Equal(t, len(mailboxes), res.Migrated, "%+v", res)
	entries, err := os.ReadDir(private)
	require.NoError(t, err)
	for _, e := range entries {
		assert.NotEqual(t, ".csv", filepath.Ext(e.Name()), "no roster file in the worker's directory")
	}
	rep := est.VerifyAll(t, ctx)
	assert.Zero(t, rep.Totals.Lost)
	assert.Zero(t, rep.Totals.Duplicated)
	assert.Equal(t, len(est.Roster), rep.Totals.CutOver)
}
