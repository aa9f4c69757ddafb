package main

import (
	"cmp"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"mailwave/contract"
)

// rescheduleOptions are the flags `mailbox reschedule` and `wave remove`
// share.
type rescheduleOptions struct {
	to, reason, by string
}

func (o *rescheduleOptions) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.to, "to", "", "the new night's migration time T: RFC 3339, \"2006-01-02 15:04\" UTC, or +DURATION (required)")
	f.StringVar(&o.reason, "reason", "", "why, for the record (kept in the encrypted history; required)")
	f.StringVar(&o.by, "by", os.Getenv("USER"), "who asked, for the record")
	_ = cmd.MarkFlagRequired("to")
	_ = cmd.MarkFlagRequired("reason")
}

func (o rescheduleOptions) request(now time.Time) (contract.RescheduleRequest, error) {
	to, err := parseWhen(o.to, now)
	if err != nil {
		return contract.RescheduleRequest{}, fmt.Errorf("--to: %w", err)
	}
	return contract.RescheduleRequest{To: to, Reason: o.reason, By: o.by}, nil
}

func newMailboxRescheduleCmd(a *app) *cobra.Command {
	var o rescheduleOptions
	var address string
	cmd := &cobra.Command{
		Use:   "reschedule",
		Short: "Move one mailbox to another night: it leaves its wave (deferred), its user is told the new date, and the night of that date takes it",
		Long: "Move one mailbox to another night. Refused, with the reason, inside its T-1 window, once its copy has started,\n" +
			"to a time closer than its notice lead, or once it has ended. Accepted, the mailbox leaves its wave (counted\n" +
			"there as deferred), its user is sent the new date if its T-14 notice had gone out, and the programme's night\n" +
			"of the new date takes it first.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req, err := o.request(time.Now().UTC())
			if err != nil {
				return err
			}
			key, c, err := a.mailboxTarget(cmd.Context(), address)
			if err != nil {
				return err
			}
			defer c.Close()
			res, err := rescheduleMailbox(cmd.Context(), c, key, req)
			if err != nil {
				return err
			}
			if res.NotKept != "" {
				return fmt.Errorf("mailbox %s left its night but was not kept for %s (%s): it needs support, its admin is told, its user was told nothing new",
					key, res.To.UTC().Format(time.RFC3339), res.NotKept)
			}
			fmt.Fprintf(a.out, "mailbox %s moved from %s to %s; %s\n", key, res.From.UTC().Format(time.RFC3339),
				res.To.UTC().Format(time.RFC3339), correctedWords(res.Corrected))
			return nil
		},
	}
	cmd.Flags().StringVar(&address, "address", "", "the mailbox's email address (required)")
	_ = cmd.MarkFlagRequired("address")
	o.flags(cmd)
	return cmd
}

func correctedWords(corrected bool) string {
	if corrected {
		return "its user is sent the new date (a corrected notice)"
	}
	return "its user had not been told a date, so nothing is sent now"
}

// refusal is a reschedule refused: its type (one of contract's
// ErrTypeReschedule*, or NoRunningMigration) and its words.
type refusal struct {
	errType, reason string
}

func (r *refusal) Error() string { return "refused: " + r.reason }

// errTypeNoRunningMigration: the mailbox has no open workflow to move.
const errTypeNoRunningMigration = "NoRunningMigration"

// rescheduleMailbox sends the reschedule update to the mailbox's running
// migration and waits for its answer: the result, or a *refusal.
func rescheduleMailbox(ctx context.Context, c client.Client, key string, req contract.RescheduleRequest) (contract.RescheduleResult, error) {
	var res contract.RescheduleResult
	id := contract.MailboxWorkflowID(key)
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   id,
		UpdateName:   contract.UpdateReschedule,
		Args:         []any{req},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		err = h.Get(ctx, &res)
	}
	var notFound *serviceerror.NotFound
	var app *temporal.ApplicationError
	switch {
	case err == nil:
		return res, nil
	case errors.As(err, &notFound):
		return res, &refusal{errType: errTypeNoRunningMigration,
			reason: fmt.Sprintf("mailbox %s has no running migration (workflow %s)", key, id)}
	case errors.As(err, &app):
		return res, &refusal{errType: app.Type(), reason: app.Message()}
	}
	return res, fmt.Errorf("rescheduling mailbox %s (workflow %s): %w", key, id, err)
}

// waveRemoveOptions are the flags of `wave remove`.
type waveRemoveOptions struct {
	rescheduleOptions
	wave, mailboxes, csv string
}

func newWaveRemoveCmd(a *app) *cobra.Command {
	var o waveRemoveOptions
	cmd := &cobra.Command{
		Use:   "remove",
		Short: "Move many mailboxes of a wave to another night, as `mailbox reschedule` does for one",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.removeFromWave(cmd.Context(), o, time.Now().UTC())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.wave, "wave", "", "the wave they leave (required)")
	f.StringVar(&o.mailboxes, "mailboxes", "", "a CSV of the mailboxes to move, with an address column (required)")
	f.StringVar(&o.csv, "csv", "", "write the refusals to this CSV (address, key, error_type, reason)")
	_ = cmd.MarkFlagRequired("wave")
	_ = cmd.MarkFlagRequired("mailboxes")
	o.flags(cmd)
	return cmd
}

