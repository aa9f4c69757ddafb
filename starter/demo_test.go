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

	"mailwave/contract"
	"mailwave/mail/sim"
	"mailwave/testkit"
	"mailwave/worker/config"
	"mailwave/worker/workerapp"
)

// TestDemoRunsAWave runs the demo on a compressed timeline against a dev
// server and a worker of the simulated estate: its wave names the
// estate's organisations, which the demo configures itself (no estate in
// the roster store), and the verifier agrees.
func TestDemoRunsAWave(t *testing.T) {
	dir := t.TempDir()
	const seed, n = 7, 12
	_, err := sim.Generate(filepath.Join(dir, "estate"), sim.GenerateOptions{Seed: seed, Mailboxes: n})
	require.NoError(t, err)
	srv := testkit.NewDevServer(t, "")
	testkit.StartWorker(t, srv.Client(), workerapp.Config{
		TaskQueue: contract.TaskQueue, Notifier: "outbox", OutboxDir: filepath.Join(dir, "outbox"),
		Estate: "sim", Sim: config.Sim{Dir: filepath.Join(dir, "estate"), Instant: true},
		WavesDir:                filepath.Join(dir, "waves"),
		MaxConcurrentActivities: 20, MaxConcurrentLocalActivities: 20, MaxConcurrentWorkflowTasks: 20,
	})
	t.Setenv("MAILWAVE_KEY_SECRET", testSecret)
	for _, kv := range testkit.TestKeysEnv() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	var out bytes.Buffer
	root := newRootCmd(&out)
	root.SetArgs([]string{"demo", "--data", dir, "--seed", "7", "--mailboxes", "12", "--ui", "",
		"--migrate-in", "6s", "--notice-lead", "4s", "--reminder-lead", "2s", "--temporal-address", srv.FrontendHostPort()})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	require.NoError(t, root.ExecuteContext(ctx), out.String())
	assert.Contains(t, out.String(), "migrated 12, needs support 0")
	assert.Contains(t, out.String(), "lost 0, duplicated 0")
}
