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
	"mailwave/internal/config"
	"mailwave/internal/rosterstore"
	"mailwave/internal/testkit"
	"mailwave/internal/testkit/postgres"
	"mailwave/internal/wavefile"
	"mailwave/internal/workerapp"
	"mailwave/mail/sim"
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

	estate := filepath.Join(t.TempDir(), "estate")
	_, err := sim.Generate(estate, sim.GenerateOptions{Seed: 11, Mailboxes: 30})
	require.NoError(t, err)
	est, err := sim.Open(estate, sim.Options{})
	require.NoError(t, err)
	roster, err := est.Roster()
	require.NoError(t, err)
	keyer, err := identity.NewKeyer([]byte("pg-roster-secret-0123456"))
	require.NoError(t, err)
	rows := make([]wavefile.Row, len(roster))
	for i, r := range roster {
		rows[i] = wavefile.Row{Line: i + 2, Address: r.Address, Org: r.Org, DisplayName: r.DisplayName}
	}
	mailboxes, err := wavefile.Build(rows, keyer)
	require.NoError(t, err)
	store, err := rosterstore.Open(ctx, dsn)
	require.NoError(t, err)
	defer store.Close()
	require.NoError(t, store.Write(ctx, "pg-wave", mailboxes))

	private := t.TempDir() // the worker's own directory: empty
	srv := testkit.NewDevServer(t, "")
	testkit.StartWorker(t, srv.Client(), workerapp.Config{
		TaskQueue: contract.TaskQueue, Notifier: "outbox", OutboxDir: filepath.Join(private, "outbox"),
		Estate: "sim", Sim: config.Sim{Dir: estate, Instant: true}, WavesDir: dsn,
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
	addresses := make([]string, len(roster))
	for i, r := range roster {
		addresses[i] = r.Address
	}
	rep, err := est.Verify(ctx, addresses)
	require.NoError(t, err)
	assert.Zero(t, rep.Totals.Lost)
	assert.Zero(t, rep.Totals.Duplicated)
	assert.Equal(t, len(roster), rep.Totals.CutOver)
}
