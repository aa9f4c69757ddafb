package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"mailwave/contract"
	"mailwave/internal/control"
	"mailwave/internal/wavefile"
)

// MaxWaveMailboxes is the largest wave the starter launches: the programme's
// largest was 83,000 (a weekend).
const MaxWaveMailboxes = 100_000

var waveIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func newWaveCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "wave", Short: "Launch, watch, pause, resume and cancel a wave of mailboxes"}
	cmd.AddCommand(newWaveLaunchCmd(a), newWaveStatusCmd(a),
		newWaveSignalCmd(a, "pause", contract.SignalPause, "Hold the wave: no mailbox enters copy; those mid-step finish the step and hold"),
		newWaveSignalCmd(a, "resume", contract.SignalResume, "Resume a paused wave"),
		newWaveSignalCmd(a, "cancel", contract.SignalCancel, "Cancel the wave: mailboxes not yet cut over stop cleanly"),
		newWaveSignalCmd(a, "retry-failed", contract.SignalRetryFailed, "Run the wave's needs-support mailboxes again"),
		newWaveSetCapCmd(a))
	return cmd
}

// waveLaunchOptions are the flags of `wave launch`.
type waveLaunchOptions struct {
	wave, mailboxes, roster, wavesDir string
	samplePercent                     float64
	seed                              int64
	migrateAt, noticeLead, remindLead string
	allowShortNotice, dryRun          bool
	concurrency                       int
	errorBudget, startRate            float64
}

