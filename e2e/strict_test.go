package e2e_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"mailwave/codec"
	"mailwave/contract"
	"mailwave/internal/connect"
	"mailwave/testkit"
	"mailwave/worker/config"
	"mailwave/worker/workerapp"
)

// TestStartWithoutTheKeyFailsAtOnce: a client without mailwave's key starts
// a mailbox workflow on the real worker's task queue. The worker refuses its
// plain input: the workflow fails on its first workflow task, with an
// error naming the problem, and no workflow task is retried. The same start
// through a client with the key runs.
func TestStartWithoutTheKeyFailsAtOnce(t *testing.T) {
	dir := t.TempDir()
	est := testkit.NewEstate(t, 3, 1)
	srv := testkit.NewDevServer(t, "")
	testkit.StartWorker(t, srv.Client(), workerapp.Config{
		TaskQueue: contract.TaskQueue, Notifier: "outbox", OutboxDir: filepath.Join(dir, "outbox"),
		Estate: "sim", Sim: config.Sim{Dir: est.Dir, Instant: true}, WavesDir: filepath.Join(dir, "waves"),
		ShutdownTimeout: 5 * time.Second,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	plain, err := connect.Options{Address: srv.FrontendHostPort(), Plaintext: true}.Dial(ctx, nil)
	require.NoError(t, err)
	defer plain.Close()

	ref := contract.MailboxRef{Key: "nokey-1", Address: est.Roster[0].Address, DisplayName: est.Roster[0].DisplayName}
	in := contract.MailboxInput{Mailbox: ref, MigrateAt: time.Now().Add(30 * 24 * time.Hour)}
	begun := time.Now()
	run, err := plain.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.MailboxWorkflowID(ref.Key), TaskQueue: contract.TaskQueue},
		contract.MailboxWorkflowName, in)
	require.NoError(t, err)
	// Read through the client with the key: the failure is sealed by the
	// worker like every other.
	err = srv.Client().GetWorkflow(ctx, run.GetID(), run.GetRunID()).Get(ctx, nil)
	took := time.Since(begun)
	var failed *temporal.WorkflowExecutionError
	require.ErrorAs(t, err, &failed, "the workflow failed")
	assert.ErrorContains(t, err, "payload not encrypted: started without mailwave's key")
	assert.ErrorContains(t, err, codec.ErrNotEncrypted.Error())
	assert.Less(t, took, 10*time.Second, "at once, not after retries")
	t.Logf("failed after %s: %v", took.Round(time.Millisecond), err)

	var tasks, taskFailures int
	it := srv.Client().GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	last := enumspb.EVENT_TYPE_UNSPECIFIED
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED:
			tasks++
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED:
			taskFailures++
		}
		last = ev.GetEventType()
	}
	assert.Equal(t, 1, tasks, "one workflow task")
	assert.Zero(t, taskFailures, "no workflow task failed and retried")
	assert.Equal(t, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED, last)

	// With the key, the same start runs (and waits for its night).
	ref.Key = "withkey-1"
	run, err = srv.Client().ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.MailboxWorkflowID(ref.Key), TaskQueue: contract.TaskQueue},
		contract.MailboxWorkflowName, contract.MailboxInput{Mailbox: ref, MigrateAt: in.MigrateAt})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		d, err := srv.Client().DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
		return err == nil && d.GetPendingWorkflowTask() == nil && d.GetWorkflowExecutionInfo().GetHistoryLength() > 3
	}, 30*time.Second, 200*time.Millisecond)
	d, err := srv.Client().DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
	require.NoError(t, err)
	assert.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, d.GetWorkflowExecutionInfo().GetStatus())

	// A signal without the key is dropped before it reaches the workflow
	// (codec.Interceptor; without it the mailbox's workflow task fails on
	// every retry), a signal with it is taken.
	details := func() string {
		v, err := srv.Client().QueryWorkflow(ctx, run.GetID(), "", "__temporal_workflow_metadata")
		require.NoError(t, err)
		var md sdkpb.WorkflowMetadata
		require.NoError(t, v.Get(&md))
		return md.GetCurrentDetails()
	}
	require.NoError(t, plain.SignalWorkflow(ctx, run.GetID(), "", contract.SignalPause, contract.PauseRequest{Reason: "no key"}))
	require.NoError(t, srv.Client().SignalWorkflow(ctx, run.GetID(), "", "no-such-signal", nil), "a marker: processed after the plain one")
	require.Eventually(t, func() bool {
		h := srv.Client().GetWorkflowHistory(ctx, run.GetID(), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		signals, completedAfter := 0, false
		for h.HasNext() {
			ev, err := h.Next()
			require.NoError(t, err)
			require.NotEqual(t, enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED, ev.GetEventType(), "a plain signal failed a workflow task")
			if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED {
				signals++
			}
			if signals == 2 && ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED {
				completedAfter = true
			}
		}
		return completedAfter
	}, 30*time.Second, 200*time.Millisecond, "the worker did not take the signals")
	assert.NotContains(t, details(), "paused by an operator")
	require.NoError(t, srv.Client().SignalWorkflow(ctx, run.GetID(), "", contract.SignalPause, contract.PauseRequest{Reason: "with the key"}))
	require.Eventually(t, func() bool { return strings.Contains(details(), "paused by an operator") }, 30*time.Second, 200*time.Millisecond)
}
