package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"mailwave/contract"
	"mailwave/mail/sim"
	"mailwave/testkit"
	"mailwave/worker/config"
	"mailwave/worker/workerapp"
)

// TestAPoolStatusShowsEveryWave: the pool's status lists its waves in
// order, with the T of the first waiting, in text as in JSON.
func TestAPoolStatusShowsEveryWave(t *testing.T) {
	due := time.Date(2026, 12, 21, 20, 0, 0, 0, time.UTC)
	st := poolStatusOf(contract.PrestagePoolStatus{Pool: "nhs-tenant", Cap: 2000, Active: 1500, Queued: 40, Granted: 90210,
		Expired: 2, Dropped: 3, Held: []string{"w-1221"}, Runs: 12, NextDue: due,
		Waves: map[string]contract.PoolWaveCount{"w-1221": {Active: 1000, Queued: 40}, "w-1214": {Active: 500}}})
	require.Len(t, st.Waves, 2)
	assert.Equal(t, "w-1214", st.Waves[0].Wave)
	var b bytes.Buffer
	require.NoError(t, st.WriteText(&b))
	assert.Equal(t, `pre-stage pool nhs-tenant
  running   1500 of 2000 at once
  waiting   40 (the first for T 2026-12-21T20:00:00Z)
  granted   90210 since it began (2 taken back, their release lost; 3 requests dropped, the queue full)
  runs      12
  held      w-1221 (paused or cancelling: their passes wait)
  wave w-1214               500 running, 0 waiting
  wave w-1221               1000 running, 40 waiting
`, b.String())
	assert.Nil(t, poolStatusOf(contract.PrestagePoolStatus{Pool: "idle", Cap: 1}).NextDue, "none waits")
}

// TestPrestagePoolCommandsOnARealServer: on a dev server, a pool started
// by the requests of two waves' passes (for mailboxes that do not run, so
// each grant fails and frees its place) is shown by `prestage-pool status`
// and its cap set live; a wave launched into it names it in `wave status`
// with its share, and `set-concurrency --prestage` on it points at the
// pool. An unknown pool and a bad name are refused with what to do.
func TestPrestagePoolCommandsOnARealServer(t *testing.T) {
	dir := t.TempDir()
	_, err := sim.Generate(filepath.Join(dir, "estate"), sim.GenerateOptions{Seed: 5, Mailboxes: 2})
	require.NoError(t, err)
	srv := testkit.NewDevServer(t, "")
	testkit.StartWorker(t, srv.Client(), workerapp.Config{
		TaskQueue: contract.TaskQueue, Notifier: "outbox", OutboxDir: filepath.Join(dir, "outbox"),
		Estate: "sim", Sim: config.Sim{Dir: filepath.Join(dir, "estate"), Instant: true}, WavesDir: filepath.Join(dir, "waves"),
		MaxConcurrentActivities: 10, MaxConcurrentLocalActivities: 10, MaxConcurrentWorkflowTasks: 10,
	})
	server := []string{"--temporal-address", srv.FrontendHostPort()}
	starter := func(args ...string) (string, int) { return runStarter(t, append(args, server...)...) }

	out, code := starter("prestage-pool", "status", "it-tenant")
	assert.NotZero(t, code)
	assert.Contains(t, out, `no pre-stage pool "it-tenant": it starts when the first pass of a wave launched with --prestage-pool it-tenant asks it`)
	out, code = starter("prestage-pool", "set-cap", "../x", "3")
	assert.NotZero(t, code)
	assert.Contains(t, out, `pre-stage pool "../x": a wave ID is`)

	ctx := context.Background()
	due := time.Now().Add(20 * 24 * time.Hour)
	for _, w := range []string{"wa", "wb"} {
		_, err = srv.Client().SignalWithStartWorkflow(ctx, contract.PrestagePoolWorkflowID("it-tenant"), contract.SignalPrestageRequest,
			contract.PoolSlot{PrestageSlot: contract.PrestageSlot{WaveID: w, Index: 0, Key: "nobody-" + w, Pass: 1}, Due: due},
			client.StartWorkflowOptions{ID: contract.PrestagePoolWorkflowID("it-tenant"), TaskQueue: contract.TaskQueue},
			contract.PrestagePoolWorkflowName, contract.PrestagePoolInput{Pool: "it-tenant", Cap: 1})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		out, code := starter("prestage-pool", "status", "it-tenant", "-o", "json")
		return code == 0 && strings.Contains(out, `"granted": 2`)
	}, time.Minute, 200*time.Millisecond, "both granted in turn, each grant refused and its place freed")
	out, code = starter("prestage-pool", "set-cap", "it-tenant", "5")
	require.Zero(t, code, out)
	assert.Contains(t, out, "cap 5 sent to pre-stage pool it-tenant")
	require.Eventually(t, func() bool {
		out, _ := starter("prestage-pool", "status", "it-tenant")
		return strings.Contains(out, "running   0 of 5 at once")
	}, 30*time.Second, 200*time.Millisecond)

	list := writeCSV(t, "two.csv", "address\njo@trust.nhs.example\nal@trust.nhs.example\n")
	out, code = starter("wave", "launch", "--wave", "pooled", "--mailboxes", list, "--migrate-at", "+20d",
		"--waves-dir", filepath.Join(dir, "waves"), "--prestage", "--prestage-pool", "it-tenant")
	require.Zero(t, code, out)
	assert.Contains(t, out, "in the tenant's pool it-tenant")
	out, code = starter("wave", "status", "--wave", "pooled")
	require.Zero(t, code, out)
	assert.Contains(t, out, "pre-staging   0 running, 0 waiting in the tenant's pool it-tenant (5 at once for all its waves)")
	out, code = starter("wave", "set-concurrency", "3", "--prestage", "--wave", "pooled")
	assert.NotZero(t, code)
	assert.Contains(t, out, "wave pooled pre-stages in the tenant's pool it-tenant: set its cap with `starter prestage-pool set-cap it-tenant N`")
}
