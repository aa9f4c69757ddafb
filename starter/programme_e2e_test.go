package main

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"mailwave/contract"
	"mailwave/identity"
	"mailwave/mail/sim"
	"mailwave/roster/estate"
	"mailwave/roster/rosterstore"
	"mailwave/worker/config"
)

var recordHistories = flag.String("record-histories", "", "write recorded workflow histories (JSON) into this directory")

// TestAProgrammeChoosesItsNightsOnASchedule runs a programme on the dev
// server as its operators would: the estate imported, two organisations of
// three made ready, a schedule choosing a night of 8 every 6 seconds with a
// lead of 12 seconds. Each night's wave holds exactly its sample, from the
// ready organisations only, nothing chosen twice across nights, each
// reproducible from its recorded seed on a copy of the estate; every
// mailbox chosen is migrated and written back; a night on a date to skip
// chooses nothing; pausing the schedule stops the nights.
func TestAProgrammeChoosesItsNightsOnASchedule(t *testing.T) {
	e := newProgrammeEnv(t, sim.GenerateOptions{Seed: 5, Mailboxes: 90, Orgs: 3}, config.Sim{TimeScale: 1e6, BytesPerSecond: 1 << 30})
	waves, srv, roster, starter := e.waves, e.srv, e.roster, e.must
	orgOf := map[string]string{}
	keyer, err := identity.NewKeyer([]byte(testSecret))
	require.NoError(t, err)
	for _, r := range roster {
		k, err := keyer.Key(r.Address)
		require.NoError(t, err)
		orgOf[k] = r.Org
	}
	e.readyAll("org000", "org001")
	ready := map[string]bool{"org000": true, "org001": true}
	poolSize := 0
	for _, org := range orgOf {
		if ready[org] {
			poolSize++
		}
	}

	starter("programme", "schedule", "--name", "nightly", "--every", "6s", "--lead", "12s", "--reminder", "6s",
		"--size", "8", "--zone", "UTC", "--concurrency", "5", "--error-budget", "100")
	ctx := context.Background()
	c := srv.Client()
	nights := func(status string) []string {
		q := "WorkflowType = '" + contract.NightWorkflowName + "'"
		if status != "" {
			q += " AND ExecutionStatus = '" + status + "'"
		}
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q})
		require.NoError(t, err)
		var ids []string
		for _, e := range resp.GetExecutions() {
			ids = append(ids, e.GetExecution().GetWorkflowId())
		}
		return ids
	}
	require.Eventually(t, func() bool { return len(nights("Completed")) >= 3 }, 90*time.Second, time.Second,
		"three nights never completed: %v", nights(""))
	starter("programme", "pause", "nightly", "--reason", "the test has seen enough")
	require.Eventually(t, func() bool { return len(nights("Running")) == 0 }, 60*time.Second, time.Second, "nights still running")
	out := starter("programme", "list")
	assert.Contains(t, out, "nightly (paused: the test has seen enough)")

	// Each night: its result, its roster and the estate agree.
	rosters, err := rosterstore.Open(ctx, waves)
	require.NoError(t, err)
	defer rosters.Close()
	store, err := estate.Open(ctx, waves)
	require.NoError(t, err)
	defer store.Close()
	var results []contract.NightResult
	chosen := map[string]string{} // key: its night
	for _, id := range nights("Completed") {
		var res contract.NightResult
		require.NoError(t, c.GetWorkflow(ctx, id, "").Get(ctx, &res))
		results = append(results, res)
	}
	slices.SortFunc(results, func(a, b contract.NightResult) int { return a.MigrateAt.Compare(b.MigrateAt) })
	require.GreaterOrEqual(t, len(results), 3)
	for _, res := range results {
		require.Empty(t, res.Skipped, "night %s", res.WaveID)
		assert.Equal(t, contract.NightSeed(res.WaveID), res.Seed, "the seed is the night's")
		night, err := store.Night(ctx, res.WaveID)
		require.NoError(t, err)
		assert.Equal(t, res.Seed, night.Seed, "the seed recorded with the night")
		assert.Equal(t, min(8, poolSize-len(chosen)), len(night.Mailboxes), "night %s", res.WaveID)
		assert.Equal(t, len(night.Mailboxes), res.Chosen)
		rows, err := rosters.All(ctx, res.WaveID)
		require.NoError(t, err)
		require.Len(t, rows, len(night.Mailboxes), "the wave's roster is the night's choice")
		for i, m := range night.Mailboxes {
			assert.Equal(t, m.Key, rows[i].Key, "night %s row %d", res.WaveID, i)
			assert.True(t, ready[orgOf[m.Key]], "night %s chose %s of %s, not ready", res.WaveID, m.Key, orgOf[m.Key])
			prev, twice := chosen[m.Key]
			assert.False(t, twice, "%s chosen on %s and %s", m.Key, prev, res.WaveID)
			chosen[m.Key] = res.WaveID
			assert.Equal(t, estate.Migrated, m.Outcome, "written back")
		}
		assert.Equal(t, res.Chosen, res.Wave.Migrated, "night %s's wave", res.WaveID)
		assert.Equal(t, res.Chosen, res.Migrated)
	}

	// Reproducible: the same estate, choosing the same nights in the same
	// order with their recorded seeds, chooses the same mailboxes.
	replay, err := estate.Open(ctx, filepath.Join(e.dir, "replay"))
	require.NoError(t, err)
	defer replay.Close()
	var import_ []estate.Mailbox
	for _, r := range roster {
		k, _ := keyer.Key(r.Address)
		import_ = append(import_, estate.Mailbox{Key: k, Address: r.Address, Org: r.Org, DisplayName: r.DisplayName})
	}
	_, err = replay.Import(ctx, import_, time.Now())
	require.NoError(t, err)
	for org := range ready {
		require.NoError(t, replay.SetOrg(ctx, estate.Org{Name: org, State: estate.Ready, Reason: "replay", By: "test", Since: time.Now()}))
	}
	for _, res := range results {
		again, err := replay.Choose(ctx, estate.Choice{Night: res.WaveID, N: 8, Seed: res.Seed}, time.Now())
		require.NoError(t, err)
		night, err := store.Night(ctx, res.WaveID)
		require.NoError(t, err)
		assert.Equal(t, keysOf(night.Mailboxes), keysOf(again.Mailboxes), "night %s chosen again from its seed", res.WaveID)
	}

	// A night on a date to skip chooses nothing and starts no wave.
	today := time.Now().UTC()
	starter("programme", "schedule", "--name", "holiday", "--every", "24h", "--lead", "12s", "--reminder", "6s", "--size", "5",
		"--zone", "UTC", "--skip", today.Format(time.DateOnly)+","+today.AddDate(0, 0, 1).Format(time.DateOnly))
	before := len(nights(""))
	starter("programme", "trigger", "holiday")
	require.Eventually(t, func() bool { return len(nights("Completed")) > len(results) }, 30*time.Second, 500*time.Millisecond)
	var skipped contract.NightResult
	for _, id := range nights("Completed") {
		if strings.HasPrefix(id, "night-holiday") {
			require.NoError(t, c.GetWorkflow(ctx, id, "").Get(ctx, &skipped))
		}
	}
	assert.Contains(t, skipped.Skipped, "is a date to skip")
	assert.Zero(t, skipped.Chosen)
	_, err = store.Night(ctx, skipped.WaveID)
	assert.ErrorIs(t, err, estate.ErrUnknownNight, "nothing chosen for it")
	assert.Equal(t, before+1, len(nights("")))
	starter("programme", "delete", "holiday")

	if *recordHistories != "" {
		recordNight(t, c, "night-nightly", filepath.Join(*recordHistories, "night_chosen_in_zone.json"))
	}
}

func keysOf(ms []estate.Mailbox) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Key
	}
	return out
}

// recordNight writes the history of the first completed night whose ID
// begins with prefix, as the Temporal CLI would.
func recordNight(t *testing.T, c client.Client, prefix, path string) {
	ctx := context.Background()
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Query: "WorkflowType = '" + contract.NightWorkflowName + "' AND ExecutionStatus = 'Completed'"})
	require.NoError(t, err)
	for _, e := range resp.GetExecutions() {
		if !strings.HasPrefix(e.GetExecution().GetWorkflowId(), prefix) {
			continue
		}
		var events []*historypb.HistoryEvent
		it := c.GetWorkflowHistory(ctx, e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			require.NoError(t, err)
			events = append(events, ev)
		}
		b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(&historypb.History{Events: events})
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, b, 0o644))
		t.Logf("recorded %d events into %s", len(events), path)
		return
	}
	t.Fatalf("no completed night %s to record", prefix)
}
