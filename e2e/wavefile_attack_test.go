package e2e_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"mailwave/contract"
)

// A Wave input names its roster by wave ID only. Whoever may start a
// workflow cannot make a worker read another file: an old-style input's
// path is ignored, a wave ID shaped like a path fails the wave before
// anything is read, and a FIFO or a link planted in the roster store holds
// the wave with a reason that quotes nothing of any file.
func TestWaveCannotReadFilesOutsideTheRosterStore(t *testing.T) {
	e := newWaveEnv(t, 3, 7)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	secret := filepath.Join(e.dir, "secrets.yaml")
	require.NoError(t, os.WriteFile(secret, []byte("smtp-pw: hunter2-do-not-leak\n"), 0o600))
	waves := filepath.Join(e.dir, "waves")
	require.NoError(t, os.MkdirAll(waves, 0o755))
	require.NoError(t, syscall.Mkfifo(filepath.Join(waves, "fifo.csv"), 0o600))
	require.NoError(t, os.Symlink(secret, filepath.Join(waves, "linked.csv")))

	start := func(input map[string]any) client.WorkflowRun {
		run, err := e.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: contract.WaveWorkflowID(input["WaveID"].(string)), TaskQueue: contract.TaskQueue,
		}, contract.WaveWorkflowName, input)
		require.NoError(t, err)
		return run
	}
	migrateAt := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)

	// A wave ID that is a path: the workflow fails at once, reading nothing.
	run := start(map[string]any{"WaveID": "../secrets", "Total": 3, "MigrateAt": migrateAt})
	err := run.Get(ctx, nil)
	var app *temporal.ApplicationError
	require.True(t, errors.As(err, &app), "%v", err)
	assert.Equal(t, contract.ErrTypeInvalidInput, app.Type())

	// The old MailboxFile path is ignored: the wave looks for its own roster
	// (missing here), never at the path.
	for _, tc := range []struct{ wave, path, want string }{
		{"old-style", secret, "no such file"},
		{"proc", "/proc/self/environ", "no such file"},
		{"fifo", "", "not a regular file"},
		{"linked", "", "symbolic link"},
	} {
		input := map[string]any{"WaveID": tc.wave, "Total": 3, "MigrateAt": migrateAt, "NoticeLead": int64(time.Minute)}
		if tc.path != "" {
			input["MailboxFile"] = tc.path
		}
		start(input)
		var p contract.WaveProgress
		require.Eventually(t, func() bool {
			p = e.progress(ctx, tc.wave)
			return p.Paused
		}, time.Minute, 200*time.Millisecond, tc.wave)
		assert.Contains(t, p.PauseReason, tc.want, tc.wave)
		assert.NotContains(t, p.PauseReason, "hunter2", tc.wave)
		assert.NotContains(t, p.PauseReason, "PATH=", tc.wave)
		assert.Zero(t, p.Started, tc.wave)
		require.NoError(t, e.c.TerminateWorkflow(ctx, contract.WaveWorkflowID(tc.wave), "", "test over"))
	}
}
