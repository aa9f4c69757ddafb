package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"mailwave/activities"
	"mailwave/contract"
)

func nightInput() contract.NightInput {
	return contract.NightInput{Schedule: "weeknights", Size: 220, Lead: 14 * 24 * time.Hour, ReminderLead: 24 * time.Hour, Zone: "Europe/London", Cap: 50}
}

// nightEnv is a test environment with the night's activities mocked and a
// stand-in for its wave that records what it was given.
func nightEnv(t *testing.T, due time.Time, chose *activities.ChooseNightResult) (*testsuite.TestWorkflowEnvironment, *contract.WaveInput) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(ProgrammeNight, workflow.RegisterOptions{Name: contract.NightWorkflowName})
	got := new(contract.WaveInput)
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context, in contract.WaveInput) (contract.WaveResult, error) {
		*got = in
		return contract.WaveResult{WaveID: in.WaveID, Total: in.Total, Migrated: in.Total - 3, NeedsSupport: 3}, nil
	}, workflow.RegisterOptions{Name: contract.WaveWorkflowName})
	env.RegisterActivityWithOptions(func(context.Context, activities.ChooseNightInput) (activities.ChooseNightResult, error) {
		return activities.ChooseNightResult{}, nil
	}, activity.RegisterOptions{Name: contract.ActivityChooseNight})
	env.RegisterActivityWithOptions(func(context.Context, activities.RecordNightInput) (activities.RecordNightResult, error) {
		return activities.RecordNightResult{}, nil
	}, activity.RegisterOptions{Name: contract.ActivityRecordNight})
	if chose != nil {
		env.OnActivity(contract.ActivityChooseNight, mock.Anything, mock.Anything).Return(*chose, nil)
	}
	if !due.IsZero() {
		require.NoError(t, env.SetTypedSearchAttributesOnStart(temporal.NewSearchAttributes(scheduledStart.ValueSet(due))))
		env.SetStartTime(due.Add(3 * time.Hour)) // caught up three hours late
	}
	return env, got
}

// TestANightIsTheOneItsFiringWasDueFor: a firing caught up late chooses the
// night it was due for (its wave ID, seed and T from the scheduled time, not
// from when it ran), starts that night's wave with the notice lead, and
// writes back its outcomes.
func TestANightIsTheOneItsFiringWasDueFor(t *testing.T) {
	due := time.Date(2026, 12, 21, 20, 0, 0, 0, time.UTC)
	env, wave := nightEnv(t, due, nil)
	var chose activities.ChooseNightInput
	env.OnActivity(contract.ActivityChooseNight, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ChooseNightInput) (activities.ChooseNightResult, error) {
			chose = in
			london, err := time.LoadLocation(in.Zone)
			require.NoError(t, err)
			at := activities.NightAt(in.Fired, in.Lead, london)
			id := contract.NightWaveID(in.Schedule, at)
			return activities.ChooseNightResult{Chosen: 220, Date: "2027-01-04", WaveID: id, MigrateAt: at, Seed: contract.NightSeed(id)}, nil
		})
	env.OnActivity(contract.ActivityRecordNight, mock.Anything, mock.Anything).Return(
		activities.RecordNightResult{Migrated: 217, NeedsSupport: 3, Held: []string{"trust-b"}}, nil)
	env.ExecuteWorkflow(contract.NightWorkflowName, nightInput())
	require.NoError(t, env.GetWorkflowError())
	var res contract.NightResult
	require.NoError(t, env.GetWorkflowResult(&res))

	wantT := time.Date(2027, 1, 4, 20, 0, 0, 0, time.UTC)
	assert.Equal(t, "weeknights-20270104T200000Z", res.WaveID)
	assert.Equal(t, wantT, res.MigrateAt)
	assert.Equal(t, contract.NightSeed(res.WaveID), res.Seed)
	assert.Equal(t, activities.ChooseNightInput{N: 220, Zone: "Europe/London", Fired: due, Lead: 14 * 24 * time.Hour, Schedule: "weeknights"}, chose,
		"the night is computed from the firing due, in its zone")
	assert.Equal(t, contract.WaveInput{WaveID: res.WaveID, Total: 220, MigrateAt: wantT, NoticeLead: 14 * 24 * time.Hour, ReminderLead: 24 * time.Hour, Cap: 50}, *wave)
	assert.Equal(t, 217, res.Wave.Migrated)
	assert.Equal(t, []string{"trust-b"}, res.Held)
	assert.Equal(t, 217, res.Migrated)
}

