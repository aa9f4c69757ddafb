package fanout

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"golang.org/x/time/rate"

	"mailwave/activities"
	"mailwave/internal/wavefile"
	"mailwave/workflows"
)

// parallelStarts bounds the start requests in flight from one activity.
const parallelStarts = 8

// Activities start, read and cancel a wave's mailboxes.
type Activities struct {
	client client.Client
	files  *wavefile.Reader
}

// New returns the wave's activities over a Temporal client and a cache of
// wave mailbox files.
func New(c client.Client, files *wavefile.Reader) *Activities {
	return &Activities{client: c, files: files}
}

// Register registers the activities under the names the wave calls.
func (a *Activities) Register(r worker.Registry) {
	r.RegisterActivityWithOptions(a.StartMailboxes, activity.RegisterOptions{Name: workflows.ActivityStartMailboxes})
	r.RegisterActivityWithOptions(a.ReadMailboxKeys, activity.RegisterOptions{Name: workflows.ActivityReadMailboxKeys})
	r.RegisterActivityWithOptions(a.CancelMailboxes, activity.RegisterOptions{Name: workflows.ActivityCancelMailboxes})
	r.RegisterActivityWithOptions(a.ReportMailboxDone, activity.RegisterOptions{Name: workflows.ActivityReportDone})
	r.RegisterActivityWithOptions(a.ReconcileMailboxes, activity.RegisterOptions{Name: workflows.ActivityReconcileMailboxes})
}

// ReconcileMailboxes returns, as their reports, the mailboxes of the wave
// whose workflow has ended: from the result when it completed, as needs
// support (naming the status) when it was terminated, failed or timed out.
// Mailboxes still running, or now in another wave, are left out.
func (a *Activities) ReconcileMailboxes(ctx context.Context, in workflows.ReconcileMailboxesInput) ([]workflows.MailboxDone, error) {
	var ended []workflows.MailboxDone
	err := a.eachOfWave(ctx, in.WaveID, in.MailboxFile, in.Indexes, func(row wavefile.Mailbox, prev previous) error {
		if prev.running {
			return nil
		}
		d := workflows.MailboxDone{Index: row.Index, Key: row.Key, Granted: true}
		if prev.result != nil {
			d.Outcome, d.Step, d.ErrorType, d.Copied = prev.result.Outcome, prev.result.FailedStep, prev.result.ErrorType, prev.result.Copied
		} else {
			d.Outcome, d.ErrorType = workflows.OutcomeNeedsSupport, prev.status.String()
		}
		ended = append(ended, d)
		return nil
	})
	return ended, err
}

// eachOfWave calls fn with the latest run of each mailbox at indexes whose
// run belongs to the wave; a mailbox never started, or now in another
// migration, is passed over.
func (a *Activities) eachOfWave(ctx context.Context, waveID, path string, indexes []int, fn func(wavefile.Mailbox, previous) error) error {
	rows, err := a.get(path, indexes)
	if err != nil {
		return err
	}
	for _, row := range rows {
		prev, err := describe(ctx, a.client, workflows.MailboxWorkflowID(row.Key))
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			continue
		}
		if err != nil {
			return err
		}
		if prev.wave != waveID {
			continue
		}
		if err := fn(row, prev); err != nil {
			return err
		}
		activity.RecordHeartbeat(ctx, row.Index)
	}
	return nil
}

// ReportMailboxDone tells a wave that one of its mailboxes has ended. A wave
// that no longer runs cannot hear it: that is a permanent failure.
func (a *Activities) ReportMailboxDone(ctx context.Context, in workflows.ReportDoneInput) error {
	err := a.client.SignalWorkflow(ctx, in.WaveWorkflowID, "", workflows.SignalMailboxDone, in.Done)
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("wave %s is not running", in.WaveWorkflowID), "WaveGone", err)
	}
	return err
}

func (a *Activities) rows(in workflows.StartMailboxesInput) ([]wavefile.Mailbox, error) {
	if len(in.Indexes) > 0 {
		return a.get(in.MailboxFile, in.Indexes)
	}
	rows, err := a.files.Rows(in.MailboxFile, in.From, in.To)
	return rows, badFile(err)
}

