// Package control is the code that controls mailwave's workflows through a
// Temporal client, shared by the starter and the wave's activities: the one
// rule for starting a mailbox (a mailbox belongs to one migration at a
// time), looking a mailbox's run up, and listing workflows.
package control

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

	"mailwave/contract"
	"mailwave/contract/searchattr"
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
func StartMailbox(ctx context.Context, c client.Client, in contract.MailboxInput, retrySince time.Time, now time.Time) (Start, error) {
	id := contract.MailboxWorkflowID(in.Mailbox.Key)
	attrs := []temporal.SearchAttributeUpdate{
		searchattr.Stage.ValueSet(string(contract.StageScheduled)),
		searchattr.StageSince.ValueSet(now),
	}
	summary := "mailbox " + in.Mailbox.Key
	if in.WaveID != "" {
		attrs = append(attrs, searchattr.Wave.ValueSet(in.WaveID))
		summary += " of wave " + in.WaveID
	}
	if in.Mailbox.Org != "" {
		attrs = append(attrs, searchattr.Org.ValueSet(in.Mailbox.Org))
		summary += ", organisation " + in.Mailbox.Org
	}
	summary += ", migration at " + in.MigrateAt.UTC().Format("2006-01-02 15:04 MST")
	opts := client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                contract.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		// A closed run that completed (migrated, or ended in needs support)
		// is looked at below before any new run is started.
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
		// Without this the SDK hands back a running workflow as if it had
		// just been started.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		TypedSearchAttributes:                    temporal.NewSearchAttributes(attrs...),
		StaticSummary:                            summary,
	}
	run, err := c.ExecuteWorkflow(ctx, opts, contract.MailboxWorkflowName, in)
	if err == nil {
		return Start{Started: true, RunID: run.GetRunID()}, nil
	}
	var already *serviceerror.WorkflowExecutionAlreadyStarted
	if !errors.As(err, &already) {
		return Start{}, fmt.Errorf("starting workflow %s: %w", id, err)
	}
	prev, err := Describe(ctx, c, id)
	if err != nil {
		return Start{}, err
	}
	ours := in.WaveID != "" && prev.Wave == in.WaveID && !prev.Started.Before(retrySince)
	if prev.Running && !ours && in.WaveID != "" && prev.Wave == in.WaveID {
		// A retry's old run, reporting its end: wait for it to close.
		if prev, err = awaitClosed(ctx, c, id); err != nil {
			return Start{}, err
		}
		ours = false
	}
	switch {
	case ours:
		return Start{Started: true, RunID: prev.RunID}, nil
	case prev.Running && prev.Wave != "":
		return Start{Refusal: fmt.Sprintf("already being migrated in wave %s", prev.Wave)}, nil
	case prev.Running:
		return Start{Refusal: "already being migrated (started on its own, not in a wave)"}, nil
	case prev.Result != nil && prev.Result.Outcome == contract.OutcomeMigrated:
		return Start{Refusal: fmt.Sprintf("already migrated on %s", prev.Result.FinishedAt.UTC().Format(time.RFC3339))}, nil
	}
	// The last run ended in needs support or was cancelled: start afresh.
	opts.WorkflowIDReusePolicy = enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE
	run, err = c.ExecuteWorkflow(ctx, opts, contract.MailboxWorkflowName, in)
	if errors.As(err, &already) {
		// Another attempt of the same start may have won the race.
		if again, derr := Describe(ctx, c, id); derr == nil && again.Running && in.WaveID != "" && again.Wave == in.WaveID {
			return Start{Started: true, RunID: again.RunID}, nil
		}
		return Start{Refusal: "started by someone else at the same moment"}, nil
	}
	if err != nil {
		return Start{}, fmt.Errorf("starting workflow %s again: %w", id, err)
	}
	return Start{Started: true, RunID: run.GetRunID()}, nil
}

// Run is what is known of a mailbox workflow's latest run.
type Run struct {
	Running bool
	Status  enumspb.WorkflowExecutionStatus
	// Wave is the run's MailwaveWave search attribute: empty for a
	// mailbox started on its own.
	Wave    string
	RunID   string
	Started time.Time
	// Result is the run's result, when it completed.
	Result *contract.MailboxResult
}

// awaitClosed waits, up to a minute, for a mailbox's run to close.
func awaitClosed(ctx context.Context, c client.Client, id string) (Run, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		p, err := Describe(ctx, c, id)
		if err != nil || !p.Running {
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

// Describe looks up the latest run of the mailbox workflow id.
func Describe(ctx context.Context, c client.Client, id string) (Run, error) {
	desc, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return Run{}, fmt.Errorf("looking up workflow %s: %w", id, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	p := Run{
		Running: info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING,
		Status:  info.GetStatus(),
		RunID:   info.GetExecution().GetRunId(),
		Started: info.GetStartTime().AsTime(),
	}
	if payload, ok := info.GetSearchAttributes().GetIndexedFields()[searchattr.Wave.GetName()]; ok {
		_ = converter.GetDefaultDataConverter().FromPayload(payload, &p.Wave)
	}
	if info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		var res contract.MailboxResult
		if err := c.GetWorkflow(ctx, id, p.RunID).Get(ctx, &res); err != nil {
			return Run{}, fmt.Errorf("reading the result of workflow %s: %w", id, err)
		}
		p.Result = &res
	}
	return p, nil
}
