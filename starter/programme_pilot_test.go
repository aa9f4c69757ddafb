package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"

	"mailwave/contract"
	"mailwave/mail/sim"
	"mailwave/roster/estate"
	"mailwave/worker/config"
)

// TestAPilotGatesItsOrganisationAndANightHoldsOne: on the dev server, with
// every mailbox gone from the source when it is copied (all need
// support): org ready is refused before any pilot, the pilot runs as a
// night of its organisation only, org ready is then refused for its
// support share and passes only forced with a reason; the first scheduled
// night holds the organisation by itself, tells its admin contact, and no
// night after it chooses from it.
func TestAPilotGatesItsOrganisationAndANightHoldsOne(t *testing.T) {
	e := newProgrammeEnv(t, sim.GenerateOptions{Seed: 7, Mailboxes: 60, Orgs: 2},
		config.Sim{TimeScale: 1e6, BytesPerSecond: 1 << 30, NotFoundRate: 1})
	waves, outbox, srv, must := e.waves, e.outbox, e.srv, e.must
	run := func(args ...string) (string, int) {
		t.Helper()
		out, errOut, code := e.run(args...)
		return out + errOut, code
	}

	out, code := run("org", "ready", "org000", "--waves-dir", waves)
	require.NotZero(t, code)
	assert.Contains(t, out, "pilot", "refused before any pilot: %s", out)

	must("org", "pilot", "org000", "--mailboxes", "6", "--migrate-at", "+8s", "--notice-lead", "4s", "--reminder-lead", "2s", "--waves-dir", waves)
	out, code = run("org", "pilot", "org001", "--mailboxes", "0", "--migrate-at", "+8s", "--waves-dir", waves)
	require.NotZero(t, code, "no mailboxes: %s", out)
	ctx := context.Background()
	c := srv.Client()
	completed := func() []contract.NightResult {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: "WorkflowType = '" + contract.NightWorkflowName + "' AND ExecutionStatus = 'Completed'"})
		require.NoError(t, err)
		var out []contract.NightResult
		for _, e := range resp.GetExecutions() {
			var res contract.NightResult
			require.NoError(t, c.GetWorkflow(ctx, e.GetExecution().GetWorkflowId(), "").Get(ctx, &res))
			out = append(out, res)
		}
		return out
	}
	require.Eventually(t, func() bool { return len(completed()) == 1 }, 60*time.Second, 500*time.Millisecond, "the pilot never finished")
	pilot := completed()[0]
	assert.True(t, strings.HasPrefix(pilot.WaveID, "pilot-org000-"), pilot.WaveID)
	assert.Equal(t, 6, pilot.Chosen)
	assert.Equal(t, 6, pilot.NeedsSupport, "every mailbox gone from the source")
	assert.Empty(t, pilot.Held, "a pilot's organisation is not ready: nothing to hold")

	out, code = run("org", "ready", "org000", "--waves-dir", waves)
	require.NotZero(t, code)
	assert.Contains(t, out, "6 of 6", "refused for its support share: %s", out)
	out, code = run("org", "ready", "org000", "--force", "--waves-dir", waves)
	require.NotZero(t, code, "--force needs --reason: %s", out)
	must("org", "ready", "org000", "--force", "--reason", "the source is being fixed", "--by", "ops-lead", "--waves-dir", waves)

	must("programme", "schedule", "--name", "nightly", "--every", "5s", "--lead", "8s", "--reminder", "4s", "--size", "6",
		"--zone", "UTC", "--error-budget", "100", "--hold-min-sample", "3")
	require.Eventually(t, func() bool {
		for _, n := range completed() {
			if len(n.Held) > 0 {
				return true
			}
		}
		return false
	}, 60*time.Second, 500*time.Millisecond, "no night held the organisation")
	must("programme", "pause", "nightly")
	require.Eventually(t, func() bool {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: "WorkflowType = '" + contract.NightWorkflowName + "' AND ExecutionStatus = 'Running'"})
		require.NoError(t, err)
		return len(resp.GetExecutions()) == 0
	}, 60*time.Second, 500*time.Millisecond)

	store, err := estate.Open(ctx, waves)
	require.NoError(t, err)
	defer store.Close()
	orgs, err := store.Orgs(ctx)
	require.NoError(t, err)
	require.Len(t, orgs, 2)
	assert.Equal(t, estate.Held, orgs[0].State)
	assert.Equal(t, "mailwave", orgs[0].By)
	assert.Contains(t, orgs[0].Reason, "needed support on night nightly-")
	assert.Equal(t, estate.Pilot, orgs[1].State)

	var holder contract.NightResult
	for _, n := range completed() {
		if len(n.Held) > 0 {
			holder = n
		}
	}
	assert.Equal(t, []string{"org000"}, holder.Held)
	for _, n := range completed() {
		if n.MigrateAt.After(holder.MigrateAt) {
			// Chosen once the organisation was held, or before: a night
			// chosen after the hold takes nothing from it.
			night, err := store.Night(ctx, n.WaveID)
			if err == nil && night.ChosenAt.After(orgs[0].Since) {
				assert.Empty(t, night.Mailboxes, "night %s chose from a held organisation", n.WaveID)
			}
		}
	}

	// Its admin contact was told once, with the night and the figures.
	files, err := filepath.Glob(filepath.Join(outbox, "org-*-"+string(contract.NoticeOrgHeld)+".eml"))
	require.NoError(t, err)
	require.Len(t, files, 1)
	body, err := os.ReadFile(files[0])
	require.NoError(t, err)
	assert.Contains(t, string(body), "org000")
	assert.Contains(t, string(body), holder.WaveID)
	assert.Contains(t, string(body), "over the budget of 1.2")
}
