package workflows_test

import (
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"mailwave/codec"
	"mailwave/testkit"
	"mailwave/workflows"
)

// TestReplayRecordedHistories replays real histories recorded on the dev
// server (see docs/versioning.md, "Recording histories") with the workflows the worker
// registers (Register) and the converters every client carries (the
// payload codec). Histories recorded before encryption hold plain
// payloads, which a worker's strict codec refuses: the replayer reads them
// with the codec accepting plain payloads, as a worker started with
// --accept-plain-payloads does (TestStrictCodecRefusesPlainHistories shows
// it is needed). A change to a workflow that would break runs already in
// flight fails here.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no recorded histories in testdata")
	dc := codec.NewDataConverter(codec.New(testkit.TestKeyRing()).AcceptingPlain())
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

// TestStrictCodecRefusesPlainHistories: a committed history recorded
// before encryption does not replay with the strict codec (the input is
// refused, so the replayed code fails the workflow where history has it
// wait), and one recorded encrypted does.
func TestStrictCodecRefusesPlainHistories(t *testing.T) {
	dc := codec.DataConverter(testkit.TestKeyRing())
	replay := func(f string) error {
		r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
			DataConverter: dc, FailureConverter: codec.FailureConverter(dc),
		})
		require.NoError(t, err)
		workflows.Register(r)
		return r.ReplayWorkflowHistoryFromJSONFile(tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)), f)
	}
	err := replay(filepath.Join("testdata", "mailbox_in_wave.json"))
	assert.ErrorContains(t, err, "TMPRL1100", "a nondeterminism error")
	assert.NoError(t, replay(filepath.Join("testdata", "mailbox_in_wave_encrypted.json")))
}
