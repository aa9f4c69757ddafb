package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"mailwave/contract"
	"mailwave/internal/control"
)

func newWaveStatusCmd(a *app) *cobra.Command {
	var wave, csvPath string
	var watch bool
	var every time.Duration
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show a wave's progress (--watch: a live progress bar until it ends; --csv: every mailbox's stage)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := a.waveTarget(cmd.Context(), wave)
			if err != nil {
				return err
			}
			defer c.Close()
			if watch {
				if _, err := watchWaveProgress(cmd.Context(), c, wave, every, a.out); err != nil {
					return err
				}
			}
			if err := printWaveStatus(cmd.Context(), c, wave, a.out); err != nil {
				return err
			}
			if csvPath != "" {
				n, err := writeWaveCSV(cmd.Context(), c, wave, csvPath)
				if err != nil {
					return err
				}
				fmt.Fprintf(a.out, "%d mailboxes written to %s\n", n, csvPath)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&wave, "wave", "", "the wave's ID (required)")
	cmd.Flags().BoolVar(&watch, "watch", false, "show a live progress bar until the wave ends")
	cmd.Flags().DurationVar(&every, "every", time.Second, "with --watch: how often to refresh")
	cmd.Flags().StringVar(&csvPath, "csv", "", "write every mailbox of the wave (key, stage, since, status) to this CSV file")
	_ = cmd.MarkFlagRequired("wave")
	return cmd
}

// waveProgress asks a running wave for its progress; for a finished wave it
// turns the result into the same shape.
func waveProgress(ctx context.Context, c client.Client, wave string) (contract.WaveProgress, *contract.WaveResult, error) {
	id := contract.WaveWorkflowID(wave)
	desc, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return contract.WaveProgress{}, nil, fmt.Errorf("looking up wave %s: %w", wave, err)
	}
	if desc.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		var res contract.WaveResult
		if err := c.GetWorkflow(ctx, id, "").Get(ctx, &res); err != nil {
			return contract.WaveProgress{}, nil, fmt.Errorf("wave %s ended without a result: %w", wave, err)
		}
		return contract.WaveProgress{
			WaveID: wave, Total: res.Total, Started: res.Total - res.Refused, Refused: res.Refused,
			Migrated: res.Migrated, NeedsSupport: res.NeedsSupport, Cancelled: res.Cancelled, Copied: res.Copied,
			Runs: res.Runs, StartedAt: res.StartedAt, Refusals: res.Refusals,
		}, &res, nil
	}
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := c.QueryWorkflow(qctx, id, "", contract.QueryProgress)
	if err != nil {
		return contract.WaveProgress{}, nil, fmt.Errorf("asking wave %s for its progress (is a worker running?): %w", wave, err)
	}
	var p contract.WaveProgress
	if err := v.Get(&p); err != nil {
		return p, nil, err
	}
	return p, nil, nil
}

func printWaveStatus(ctx context.Context, c client.Client, wave string, out io.Writer) error {
	p, res, err := waveProgress(ctx, c, wave)
	if err != nil {
		return err
	}
	state := "running"
	switch {
	case res != nil:
		state = fmt.Sprintf("finished in %s", res.Duration.Round(time.Second))
	case p.Cancelling:
		state = "cancelling"
	case p.Paused:
		state = "paused: " + p.PauseReason
	}
	done := p.Migrated + p.NeedsSupport + p.Cancelled
	fmt.Fprintf(out, "wave %s: %s\n", wave, state)
	fmt.Fprintf(out, "  mailboxes     %d (started %d, refused %d)\n", p.Total, p.Started, p.Refused)
	if res == nil {
		fmt.Fprintf(out, "  waiting       %d\n  copying/cut   %d of %d at once\n", p.Waiting, p.Active, p.Cap)
	}
	fmt.Fprintf(out, "  migrated      %d\n  needs support %d\n  cancelled     %d\n", p.Migrated, p.NeedsSupport, p.Cancelled)
	if done > 0 {
		fmt.Fprintf(out, "  failure rate  %.2f%% of finished\n", 100*float64(p.NeedsSupport)/float64(max(1, p.Migrated+p.NeedsSupport)))
	}
	fmt.Fprintf(out, "  copied        %d items, %.1f GB\n  runs          %d\n", p.Copied.Items, float64(p.Copied.Bytes)/1e9, p.Runs)
	for _, r := range p.Refusals {
		fmt.Fprintf(out, "  refused       #%d %s: %s\n", r.Index, r.Key, r.Reason)
	}
	if p.Refused > len(p.Refusals) {
		fmt.Fprintf(out, "  refused       ... and %d more\n", p.Refused-len(p.Refusals))
	}
	return nil
}

// watchWaveProgress shows a live progress bar until the wave ends.
func watchWaveProgress(ctx context.Context, c client.Client, wave string, every time.Duration, out io.Writer) (contract.WaveResult, error) {
	var bar *progressbar.ProgressBar
	tick := time.NewTicker(every)
	defer tick.Stop()
	failures := 0
	for {
		p, res, err := waveProgress(ctx, c, wave)
		if err != nil {
			// A watch rides out a passing error (a worker restarting);
			// five in a row end it.
			if failures++; failures == 5 {
				return contract.WaveResult{}, err
			}
			select {
			case <-ctx.Done():
				return contract.WaveResult{}, ctx.Err()
			case <-tick.C:
			}
			continue
		}
		failures = 0
		if bar == nil {
			bar = progressbar.NewOptions(p.Total, progressbar.OptionSetWriter(out), progressbar.OptionShowCount(),
				progressbar.OptionSetElapsedTime(true), progressbar.OptionSetPredictTime(true), progressbar.OptionFullWidth())
		}
		state := ""
		if p.Paused {
			state = " PAUSED"
		}
		bar.Describe(fmt.Sprintf("%s: waiting %d, copying %d, migrated %d, needs support %d%s",
			wave, p.Waiting, p.Active, p.Migrated, p.NeedsSupport, state))
		_ = bar.Set(p.Migrated + p.NeedsSupport + p.Cancelled + p.Refused)
		if res != nil {
			_ = bar.Finish()
			fmt.Fprintln(out)
			return *res, nil
		}
		select {
		case <-ctx.Done():
			return contract.WaveResult{}, ctx.Err()
		case <-tick.C:
		}
	}
}

// writeWaveCSV lists every mailbox workflow of the wave with its stage.
func writeWaveCSV(ctx context.Context, c client.Client, wave, path string) (int, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w := csv.NewWriter(f)
	_ = w.Write([]string{"key", "workflow_id", "status", "stage", "stage_since"})
	query := fmt.Sprintf("%s = '%s'", contract.SearchAttrWave.GetName(), wave)
	dc := converter.GetDefaultDataConverter()
	n := 0
	err = control.EachWorkflow(ctx, c, query, func(ex *workflowpb.WorkflowExecutionInfo) {
		fields := ex.GetSearchAttributes().GetIndexedFields()
		var stage string
		var since time.Time
		if p, ok := fields[contract.SearchAttrStage.GetName()]; ok {
			_ = dc.FromPayload(p, &stage)
		}
		if p, ok := fields[contract.SearchAttrStageSince.GetName()]; ok {
			_ = dc.FromPayload(p, &since)
		}
		id := ex.GetExecution().GetWorkflowId()
		_ = w.Write([]string{contract.MailboxKeyOf(id), id, control.StatusName(ex.GetStatus()), stage, since.UTC().Format(time.RFC3339)})
		n++
	})
	if err != nil {
		return n, fmt.Errorf("listing wave %s: %w", wave, err)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return n, err
	}
	return n, f.Close()
}