// TestANightWithNothingToChooseStartsNoWave: a date to skip, or an estate
// with nothing left, ends the night with the reason and no wave.
func TestANightWithNothingToChooseStartsNoWave(t *testing.T) {
	env, wave := nightEnv(t, time.Date(2027, 3, 19, 20, 0, 0, 0, time.UTC),
		&activities.ChooseNightResult{Date: "2027-04-02", Skipped: "the night of 2027-04-02 is a date to skip"})
	env.ExecuteWorkflow(contract.NightWorkflowName, nightInput())
	require.NoError(t, env.GetWorkflowError())
	var res contract.NightResult
	require.NoError(t, env.GetWorkflowResult(&res))
	assert.Contains(t, res.Skipped, "date to skip")
	assert.Empty(t, wave.WaveID, "no wave started")
	env.AssertNotCalled(t, contract.ActivityRecordNight, mock.Anything, mock.Anything)
}

// TestANightRefusesAnInputItCannotRun: a bad input fails at once, not retried.
func TestANightRefusesAnInputItCannotRun(t *testing.T) {
	env, _ := nightEnv(t, time.Time{}, nil)
	in := nightInput()
	in.Schedule = "../etc"
	env.ExecuteWorkflow(contract.NightWorkflowName, in)
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, env.GetWorkflowError(), &appErr)
	assert.Equal(t, contract.ErrTypeInvalidInput, appErr.Type())
}

// TestANightKeepsItsTimeOfDayAcrossAChangeOfTheClocks: fourteen days after
// a firing at 20:00 GMT, across the spring change, is 20:00 BST, not 21:00;
// and across the autumn one 20:00 GMT, not 19:00.
func TestANightKeepsItsTimeOfDayAcrossAChangeOfTheClocks(t *testing.T) {
	london, err := time.LoadLocation("Europe/London")
	require.NoError(t, err)
	lead := 14 * 24 * time.Hour
	spring := activities.NightAt(time.Date(2027, 3, 22, 20, 0, 0, 0, london), lead, london)
	assert.Equal(t, time.Date(2027, 4, 5, 19, 0, 0, 0, time.UTC), spring, "20:00 BST")
	autumn := activities.NightAt(time.Date(2027, 10, 25, 20, 0, 0, 0, london), lead, london)
	assert.Equal(t, time.Date(2027, 11, 8, 20, 0, 0, 0, time.UTC), autumn, "20:00 GMT")
	assert.Equal(t, time.Date(2027, 1, 4, 20, 0, 5, 0, time.UTC),
		activities.NightAt(time.Date(2027, 1, 4, 20, 0, 0, 0, time.UTC), 5*time.Second, time.UTC), "a lead of seconds is added as time")
}

// TestANightsWaveTakesTheSpreadPlannedForIt: a pre-staging night without a
// spread of its own asks for one planned from its mailboxes, and its wave
// pre-stages with it; the schedule's policy is not changed.
func TestANightsWaveTakesTheSpreadPlannedForIt(t *testing.T) {
	in := nightInput()
	in.MigrateAt = time.Date(2026, 12, 21, 20, 0, 0, 0, time.UTC)
	in.Prestage = &contract.Prestage{MailboxRate: 0.5e6, Efficiency: 0.9, Margin: 24 * time.Hour, Cap: 100, TenantRate: 50e6}
	env, got := nightEnv(t, time.Time{}, nil)
	var asked activities.ChooseNightInput
	env.OnActivity(contract.ActivityChooseNight, mock.Anything, mock.Anything).Return(
		func(_ context.Context, c activities.ChooseNightInput) (activities.ChooseNightResult, error) {
			asked = c
			return activities.ChooseNightResult{Chosen: 220, Spread: 31 * time.Hour, Shape: []float64{0, 0.5, 0.9}}, nil
		})
	env.ExecuteWorkflow(contract.NightWorkflowName, in)
	require.NoError(t, env.GetWorkflowError())
	assert.Equal(t, in.Prestage, asked.Prestage, "the night's policy goes to the planner")
	assert.Equal(t, in.Lead, asked.Lead, "with the notices' lead")
	require.NotNil(t, got.Prestage)
	assert.Equal(t, 31*time.Hour, got.Prestage.Spread)
	assert.Equal(t, []float64{0, 0.5, 0.9}, got.Prestage.Shape, "and the plan's shape")
	assert.Zero(t, in.Prestage.Spread, "the schedule's policy is not changed")
	assert.Nil(t, in.Prestage.Shape)
}
