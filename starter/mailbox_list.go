package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"mailwave/starter/printer"
)

// mailboxListOptions are the flags of `mailbox list`.
type mailboxListOptions struct {
	filter mailboxFilter
	limit  int
	output printer.Format
}

func newMailboxListCmd(a *app) *cobra.Command {
	var o mailboxListOptions
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List mailboxes by wave, stage, organisation, error type, time in stage or pause, with the activity being retried",
		Long: `List mailbox migrations matching every filter given, from their search
attributes, in the order the server lists them. For a running mailbox the row
shows the activity the server runs or retries for it: its attempt, its last
failure and its next retry.

  starter mailbox list --wave 2026-12-05-night --stage copying --older-than 2h
  starter mailbox list --error-type MailboxNotFound --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.listMailboxes(cmd, o, time.Now())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.filter.wave, "wave", "", "only this wave's mailboxes")
	f.StringVar(&o.filter.stage, "stage", "", "only those in this stage ("+stageNames(stages)+")")
	f.StringVar(&o.filter.org, "org", "", "only this organisation's")
	f.StringVar(&o.filter.errorType, "error-type", "", "only those that need support with this error type (e.g. MailboxNotFound)")
	f.DurationVar(&o.filter.olderThan, "older-than", 0, "only those in their stage longer than this, e.g. 2h (without --stage: running ones only)")
	f.BoolVar(&o.filter.paused, "paused", false, "only those held by a pause")
	f.BoolVar(&o.filter.running, "running", false, "only those whose migration is running")
	f.IntVar(&o.limit, "limit", 100, "show at most this many (0: all), and say how many more")
	addOutputFlag(cmd, &o.output)
	return cmd
}

func (a *app) listMailboxes(cmd *cobra.Command, o mailboxListOptions, now time.Time) error {
	if o.limit < 0 {
		return fmt.Errorf("--limit %d: a count cannot be negative", o.limit)
	}
	query, err := o.filter.query(now)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	_, fc, err := a.converters()
	if err != nil {
		return err
	}
	c, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	prog := newProgress(cmd.ErrOrStderr())
	rows, more, err := listRows(ctx, c, query, o.limit, now, prog)
	if err != nil {
		return err
	}
	describeErr := describeRunning(ctx, c, fc, rows, prog)
	prog.done()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	p := printerFor(cmd, o.output)
	if err := p.List(rows); err != nil {
		return err
	}
	if more > 0 {
		note(cmd, p, "... and %d more (raise --limit to see them)", more)
	}
	if describeErr != nil {
		fmt.Fprintln(cmd.ErrOrStderr(), "warning:", describeErr)
	}
	return nil
}

// listRows lists the mailboxes query matches as rows, at most limit.
func listRows(ctx context.Context, c client.Client, query string, limit int, now time.Time, prog *progress) ([]mailboxRow, int64, error) {
	execs, more, err := listExecutions(ctx, c, query, limit, prog)
	if err != nil {
		return nil, 0, err
	}
	rows := make([]mailboxRow, len(execs))
	for i, ex := range execs {
		rows[i] = rowOf(ex, now)
	}
	return rows, more, nil
}