func (a *Activities) get(path string, indexes []int) ([]wavefile.Mailbox, error) {
	rows, err := a.files.Get(path, indexes)
	return rows, badFile(err)
}

// badFile makes a mailbox file that cannot serve the wave a permanent
// failure: retrying will not make a missing or short file whole.
func badFile(err error) error {
	if err == nil {
		return nil
	}
	return temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrTypeBadWaveFile, err)
}

// StartMailboxes starts a page of a wave's mailboxes at a bounded rate. It
// is safe to retry: a mailbox already started by this wave counts as
// started. Mailboxes that belong to another migration are refused and
// listed with the reason.
func (a *Activities) StartMailboxes(ctx context.Context, in workflows.StartMailboxesInput) (workflows.StartMailboxesResult, error) {
	rows, err := a.rows(in)
	if err != nil {
		return workflows.StartMailboxesResult{}, err
	}
	limiter := rate.NewLimiter(rate.Limit(in.StartRate), parallelStarts)
	var (
		mu      sync.Mutex
		res     workflows.StartMailboxesResult
		firstEr error
		wg      sync.WaitGroup
		sem     = make(chan struct{}, parallelStarts)
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i, row := range rows {
		if err := limiter.Wait(ctx); err != nil {
			break
		}
		activity.RecordHeartbeat(ctx, i) // throttled by the SDK
		sem <- struct{}{}
		wg.Add(1)
		go func(row wavefile.Mailbox) {
			defer func() { <-sem; wg.Done() }()
			st, err := StartMailbox(ctx, a.client, workflows.MailboxInput{
				Mailbox:        activities.MailboxRef{Key: row.Key, Address: row.Address, Org: row.Org, DisplayName: row.DisplayName},
				WaveID:         in.WaveID,
				MigrateAt:      in.MigrateAt,
				NoticeLead:     in.NoticeLead,
				ReminderLead:   in.ReminderLead,
				WaveWorkflowID: workflows.WaveWorkflowID(in.WaveID),
				WaveIndex:      row.Index,
			}, in.NotBefore, time.Now().UTC())
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				if firstEr == nil {
					firstEr = err
					cancel()
				}
			case st.Started:
				res.Started++
			default:
				res.Refused = append(res.Refused, workflows.Refusal{Index: row.Index, Key: row.Key, Reason: st.Refusal})
			}
		}(row)
	}
	wg.Wait()
	if firstEr != nil {
		return workflows.StartMailboxesResult{}, firstEr
	}
	if err := ctx.Err(); err != nil {
		return workflows.StartMailboxesResult{}, err
	}
	sort.Slice(res.Refused, func(i, j int) bool { return res.Refused[i].Index < res.Refused[j].Index })
	activity.GetLogger(ctx).Info("wave page started", "wave", in.WaveID, "from", in.From, "started", res.Started, "refused", len(res.Refused))
	return res, nil
}

// ReadMailboxKeys returns the keys of a page of a wave's mailbox file.
func (a *Activities) ReadMailboxKeys(ctx context.Context, in workflows.ReadMailboxKeysInput) ([]string, error) {
	rows, err := a.files.Rows(in.MailboxFile, in.From, in.To)
	if err != nil {
		return nil, badFile(err)
	}
	keys := make([]string, len(rows))
	for i, r := range rows {
		keys[i] = r.Key
	}
	return keys, nil
}

// CancelMailboxes asks the wave's mailboxes at the given indexes to stop.
// Only workflows running in this wave are cancelled; a mailbox cancelled
// during cutover finishes it, so none is left half cut over.
func (a *Activities) CancelMailboxes(ctx context.Context, in workflows.CancelMailboxesInput) (int, error) {
	cancelled := 0
	err := a.eachOfWave(ctx, in.WaveID, in.MailboxFile, in.Indexes, func(row wavefile.Mailbox, prev previous) error {
		if !prev.running {
			return nil
		}
		id := workflows.MailboxWorkflowID(row.Key)
		var notFound *serviceerror.NotFound
		if err := a.client.CancelWorkflow(ctx, id, prev.runID); err != nil && !errors.As(err, &notFound) {
			return fmt.Errorf("cancelling workflow %s: %w", id, err)
		}
		cancelled++
		return nil
	})
	return cancelled, err
}
