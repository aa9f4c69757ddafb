package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"mailwave/contract"
	"mailwave/identity"
	"mailwave/internal/control"
	"mailwave/roster/rosterstore"
)

func newMailboxCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "mailbox", Short: "Start, inspect, pause, resume and reschedule one mailbox's migration"}
	cmd.AddCommand(newMailboxStartCmd(a), newMailboxStatusCmd(a), newMailboxListCmd(a), newMailboxSignalCmd(a, "pause"), newMailboxSignalCmd(a, "resume"),
		newMailboxRescheduleCmd(a))
	return cmd
}

// mailboxStartOptions are the flags of `mailbox start`.
type mailboxStartOptions struct {
	address, displayName, org, wave string
	migrateAt                       string
	noticeLead, reminderLead        string
	allowShortNotice                bool
	wavesDir                        string
}

func newMailboxStartCmd(a *app) *cobra.Command {
	var o mailboxStartOptions
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Start one mailbox's migration: T-14 notice, T-1 reminder, copy, cutover, success notice",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.startMailbox(cmd.Context(), o, time.Now().UTC())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.address, "address", "", "the mailbox's email address (required)")
	f.StringVar(&o.migrateAt, "migrate-at", "", "migration time T: RFC 3339, \"2006-01-02 15:04\" UTC, or +DURATION (required)")
	f.StringVar(&o.noticeLead, "notice-lead", "14d", "how long before T the notice goes out")
	f.StringVar(&o.reminderLead, "reminder-lead", "1d", "how long before T the reminder goes out")
	f.BoolVar(&o.allowShortNotice, "allow-short-notice", false, "accept a T closer than the notice lead (the notice goes out at once)")
	f.StringVar(&o.displayName, "display-name", "", "the user's name, for the notices")
	f.StringVar(&o.org, "org", "", "the user's organisation: one of the estate's in --waves-dir (it is shown in plain text, as MailwaveOrg)")
	f.StringVar(&o.wave, "wave", "", "the wave this mailbox belongs to, if any")
	f.StringVar(&o.wavesDir, "waves-dir", "data/waves", "the roster store (a directory, or a postgres:// URL), where the deployment's key secret fingerprint is recorded")
	_ = cmd.MarkFlagRequired("address")
	_ = cmd.MarkFlagRequired("migrate-at")
	return cmd
}

func (a *app) startMailbox(ctx context.Context, o mailboxStartOptions, now time.Time) error {
	addr, err := identity.NormalizeAddress(o.address)
	if err != nil {
		return fmt.Errorf("--address: %w", err)
	}
	sched, err := parseSchedule(o.migrateAt, o.noticeLead, o.reminderLead, now)
	if err != nil {
		return err
	}
	if err := sched.check(now, o.allowShortNotice); err != nil {
		return err
	}
	if o.wave != "" {
		if err := checkWaveID(o.wave); err != nil {
			return err
		}
	}
	keyer, err := a.keyer()
	if err != nil {
		return err
	}
	// A key made with another secret would start a second migration of a
	// mailbox already known by its deployment's key.
	rosters, err := rosterstore.Open(ctx, o.wavesDir)
	if err != nil {
		return err
	}
	defer rosters.Close()
	if err := rosters.CheckFingerprint(ctx, keyer.Fingerprint()); err != nil {
		return err
	}
	if o.org != "" {
		// The organisation becomes a plain-text search attribute: only a
		// configured one's name may.
		if o.org, err = configuredOrg(ctx, o.wavesDir, o.org); err != nil {
			return err
		}
	}
	key, err := keyer.Key(addr)
	if err != nil {
		return err
	}
	c, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	in := contract.MailboxInput{
		Mailbox:      contract.MailboxRef{Key: key, Address: addr, Org: o.org, DisplayName: o.displayName},
		WaveID:       o.wave,
		MigrateAt:    sched.MigrateAt,
		NoticeLead:   sched.NoticeLead,
		ReminderLead: sched.ReminderLead,
		DatedNotices: true,
	}
	runID, err := startMailboxWorkflow(ctx, c, in, now)
	if err != nil {
		return err
	}
	notice, reminder := in.Leads()
	fmt.Fprintf(a.out, "started mailbox %s (workflow %s, run %s)\n", key, contract.MailboxWorkflowID(key), runID)
	fmt.Fprintf(a.out, "  notice   %s\n  reminder %s\n  migrate  %s\n",
		in.MigrateAt.Add(-notice).Format(time.RFC3339), in.MigrateAt.Add(-reminder).Format(time.RFC3339), in.MigrateAt.Format(time.RFC3339))
	return nil
}

