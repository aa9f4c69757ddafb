package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"

	"mailwave/contract"
	"mailwave/internal/control"
	"mailwave/mail/notices"
	"mailwave/roster/rosterstore"
)

// newWavePurgeCmd removes what a finished wave left on disk that names its
// staff: its roster (addresses and names) and its mailboxes' notice files.
func newWavePurgeCmd(a *app) *cobra.Command {
	var wave, wavesDir, outboxDir, ledgerDir string
	cmd := &cobra.Command{
		Use:   "purge",
		Short: "Remove a finished wave's roster and its mailboxes' notice files (outbox messages, sent ledger)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.purgeWave(cmd.Context(), wave, wavesDir, outboxDir, ledgerDir)
		},
	}
	f := cmd.Flags()
	f.StringVar(&wave, "wave", "", "the wave (required)")
	f.StringVar(&wavesDir, "waves-dir", "data/waves", "the roster store the wave was launched with (a directory, or a postgres:// URL)")
	f.StringVar(&outboxDir, "outbox-dir", "", "the outbox notifier's directory, whose messages for the wave go too")
	f.StringVar(&ledgerDir, "ledger-dir", "", "the SMTP notifier's sent ledger, whose records for the wave go too")
	_ = cmd.MarkFlagRequired("wave")
	return cmd
}

func (a *app) purgeWave(ctx context.Context, wave, wavesDir, outboxDir, ledgerDir string) error {
	if err := checkWaveID(wave); err != nil {
		return err
	}
	c, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	// A wave Temporal no longer knows (past the namespace's retention) has
	// finished long ago: its roster may go all the same.
	status := enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
	desc, err := c.DescribeWorkflowExecution(ctx, contract.WaveWorkflowID(wave), "")
	var gone *serviceerror.NotFound
	switch {
	case errors.As(err, &gone):
	case err != nil:
		return fmt.Errorf("looking up wave %s: %w", wave, err)
	default:
		status = desc.GetWorkflowExecutionInfo().GetStatus()
	}
	if status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return fmt.Errorf("wave %s is still running: purge it once it has finished (or cancel it first)", wave)
	}
	store, err := rosterstore.Open(ctx, wavesDir)
	if err != nil {
		return err
	}
	defer store.Close()
	rows, err := store.All(ctx, wave)
	if err != nil {
		return fmt.Errorf("reading wave %s's roster: %w", wave, err)
	}
	removed := map[string]int{}
	skipped := 0
	for i, row := range rows {
		if (i+1)%10000 == 0 {
			fmt.Fprintf(a.out, "purging wave %s: %d of %d mailboxes\n", wave, i+1, len(rows))
		}
		// Notice files are a mailbox's, not a wave's: one running again (in
		// another wave, or on its own) keeps them, its ledger proving the
		// T-14 notice before its cutover.
		run, err := control.Describe(ctx, c, contract.MailboxWorkflowID(row.Key))
		var notFound *serviceerror.NotFound
		switch {
		case errors.As(err, &notFound):
		case err != nil:
			return err
		case run.Running:
			skipped++
			continue
		}
		for _, d := range []struct{ dir, suffix, what string }{
			{outboxDir, notices.OutboxSuffix, "outbox messages"}, {ledgerDir, notices.LedgerSuffix, "ledger records"},
			{ledgerDir, notices.ClaimSuffix, "ledger claims"}, // left by a worker killed while sending
		} {
			if d.dir == "" {
				continue
			}
			n, err := notices.RemoveFiles(d.dir, row.Key, d.suffix)
			removed[d.what] += n
			if err != nil {
				return err
			}
		}
	}
	if err := store.Remove(ctx, wave); err != nil {
		return err
	}
	fmt.Fprintf(a.out, "purged wave %s: its roster (%d mailboxes), %d outbox messages, %d ledger records, %d ledger claims; kept the notice files of %d mailboxes migrating again elsewhere\n",
		wave, len(rows), removed["outbox messages"], removed["ledger records"], removed["ledger claims"], skipped)
	return nil
}
