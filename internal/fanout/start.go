// Package fanout holds the activities a wave uses to start, look up and
// cancel its mailboxes' workflows, and the one rule for starting a mailbox
// that the starter shares: a mailbox belongs to one migration at a time.
package fanout

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"mailwave/workflows"
)

// Start is the outcome of StartMailbox.
type Start struct {
	// Started is true when the mailbox's workflow now runs for this
	// migration (just started, or already started by the same wave).
	Started bool
	// Refusal says why the mailbox was not started, when it was not.
	Refusal string
	RunID   string
}

// StartMailbox starts one mailbox's migration. It refuses, with a reason, a
// mailbox that is already being migrated (by another wave, or on its own)
// or that was already migrated. A mailbox whose last run ended in needs
// support or was cancelled is started again. A mailbox already started by
// the same wave is taken as started, so a retried start does nothing twice;
// only a retry (the wave's retry-failed) starts a finished one again.
func StartMailbox(ctx context.Context, c client.Client, in workflows.MailboxInput, retry bool, now time.Time) (Start, error) {
	id := workflows.MailboxWorkflowID(in.Mailbox.Key)
	attrs := []temporal.SearchAttributeUpdate{
		workflows.SearchAttrStage.ValueSet(string(workflows.StageScheduled)),
		workflows.SearchAttrStageSince.ValueSet(now),
	}
	if in.WaveID != "" {
		attrs = append(attrs, workflows.SearchAttrWave.ValueSet(in.WaveID))
	}
	opts := client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                workflows.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		// A closed run that completed (migrated, or ended in needs support)
		// is looked at below before any new run is started.
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
		// Without this the SDK hands back a running workflow as if it had
		// just been started.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		TypedSearchAttributes:                    temporal.NewSearchAttributes(attrs...),
		StaticSummary:                            "mailbox " + in.Mailbox.Key,
	}
	run, err := c.ExecuteWorkflow(ctx, opts, workflows.MailboxWorkflowName, in)
	if err == nil {
		return Start{Started: true, RunID: run.GetRunID()}, nil
	}
	var already *serviceerror.WorkflowExecutionAlreadyStarted
	if !errors.As(err, &already) {
		return Start{}, fmt.Errorf("starting workflow %s: %w", id, err)
	}
	prev, err := describe(ctx, c, id)
	if err != nil {
		return Start{}, err
	}
	switch {
	case prev.running && in.WaveID != "" && prev.wave == in.WaveID:
		return Start{Started: true, RunID: prev.runID}, nil
	case prev.running && prev.wave != "":
		return Start{Refusal: fmt.Sprintf("already being migrated in wave %s", prev.wave)}, nil
	case prev.running:
		return Start{Refusal: "already being migrated (started on its own, not in a wave)"}, nil
	case !retry && in.WaveID != "" && prev.wave == in.WaveID:
		return Start{Started: true, RunID: prev.runID}, nil
	case prev.result != nil && prev.result.Outcome == workflows.OutcomeMigrated:
		return Start{Refusal: fmt.Sprintf("already migrated on %s", prev.result.FinishedAt.UTC().Format(time.RFC3339))}, nil
	}
	// The last run ended in needs support or was cancelled: start afresh.
	opts.WorkflowIDReusePolicy = enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE
	run, err = c.ExecuteWorkflow(ctx, opts, workflows.MailboxWorkflowName, in)
	if errors.As(err, &already) {
		return Start{Refusal: "started by someone else at the same moment"}, nil
	}
	if err != nil {
		return Start{}, fmt.Errorf("starting workflow %s again: %w", id, err)
	}
	return Start{Started: true, RunID: run.GetRunID()}, nil
}

// previous is what is known of a mailbox workflow's latest run.
type previous struct {
	running bool
	wave    string
	runID   string
	result  *workflows.MailboxResult
}

func describe(ctx context.Context, c client.Client, id string) (previous, error) {
	desc, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return previous{}, fmt.Errorf("looking up workflow %s: %w", id, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	p := previous{
		running: info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING,
		runID:   info.GetExecution().GetRunId(),
	}
	if payload, ok := info.GetSearchAttributes().GetIndexedFields()[workflows.SearchAttrWave.GetName()]; ok {
		_ = converter.GetDefaultDataConverter().FromPayload(payload, &p.wave)
	}
	if info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		var res workflows.MailboxResult
		if err := c.GetWorkflow(ctx, id, p.runID).Get(ctx, &res); err != nil {
			return previous{}, fmt.Errorf("reading the result of workflow %s: %w", id, err)
		}
		p.result = &res
	}
	return p, nil
}
