package main

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"mailwave/contract"
	"mailwave/contract/searchattr"
	"mailwave/mail/outbox"
	"mailwave/mail/sim"
	"mailwave/roster/rosterstore"
)

// demoOptions are the flags of `demo`.
type demoOptions struct {
	dataDir, uiURL, wavesDir          string
	seed                              int64
	mailboxes, concurrency            int
	migrateIn, noticeLead, remindLead time.Duration
}

func newDemoCmd(a *app) *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a wave of simulated mailboxes on a compressed timeline, watch it, and verify the estate",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.demo(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data", "data", "the demo's data directory: estate/, outbox/ and waves/ (the worker's too)")
	f.StringVar(&o.uiURL, "ui", "http://localhost:8233", "Temporal UI address, for the links printed (none when empty)")
	f.StringVar(&o.wavesDir, "waves-dir", "", "the roster store (default: the data directory's waves/; a postgres:// URL for a fleet)")
	f.Int64Var(&o.seed, "seed", 42, "estate seed")
	f.IntVar(&o.mailboxes, "mailboxes", 1000, "mailboxes in the estate and the wave")
	f.IntVar(&o.concurrency, "concurrency", 50, "mailboxes in copy or cutover at once")
	f.DurationVar(&o.migrateIn, "migrate-in", 40*time.Second, "T, from now")
	f.DurationVar(&o.noticeLead, "notice-lead", 30*time.Second, "compressed T-14")
	f.DurationVar(&o.remindLead, "reminder-lead", 10*time.Second, "compressed T-1")
	return cmd
}

func (a *app) demo(ctx context.Context, o demoOptions) error {
	estateDir := filepath.Join(o.dataDir, "estate")
	if o.wavesDir == "" {
		o.wavesDir = filepath.Join(o.dataDir, "waves")
	}
	if _, err := sim.Generate(estateDir, sim.GenerateOptions{Seed: o.seed, Mailboxes: o.mailboxes}); err != nil {
		return err
	}
	est, err := sim.Open(estateDir, sim.Options{})
	if err != nil {
		return err
	}
	// The simulated estate configures its own organisations (the worker's
	// --sim-dir serves them all).
	roster, err := est.Roster()
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, r := range roster {
		seen[r.Org] = true
	}
	orgs := slices.Sorted(maps.Keys(seen))
	wave := "demo-" + time.Now().UTC().Format("20060102-150405")
	in, err := a.launchWave(ctx, waveLaunchOptions{
		orgs: orgs,
		wave: wave, roster: filepath.Join(estateDir, sim.RosterFile), samplePercent: 100, seed: o.seed,
		migrateAt: "+" + o.migrateIn.String(), noticeLead: o.noticeLead.String(), remindLead: o.remindLead.String(),
		allowShortNotice: true, concurrency: o.concurrency, errorBudget: 100 * contract.DefaultErrorBudget,
		startRate: contract.DefaultStartRate, wavesDir: o.wavesDir,
	}, time.Now().UTC())
	if err != nil {
		return err
	}
	if o.uiURL != "" {
		fmt.Fprintf(a.out, "\nIn the Temporal UI (%s):\n  the wave        %s\n  its mailboxes   %s\n  needs support   %s\n\n",
			o.uiURL, o.uiURL+"/namespaces/default/workflows/"+contract.WaveWorkflowID(wave),
			waveQueryURL(o.uiURL, wave, ""), waveQueryURL(o.uiURL, wave, contract.StageNeedsSupport))
	}

	c, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	started := time.Now()
	res, err := watchWaveProgress(ctx, c, wave, time.Second, a.out)
	if err != nil {
		return err
	}
	elapsed := time.Since(started)

	rosters, err := rosterstore.Open(ctx, o.wavesDir)
	if err != nil {
		return err
	}
	defer rosters.Close()
	rows, err := rosters.Rows(ctx, in.WaveID, 0, in.Total)
	if err != nil {
		return err
	}
	addresses := make([]string, len(rows))
	refs := make([]contract.MailboxRef, len(rows))
	for i, r := range rows {
		addresses[i] = r.Address
		refs[i] = contract.MailboxRef{Key: r.Key}
	}
	rep, err := est.Verify(ctx, addresses)
	if err != nil {
		return err
	}
	csvPath := filepath.Join(o.dataDir, "demo-report.csv")
	if err := writeReportCSV(csvPath, &rep); err != nil {
		return err
	}
	notices, err := countNotices(ctx, filepath.Join(o.dataDir, "outbox"), refs)
	if err != nil {
		return err
	}
	t := rep.Totals
	fmt.Fprintf(a.out, "\n== wave %s done in %s (%d runs) ==\n", wave, res.Duration.Round(time.Second), res.Runs)
	fmt.Fprintf(a.out, "migrated %d, needs support %d, cancelled %d, refused %d\n", res.Migrated, res.NeedsSupport, res.Cancelled, res.Refused)
	fmt.Fprintf(a.out, "%.1f mailboxes/s from T to the last cutover\n", float64(res.Migrated+res.NeedsSupport)/max(1, res.FinishedAt.Sub(in.MigrateAt).Seconds()))
	fmt.Fprintf(a.out, "notices: %d T-14, %d T-1, %d success; %d failure notices to the admin\n",
		notices[contract.NoticeT14], notices[contract.NoticeT1], notices[contract.NoticeSuccess], notices[contract.NoticeFailure])
	fmt.Fprintf(a.out, "verifier: %d cut over, %d not cut over (the needs-support ones), %d items at source, %d on target\n",
		t.CutOver, t.Incomplete, t.SourceItems, t.TargetItems)
	fmt.Fprintf(a.out, "verifier: lost %d, duplicated %d; per-mailbox report %s\n", t.Lost, t.Duplicated, csvPath)
	fmt.Fprintf(a.out, "watched for %s\n", elapsed.Round(time.Second))
	if t.Lost > 0 || t.Duplicated > 0 || t.CutOver != res.Migrated {
		return fmt.Errorf("the verifier disagrees: %d lost, %d copied twice, %d cut over for %d migrated", t.Lost, t.Duplicated, t.CutOver, res.Migrated)
	}
	return nil
}

// waveQueryURL links to the Temporal UI's list of a wave's mailboxes,
// optionally in one stage.
func waveQueryURL(ui, wave string, stage contract.Stage) string {
	q := fmt.Sprintf("%s = %q", searchattr.Wave.GetName(), wave)
	if stage != "" {
		q += fmt.Sprintf(" AND %s = %q", searchattr.Stage.GetName(), string(stage))
	}
	return fmt.Sprintf("%s/namespaces/default/workflows?query=%s", ui, url.QueryEscape(q))
}

// countNotices counts, per kind, the mailboxes whose notice is in the outbox.
func countNotices(ctx context.Context, dir string, mailboxes []contract.MailboxRef) (map[contract.NoticeKind]int, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("outbox %s: %w", dir, err)
	}
	ob, err := outbox.New(outbox.Options{Dir: dir})
	if err != nil {
		return nil, err
	}
	counts := map[contract.NoticeKind]int{}
	for _, m := range mailboxes {
		for _, kind := range contract.AllNoticeKinds {
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
