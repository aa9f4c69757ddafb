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
	// Since changeNightInZone the night is Lead after the firing on its
	// zone's calendar, computed by the activity (the zone's rules are not
	// workflow code's to read); before, Lead of elapsed time, an hour off
	// across a change of the clocks.
	inZone := workflow.GetVersion(ctx, changeNightInZone, workflow.DefaultVersion, 1) == 1
	var res contract.NightResult
	choose := activities.ChooseNightInput{N: in.Size, Zone: in.Zone, Skip: in.Skip, Orgs: in.Orgs, Every: in.Every}
	switch {
	case !in.MigrateAt.IsZero(): // a pilot's T, given
		res.MigrateAt = in.MigrateAt.UTC().Truncate(time.Second)
	case inZone:
		choose.Fired, choose.Lead, choose.Schedule = fired, in.Lead, in.Schedule
	default:
		res.MigrateAt = fired.Add(in.Lead).UTC().Truncate(time.Second)
	}
	if in.Prestage != nil {
		// Its spread is planned from the sizes of the mailboxes chosen
		// (ChooseNightResult.Spread), their notices Lead before T.
		choose.Prestage, choose.Lead = in.Prestage, in.Lead
	}
	if choose.Fired.IsZero() {
		res.WaveID = contract.NightWaveID(in.Schedule, res.MigrateAt)
		res.Seed = contract.NightSeed(res.WaveID)
		choose.WaveID, choose.MigrateAt, choose.Seed = res.WaveID, res.MigrateAt, res.Seed
	}

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
	if err := workflow.ExecuteActivity(chooseOptions(ctx, inZone, actx), contract.ActivityChooseNight, choose).Get(ctx, &chose); err != nil {
		return res, err
	}
	if !choose.Fired.IsZero() {
		res.WaveID, res.MigrateAt, res.Seed = chose.WaveID, chose.MigrateAt, chose.Seed
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
		Prestage:     nightPrestage(in.Prestage, chose.Spread, chose.Shape), // nil for the nights before it: the same command
	})
	if err := wave.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
		var already *temporal.ChildWorkflowExecutionAlreadyStartedError
		if !errors.As(err, &already) {
			return res, err
		}
		if !inZone {
			res.Skipped = "the night's wave was started by another run of this night"
			return res, nil
		}
		// Started by an earlier run of this night (reset, or terminated
		// and run again), which will not write it back: this run waits
		// for it and does.
		if err := awaitWave(ctx, actx, res.WaveID, &res.Wave); err != nil {
			return res, err
		}
	} else if err := wave.Get(ctx, &res.Wave); err != nil {
		// The wave failed (not a mailbox: the wave itself). Its mailboxes
		// are written back all the same, so none is lost to the pool.
		workflow.GetLogger(ctx).Error("the night's wave failed", "wave", res.WaveID, "error", err)
	}

	var rec activities.RecordNightResult
	if err := workflow.ExecuteActivity(actx, contract.ActivityRecordNight, activities.RecordNightInput{
		WaveID: res.WaveID, SupportBudget: in.SupportBudget, MinSample: in.MinSample, Pilot: len(in.Orgs) > 0,
	}).Get(ctx, &rec); err != nil {
		return res, err
	}
	res.Migrated, res.NeedsSupport, res.Deferred, res.Unknown, res.Held = rec.Migrated, rec.NeedsSupport, rec.Deferred, rec.Unknown, rec.Held
	return res, nil
}

// changeNightInZone: a night's T is computed on its zone's calendar by
// ChooseNight, and a run that finds its wave started by an earlier run
// waits for it and writes it back.
const changeNightInZone = "night-in-zone"

// chooseOptions: since changeNightInZone, choosing is not heartbeat-timed
// (it does not heartbeat, and an estate of millions takes its time); the
// retry is safe, as a night is chosen once.
func chooseOptions(ctx workflow.Context, inZone bool, old workflow.Context) workflow.Context {
	if !inZone {
		return old
	}
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
		},
	})
}

// awaitWave waits, an hour at a time, for a wave this run did not start
// to end, and reads its result.
func awaitWave(ctx, actx workflow.Context, waveID string, out *contract.WaveResult) error {
	for {
		var st activities.WaveEndedResult
		if err := workflow.ExecuteActivity(actx, contract.ActivityWaveEnded, activities.WaveEndedInput{WaveID: waveID}).Get(ctx, &st); err != nil {
			return err
		}
		if st.Ended {
			*out = st.Result
			return nil
		}
		if err := workflow.Sleep(ctx, time.Hour); err != nil {
			return err
		}
	}
}

// nightPrestage is the night's pre-staging with the spread and shape
// planned for it (when the policy gives no spread): a copy, the schedule's
// own is not changed.
func nightPrestage(p *contract.Prestage, spread time.Duration, shape []float64) *contract.Prestage {
	if p == nil || p.Spread > 0 || spread <= 0 {
		return p
	}
	q := *p
	q.Spread, q.Shape = spread, shape
	return &q
}
