package main

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"mailwave/contract"
	"mailwave/starter/printer"
)

// waveStuckOptions are the flags of `wave stuck`.
type waveStuckOptions struct {
	wave      string
	olderThan time.Duration
	attempts  int
	limit     int
	output    printer.Format
}

// stuckRow is a mailbox held back, and why.
type stuckRow struct {
	mailboxRow
	Reasons []string `json:"reasons"`
}

func newWaveStuckCmd(a *app) *cobra.Command {
	var o waveStuckOptions
	cmd := &cobra.Command{
		Use:   "stuck",
		Short: "List a wave's mailboxes held back: long in one stage, an activity failing again and again, or paused",
		Long: `List the running mailboxes of a wave that are held back, longest first:
  - in a working stage (sending a notice, copying, cutting over) longer than --older-than;
  - whose current activity is past attempt --attempts (it has failed that many times);
  - paused (by an operator, or held by their wave).
Waiting for a date (T-14, T-1, T) or for a copy slot is the plan, not stuck.
Each row says why it is listed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.waveStuck(cmd, o, time.Now())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.wave, "wave", "", "the wave's ID (required)")
	f.DurationVar(&o.olderThan, "older-than", 2*time.Hour, "list a mailbox in one working stage longer than this")
	f.IntVar(&o.attempts, "attempts", 3, "list a mailbox whose current activity is past this attempt")
	f.IntVar(&o.limit, "limit", 100, "show at most this many (0: all), and say how many more")
	addOutputFlag(cmd, &o.output)
	_ = cmd.MarkFlagRequired("wave")
	return cmd
}

func (a *app) waveStuck(cmd *cobra.Command, o waveStuckOptions, now time.Time) error {
	switch {
	case o.olderThan <= 0:
		return fmt.Errorf("--older-than %s: give a length of time more than zero", o.olderThan)
	case o.attempts < 1:
		return fmt.Errorf("--attempts %d: give a count of at least 1", o.attempts)
	case o.limit < 0:
		return fmt.Errorf("--limit %d: a count cannot be negative", o.limit)
	}
	query, err := stuckQuery(o.wave)
	if err != nil {
		return err
	}
	_, fc, err := a.converters()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	c, _, err := a.waveTarget(ctx, o.wave)
	if err != nil {
		return err
	}
	defer c.Close()
	prog := newProgress(cmd.ErrOrStderr())
	// Every candidate is listed and described: the attempts are known only
	// to the server's description of each, and the candidates are those in
	// a working stage (bounded by the wave's cap) or paused.
	rows, _, err := listRows(ctx, c, query, 0, now, prog)
	if err != nil {
		return err
	}
	describeErr := describeRunning(ctx, c, fc, rows, prog)
	prog.done()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	stuck := judgeStuck(rows, now.Add(-o.olderThan), o.olderThan, o.attempts)
	more := 0
	if o.limit > 0 && len(stuck) > o.limit {
		stuck, more = stuck[:o.limit], len(stuck)-o.limit
	}
	p := printerFor(cmd, o.output)
	if err := p.List(stuck); err != nil {
		return err
	}
	if more > 0 {
		note(cmd, p, "... and %d more (raise --limit to see them)", more)
	}
	if len(stuck) == 0 && p.IsText() {
		note(cmd, p, "nothing held back in wave %s (stage over %s, attempt over %d, or paused)", o.wave, o.olderThan, o.attempts)
	}
	if describeErr != nil {
		fmt.Fprintln(cmd.ErrOrStderr(), "warning:", describeErr)
	}
	return nil
}

// judgeStuck keeps the rows held back, with the reasons, longest in their
// stage first: paused; in a working stage since before cutoff; or with an
// activity past attempt maxAttempts.
func judgeStuck(rows []mailboxRow, cutoff time.Time, olderThan time.Duration, maxAttempts int) []stuckRow {
	var out []stuckRow
	for _, r := range rows {
		var reasons []string
		if r.Paused || r.Stage == string(contract.StagePaused) {
			reasons = append(reasons, "paused")
		}
		working := slices.Contains(workingStages, contract.Stage(r.Stage)) && r.Stage != string(contract.StagePaused)
		if working && !r.Since.IsZero() && r.Since.Before(cutoff) {
			reasons = append(reasons, fmt.Sprintf("%s for %s (over %s)",
				strings.ReplaceAll(r.Stage, "_", " "), r.Age.Text(), olderThan))
		}
		if r.Attempt != nil && int(*r.Attempt) > maxAttempts {
			reasons = append(reasons, fmt.Sprintf("%s on attempt %d (over %d)", r.Activity, *r.Attempt, maxAttempts))
		}
		if len(reasons) > 0 {
			out = append(out, stuckRow{mailboxRow: r, Reasons: reasons})
		}
	}
	slices.SortFunc(out, func(a, b stuckRow) int {
		return cmp.Or(a.Since.Compare(b.Since), strings.Compare(a.Key, b.Key))
	})
	return out
}
