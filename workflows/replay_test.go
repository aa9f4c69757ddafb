package workflows

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"mailwave/contract"
)

// TestReplayRecordedHistories replays real histories recorded on the dev
// server (see README: "Recording histories"). A change to a workflow that
// would break runs already in flight fails here.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no recorded histories in testdata")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(MailboxMigration, workflow.RegisterOptions{Name: contract.MailboxWorkflowName})
			r.RegisterWorkflowWithOptions(Wave, workflow.RegisterOptions{Name: contract.WaveWorkflowName})
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, f))
		})
	}
}
