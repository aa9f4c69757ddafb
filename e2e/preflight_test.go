package e2e_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"mailwave/contract"
	"mailwave/identity"
	"mailwave/mail/sim"
	"mailwave/testkit"
	"mailwave/worker/config"
	"mailwave/worker/workerapp"
)

// TestPreflightOnDevServer runs two mailboxes through a real worker on the
// dev server against the simulated estate: one the estate has is checked,
// told and migrated, its preflight's figures in its result; one it lacks
// (its source refuses the login) is deferred before its notice, nobody
// told but the admin, never copied. With -record-histories it writes
// both histories (mailbox_preflight_{migrated,deferred}.json).
func TestPreflightOnDevServer(t *testing.T) {
	dir := t.TempDir()
	estateDir, outboxDir := filepath.Join(dir, "estate"), filepath.Join(dir, "outbox")
	_, err := sim.Generate(estateDir, sim.GenerateOptions{Seed: 3, Mailboxes: 2})
	require.NoError(t, err)
	srv := testkit.NewDevServer(t, "")
	c := srv.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	testkit.StartWorker(t, c, workerapp.Config{
		TaskQueue: contract.TaskQueue,
		Notifier:  "outbox", OutboxDir: outboxDir,
		Estate: "sim",
		Sim:    config.Sim{Dir: estateDir, TimeScale: 1e6, BytesPerSecond: 1 << 30}, WavesDir: filepath.Join(dir, "waves"),
		MaxConcurrentActivities: 10, MaxConcurrentLocalActivities: 10, MaxConcurrentWorkflowTasks: 10,
		ShutdownTimeout: 5 * time.Second,
	})
	est, err := sim.Open(estateDir, sim.Options{})
	require.NoError(t, err)
	roster, err := est.Roster()
	require.NoError(t, err)
	keyer, err := identity.NewKeyer([]byte("integration-test-secret"))
	require.NoError(t, err)
	start := func(address, org string) (client.WorkflowRun, string) {
		key, err := keyer.Key(address)
		require.NoError(t, err)
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.MailboxWorkflowID(key), TaskQueue: contract.TaskQueue},
			contract.MailboxWorkflowName, contract.MailboxInput{
				Mailbox:   contract.MailboxRef{Key: key, Address: address, Org: org},
				MigrateAt: time.Now().Add(4 * time.Second), NoticeLead: 2 * time.Second, ReminderLead: time.Second,
			})
		require.NoError(t, err)
		return run, key
	}
	good, goodKey := start(roster[0].Address, roster[0].Org)
	ghost, ghostKey := start("nobody@org999.nhs.example", "org999")

	var res contract.MailboxResult
	require.NoError(t, good.Get(ctx, &res), describe(c, good.GetID()))
	assert.Equal(t, contract.OutcomeMigrated, res.Outcome, "%+v", res)
	require.NotNil(t, res.Preflight)
	prof, _ := est.Profile(roster[0].Address)
	assert.Equal(t, prof.Bytes, res.Preflight.SourceBytes)
	for _, kind := range contract.NoticeKinds {
		assert.FileExists(t, filepath.Join(outboxDir, fmt.Sprintf("%s-%s.eml", goodKey, kind)))
	}

	require.NoError(t, ghost.Get(ctx, &res), describe(c, ghost.GetID()))
	assert.Equal(t, contract.OutcomeDeferred, res.Outcome, "%+v", res)
	assert.Equal(t, contract.StepPreflight, res.FailedStep)
	assert.Equal(t, contract.ErrTypeSourceLogin, res.ErrorType)
	for _, kind := range contract.NoticeKinds {
		assert.NoFileExists(t, filepath.Join(outboxDir, fmt.Sprintf("%s-%s.eml", ghostKey, kind)))
	}
	assert.FileExists(t, filepath.Join(outboxDir, ghostKey+"-failure.eml"), "the admin is told")
	assert.Equal(t, contract.StageDeferred, queryState(t, c, ghost.GetID()).Stage)

	if *recordDir != "" {
		recordHistory(t, c, good.GetID(), filepath.Join(*recordDir, "mailbox_preflight_migrated.json"))
		recordHistory(t, c, ghost.GetID(), filepath.Join(*recordDir, "mailbox_preflight_deferred.json"))
	}
}
