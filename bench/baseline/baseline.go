// Package baseline is what the wave's throughput is measured against: the
// simplest real Temporal workload of about the same shape as one mailbox's
// migration, a workflow running a few no-op activities in sequence. Only the
// benchmark's own baseline worker (`bench -serve-baseline`) registers it, on
// a task queue of its own.
package baseline

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TaskQueue is the baseline's own task queue: no mailwave worker polls it.
const TaskQueue = "mailwave-baseline"

// Registered names.
const (
	WorkflowName = "Baseline"
	ActivityName = "BaselineNoop"
)

// Steps is how many activities one Baseline workflow runs.
const Steps = 5

// Input starts a Baseline workflow; it carries nothing.
type Input struct{}

// Result is what a Baseline workflow returns: the steps it ran.
type Result struct {
	Steps int
}

// BaselineNoopInput names the step of the workflow the activity is.
type BaselineNoopInput struct {
	Step int
}

// BaselineNoopResult echoes the step.
type BaselineNoopResult struct {
	Step int
}

// Baseline runs Steps no-op regular activities, one after the other.
func Baseline(ctx workflow.Context, _ Input) (Result, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    10 * time.Second,
			MaximumAttempts:    5,
		},
	})
	for step := range Steps {
		var out BaselineNoopResult
		if err := workflow.ExecuteActivity(ctx, ActivityName, BaselineNoopInput{Step: step}).Get(ctx, &out); err != nil {
			return Result{Steps: step}, err
		}
	}
	return Result{Steps: Steps}, nil
}

// BaselineNoop does nothing: its cost is Temporal's alone.
func BaselineNoop(_ context.Context, in BaselineNoopInput) (BaselineNoopResult, error) {
	return BaselineNoopResult(in), nil
}

// Register puts the Baseline workflow and its activity on a worker.
func Register(r worker.Registry) {
	r.RegisterWorkflowWithOptions(Baseline, workflow.RegisterOptions{Name: WorkflowName})
	r.RegisterActivityWithOptions(BaselineNoop, activity.RegisterOptions{Name: ActivityName})
}