func parseSchedule(migrateAt, noticeLead, reminderLead string, now time.Time) (schedule, error) {
	var s schedule
	var err error
	if s.MigrateAt, err = parseWhen(migrateAt, now); err != nil {
		return s, fmt.Errorf("--migrate-at: %w", err)
	}
	if s.NoticeLead, err = parseLead(noticeLead); err != nil {
		return s, fmt.Errorf("--notice-lead: %w", err)
	}
	if s.ReminderLead, err = parseLead(reminderLead); err != nil {
		return s, fmt.Errorf("--reminder-lead: %w", err)
	}
	if s.NoticeLead == 0 || s.ReminderLead == 0 {
		return s, errors.New("--notice-lead and --reminder-lead must be more than zero")
	}
	return s, nil
}

// startMailboxWorkflow starts one mailbox's migration on its own, under the
// rule every start follows (control.StartMailbox): a mailbox already being
// migrated, or already migrated, is refused with the reason.
func startMailboxWorkflow(ctx context.Context, c client.Client, in contract.MailboxInput, now time.Time) (string, error) {
	st, err := control.StartMailbox(ctx, c, in, time.Time{}, now)
	if err != nil {
		return "", err
	}
	if !st.Started {
		return "", fmt.Errorf("mailbox %s: %s: refusing to migrate it twice", in.Mailbox.Key, st.Refusal)
	}
	return st.RunID, nil
}

func newMailboxSignalCmd(a *app, verb string) *cobra.Command {
	var address, reason string
	signal := map[string]string{"pause": contract.SignalPause, "resume": contract.SignalResume}[verb]
	cmd := &cobra.Command{
		Use:   verb,
		Short: strings.ToUpper(verb[:1]) + verb[1:] + " one mailbox's migration at its next step boundary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			key, c, err := a.mailboxTarget(cmd.Context(), address)
			if err != nil {
				return err
			}
			defer c.Close()
			var payload any = contract.ResumeRequest{}
			if verb == "pause" {
				payload = contract.PauseRequest{Reason: reason}
			}
			id := contract.MailboxWorkflowID(key)
			if err := c.SignalWorkflow(cmd.Context(), id, "", signal, payload); err != nil {
				var notFound *serviceerror.NotFound
				if errors.As(err, &notFound) {
					return fmt.Errorf("mailbox %s has no running migration (workflow %s)", key, id)
				}
				return fmt.Errorf("signalling %s to workflow %s: %w", verb, id, err)
			}
			fmt.Fprintf(a.out, "%s sent to mailbox %s\n", verb, key)
			return nil
		},
	}
	cmd.Flags().StringVar(&address, "address", "", "the mailbox's email address (required)")
	if verb == "pause" {
		cmd.Flags().StringVar(&reason, "reason", "", "why, for the record")
	}
	_ = cmd.MarkFlagRequired("address")
	return cmd
}

// mailboxTarget checks an address, computes its key and connects.
func (a *app) mailboxTarget(ctx context.Context, address string) (string, client.Client, error) {
	keyer, err := a.keyer()
	if err != nil {
		return "", nil, err
	}
	key, err := keyer.Key(address)
	if err != nil {
		return "", nil, fmt.Errorf("--address: %w", err)
	}
	c, err := a.dial(ctx)
	if err != nil {
		return "", nil, err
	}
	return key, c, nil
}
