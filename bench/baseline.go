package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/client"
	"golang.org/x/sync/errgroup"

	"mailwave/bench/baseline"
)

// baselineFigures is what the baseline half measured.
type baselineFigures struct {
	elapsed time.Duration
}

// rate is Baseline workflows completed per second.
func (f *baselineFigures) rate(n int) float64 { return float64(n) / f.elapsed.Seconds() }

// runBaseline runs n Baseline workflows through a sliding window: at most
// concurrency in flight, the next one started as soon as one completes.
func runBaseline(ctx context.Context, c client.Client, n, concurrency int) (*baselineFigures, error) {
	prefix := fmt.Sprintf("baseline-%d-", time.Now().UnixNano())
	var done atomic.Int64
	runAll := func(ctx context.Context) error {
		g, ctx := errgroup.WithContext(ctx)
		g.SetLimit(concurrency) // Go blocks while concurrency workflows are in flight
		for i := range n {
			if ctx.Err() != nil {
				break // one failed: stop starting more
			}
			g.Go(func() error {
				if err := runOneBaseline(ctx, c, fmt.Sprintf("%s%d", prefix, i)); err != nil {
					return err
				}
				done.Add(1)
				return nil
			})
		}
		return g.Wait()
	}
	logf("baseline: %d workflows, %d in flight", n, concurrency)
	start := time.Now()
	err := waitReporting(ctx, runAll, func(context.Context) {
		logf("baseline: %d/%d done after %s", done.Load(), n, time.Since(start).Round(time.Second))
	})
	if err != nil {
		return nil, err
	}
	f := &baselineFigures{elapsed: time.Since(start)}
	logf("baseline: %d workflows in %s", n, f.elapsed.Round(time.Millisecond))
	return f, nil
}

// runOneBaseline starts one Baseline workflow and waits for its result.
func runOneBaseline(ctx context.Context, c client.Client, id string) error {
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: baseline.TaskQueue}, baseline.WorkflowName, baseline.Input{})
	if err != nil {
		return fmt.Errorf("starting %s: %w", id, err)
	}
	var res baseline.Result
	if err := run.Get(ctx, &res); err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	if res.Steps != baseline.Steps {
		return fmt.Errorf("%s ran %d activities, not %d", id, res.Steps, baseline.Steps)
	}
	return nil
}