func (a *app) removeFromWave(ctx context.Context, o waveRemoveOptions, now time.Time) error {
	if err := checkWaveID(o.wave); err != nil {
		return err
	}
	req, err := o.request(now)
	if err != nil {
		return err
	}
	rows, err := parseCSVFile(o.mailboxes)
	if err != nil {
		return err
	}
	keyer, err := a.keyer()
	if err != nil {
		return err
	}
	c, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	type refused struct {
		address, key string
		r            refusal
	}
	var (
		accepted, corrected int
		refusals            []refused
	)
	// Every key first: a bad row stops the command before any mailbox is
	// moved, not half-way.
	keys := make([]string, len(rows))
	for i, row := range rows {
		if keys[i], err = keyer.Key(row.Address); err != nil {
			return fmt.Errorf("%s line %d: %w", o.mailboxes, row.Line, err)
		}
	}
	for i, row := range rows {
		key := keys[i]
		res, err := rescheduleInWave(ctx, c, key, o.wave, req)
		var r *refusal
		switch {
		case errors.As(err, &r):
			refusals = append(refusals, refused{address: row.Address, key: key, r: *r})
		case err == nil && res.NotKept != "":
			refusals = append(refusals, refused{address: row.Address, key: key, r: refusal{errType: contract.ErrTypeRescheduleNotKept,
				reason: "left its night but not kept for the new one (it needs support): " + res.NotKept}})
		case err != nil:
			// Not the mailbox's refusal (the server busy, a worker down):
			// recorded and gone on from, so the summary and the CSV still
			// say what was done; the command can be run again for these.
			refusals = append(refusals, refused{address: row.Address, key: key, r: refusal{errType: errTypeNotAnswered, reason: err.Error()}})
		default:
			accepted++
			if res.Corrected {
				corrected++
			}
		}
		if n := i + 1; n%50 == 0 || n == len(rows) {
			fmt.Fprintf(a.out, "%d of %d: %d accepted, %d refused\n", n, len(rows), accepted, len(refusals))
		}
	}
	fmt.Fprintf(a.out, "moved %d of wave %s to %s (%d told the new date), refused %d\n",
		accepted, o.wave, req.To.UTC().Format(time.RFC3339), corrected, len(refusals))
	byType := map[string]int{}
	for _, r := range refusals {
		byType[r.r.errType]++
	}
	types := make([]string, 0, len(byType))
	for t := range byType {
		types = append(types, t)
	}
	slices.SortFunc(types, func(x, y string) int { return cmp.Or(byType[y]-byType[x], cmp.Compare(x, y)) })
	for _, t := range types {
		fmt.Fprintf(a.out, "  refused %s: %d\n", t, byType[t])
	}
	if o.csv != "" {
		f, err := os.OpenFile(o.csv, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600) // it holds addresses
		if err != nil {
			return err
		}
		w := csv.NewWriter(f)
		_ = w.Write([]string{"address", "key", "error_type", "reason"})
		for _, r := range refusals {
			_ = w.Write([]string{r.address, r.key, r.r.errType, r.r.reason})
		}
		w.Flush()
		if err := cmp.Or(w.Error(), f.Close()); err != nil {
			return fmt.Errorf("--csv %s: %w", o.csv, err)
		}
	}
	if len(refusals) > 0 {
		return fmt.Errorf("%d of %d mailboxes refused", len(refusals), len(rows))
	}
	return nil
}

// errTypeNotAnswered: the update got no answer (an error of the server or
// the connection, not the mailbox's refusal).
const errTypeNotAnswered = "NotAnswered"

// errTypeNotInWave: the mailbox's running migration is in another wave.
const errTypeNotInWave = "NotInWave"

// rescheduleInWave moves one mailbox of a wave: refused if its running
// migration is of another wave.
func rescheduleInWave(ctx context.Context, c client.Client, key, wave string, req contract.RescheduleRequest) (contract.RescheduleResult, error) {
	id := contract.MailboxWorkflowID(key)
	v, err := c.QueryWorkflow(ctx, id, "", contract.QueryState)
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return contract.RescheduleResult{}, &refusal{errType: errTypeNoRunningMigration,
			reason: fmt.Sprintf("mailbox %s has no migration (workflow %s)", key, id)}
	}
	if err != nil {
		return contract.RescheduleResult{}, fmt.Errorf("mailbox %s: %w", key, err)
	}
	var st contract.MailboxState
	if err := v.Get(&st); err != nil {
		return contract.RescheduleResult{}, fmt.Errorf("mailbox %s: %w", key, err)
	}
	if st.WaveID != wave {
		return contract.RescheduleResult{}, &refusal{errType: errTypeNotInWave,
			reason: fmt.Sprintf("mailbox %s is in wave %q, not %s", key, st.WaveID, wave)}
	}
	return rescheduleMailbox(ctx, c, key, req)
}
