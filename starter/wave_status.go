package main

import (
	"context"
	"encoding/csv"
	"errors"
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
	"go.temporal.io/sdk/temporal"

	"mailwave/contract"
	"mailwave/contract/searchattr"
	"mailwave/internal/control"
	"mailwave/starter/printer"
)

// waveStatusOptions are the flags of `wave status`.
type waveStatusOptions struct {
	wave, csvPath string
	watch         bool
	every         time.Duration
	queryTimeout  time.Duration
	output        printer.Format
}

func newWaveStatusCmd(a *app) *cobra.Command {
	var o waveStatusOptions
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show a wave's progress (--watch: until it ends; --csv: every mailbox's stage)",
		Long: `Show a wave's progress. A running wave is asked (a query, answered by a
worker) for at most --query-timeout; when no worker answers in time (none
running, or all too busy), the progress the wave last published in its memo is
shown, saying how old it is. A finished wave shows its result.
--watch shows it again every --every until the wave ends: a progress bar in
text on a terminal (a plain line every 5 s written to a file or a pipe), a
document (json) or a line (jsonl) each time otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.waveStatus(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.wave, "wave", "", "the wave's ID (required)")
	f.BoolVar(&o.watch, "watch", false, "show the progress until the wave ends")
	f.DurationVar(&o.every, "every", time.Second, "with --watch: how often to refresh")
	f.DurationVar(&o.queryTimeout, "query-timeout", 3*time.Second, "how long to wait for the wave to answer before showing what it published (0: do not ask)")
	f.StringVar(&o.csvPath, "csv", "", "write every mailbox of the wave (key, stage, since, status) to this CSV file")
	addOutputFlag(cmd, &o.output)
	_ = cmd.MarkFlagRequired("wave")
	return cmd
}

func (a *app) waveStatus(cmd *cobra.Command, o waveStatusOptions) error {
	if o.every <= 0 {
		return fmt.Errorf("--every %s: give a length of time more than zero", o.every)
	}
	if o.queryTimeout < 0 {
		return fmt.Errorf("--query-timeout %s: a length of time cannot be negative", o.queryTimeout)
	}
	ctx := cmd.Context()
	c, _, err := a.waveTarget(ctx, o.wave)
	if err != nil {
		return err
	}
	defer c.Close()
	p := printerFor(cmd, o.output)
	r := &waveReader{c: c, wave: o.wave, queryTimeout: o.queryTimeout}
	switch {
	case o.watch && p.IsText():
		if _, err := r.watchBar(ctx, o.every, p.Out); err != nil {
			return err
		}
	case o.watch:
		// Each poll is printed; the last one, the finished wave's, below.
		if err := r.watchPrinted(ctx, o.every, p); err != nil {
			return err
		}
	}
	st, err := r.status(ctx)
	if err != nil {
		return err
	}
	if err := p.Object(st); err != nil {
		return err
	}
	if o.csvPath != "" {
		n, err := writeWaveCSV(ctx, c, o.wave, o.csvPath)
		if err != nil {
			return err
		}
		note(cmd, p, "%d mailboxes written to %s", n, o.csvPath)
	}
	return nil
}

// Where a wave's status came from.
const (
	sourceLive      = "live"      // the wave answered the progress query
	sourcePublished = "published" // the progress it last published in its memo
	sourceResult    = "result"    // the finished wave's result
)

// waveStatus is a wave's progress as `wave status` shows it, and where it
// came from.
type waveStatus struct {
	Wave        string `json:"wave"`
	State       string `json:"state"` // running, paused, cancelling, finished
	PauseReason string `json:"pause_reason"`
	Source      string `json:"source"`
	// PublishedAt is when the wave published what is shown (source
	// published), and PublishedAge how long before it was shown.
	PublishedAt  *time.Time       `json:"published_at"`
	PublishedAge *printer.Seconds `json:"published_age_seconds"`
	Total        int              `json:"total"`
	Started      int              `json:"started"`
	Refused      int              `json:"refused"`
	Waiting      int              `json:"waiting"`
	Active       int              `json:"active"`
	Cap          int              `json:"cap"`
	// The pre-stage pool of a pre-staging wave (0 cap: none): the passes
	// before T running in it, and those waiting for it.
	PrestageCap    int `json:"prestage_cap"`
	Prestaging     int `json:"prestaging"`
	PrestageQueued int `json:"prestage_queued"`
	// PrestagePool: the wave pre-stages in this tenant's pool (starter
	// prestage-pool status), not one of its own.
	PrestagePool string `json:"prestage_pool"`
	Migrated     int    `json:"migrated"`
	NeedsSupport int    `json:"needs_support"`
	Cancelled    int    `json:"cancelled"`
	// Deferred are the mailboxes their preflight found cannot go (back to
	// the pool, not failures), and why.
	Deferred   int                    `json:"deferred"`
	DeferredBy []contract.ReasonCount `json:"deferred_by"`
	// FailureRate is the share of finished mailboxes that need support.
	FailureRate printer.Share    `json:"failure_rate"`
	CopiedItems int64            `json:"copied_items"`
	CopiedBytes printer.Bytes    `json:"copied_bytes"`
	Runs        int              `json:"runs"`
	StartedAt   time.Time        `json:"started_at"`
	Duration    *printer.Seconds `json:"duration_seconds"` // a finished wave's
	Refusals    []refusalRow     `json:"refusals"`         // the first ones
	// MoreRefused are the refusals not listed.
	MoreRefused int `json:"more_refused"`

	result *contract.WaveResult
}

// refusalRow is a mailbox the wave would not start.
type refusalRow struct {
	Index  int    `json:"index"`
	Key    string `json:"key"`
	Reason string `json:"reason"`
}

// waveStatusOf is the progress p, got from source, as shown at now.
func waveStatusOf(p contract.WaveProgress, res *contract.WaveResult, source string, now time.Time) waveStatus {
	st := waveStatus{
		Wave: p.WaveID, State: "running", PauseReason: p.PauseReason, Source: source,
		Total: p.Total, Started: p.Started, Refused: p.Refused, Waiting: p.Waiting, Active: p.Active, Cap: p.Cap,
		PrestageCap: p.PrestageCap, Prestaging: p.Prestaging, PrestageQueued: p.PrestageQueued,
		PrestagePool: p.PrestagePool,
		Migrated:     p.Migrated, NeedsSupport: p.NeedsSupport, Cancelled: p.Cancelled,
		Deferred: p.Deferred, DeferredBy: append([]contract.ReasonCount{}, p.DeferredBy...),
		CopiedItems: p.Copied.Items, CopiedBytes: printer.Bytes(p.Copied.Bytes), Runs: p.Runs, StartedAt: p.StartedAt,
		Refusals: []refusalRow{}, MoreRefused: max(0, p.Refused-len(p.Refusals)), result: res,
	}
	switch {
	case res != nil:
		st.State = "finished"
		d := printer.SecondsOf(res.Duration)
		st.Duration = &d
	case p.Cancelling:
		st.State = "cancelling"
	case p.Paused:
		st.State = "paused"
	}
	if finished := p.Migrated + p.NeedsSupport; finished > 0 {
		st.FailureRate = printer.Share(float64(p.NeedsSupport) / float64(finished))
	}
	if source == sourcePublished && !p.PublishedAt.IsZero() {
		at, age := p.PublishedAt, printer.SecondsOf(now.Sub(p.PublishedAt))
		st.PublishedAt, st.PublishedAge = &at, &age
	}
	for _, r := range p.Refusals {
		st.Refusals = append(st.Refusals, refusalRow{Index: r.Index, Key: r.Key, Reason: r.Reason})
	}
	return st
}

// freshness says where the status came from, for people.
func (st waveStatus) freshness() string {
	switch {
	case st.Source == sourceResult:
		return "the wave's result"
	case st.Source == sourceLive:
		return "live"
	case st.PublishedAt != nil:
		return fmt.Sprintf("published %s (%s): the wave did not answer in time",
			printer.Ago(time.Duration(*st.PublishedAge)*time.Second),
			st.PublishedAt.UTC().Format(time.RFC3339))
	default:
		return "published, time unknown: the wave did not answer in time"
	}
}

// WriteText shows the status as a block, every field of its JSON.
func (st waveStatus) WriteText(w io.Writer) error {
	state := st.State
	switch {
	case st.Duration != nil:
		state = fmt.Sprintf("finished in %s", st.Duration.Text())
	case st.State == "paused":
		state = "paused: " + st.PauseReason
	}
	fmt.Fprintf(w, "wave %s: %s\n", st.Wave, state)
	fmt.Fprintf(w, "  as of         %s\n", st.freshness())
	fmt.Fprintf(w, "  mailboxes     %d (started %d, refused %d)\n", st.Total, st.Started, st.Refused)
	switch {
	case st.PrestagePool != "" && st.PrestageCap > 0:
		fmt.Fprintf(w, "  pre-staging   %d running, %d waiting in the tenant's pool %s (%d at once for all its waves)\n",
			st.Prestaging, st.PrestageQueued, st.PrestagePool, st.PrestageCap)
	case st.PrestagePool != "":
		fmt.Fprintf(w, "  pre-staging   in the tenant's pool %s (starter prestage-pool status %s)\n", st.PrestagePool, st.PrestagePool)
	case st.PrestageCap > 0:
		fmt.Fprintf(w, "  pre-staging   %d of %d at once, %d waiting for the pool\n", st.Prestaging, st.PrestageCap, st.PrestageQueued)
	}
	fmt.Fprintf(w, "  waiting       %d\n  copying/cut   %d of %d at once\n", st.Waiting, st.Active, st.Cap)
	fmt.Fprintf(w, "  migrated      %d\n  needs support %d\n  cancelled     %d\n", st.Migrated, st.NeedsSupport, st.Cancelled)
	fmt.Fprintf(w, "  deferred      %d", st.Deferred)
	for i, r := range st.DeferredBy {
		sep := ","
		if i == 0 {
			sep = " by reason:"
		}
		fmt.Fprintf(w, "%s %s %d", sep, r.Reason, r.Count)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  failure rate  %s of finished\n", st.FailureRate.Text())
	fmt.Fprintf(w, "  copied        %d items, %s\n  runs          %d\n", st.CopiedItems, st.CopiedBytes.Text(), st.Runs)
	if !st.StartedAt.IsZero() {
		fmt.Fprintf(w, "  started       %s\n", st.StartedAt.UTC().Format(time.RFC3339))
	}
	for _, r := range st.Refusals {
		fmt.Fprintf(w, "  refused       #%d %s: %s\n", r.Index, r.Key, r.Reason)
	}
	if st.MoreRefused > 0 {
		fmt.Fprintf(w, "  refused       ... and %d more\n", st.MoreRefused)
	}
	return nil
}

// waveReader reads a wave's status: the live query while the wave answers
// it in time, else what the wave published. After a query goes unanswered
// it is not asked again for queryRest (the wave publishes about that
// often), so a watch does not wait out the timeout on every poll.
type waveReader struct {
	c            client.Client
	wave         string
	queryTimeout time.Duration
	quietUntil   time.Time
}

const queryRest = 15 * time.Second

// status reads the wave's status now.
func (r *waveReader) status(ctx context.Context) (waveStatus, error) {
	id := contract.WaveWorkflowID(r.wave)
	desc, err := r.c.DescribeWorkflow(ctx, id, "")
	if err != nil {
		return waveStatus{}, fmt.Errorf("looking up wave %s: %w", r.wave, err)
	}
	if desc.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return r.finished(ctx, id)
	}
	var queryErr error
	if r.queryTimeout > 0 && time.Now().After(r.quietUntil) {
		p, err := r.query(ctx, id)
		if err == nil {
			r.poolShare(ctx, &p)
			return waveStatusOf(p, nil, sourceLive, time.Now()), nil
		}
		r.quietUntil, queryErr = time.Now().Add(queryRest), err
	}
	var p contract.WaveProgress
	if err := desc.GetMemoValue(contract.MemoProgress, &p); err != nil {
		if errors.Is(err, temporal.ErrNoData) {
			err = errors.New("it has published no progress in its memo (a wave started before it did so)")
		}
		if queryErr == nil {
			queryErr = errors.New("not asked")
		}
		return waveStatus{}, fmt.Errorf("wave %s: no answer to the progress query (%v; is a worker running?), and %w", r.wave, queryErr, err)
	}
	return waveStatusOf(p, nil, sourcePublished, time.Now()), nil
}

// query asks the wave for its progress, waiting at most queryTimeout.
func (r *waveReader) query(ctx context.Context, id string) (contract.WaveProgress, error) {
	qctx, cancel := context.WithTimeout(ctx, r.queryTimeout)
	defer cancel()
	var p contract.WaveProgress
	v, err := r.c.QueryWorkflow(qctx, id, "", contract.QueryProgress)
	if err != nil {
		return p, err
	}
	return p, v.Get(&p)
}

// poolShare fills in a wave pre-staging in the tenant's pool its share of
// it: the pool's cap, and the wave's passes running and waiting there. A
// pool that does not answer leaves them out (the status names the pool).
func (r *waveReader) poolShare(ctx context.Context, p *contract.WaveProgress) {
	if p.PrestagePool == "" || !contract.ValidPoolName(p.PrestagePool) {
		return
	}
	st, err := queryPool(ctx, r.c, p.PrestagePool, r.queryTimeout)
	if err != nil {
		return
	}
	share := st.Waves[p.WaveID]
	p.PrestageCap, p.Prestaging, p.PrestageQueued = st.Cap, share.Active, share.Queued
}

// finished turns a finished wave's result into a status.
func (r *waveReader) finished(ctx context.Context, id string) (waveStatus, error) {
	var res contract.WaveResult
	if err := r.c.GetWorkflow(ctx, id, "").Get(ctx, &res); err != nil {
		return waveStatus{}, fmt.Errorf("wave %s ended without a result: %w", r.wave, err)
	}
	p := contract.WaveProgress{
		WaveID: r.wave, Total: res.Total, Started: res.Total - res.Refused, Refused: res.Refused,
		Migrated: res.Migrated, NeedsSupport: res.NeedsSupport, Cancelled: res.Cancelled, Copied: res.Copied,
		Deferred: res.Deferred, DeferredBy: res.DeferredBy,
		Runs: res.Runs, StartedAt: res.StartedAt, Refusals: res.Refusals,
	}
	return waveStatusOf(p, &res, sourceResult, time.Now()), nil
}

// watch calls show with the wave's status every interval until the wave
// finishes, and returns its result. It rides out passing errors (a worker
// restarting, the server busy); five in a row end it.
func (r *waveReader) watch(ctx context.Context, every time.Duration, show func(waveStatus) error) (contract.WaveResult, error) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	failures := 0
	for {
		st, err := r.status(ctx)
		switch {
		case err != nil:
			if failures++; failures == 5 {
				return contract.WaveResult{}, err
			}
		default:
			failures = 0
			if err := show(st); err != nil {
				return contract.WaveResult{}, err
			}
			if st.result != nil {
				return *st.result, nil
			}
		}
		select {
		case <-ctx.Done():
			return contract.WaveResult{}, ctx.Err()
		case <-tick.C:
		}
	}
}

// watchPrinted prints the status at every poll but the last (the caller
// prints the finished wave's).
func (r *waveReader) watchPrinted(ctx context.Context, every time.Duration, p printer.Printer) error {
	_, err := r.watch(ctx, every, func(st waveStatus) error {
		if st.result != nil {
			return nil
		}
		return p.Object(st)
	})
	return err
}

// plainEvery spaces the progress lines written where no terminal reads
// them (a log file, a pipe).
const plainEvery = 5 * time.Second

// watchBar shows the wave's progress until it ends: a live bar on a
// terminal; elsewhere (the demo's and the production run's logs, a pipe) a
// plain line every few seconds, and one at the end, instead of a bar
// redrawn thousands of times.
func (r *waveReader) watchBar(ctx context.Context, every time.Duration, out io.Writer) (contract.WaveResult, error) {
	var bar *progressbar.ProgressBar
	tty := isTerminal(out)
	start := time.Now()
	var printed time.Time
	res, err := r.watch(ctx, every, func(st waveStatus) error {
		state := ""
		switch {
		case st.State == "paused":
			state = " PAUSED"
		case st.Source == sourcePublished && st.PublishedAt != nil:
			state = " (as published " + printer.Ago(time.Since(*st.PublishedAt)) + ")"
		}
		deferred := ""
		if st.Deferred > 0 {
			deferred = fmt.Sprintf(", deferred %d", st.Deferred)
		}
		text := fmt.Sprintf("%s: waiting %d, copying %d, migrated %d, needs support %d%s%s",
			st.Wave, st.Waiting, st.Active, st.Migrated, st.NeedsSupport, deferred, state)
		done := st.Migrated + st.NeedsSupport + st.Cancelled + st.Deferred + st.Refused
		if !tty {
			if st.result != nil || printed.IsZero() || time.Since(printed) >= plainEvery {
				printed = time.Now()
				share := 0.0
				if st.Total > 0 {
					share = 100 * float64(done) / float64(st.Total)
				}
				fmt.Fprintf(out, "%s; %d of %d done (%.1f%%), %s elapsed\n", text, done, st.Total, share, time.Since(start).Round(time.Second))
			}
			return nil
		}
		if bar == nil {
			bar = progressbar.NewOptions(st.Total, progressbar.OptionSetWriter(out), progressbar.OptionShowCount(),
				progressbar.OptionSetElapsedTime(true), progressbar.OptionSetPredictTime(true), progressbar.OptionFullWidth())
		}
		bar.Describe(text)
		_ = bar.Set(done)
		if st.result != nil {
			_ = bar.Finish()
			fmt.Fprintln(out)
		}
		return nil
	})
	return res, err
}

// watchWaveProgress shows a live progress bar until the wave ends (the
// demo's watch), asking the wave for at most 3 s each time.
func watchWaveProgress(ctx context.Context, c client.Client, wave string, every time.Duration, out io.Writer) (contract.WaveResult, error) {
	r := &waveReader{c: c, wave: wave, queryTimeout: 3 * time.Second}
	return r.watchBar(ctx, every, out)
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
	query := fmt.Sprintf("%s = '%s'", searchattr.Wave.GetName(), wave)
	dc := converter.GetDefaultDataConverter()
	n := 0
	err = control.EachWorkflow(ctx, c, query, func(ex *workflowpb.WorkflowExecutionInfo) {
		fields := ex.GetSearchAttributes().GetIndexedFields()
		var stage string
		var since time.Time
		if p, ok := fields[searchattr.Stage.GetName()]; ok {
			_ = dc.FromPayload(p, &stage)
		}
		if p, ok := fields[searchattr.StageSince.GetName()]; ok {
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
