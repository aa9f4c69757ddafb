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
	"go.temporal.io/sdk/worker"

	"mailwave/activities"
	"mailwave/contract"
	"mailwave/identity"
	"mailwave/mail/outbox"
	"mailwave/mail/sim"
	"mailwave/testkit"
	"mailwave/workflows"
)

// TestPreflightOnDevServer runs two mailboxes through a worker on the dev
// server over the simulated estate, its preflight refusing a share of the
// mailboxes (the worker's configuration has no such faults, so this one
// is built here: the workflows and the mailbox's activities as the worker
// registers them, the estate as copier and router, an outbox): one it lets
// go is told and migrated, its preflight's figures in its result; one
// whose source refuses its login is deferred before its notice, nobody
// told but the admin, never copied. With -record-histories it writes both
// histories (mailbox_preflight_{migrated,deferred}.json).
func TestPreflightOnDevServer(t *testing.T) {
	dir := t.TempDir()
	estateDir, outboxDir := filepath.Join(dir, "estate"), filepath.Join(dir, "outbox")
	_, err := sim.Generate(estateDir, sim.GenerateOptions{Seed: 3, Mailboxes: 20})
	require.NoError(t, err)
	est, err := sim.Open(estateDir, sim.Options{TimeScale: 1e6, BytesPerSecond: 1 << 30, Faults: sim.Faults{SourceLoginRate: 0.5}})
	require.NoError(t, err)
	roster, err := est.Roster()
	require.NoError(t, err)
	var good, bad sim.RosterEntry
	for _, r := range roster {
		switch est.PreflightFault(r.Address) {
		case "":
			good = r
		case contract.ErrTypeSourceLogin:
			bad = r
		}
	}
	require.NotEmpty(t, good.Address)
	require.NotEmpty(t, bad.Address)
	notices, err := outbox.New(outbox.Options{Dir: outboxDir})
	require.NoError(t, err)

	srv := testkit.NewDevServer(t, "")
	c := srv.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	w := worker.New(c, contract.TaskQueue, worker.Options{})
	workflows.Register(w)
	activities.New(notices, est, est).Register(w)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
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
	goodRun, goodKey := start(good.Address, good.Org)
	ghost, ghostKey := start(bad.Address, bad.Org)

	var res contract.MailboxResult
	require.NoError(t, goodRun.Get(ctx, &res), describe(c, goodRun.GetID()))
	assert.Equal(t, contract.OutcomeMigrated, res.Outcome, "%+v", res)
	require.NotNil(t, res.Preflight)
	prof, _ := est.Profile(good.Address)
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
		recordHistory(t, c, goodRun.GetID(), filepath.Join(*recordDir, "mailbox_preflight_migrated.json"))
		recordHistory(t, c, ghost.GetID(), filepath.Join(*recordDir, "mailbox_preflight_deferred.json"))
	}
}
