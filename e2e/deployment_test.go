package e2e_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"mailwave/contract"
	"mailwave/identity"
	"mailwave/mail/sim"
	"mailwave/testkit"
	"mailwave/worker/config"
	"mailwave/worker/workerapp"
)

// TestRunsStayOnTheBuildThatStartedThem: with Worker Deployments, a
// mailbox started on build b1 stays pinned to b1 when b2 becomes the
// deployment's current version, and is still served by b1's worker, while
// a mailbox started afterwards runs on b2; both migrate. So a change to
// the mailbox workflow released as a new build needs no GetVersion.
func TestRunsStayOnTheBuildThatStartedThem(t *testing.T) {
	dir := t.TempDir()
	estateDir := filepath.Join(dir, "estate")
	_, err := sim.Generate(estateDir, sim.GenerateOptions{Seed: 3, Mailboxes: 2})
	require.NoError(t, err)
	srv := testkit.NewDevServer(t, "")
	c := srv.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	build := func(id string) workerapp.Config {
		return workerapp.Config{
			TaskQueue: contract.TaskQueue, Notifier: "outbox", OutboxDir: filepath.Join(dir, "outbox"),
			Estate: "sim", Sim: config.Sim{Dir: estateDir, TimeScale: 1e6, BytesPerSecond: 1 << 30},
			WavesDir:       filepath.Join(dir, "waves"),
			DeploymentName: "mailwave", BuildID: id, SetCurrent: true,
			MaxConcurrentActivities: 10, MaxConcurrentLocalActivities: 10, MaxConcurrentWorkflowTasks: 10,
			ShutdownTimeout: 5 * time.Second,
		}
	}
	est, err := sim.Open(estateDir, sim.Options{})
	require.NoError(t, err)
	roster, err := est.Roster()
	require.NoError(t, err)
	keyer, err := identity.NewKeyer([]byte("deployment-test-secret"))
	require.NoError(t, err)
	start := func(i int, t0 time.Duration) client.WorkflowRun {
		key, err := keyer.Key(roster[i].Address)
		require.NoError(t, err)
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.MailboxWorkflowID(key), TaskQueue: contract.TaskQueue},
			contract.MailboxWorkflowName, contract.MailboxInput{
				Mailbox:   contract.MailboxRef{Key: key, Address: roster[i].Address, Org: roster[i].Org},
				MigrateAt: time.Now().Add(t0), NoticeLead: t0 - 2*time.Second, ReminderLead: time.Second,
			})
		require.NoError(t, err)
		return run
	}
	// pinned is the build a run's workflow tasks are pinned to, once it
	// has had one.
	pinned := func(run client.WorkflowRun) string {
		d, err := c.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
		require.NoError(t, err)
		v := d.GetWorkflowExecutionInfo().GetVersioningInfo()
		if v.GetBehavior() != enumspb.VERSIONING_BEHAVIOR_PINNED {
			return ""
		}
		return v.GetDeploymentVersion().GetBuildId()
	}
	current := func() string {
		d, err := c.WorkerDeploymentClient().GetHandle("mailwave").Describe(ctx, client.WorkerDeploymentDescribeOptions{})
		if err != nil || d.Info.RoutingConfig.CurrentVersion == nil {
			return ""
		}
		return d.Info.RoutingConfig.CurrentVersion.BuildID
	}

	testkit.StartWorker(t, c, build("b1"))
	require.Eventually(t, func() bool { return current() == "b1" }, time.Minute, 200*time.Millisecond, "b1 became current")
	old := start(0, 40*time.Second)
	require.Eventually(t, func() bool { return pinned(old) == "b1" }, time.Minute, 200*time.Millisecond, "the first mailbox runs on b1")

	testkit.StartWorker(t, c, build("b2"))
	require.Eventually(t, func() bool { return current() == "b2" }, time.Minute, 200*time.Millisecond, "b2 became current")
	d, err := c.DescribeWorkflowExecution(ctx, old.GetID(), old.GetRunID())
	require.NoError(t, err)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, d.GetWorkflowExecutionInfo().GetStatus(), "the first mailbox is still waiting for its T")
	young := start(1, 8*time.Second)

	// Both migrate, each on its own build: b1's worker still serves the
	// first to its end.
	for _, run := range []client.WorkflowRun{old, young} {
		var res contract.MailboxResult
		require.NoError(t, run.Get(ctx, &res))
		assert.Equal(t, contract.OutcomeMigrated, res.Outcome, "%+v", res)
	}
	assert.Equal(t, "b1", pinned(old), "the first mailbox stayed on the build that started it")
	assert.Equal(t, "b2", pinned(young), "a mailbox started after b2 became current ran on b2")
}
