package main

import (
	"context"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"mailwave/bench/baseline"
	"mailwave/internal/connect"
	"mailwave/testkit"
)

// serveBaselineFlag makes this binary the baseline's worker: the baseline
// workflow is registered by no other.
const serveBaselineFlag = "-serve-baseline"

// baselineWorkerArgs runs this binary (self) as the baseline's worker.
func baselineWorkerArgs(self, hostPort string) []string {
	return []string{self, serveBaselineFlag, hostPort}
}

// serveBaseline polls the baseline's task queue on the server at hostPort
// with the mailwave worker's limits until ctx ends.
func serveBaseline(ctx context.Context, hostPort string) error {
	o := connect.Options{Address: hostPort, Keys: testkit.TestKeyRing(), Log: connect.LogOptions{Level: "warn", Format: "console"}}
	c, z, err := o.Connect(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = z.Sync() }()
	defer c.Close()
	w := worker.New(c, baseline.TaskQueue, worker.Options{
		MaxConcurrentActivityExecutionSize:      workerMaxActivities,
		MaxConcurrentLocalActivityExecutionSize: workerMaxLocalActivities,
		MaxConcurrentWorkflowTaskExecutionSize:  workerMaxWorkflowTasks,
	})
	baseline.Register(w)
	if err := w.Start(); err != nil {
		return fmt.Errorf("starting the baseline worker: %w", err)
	}
	<-ctx.Done()
	w.Stop()
	return nil
}

// waitForPollers waits until a worker polls the task queue for both
// workflow and activity tasks.
func waitForPollers(ctx context.Context, c client.Client, taskQueue string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, typ := range []enumspb.TaskQueueType{enumspb.TASK_QUEUE_TYPE_WORKFLOW, enumspb.TASK_QUEUE_TYPE_ACTIVITY} {
		for {
			resp, err := c.DescribeTaskQueue(ctx, taskQueue, typ)
			if err == nil && len(resp.GetPollers()) > 0 {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("no worker polls task queue %s: %w", taskQueue, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}
