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
// the same wave is taken as started, so a retried start does nothing twice.
// A retry (the wave's retry-failed) passes retrySince, when it was asked
// for: only a run of the wave started since then is the retry's own; an
// older one still finishing is waited for, then started again.
func StartMailbox(ctx context.Context, c client.Client, in workflows.MailboxInput, retrySince time.Time, now time.Time) (Start, error) {
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
	ours := in.WaveID != "" && prev.wave == in.WaveID && !prev.started.Before(retrySince)
	if prev.running && !ours && in.WaveID != "" && prev.wave == in.WaveID {
		// A retry's old run, reporting its end: wait for it to close.
		if prev, err = awaitClosed(ctx, c, id); err != nil {
			return Start{}, err
		}
		ours = false
	}
	switch {
	case ours:
		return Start{Started: true, RunID: prev.runID}, nil
	case prev.running && prev.wave != "":
		return Start{Refusal: fmt.Sprintf("already being migrated in wave %s", prev.wave)}, nil
	case prev.running:
		return Start{Refusal: "already being migrated (started on its own, not in a wave)"}, nil
	case prev.result != nil && prev.result.Outcome == workflows.OutcomeMigrated:
		return Start{Refusal: fmt.Sprintf("already migrated on %s", prev.result.FinishedAt.UTC().Format(time.RFC3339))}, nil
	}
	// The last run ended in needs support or was cancelled: start afresh.
	opts.WorkflowIDReusePolicy = enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE
	run, err = c.ExecuteWorkflow(ctx, opts, workflows.MailboxWorkflowName, in)
	if errors.As(err, &already) {
		// Another attempt of the same start may have won the race.
		if again, derr := describe(ctx, c, id); derr == nil && again.running && in.WaveID != "" && again.wave == in.WaveID {
			return Start{Started: true, RunID: again.runID}, nil
		}
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
	status  enumspb.WorkflowExecutionStatus
	wave    string
	runID   string
	started time.Time
	result  *workflows.MailboxResult
}

// awaitClosed waits, up to a minute, for a mailbox's run to close.
func awaitClosed(ctx context.Context, c client.Client, id string) (previous, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		p, err := describe(ctx, c, id)
		if err != nil || !p.running {
			return p, err
		}
		if time.Now().After(deadline) {
			return p, fmt.Errorf("workflow %s is still running a minute after it reported its end", id)
		}
		select {
		case <-ctx.Done():
			return p, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func describe(ctx context.Context, c client.Client, id string) (previous, error) {
	desc, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return previous{}, fmt.Errorf("looking up workflow %s: %w", id, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	p := previous{
		running: info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING,
		status:  info.GetStatus(),
		runID:   info.GetExecution().GetRunId(),
		started: info.GetStartTime().AsTime(),
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
