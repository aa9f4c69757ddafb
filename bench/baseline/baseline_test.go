package baseline

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
)

func TestBaselineRunsFiveActivitiesInSequence(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	Register(env)

	var mu sync.Mutex
	var steps []int
	env.SetOnActivityCompletedListener(func(info *activity.Info, result converter.EncodedValue, err error) {
		require.Equal(t, ActivityName, info.ActivityType.Name)
		require.NoError(t, err)
		var out BaselineNoopResult
		require.NoError(t, result.Get(&out))
		mu.Lock()
		defer mu.Unlock()
		steps = append(steps, out.Step)
	})

	env.ExecuteWorkflow(WorkflowName, Input{})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res Result
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, Result{Steps: Steps}, res)
	require.Equal(t, []int{0, 1, 2, 3, 4}, steps)
}

func TestBaselineNoop(t *testing.T) {
	out, err := BaselineNoop(context.Background(), BaselineNoopInput{Step: 3})
	require.NoError(t, err)
	require.Equal(t, BaselineNoopResult{Step: 3}, out)
}