func newWaveLaunchCmd(a *app) *cobra.Command {
	var o waveLaunchOptions
	cmd := &cobra.Command{
		Use:   "launch",
		Short: "Launch a wave from a list of mailboxes, or from a random sample of a roster's mailboxes not yet migrated",
		Long: `Launch a wave. The CSV has a header row; "address" is required, "org" and
"display_name" are optional. Every malformed row is reported with its line
number, and nothing starts until the file is clean.`,
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
	f.StringVar(&o.wavesDir, "waves-dir", "data/waves", "where the wave's mailbox file is written; the workers must read the same path")
	f.BoolVar(&o.dryRun, "dry-run", false, "check everything and show the wave, but start nothing")
	_ = cmd.MarkFlagRequired("wave")
	_ = cmd.MarkFlagRequired("migrate-at")
	return cmd
}

// launchWave checks the wave's input, writes its mailbox file and starts
// it. It returns the wave's input.
func (a *app) launchWave(ctx context.Context, o waveLaunchOptions, now time.Time) (contract.WaveInput, error) {
	var in contract.WaveInput
	if !waveIDPattern.MatchString(o.wave) {
		return in, fmt.Errorf("--wave %q: use 1 to 64 letters, digits, '.', '_' or '-'", o.wave)
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
	sched, err := parseSchedule(o.migrateAt, o.noticeLead, o.remindLead, now)
	if err != nil {
		return in, err
	}
	if err := sched.check(now, o.allowShortNotice); err != nil {
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
	if len(rows) > MaxWaveMailboxes {
		return in, fmt.Errorf("%s has %d mailboxes; a wave takes at most %d: split it into waves", path, len(rows), MaxWaveMailboxes)
	}
	mailboxes, err := wavefile.Build(rows, keyer)
	if err != nil {
		return in, err
	}
	dir, err := filepath.Abs(o.wavesDir)
	if err != nil {
		return in, err
	}
	in = contract.WaveInput{
		WaveID:       o.wave,
		MailboxFile:  filepath.Join(dir, o.wave+".csv"),
		Total:        len(mailboxes),
		MigrateAt:    sched.MigrateAt,
		NoticeLead:   sched.NoticeLead,
		ReminderLead: sched.ReminderLead,
		Cap:          o.concurrency,
		ErrorBudget:  o.errorBudget / 100,
		StartRate:    o.startRate,
	}
	fmt.Fprintf(a.out, "wave %s: %d mailboxes, notice %s, reminder %s, T %s, %d at once, pause past %.4g%% needing support\n",
		in.WaveID, in.Total, in.MigrateAt.Add(-in.NoticeLead).Format(time.RFC3339), in.MigrateAt.Add(-in.ReminderLead).Format(time.RFC3339),
		in.MigrateAt.Format(time.RFC3339), in.Cap, o.errorBudget)
	if o.dryRun {
		fmt.Fprintln(a.out, "dry run: nothing written, nothing started")
		return in, nil
	}
	if err := wavefile.Write(in.MailboxFile, mailboxes); err != nil {
		if errors.Is(err, os.ErrExist) {
			return in, fmt.Errorf("wave %s already has a mailbox file at %s: wave IDs are used once", in.WaveID, in.MailboxFile)
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
		_ = os.Remove(in.MailboxFile) // nothing started: the same launch may be tried again
		return in, fmt.Errorf("starting wave %s: %w", in.WaveID, err)
	}
	fmt.Fprintf(a.out, "launched wave %s (workflow %s, run %s); mailbox file %s\n", in.WaveID, run.GetID(), run.GetRunID(), in.MailboxFile)
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
		contract.MailboxWorkflowName, contract.SearchAttrStage.GetName(), contract.StageMigrated)
	busy := map[string]bool{}
	err := control.EachWorkflow(ctx, c, query, func(ex *workflowpb.WorkflowExecutionInfo) {
		busy[contract.MailboxKeyOf(ex.GetExecution().GetWorkflowId())] = true
	})
	if err != nil {
		return nil, fmt.Errorf("finding the mailboxes already migrated: %w", err)
	}
	return busy, nil
}

// waveTarget connects and checks the wave exists, returning its status.
func (a *app) waveTarget(ctx context.Context, wave string) (client.Client, enumspb.WorkflowExecutionStatus, error) {
	c, err := a.dial(ctx)
	if err != nil {
		return nil, 0, err
	}
	desc, err := c.DescribeWorkflowExecution(ctx, contract.WaveWorkflowID(wave), "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		c.Close()
		return nil, 0, fmt.Errorf("no wave %q: launch it with `starter wave launch`", wave)
	}
	if err != nil {
		c.Close()
		return nil, 0, fmt.Errorf("looking up wave %s: %w", wave, err)
	}
	return c, desc.GetWorkflowExecutionInfo().GetStatus(), nil
}

func newWaveSignalCmd(a *app, verb, signal, short string) *cobra.Command {
	var wave, reason string
	cmd := &cobra.Command{
		Use:   verb,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var payload any
			if verb == "pause" {
				payload = contract.PauseRequest{Reason: reason}
			}
			return a.signalWave(cmd.Context(), wave, verb, signal, payload)
		},
	}
	cmd.Flags().StringVar(&wave, "wave", "", "the wave's ID (required)")
	if verb == "pause" {
		cmd.Flags().StringVar(&reason, "reason", "", "why, for the record")
	}
	_ = cmd.MarkFlagRequired("wave")
	return cmd
}

func newWaveSetCapCmd(a *app) *cobra.Command {
	var wave string
	cmd := &cobra.Command{
		Use:   "set-concurrency N",
		Short: "Change how many of the wave's mailboxes may be in copy or cutover at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[0])
			if err != nil || n < 1 {
				return fmt.Errorf("concurrency %q: a whole number of at least 1", args[0])
			}
			return a.signalWave(cmd.Context(), wave, "set-concurrency", contract.SignalSetCap, contract.SetCapRequest{Cap: n})
		},
	}
	cmd.Flags().StringVar(&wave, "wave", "", "the wave's ID (required)")
	_ = cmd.MarkFlagRequired("wave")
	return cmd
}

func (a *app) signalWave(ctx context.Context, wave, verb, signal string, payload any) error {
	c, status, err := a.waveTarget(ctx, wave)
	if err != nil {
		return err
	}
	defer c.Close()
	if status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return fmt.Errorf("wave %s has finished (%s): nothing to %s", wave, status, verb)
	}
	if err := c.SignalWorkflow(ctx, contract.WaveWorkflowID(wave), "", signal, payload); err != nil {
		return fmt.Errorf("%s wave %s: %w", verb, wave, err)
	}
	fmt.Fprintf(a.out, "%s sent to wave %s\n", verb, wave)
	return nil
}

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
