package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/client"

	"mailwave/contract"
	"mailwave/internal/control"
	"mailwave/mail/sim"
)

// waveFigures is what the wave half measured.
type waveFigures struct {
	elapsed    time.Duration
	runs       int   // runs of the wave workflow (continue-as-new)
	maxEvents  int64 // the longest run's history, in events
	lost       int64
	duplicated int64
	cutOver    int
}

// rate is mailboxes migrated per second.
func (f *waveFigures) rate(n int) float64 { return float64(n) / f.elapsed.Seconds() }

// runWave launches a wave over the whole estate with the starter, waits for
// it to finish, then counts its runs and verifies the estate.
// c and connectArgs reach the server (the starter gets the flags).
func runWave(ctx context.Context, o options, c client.Client, connectArgs []string, d layout) (*waveFigures, error) {
	waveID := fmt.Sprintf("bench-%d", time.Now().Unix())
	workflowID := contract.WaveWorkflowID(waveID)

	// The roster's organisations are configured first: a launch takes
	// only the estate's.
	imp := exec.CommandContext(ctx, o.starterBin, append([]string{"programme", "import",
		filepath.Join(d.estate, sim.RosterFile), "--waves-dir", d.waves}, connectArgs...)...)
	imp.Env = childEnv()
	imp.Stdout, imp.Stderr = os.Stderr, os.Stderr
	if err := imp.Run(); err != nil {
		return nil, fmt.Errorf("starter programme import: %w", err)
	}

	logf("wave %s: launching %d mailboxes, cap %d", waveID, o.n, o.concurrency)
	start := time.Now()
	launch := exec.CommandContext(ctx, o.starterBin, append([]string{"wave", "launch",
		"--wave", waveID,
		"--roster", filepath.Join(d.estate, sim.RosterFile),
		"--sample-percent", "100",
		"--seed", "1",
		"--migrate-at", "+2s",
		"--notice-lead", "1s",
		"--reminder-lead", "1s",
		"--allow-short-notice",
		"--concurrency", strconv.Itoa(o.concurrency),
		"--start-rate", strconv.FormatFloat(o.startRate, 'f', -1, 64),
		"--waves-dir", d.waves}, connectArgs...)...,
	)
	launch.Env = childEnv()
	launch.Stdout = os.Stderr // stdout carries the figures only
	launch.Stderr = os.Stderr
	if err := launch.Run(); err != nil {
		return nil, fmt.Errorf("starter wave launch: %w", err)
	}

	// Get follows the chain of continue-as-new runs to the last one's result.
	var result contract.WaveResult
	wait := func(ctx context.Context) error {
		return c.GetWorkflow(ctx, workflowID, "").Get(ctx, &result)
	}
	if err := waitReporting(ctx, wait, func(ctx context.Context) { reportWave(ctx, c, workflowID, start) }); err != nil {
		return nil, fmt.Errorf("waiting for %s: %w", workflowID, err)
	}
	f := &waveFigures{elapsed: time.Since(start)}
	logf("wave %s: done in %s: %d migrated, %d need support, %d cancelled, %d refused, %d runs",
		waveID, f.elapsed.Round(time.Millisecond), result.Migrated, result.NeedsSupport, result.Cancelled, result.Refused, result.Runs)

	var err error
	if f.runs, f.maxEvents, err = waveRuns(ctx, c, workflowID, result.Runs); err != nil {
		return nil, err
	}
	rep, err := verifyEstate(ctx, d.estate)
	if err != nil {
		return nil, err
	}
	f.lost, f.duplicated, f.cutOver = rep.Totals.Lost, rep.Totals.Duplicated, rep.Totals.CutOver
	return f, nil
}

// reportWave prints the wave's progress query to stderr; a query that fails
// (say, while the wave continues as new) is reported and skipped.
func reportWave(ctx context.Context, c client.Client, workflowID string, start time.Time) {
	ctx, cancel := context.WithTimeout(ctx, progressEvery)
	defer cancel()
	var p contract.WaveProgress
	v, err := c.QueryWorkflow(ctx, workflowID, "", contract.QueryProgress)
	if err == nil {
		err = v.Get(&p)
	}
	if err != nil {
		logf("wave: progress query: %v", err)
		return
	}
	logf("wave: %s: started %d/%d, waiting %d, active %d, migrated %d, needs support %d, cancelled %d, run %d",
		time.Since(start).Round(time.Second), p.Started, p.Total, p.Waiting, p.Active, p.Migrated, p.NeedsSupport, p.Cancelled, p.Runs)
}

// waveRuns lists every run of the wave workflow and returns how many there
// are and the longest history among them. Visibility lags a little behind
// the runs closing, so it lists again until it sees at least want runs
// (when known), all closed.
func waveRuns(ctx context.Context, c client.Client, workflowID string, want int) (int, int64, error) {
	const settle = 30 * time.Second
	deadline := time.Now().Add(settle)
	query := fmt.Sprintf("WorkflowId = '%s'", workflowID)
	for {
		var runs, running int
		var maxEvents int64
		err := control.EachWorkflow(ctx, c, query, func(e *workflowpb.WorkflowExecutionInfo) {
			runs++
			maxEvents = max(maxEvents, e.GetHistoryLength())
			if e.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
				running++
			}
		})
		if err != nil {
			return 0, 0, fmt.Errorf("listing the runs of %s: %w", workflowID, err)
		}
		if (runs >= want && running == 0) || time.Now().After(deadline) {
			if runs < want || running > 0 {
				logf("wave: visibility still shows %d runs (%d running) of the %d the wave reported after %s", runs, running, want, settle)
			}
			return runs, maxEvents, nil
		}
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// verifyEstate verifies every mailbox of the estate's roster.
func verifyEstate(ctx context.Context, dir string) (sim.Report, error) {
	est, err := sim.Open(dir, sim.Options{})
	if err != nil {
		return sim.Report{}, err
	}
	roster, err := est.Roster()
	if err != nil {
		return sim.Report{}, err
	}
	addresses := make([]string, len(roster))
	for i, e := range roster {
		addresses[i] = e.Address
	}
	rep, err := est.Verify(ctx, addresses)
	if err != nil {
		return sim.Report{}, fmt.Errorf("verifying the estate: %w", err)
	}
	logf("verifier:\n%s", rep.Summary())
	return rep, nil
}
