package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/client"

	"mailwave/contract"
	"mailwave/contract/searchattr"
	"mailwave/internal/control"
	"mailwave/roster/estate"
	"mailwave/roster/rosterstore"
	"mailwave/roster/wavefile"
)

// waveLaunchOptions are the flags of `wave launch`.
type waveLaunchOptions struct {
	wave, mailboxes, roster, wavesDir string
	samplePercent                     float64
	seed                              int64
	migrateAt, noticeLead, remindLead string
	allowShortNotice, dryRun          bool
	concurrency                       int
	errorBudget, startRate            float64
	prestage                          prestageFlags
	plan                              launchPlanFlags
	// orgs, when not nil, are the configured organisations (the demo's
	// simulated estate); nil: the estate's, in the roster store.
	orgs []string
}

func newWaveLaunchCmd(a *app) *cobra.Command {
	var o waveLaunchOptions
	cmd := &cobra.Command{
		Use:   "launch",
		Short: "Launch a wave from a list of mailboxes, or from a random sample of a roster's mailboxes not yet migrated",
		Long: `Launch a wave. The CSV has a header row; "address" is required, "org" and
"display_name" are optional. An org must be one of the estate's organisations
in --waves-dir ("starter org list"): it is shown in plain text. Every
malformed row is reported with its line number, and nothing starts until the
file is clean.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := a.launchWave(cmd.Context(), o, time.Now().UTC())
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.wave, "wave", "", "the wave's ID: letters, digits, '.', '_' or '-' (required)")
	f.StringVar(&o.mailboxes, "mailboxes", "", "CSV of the wave's mailboxes")
	f.StringVar(&o.roster, "roster", "", "CSV of all mailboxes, to sample from (with --sample-percent)")
	f.Float64Var(&o.samplePercent, "sample-percent", 0, "with --roster: the percentage of the mailboxes not yet migrated to pick")
	f.Int64Var(&o.seed, "seed", 1, "with --roster: the sample's seed; the same seed and roster give the same sample")
	f.StringVar(&o.migrateAt, "migrate-at", "", "the wave's migration time T: RFC 3339, \"2006-01-02 15:04\" UTC, or +DURATION (required)")
	f.StringVar(&o.noticeLead, "notice-lead", "14d", "how long before T the notice goes out")
	f.StringVar(&o.remindLead, "reminder-lead", "1d", "how long before T the reminder goes out")
	f.BoolVar(&o.allowShortNotice, "allow-short-notice", false, "accept a T closer than the notice lead (notices go out at once)")
	f.IntVar(&o.concurrency, "concurrency", contract.DefaultCap, "mailboxes in copy or cutover at once")
	f.Float64Var(&o.errorBudget, "error-budget", 100*contract.DefaultErrorBudget, "percent of finished mailboxes that may need support before the wave pauses itself")
	f.Float64Var(&o.startRate, "start-rate", contract.DefaultStartRate, "mailbox workflows started per second")
	f.StringVar(&o.wavesDir, "waves-dir", "data/waves", "the roster store: a directory (the roster as <wave>.csv) or a postgres:// URL, where the workers' --waves-dir finds it")
	f.BoolVar(&o.dryRun, "dry-run", false, "check everything and show the wave, but start nothing")
	o.prestage.add(f)
	o.plan.add(f)
	_ = cmd.MarkFlagRequired("wave")
	_ = cmd.MarkFlagRequired("migrate-at")
	return cmd
}

// launchWave checks the wave's input, writes its mailbox file and starts
// it. It returns the wave's input.
func (a *app) launchWave(ctx context.Context, o waveLaunchOptions, now time.Time) (contract.WaveInput, error) {
	var in contract.WaveInput
	if err := checkWaveID(o.wave); err != nil {
		return in, err
	}
	if (o.mailboxes == "") == (o.roster == "") {
		return in, errors.New("give either --mailboxes FILE or --roster FILE with --sample-percent")
	}
	if o.roster != "" && o.samplePercent == 0 {
		return in, errors.New("--roster needs --sample-percent")
	}
	if o.concurrency < 1 {
		return in, fmt.Errorf("--concurrency %d: at least 1", o.concurrency)
	}
	if o.errorBudget <= 0 || o.errorBudget > 100 {
		return in, fmt.Errorf("--error-budget %v: a percentage above 0 and at most 100", o.errorBudget)
	}
	prestage, err := o.prestage.policy()
	if err != nil {
		return in, err
	}
	sched, err := parseSchedule(o.migrateAt, o.noticeLead, o.remindLead, now)
	if err != nil {
		return in, err
	}
	if err := sched.check(now, o.allowShortNotice); err != nil {
		return in, err
	}
	if err := checkPrestageLead(prestage, sched.NoticeLead); err != nil {
		return in, err
	}
	if err := o.plan.check(o.dryRun, prestage); err != nil {
		return in, err
	}
	path := o.mailboxes
	if path == "" {
		path = o.roster
	}
	rows, err := parseCSVFile(path)
	if err != nil {
		return in, err
	}
	if err := a.checkOrgs(ctx, rows, path, o); err != nil {
		return in, err
	}
	keyer, err := a.keyer()
	if err != nil {
		return in, err
	}
	c, err := a.dial(ctx)
	if err != nil {
		return in, err
	}
	defer c.Close()
	if err := checkWaveIsNew(ctx, c, o.wave); err != nil {
		return in, err
	}
	if o.roster != "" {
		busy, err := busyMailboxes(ctx, c)
		if err != nil {
			return in, err
		}
		rows, err = wavefile.Sample(rows, o.samplePercent, o.seed, func(r wavefile.Row) bool {
			k, err := keyer.Key(r.Address)
			return err != nil || busy[k]
		})
		if err != nil {
			return in, fmt.Errorf("--sample-percent: %w", err)
		}
		if len(rows) == 0 {
			return in, fmt.Errorf("every mailbox of %s is already migrated or being migrated: nothing to sample", path)
		}
		fmt.Fprintf(a.out, "sampled %d mailboxes (%.4g%% of those not yet migrated, seed %d)\n", len(rows), o.samplePercent, o.seed)
	}
	if len(rows) > contract.MaxWaveSize {
		return in, fmt.Errorf("%s has %d mailboxes; a wave takes at most %d: split it into waves", path, len(rows), contract.MaxWaveSize)
	}
	mailboxes, err := wavefile.Build(rows, keyer)
	if err != nil {
		return in, err
	}
	rosters, err := rosterstore.Open(ctx, o.wavesDir)
	if err != nil {
		return in, err
	}
	defer rosters.Close()
	rosterPath := rosters.Where(o.wave)
	if !o.dryRun {
		if err := rosters.CheckFingerprint(ctx, keyer.Fingerprint()); err != nil {
			return in, err
		}
	}
	in = contract.WaveInput{
		WaveID:       o.wave,
		Total:        len(mailboxes),
		MigrateAt:    sched.MigrateAt,
		NoticeLead:   sched.NoticeLead,
		ReminderLead: sched.ReminderLead,
		Cap:          o.concurrency,
		ErrorBudget:  o.errorBudget / 100,
		StartRate:    o.startRate,
		Prestage:     prestage,
	}
	fmt.Fprintf(a.out, "wave %s: %d mailboxes, notice %s, reminder %s, T %s, %d at once, pause past %.4g%% needing support; %s\n",
		in.WaveID, in.Total, in.MigrateAt.Add(-in.NoticeLead).Format(time.RFC3339), in.MigrateAt.Add(-in.ReminderLead).Format(time.RFC3339),
		in.MigrateAt.Format(time.RFC3339), in.Cap, o.errorBudget, describePrestage(in.Prestage))
	if o.dryRun {
		if in.Prestage != nil {
			if err := planLaunch(a.out, o.plan, in, mailboxes, keyer); err != nil {
				return in, err
			}
		}
		fmt.Fprintln(a.out, "dry run: nothing written, nothing started")
		return in, nil
	}
	if err := rosters.Write(ctx, in.WaveID, mailboxes); err != nil {
		if errors.Is(err, os.ErrExist) {
			return in, fmt.Errorf("wave %s already has a roster at %s: wave IDs are used once", in.WaveID, rosterPath)
		}
		return in, err
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                                       contract.WaveWorkflowID(in.WaveID),
		TaskQueue:                                contract.TaskQueue,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            "wave " + in.WaveID,
	}, contract.WaveWorkflowName, in)
	if err != nil {
		var already *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &already) {
			return in, fmt.Errorf("wave %s already exists", in.WaveID)
		}
		_ = rosters.Remove(ctx, in.WaveID) // nothing started: the same launch may be tried again
		return in, fmt.Errorf("starting wave %s: %w", in.WaveID, err)
	}
	fmt.Fprintf(a.out, "launched wave %s (workflow %s, run %s); roster %s\n", in.WaveID, run.GetID(), run.GetRunID(), rosterPath)
	return in, nil
}

// parseCSVFile reads and checks a mailbox CSV, naming every bad row.
func parseCSVFile(path string) ([]wavefile.Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return wavefile.Parse(f, filepath.Base(path))
}

// checkOrgs refuses a list naming an organisation that is not configured:
// the org column reaches a plain-text search attribute (MailwaveOrg). The
// configured organisations are the estate's, in the roster store
// (configuredOrgs). A row's org is given the configured spelling.
func (a *app) checkOrgs(ctx context.Context, rows []wavefile.Row, path string, o waveLaunchOptions) error {
	known := o.orgs
	if known == nil && slices.ContainsFunc(rows, func(r wavefile.Row) bool { return r.Org != "" }) {
		var err error
		if known, err = configuredOrgs(ctx, o.wavesDir); err != nil {
			return err
		}
	}
	if err := wavefile.CheckOrgs(rows, filepath.Base(path), known); err != nil {
		if o.orgs != nil {
			return err
		}
		return fmt.Errorf("%w\n%s", err, orgsHint(o.wavesDir))
	}
	return nil
}

// configuredOrgs lists the configured organisations: the estate's, in the
// roster store spec names (`starter programme import` adds them, `starter
// org list` lists them).
func configuredOrgs(ctx context.Context, spec string) ([]string, error) {
	st, err := estate.Open(ctx, spec)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	orgs, err := st.Orgs(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the configured organisations: %w", err)
	}
	names := make([]string, len(orgs))
	for i, org := range orgs {
		names[i] = org.Name
	}
	return names, nil
}

// configuredOrg is the configured spelling of the organisation name
// names (matched regardless of case), or an error saying it is not one.
func configuredOrg(ctx context.Context, spec, name string) (string, error) {
	known, err := configuredOrgs(ctx, spec)
	if err != nil {
		return "", err
	}
	for _, k := range known {
		if strings.EqualFold(k, name) {
			return k, nil
		}
	}
	return "", fmt.Errorf("--org %.80q is not a configured organisation\n%s", name, orgsHint(spec))
}

func orgsHint(spec string) string {
	return fmt.Sprintf("the configured organisations are those of %s (\"starter org list\" lists them, \"starter programme import\" adds them); leave org empty to find the organisation by the address's domain",
		estateWhere(spec))
}

// checkWaveIsNew refuses a wave ID that was ever used.
func checkWaveIsNew(ctx context.Context, c client.Client, wave string) error {
	desc, err := c.DescribeWorkflowExecution(ctx, contract.WaveWorkflowID(wave), "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("looking up wave %s: %w", wave, err)
	}
	return fmt.Errorf("wave %s already exists (%s since %s): wave IDs are used once", wave,
		control.StatusName(desc.GetWorkflowExecutionInfo().GetStatus()),
		desc.GetWorkflowExecutionInfo().GetStartTime().AsTime().Format(time.RFC3339))
}

// busyMailboxes returns the keys of mailboxes migrated already or being
// migrated now, from the visibility store.
func busyMailboxes(ctx context.Context, c client.Client) (map[string]bool, error) {
	query := fmt.Sprintf("WorkflowType = '%s' AND (%s = '%s' OR ExecutionStatus = 'Running')",
		contract.MailboxWorkflowName, searchattr.Stage.GetName(), contract.StageMigrated)
	busy := map[string]bool{}
	err := control.EachWorkflow(ctx, c, query, func(ex *workflowpb.WorkflowExecutionInfo) {
		busy[contract.MailboxKeyOf(ex.GetExecution().GetWorkflowId())] = true
	})
	if err != nil {
		return nil, fmt.Errorf("finding the mailboxes already migrated: %w", err)
	}
	return busy, nil
}
