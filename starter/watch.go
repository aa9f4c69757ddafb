package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"mailwave/workflows"
)

// watchedStages are the stages the live progress line counts.
var watchedStages = []workflows.Stage{
	workflows.StageCopying, workflows.StageCutover, workflows.StagePaused,
	workflows.StageMigrated, workflows.StageNeedsSupport, workflows.StageCancelled,
}

// countStages counts a wave's mailboxes per watched stage, and those closed,
// through the visibility store (the same lists the Temporal UI shows).
func countStages(ctx context.Context, c client.Client, wave string) (map[workflows.Stage]int64, int64, error) {
	base := fmt.Sprintf("%s = %q", workflows.SearchAttrWave.GetName(), wave)
	count := func(q string) (int64, error) {
		resp, err := c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: q})
		if err != nil {
			return 0, fmt.Errorf("counting %q: %w", q, err)
		}
		return resp.GetCount(), nil
	}
	counts := make(map[workflows.Stage]int64, len(watchedStages))
	for _, st := range watchedStages {
		n, err := count(fmt.Sprintf("%s AND %s = %q", base, workflows.SearchAttrStage.GetName(), string(st)))
		if err != nil {
			return nil, 0, err
		}
		counts[st] = n
	}
	closed, err := count(base + " AND ExecutionStatus != 'Running'")
	return counts, closed, err
}

// watchWave shows a progress bar until every one of total mailboxes of the
// wave has finished, and returns the final count per stage.
func watchWave(ctx context.Context, c client.Client, wave string, total int, timeout time.Duration, out io.Writer) (map[workflows.Stage]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	bar := progressbar.NewOptions(total, progressbar.OptionSetWriter(out), progressbar.OptionShowCount(),
		progressbar.OptionSetElapsedTime(true), progressbar.OptionSetPredictTime(true), progressbar.OptionFullWidth())
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		counts, closed, err := countStages(ctx, c, wave)
		if err != nil {
			return nil, err
		}
		bar.Describe(fmt.Sprintf("copying %d, cutover %d, migrated %d, needs support %d",
			counts[workflows.StageCopying], counts[workflows.StageCutover], counts[workflows.StageMigrated], counts[workflows.StageNeedsSupport]))
		_ = bar.Set64(closed)
		if closed >= int64(total) {
			_ = bar.Finish()
			fmt.Fprintln(out)
			return counts, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wave %s: %d of %d mailboxes finished before the watch gave up: %w", wave, closed, total, ctx.Err())
		case <-tick.C:
		}
	}
}
