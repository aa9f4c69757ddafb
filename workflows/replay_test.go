package workflows_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"

	"mailwave/codec"
	"mailwave/testkit"
	"mailwave/workflows"
)

// TestReplayRecordedHistories replays real histories recorded on the dev
// server (see docs/versioning.md, "Recording histories") with the workflows the worker
// registers (Register) and the converters every client carries (the
// payload codec): histories recorded before encryption hold plain
// payloads, which the codec reads as they are. A change to a workflow that
// would break runs already in flight fails here.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no recorded histories in testdata")
	dc := codec.DataConverter(testkit.TestKeyRing())
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
				DataConverter:    dc,
				FailureConverter: codec.FailureConverter(dc),
			})
			require.NoError(t, err)
			workflows.Register(r)
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, f))
		})
	}
}
