package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/identity"
	"mailwave/mail/sim"
	"mailwave/starter/report"
	"mailwave/testkit"
	"mailwave/worker/config"
	"mailwave/worker/workerapp"
)

// TestOperatorViewsOfARealWave runs a small wave of the simulated estate,
// with mailboxes missing at the source, through the real worker on a dev
// server, and reads it as an operator would: a pause shows at once in the
// search attribute, `wave stuck` lists exactly the paused mailbox,
// `mailbox list --error-type MailboxNotFound` exactly the missing ones, and
// the wave's report agrees with the estate's own verifier, mailbox by
// mailbox, with the consistency grades the faults call for.
func TestOperatorViewsOfARealWave(t *testing.T) {
	dir := t.TempDir()
	estateDir := filepath.Join(dir, "estate")
	_, err := sim.Generate(estateDir, sim.GenerateOptions{Seed: 11, Mailboxes: 24})
	require.NoError(t, err)
	const notFound = 0.2
	srv := testkit.NewDevServer(t, "")
	testkit.StartWorker(t, srv.Client(), workerapp.Config{
		TaskQueue: contract.TaskQueue, Notifier: "outbox", OutboxDir: filepath.Join(dir, "outbox"),
		Estate: "sim", Sim: config.Sim{Dir: estateDir, TimeScale: 1e6, BytesPerSecond: 1 << 30, NotFoundRate: notFound},
		WavesDir:                filepath.Join(dir, "waves"),
		MaxConcurrentActivities: 20, MaxConcurrentLocalActivities: 20, MaxConcurrentWorkflowTasks: 20,
	})
	server := []string{"--temporal-address", srv.FrontendHostPort()}
	starter := func(args ...string) (string, string, int) {
		return runStarterSplit(t, append(args, server...)...)
	}

	est, err := sim.Open(estateDir, sim.Options{Instant: true, Faults: sim.Faults{NotFoundRate: notFound}})
	require.NoError(t, err)
	roster, err := est.Roster()
	require.NoError(t, err)
	var mailboxes strings.Builder
	mailboxes.WriteString("address,org,display_name\n")
	for _, r := range roster {
		fmt.Fprintf(&mailboxes, "%s,%s,%s\n", r.Address, r.Org, r.DisplayName)
	}
	path := writeCSV(t, "wave.csv", mailboxes.String())
	// The list's organisations are configured: the estate's.
	out, errOut, code := starter("programme", "import", path, "--waves-dir", filepath.Join(dir, "waves"))
	require.Zero(t, code, out+errOut)
	// T-14 comes 19 s after the launch: the pause and the listing below
	// (three starter processes) have that long on a loaded machine.
	out, errOut, code = starter("wave", "launch", "--wave", "ops", "--mailboxes", path, "--migrate-at", "+25s",
		"--notice-lead", "6s", "--reminder-lead", "3s", "--concurrency", "5", "--error-budget", "100",
		"--waves-dir", filepath.Join(dir, "waves"))
	require.Zero(t, code, out+errOut)

	// A pause sent while the mailbox waits for its T-14 notice shows in
	// MailwavePaused at once, not at the next step: it is listed as paused
	// while its stage is still "scheduled" (at T-14, the step boundary, a
	// paused mailbox's stage becomes "paused").
	held := roster[0].Address
	require.Eventually(t, func() bool { // once the wave has started it
		out, errOut, code = starter("mailbox", "pause", "--address", held, "--reason", "asked by the trust")
		return code == 0
	}, 20*time.Second, 200*time.Millisecond, "could not pause: %s", errOut)
	paused := time.Now()
	var rows []map[string]any
	require.Eventually(t, func() bool {
		out, _, code := starter("mailbox", "list", "--wave", "ops", "--paused", "--output", "json")
		return code == 0 && json.Unmarshal([]byte(out), &rows) == nil && len(rows) == 1
	}, 10*time.Second, 100*time.Millisecond, "the pause never showed")
	t.Logf("the pause showed in the search attribute after %s", time.Since(paused).Round(time.Millisecond))
	assert.Equal(t, "scheduled", rows[0]["stage"], "still in its stage: the pause shows before the step boundary")
	heldKey, _ := rows[0]["key"].(string)
	require.NotEmpty(t, heldKey)

	// Let every other mailbox finish; then exactly the paused one is stuck.
	require.Eventually(t, func() bool {
		out, _, code := starter("mailbox", "list", "--wave", "ops", "--running", "--output", "json")
		return code == 0 && json.Unmarshal([]byte(out), &rows) == nil && len(rows) == 1
	}, 2*time.Minute, time.Second, "the other mailboxes did not finish")
	out, errOut, code = starter("wave", "stuck", "--wave", "ops", "--output", "json")
	require.Zero(t, code, out+errOut)
	require.NoError(t, json.Unmarshal([]byte(out), &rows), out)
	require.Len(t, rows, 1, out)
	assert.Equal(t, heldKey, rows[0]["key"])
	assert.Contains(t, fmt.Sprint(rows[0]["reasons"]), "paused")
	assert.NotContains(t, out, "@", "no address in the listing")

	out, errOut, code = starter("mailbox", "resume", "--address", held)
	require.Zero(t, code, out+errOut)
	out, errOut, code = starter("wave", "status", "--wave", "ops", "--watch")
	require.Zero(t, code, out+errOut)

	// The estate's verifier is the truth: the mailboxes it has no state for
	// were never found at the source.
	addresses := make([]string, len(roster))
	for i, r := range roster {
		addresses[i] = r.Address
	}
	ver, err := est.Verify(context.Background(), addresses)
	require.NoError(t, err)
	require.Equal(t, len(roster), ver.Totals.Mailboxes)
	byKey := map[string]sim.ReportRow{}
	for _, row := range ver.Rows {
		byKey[row.Key] = row
	}
	keyer, err := identity.NewKeyer([]byte(testSecret))
	require.NoError(t, err)
	var missing []string
	for _, a := range addresses {
		k, err := keyer.Key(a)
		require.NoError(t, err)
		if row, ok := byKey[k]; !ok || row.Cutovers == 0 {
			missing = append(missing, k)
		}
	}
	require.NotEmpty(t, missing, "the estate lost some mailboxes")
	require.Less(t, len(missing), len(roster)/2, "and migrated the rest")
	t.Logf("%d migrated, %d missing at the source", ver.Totals.CutOver, len(missing))
	require.Equal(t, ver.Totals.NoState, len(missing), "every mailbox not cut over was never found")

	out, errOut, code = starter("mailbox", "list", "--wave", "ops", "--error-type", contract.ErrTypeMailboxNotFound, "--output", "json")
	require.Zero(t, code, out+errOut)
	require.NoError(t, json.Unmarshal([]byte(out), &rows), out)
	var listed []string
	for _, r := range rows {
		listed = append(listed, r["key"].(string))
	}
	slices.Sort(listed)
	slices.Sort(missing)
	assert.Equal(t, missing, listed, "exactly the mailboxes missing at the source")

	csvPath := filepath.Join(dir, "report.csv")
	out, errOut, code = starter("wave", "report", "--wave", "ops", "--csv", csvPath, "--output", "json")
	require.Zero(t, code, out+errOut)
	var sum report.Summary
	require.NoError(t, json.Unmarshal([]byte(out), &sum), out)
	assert.Equal(t, ver.Totals.CutOver, sum.Total.Migrated)
	assert.Equal(t, len(missing), sum.Total.NeedsSupport)
	assert.Equal(t, ver.Totals.CutOver, sum.Total.Perfect, "no bad items: every migrated mailbox is perfect")
	assert.Equal(t, len(missing), sum.Total.Poor, "a copy that found no mailbox is poor")

	f, err := os.Open(csvPath)
	require.NoError(t, err)
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	require.Equal(t, report.CSVHeader, recs[0])
	require.Len(t, recs, len(roster)+1)
	col := func(name string) int { return slices.Index(report.CSVHeader, name) }
	for _, rec := range recs[1:] {
		key := rec[col("key")]
		if v, ok := byKey[key]; ok && v.Cutovers == 1 {
			assert.Equal(t, "migrated", rec[col("outcome")], key)
			assert.Equal(t, fmt.Sprint(v.TargetItems), rec[col("target_items")], "mailbox %s: the report's count is the verifier's", key)
			assert.Equal(t, "perfect", rec[col("consistency")], key)
		} else {
			assert.Equal(t, "needs_support", rec[col("outcome")], key)
			assert.Equal(t, contract.ErrTypeMailboxNotFound, rec[col("error_type")], key)
			assert.Equal(t, "poor", rec[col("consistency")], key)
		}
	}
	raw, err := os.ReadFile(csvPath)
	require.NoError(t, err)
	assert.NotContains(t, string(raw), "@", "the report names mailboxes by key")
}
