package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"mailwave/activities"
	"mailwave/mail/outbox"
	"mailwave/mail/sim"
	"mailwave/workflows"
)

// demoOptions are the flags of `demo`.
type demoOptions struct {
	simDir, outboxDir, csvPath, uiURL string
	seed                              int64
	estateSize, mailboxes             int
	migrateIn, noticeLead, remindLead time.Duration
	timeout                           time.Duration
}

func newDemoCmd(a *app) *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Migrate simulated mailboxes on a compressed timeline, watch them, and verify the estate",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.demo(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.simDir, "sim-dir", "data/estate", "estate directory (generated if missing)")
	f.StringVar(&o.outboxDir, "outbox-dir", "data/outbox", "the worker's outbox directory, to count the notices")
	f.StringVar(&o.csvPath, "csv", "data/demo-report.csv", "per-mailbox verification report")
	f.StringVar(&o.uiURL, "ui", "http://localhost:8233", "Temporal UI address, for the links printed")
	f.Int64Var(&o.seed, "seed", 42, "estate seed")
	f.IntVar(&o.estateSize, "estate-size", 1000, "mailboxes in the generated estate")
	f.IntVar(&o.mailboxes, "mailboxes", 300, "mailboxes to migrate in this run")
	f.DurationVar(&o.migrateIn, "migrate-in", 45*time.Second, "T, from now")
	f.DurationVar(&o.noticeLead, "notice-lead", 30*time.Second, "compressed T-14")
	f.DurationVar(&o.remindLead, "reminder-lead", 10*time.Second, "compressed T-1")
	f.DurationVar(&o.timeout, "timeout", 15*time.Minute, "give up watching after this long")
	return cmd
}

func (a *app) demo(ctx context.Context, o demoOptions) error {
	if _, err := sim.Generate(o.simDir, sim.GenerateOptions{Seed: o.seed, Mailboxes: o.estateSize}); err != nil {
		return err
	}
	est, err := sim.Open(o.simDir, sim.Options{})
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

	roster, err := est.Roster()
	if err != nil {
		return err
	}
	// The next mailboxes still delivered at the source: a second demo run
	// moves new ones rather than refusing the ones already moved.
	var picked []activities.MailboxRef
	for _, e := range roster {
		if len(picked) == o.mailboxes {
			break
		}
		key, err := keyer.Key(e.Address)
		if err != nil {
			return fmt.Errorf("roster %s: %w", e.Address, err)
		}
		ref := activities.MailboxRef{Key: key, Address: e.Address, Org: e.Org, DisplayName: e.DisplayName}
		if route, err := est.Route(ctx, ref); err != nil {
			return err
		} else if route == activities.RouteSource {
			picked = append(picked, ref)
		}
	}
	if len(picked) == 0 {
		return fmt.Errorf("every mailbox of the estate in %s is already migrated: generate a larger one (--estate-size) or remove it", o.simDir)
	}

	now := time.Now().UTC()
	wave := "demo-" + now.Format("20060102-150405")
	migrateAt := now.Add(o.migrateIn)
	fmt.Fprintf(a.out, "demo %s: %d mailboxes, notice at T-%s, reminder at T-%s, T = %s\n",
		wave, len(picked), o.noticeLead, o.remindLead, migrateAt.Format(time.TimeOnly))
	bar := progressbar.NewOptions(len(picked), progressbar.OptionSetWriter(a.out), progressbar.OptionSetDescription("starting "),
		progressbar.OptionShowCount(), progressbar.OptionFullWidth(), progressbar.OptionClearOnFinish())
	started := time.Now()
	for _, ref := range picked {
		in := workflows.MailboxInput{Mailbox: ref, WaveID: wave, MigrateAt: migrateAt, NoticeLead: o.noticeLead, ReminderLead: o.remindLead}
		if _, err := startMailboxWorkflow(ctx, c, in, time.Now().UTC()); err != nil {
			return err
		}
		_ = bar.Add(1)
	}
	_ = bar.Finish()
	fmt.Fprintf(a.out, "started %d mailboxes; watch them in the Temporal UI:\n  %s\n", len(picked), waveQueryURL(o.uiURL, wave, ""))

	counts, err := watchWave(ctx, c, wave, len(picked), o.timeout, a.out)
	if err != nil {
		return err
	}
	elapsed := time.Since(started)

	addresses := make([]string, len(picked))
	for i, ref := range picked {
		addresses[i] = ref.Address
	}
	rep, err := est.Verify(ctx, addresses)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(o.csvPath), 0o755); err != nil {
		return err
	}
	if err := writeReportCSV(o.csvPath, &rep); err != nil {
		return err
	}
	notices, err := countNotices(ctx, o.outboxDir, picked)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.out, "\n== demo %s done in %s ==\n", wave, elapsed.Round(time.Second))
	fmt.Fprintf(a.out, "migrated %d, needs support %d, cancelled %d, %.1f mailboxes/s\n",
		counts[workflows.StageMigrated], counts[workflows.StageNeedsSupport], counts[workflows.StageCancelled],
		float64(len(picked))/elapsed.Seconds())
	fmt.Fprintf(a.out, "notices in %s: %d T-14, %d T-1, %d success\n", o.outboxDir,
		notices[activities.NoticeT14], notices[activities.NoticeT1], notices[activities.NoticeSuccess])
	fmt.Fprintf(a.out, "verifier (per-mailbox CSV in %s):\n%s", o.csvPath, rep.Summary())
	fmt.Fprintf(a.out, "in the UI: needs support  %s\n", waveQueryURL(o.uiURL, wave, workflows.StageNeedsSupport))
	if rep.Totals.Lost > 0 || rep.Totals.Duplicated > 0 {
		return fmt.Errorf("the verifier found %d items lost and %d copied twice", rep.Totals.Lost, rep.Totals.Duplicated)
	}
	return nil
}

// waveQueryURL links to the Temporal UI's list of a wave's mailboxes,
// optionally in one stage.
func waveQueryURL(ui, wave string, stage workflows.Stage) string {
	q := fmt.Sprintf("%s = %q", workflows.SearchAttrWave.GetName(), wave)
	if stage != "" {
		q += fmt.Sprintf(" AND %s = %q", workflows.SearchAttrStage.GetName(), string(stage))
	}
	return fmt.Sprintf("%s/namespaces/default/workflows?query=%s", ui, url.QueryEscape(q))
}

// countNotices counts, per kind, the mailboxes whose notice is in the outbox.
func countNotices(ctx context.Context, dir string, mailboxes []activities.MailboxRef) (map[activities.NoticeKind]int, error) {
	ob, err := outbox.New(outbox.Options{Dir: dir})
	if err != nil {
		return nil, err
	}
	counts := map[activities.NoticeKind]int{}
	for _, m := range mailboxes {
		for _, kind := range activities.NoticeKinds {
			sent, err := ob.Sent(ctx, m.Key, kind)
			if err != nil {
				return nil, err
			}
			if sent {
				counts[kind]++
			}
		}
	}
	return counts, nil
}
