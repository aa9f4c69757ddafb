package workflows

import (
	"errors"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"mailwave/activities"
	"mailwave/contract"
)

// scheduledStart is the search attribute a schedule sets on each workflow
// it starts: the time the firing was due, not when it ran (a firing caught
// up after the server was down runs late, for the night it was due for).
var scheduledStart = temporal.NewSearchAttributeKeyTime("TemporalScheduledStartTime")

// ProgrammeNight runs one night of a programme, started by its schedule
// Lead before the night: it chooses the night's mailboxes from the estate
// (at random, seeded by the night, from ready organisations), writes the
// night's roster, starts the night's wave and waits for it, then writes
// back to the estate how each mailbox ended, holding an organisation whose
// share needing support passed its budget. Every step is idempotent by the
// night's wave ID: a firing run twice chooses and starts once.
func ProgrammeNight(ctx workflow.Context, in contract.NightInput) (contract.NightResult, error) {
	if err := in.Check(); err != nil {
		return contract.NightResult{}, temporal.NewNonRetryableApplicationError(err.Error(), contract.ErrTypeInvalidInput, nil)
	}
	fired, ok := workflow.GetTypedSearchAttributes(ctx).GetTime(scheduledStart)
	if !ok {
		fired = workflow.Now(ctx) // started by hand, not by a schedule: the night is Lead from now
	}
	at := fired.Add(in.Lead)
	if !in.MigrateAt.IsZero() {
		at = in.MigrateAt // a pilot's, given
	}
	res := contract.NightResult{MigrateAt: at.UTC().Truncate(time.Second)}
	res.WaveID = contract.NightWaveID(in.Schedule, res.MigrateAt)
	res.Seed = contract.NightSeed(res.WaveID)

	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute,
		HeartbeatTimeout:    2 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
		},
	})
	var chose activities.ChooseNightResult
	if err := workflow.ExecuteActivity(actx, contract.ActivityChooseNight, activities.ChooseNightInput{
		WaveID: res.WaveID, MigrateAt: res.MigrateAt, N: in.Size, Seed: res.Seed, Zone: in.Zone, Skip: in.Skip, Orgs: in.Orgs,
	}).Get(ctx, &chose); err != nil {
		return res, err
	}
	res.Chosen, res.Skipped = chose.Chosen, chose.Skipped
	if res.Skipped != "" {
		return res, nil
	}

	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            contract.WaveWorkflowID(res.WaveID),
		TaskQueue:             contract.TaskQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		// The wave is the programme's, not this run's: a night workflow
		// terminated by mistake leaves its wave running.
		ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
		StaticSummary:     "wave " + res.WaveID,
	})
	wave := workflow.ExecuteChildWorkflow(cctx, contract.WaveWorkflowName, contract.WaveInput{
		WaveID:       res.WaveID,
		Total:        res.Chosen,
		MigrateAt:    res.MigrateAt,
		NoticeLead:   in.Lead,
		ReminderLead: in.ReminderLead,
		Cap:          in.Cap,
		ErrorBudget:  in.ErrorBudget,
	})
	if err := wave.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
		var already *temporal.ChildWorkflowExecutionAlreadyStartedError
		if errors.As(err, &already) {
			res.Skipped = "the night's wave was started by another run of this night"
			return res, nil
		}
		return res, err
	}
	if err := wave.Get(ctx, &res.Wave); err != nil {
		// The wave failed (not a mailbox: the wave itself). Its mailboxes
		// are written back all the same, so none is lost to the pool.
		workflow.GetLogger(ctx).Error("the night's wave failed", "wave", res.WaveID, "error", err)
	}

	var rec activities.RecordNightResult
	if err := workflow.ExecuteActivity(actx, contract.ActivityRecordNight, activities.RecordNightInput{
		WaveID: res.WaveID, SupportBudget: in.SupportBudget, MinSample: in.MinSample,
	}).Get(ctx, &rec); err != nil {
		return res, err
	}
	res.Migrated, res.NeedsSupport, res.Deferred, res.Held = rec.Migrated, rec.NeedsSupport, rec.Deferred, rec.Held
	return res, nil
}
