package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"

	"mailwave/contract"
	"mailwave/mail/sim"
	"mailwave/testkit"
	"mailwave/worker/config"
	"mailwave/worker/workerapp"
)

// TestANightMissedWhileTheServerWasDownIsCaughtUpOnce: two schedules fire
// while the server is down; when it comes back 20 s later, the one whose
// catch-up window is a minute runs its night once, for the time it was due
// (its wave the night that firing chose), and the one whose window is 10 s
// runs none and says so in programme list.
func TestANightMissedWhileTheServerWasDownIsCaughtUpOnce(t *testing.T) {
	dir := t.TempDir()
	bin, err := testkit.TemporalBinary()
	require.NoError(t, err)
	ctx := context.Background()
	simDir := filepath.Join(dir, "sim")
	_, err = sim.Generate(simDir, sim.GenerateOptions{Seed: 1, Mailboxes: 1, Orgs: 1})
	require.NoError(t, err)
	srv, err := testkit.StartDevServer(ctx, testkit.DevServerConfig{Bin: bin, Dir: dir})
	require.NoError(t, err)
	due := time.Now().UTC().Add(12 * time.Second).Truncate(time.Second)
	for _, s := range []struct{ name, catchup string }{{"caught", "1m"}, {"missed", "10s"}} {
		out, errOut, code := runStarterSplit(t, "programme", "schedule", "--name", s.name, "--days", "sun-sat",
			"--at", due.Format("15:04:05"), "--zone", "UTC", "--size", "5", "--catchup", s.catchup,
			"--temporal-address", srv.FrontendHostPort())
		require.Zero(t, code, out+errOut)
		require.Contains(t, out, due.Format(time.RFC3339), "the first firing is the one due")
	}
	require.NoError(t, srv.Stop())
	time.Sleep(time.Until(due.Add(20 * time.Second)))

	srv, err = testkit.StartDevServer(ctx, testkit.DevServerConfig{Bin: bin, Dir: dir})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })
	testkit.StartWorker(t, srv.Client(), workerapp.Config{
		TaskQueue: contract.TaskQueue, Notifier: "outbox", OutboxDir: filepath.Join(dir, "outbox"),
		Estate: "sim", Sim: config.Sim{Dir: simDir, TimeScale: 1e6}, WavesDir: filepath.Join(dir, "waves"),
		MaxConcurrentActivities: 10, MaxConcurrentLocalActivities: 10, MaxConcurrentWorkflowTasks: 10,
	})
	c := srv.Client()
	var nights []string
	require.Eventually(t, func() bool {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: "WorkflowType = '" + contract.NightWorkflowName + "' AND ExecutionStatus = 'Completed'"})
		require.NoError(t, err)
		nights = nights[:0]
		for _, e := range resp.GetExecutions() {
			nights = append(nights, e.GetExecution().GetWorkflowId())
		}
		return len(nights) > 0
	}, 60*time.Second, 500*time.Millisecond, "the missed night was never caught up")
	time.Sleep(5 * time.Second) // a second catch-up would have come by now
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: "WorkflowType = '" + contract.NightWorkflowName + "'"})
	require.NoError(t, err)
	require.Len(t, resp.GetExecutions(), 1, "caught up once, and only the schedule within its window")
	e := resp.GetExecutions()[0]
	assert.True(t, strings.HasPrefix(e.GetExecution().GetWorkflowId(), "night-caught"), e.GetExecution().GetWorkflowId())
	var res contract.NightResult
	require.NoError(t, c.GetWorkflow(ctx, e.GetExecution().GetWorkflowId(), "").Get(ctx, &res))
	assert.Equal(t, due.Add(14*24*time.Hour), res.MigrateAt, "the night its firing was due for, though it ran late")
	assert.Equal(t, contract.NightWaveID("caught", res.MigrateAt), res.WaveID)
	assert.Contains(t, res.Skipped, "no mailbox left", "an empty estate: nothing to choose")

	out, errOut, code := runStarterSplit(t, "programme", "list", "--temporal-address", srv.FrontendHostPort())
	require.Zero(t, code, out+errOut)
	assert.Regexp(t, `caught \(active\): 5 a night, chosen 336h0m0s before; 1 nights chosen, 0 firings missed`, out)
	assert.Regexp(t, `missed \(active\): 5 a night, chosen 336h0m0s before; 0 nights chosen, 1 firings missed`, out)
	assert.Contains(t, out, "caught up", "the late firing is shown as caught up")
}
