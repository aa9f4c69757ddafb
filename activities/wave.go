package activities

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
	"golang.org/x/time/rate"

	"mailwave/contract"
	"mailwave/internal/control"
	"mailwave/mail/port"
	"mailwave/roster/wavefile"
)

// parallelStarts bounds the start requests in flight from one activity.
const parallelStarts = 8

// WaveActivities start, read and cancel a wave's mailboxes: their ports are
// Temporal itself (the worker's client, through internal/control) and the
// roster store.
type WaveActivities struct {
	client  client.Client
	rosters port.Rosters
}

// NewWave returns the wave's activities over a Temporal client and the
// worker's roster store.
func NewWave(c client.Client, rosters port.Rosters) *WaveActivities {
	return &WaveActivities{client: c, rosters: rosters}
}

// ReconcileMailboxes returns, as their reports, the mailboxes of the wave
// whose workflow has ended: from the result when it completed, as needs
// support (naming the status) when it was terminated, failed or timed out.
// Mailboxes still running, or now in another wave, are left out.
func (a *WaveActivities) ReconcileMailboxes(ctx context.Context, in ReconcileMailboxesInput) ([]contract.MailboxDone, error) {
	var ended []contract.MailboxDone
	err := a.eachOfWave(ctx, in.WaveID, in.Indexes, func(row wavefile.Mailbox, prev control.Run) error {
		if prev.Running {
			return nil
		}
		d := contract.MailboxDone{Index: row.Index, Key: row.Key, Granted: true}
		if prev.Result != nil {
			d.Outcome, d.Step, d.ErrorType, d.Copied = prev.Result.Outcome, prev.Result.FailedStep, prev.Result.ErrorType, prev.Result.Copied
		} else {
			d.Outcome, d.ErrorType = contract.OutcomeNeedsSupport, prev.Status.String()
		}
		ended = append(ended, d)
		return nil
	})
	return ended, err
}

// eachOfWave calls fn with the latest run of each mailbox at indexes whose
// run belongs to the wave; a mailbox never started, or now in another
// migration, is passed over.
func (a *WaveActivities) eachOfWave(ctx context.Context, waveID string, indexes []int, fn func(wavefile.Mailbox, control.Run) error) error {
	rows, err := a.get(ctx, waveID, indexes)
	if err != nil {
		return err
	}
	for _, row := range rows {
		prev, err := control.Describe(ctx, a.client, contract.MailboxWorkflowID(row.Key))
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			continue
		}
		if err != nil {
			return err
		}
		if prev.Wave != waveID {
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
func (a *WaveActivities) ReportMailboxDone(ctx context.Context, in ReportDoneInput) error {
	return waveGone(in.WaveWorkflowID, a.client.SignalWorkflow(ctx, in.WaveWorkflowID, "", contract.SignalMailboxDone, in.Done))
}

// waveGone makes a signal to a wave that no longer runs a permanent
// failure: it cannot hear it.
func waveGone(id string, err error) error {
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("wave %s is not running", id), contract.ErrTypeWaveGone, err)
	}
	return err
}

// SignalWave sends a mailbox's pre-stage request or release to its wave.
// Only those two may be sent: the activity is not a way to signal a wave
// with anything. A wave that no longer runs cannot hear it: a permanent
// failure.
func (a *WaveActivities) SignalWave(ctx context.Context, in SignalWaveInput) error {
	switch {
	case in.Signal == contract.SignalPrestagePoolHold && in.Pool != "" && in.Hold != nil:
		// A wave's hold of its passes in the tenant's pool.
	case in.Signal != contract.SignalPrestageRequest && in.Signal != contract.SignalPrestageRelease:
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("signal %q is not one a mailbox sends its wave", in.Signal), contract.ErrTypeInvalidInput, nil)
	}
	if in.Pool != "" {
		return a.signalPool(ctx, in)
	}
	return waveGone(in.WaveWorkflowID, a.client.SignalWorkflow(ctx, in.WaveWorkflowID, "", in.Signal, in.Slot.PrestageSlot))
}

// signalPool sends a request, a release or a wave's hold to the tenant's
// pre-stage pool, starting the pool if it does not run: the first pass
// that asks starts it (or starts it again, after a terminate), with its
// wave's cap.
func (a *WaveActivities) signalPool(ctx context.Context, in SignalWaveInput) error {
	pin := contract.PrestagePoolInput{Pool: in.Pool, Cap: in.PoolCap}
	if err := pin.Validate(); err != nil {
		return temporal.NewNonRetryableApplicationError(err.Error(), contract.ErrTypeInvalidInput, err)
	}
	var arg any = in.Slot
	if in.Signal == contract.SignalPrestagePoolHold {
		arg = *in.Hold
	}
	_, err := a.client.SignalWithStartWorkflow(ctx, contract.PrestagePoolWorkflowID(in.Pool), in.Signal, arg,
		client.StartWorkflowOptions{
			ID: contract.PrestagePoolWorkflowID(in.Pool), TaskQueue: contract.TaskQueue,
			StaticSummary: "the tenant's pre-stage pool",
		}, contract.PrestagePoolWorkflowName, pin)
	return err
}

func (a *WaveActivities) rows(ctx context.Context, in StartMailboxesInput) ([]wavefile.Mailbox, error) {
	if len(in.Indexes) > 0 {
		return a.get(ctx, in.WaveID, in.Indexes)
	}
	rows, err := a.rosters.Rows(ctx, in.WaveID, in.From, in.To)
	return rows, badFile(err)
}

func (a *WaveActivities) get(ctx context.Context, waveID string, indexes []int) ([]wavefile.Mailbox, error) {
	rows, err := a.rosters.Get(ctx, waveID, indexes)
	return rows, badFile(err)
}

// badFile makes a mailbox file that cannot serve the wave a permanent
// failure: retrying will not make a missing or short file whole.
func badFile(err error) error {
	if err == nil {
		return nil
	}
	return temporal.NewNonRetryableApplicationError(err.Error(), contract.ErrTypeBadWaveFile, err)
}

// StartMailboxes starts a page of a wave's mailboxes at a bounded rate. It
// is safe to retry: a mailbox already started by this wave counts as
// started. Mailboxes that belong to another migration are refused and
// listed with the reason.
func (a *WaveActivities) StartMailboxes(ctx context.Context, in StartMailboxesInput) (StartMailboxesResult, error) {
	rows, err := a.rows(ctx, in)
	if err != nil {
		return StartMailboxesResult{}, err
	}
	limiter := rate.NewLimiter(rate.Limit(in.StartRate), parallelStarts)
	var (
		mu      sync.Mutex
		res     StartMailboxesResult
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
			st, err := control.StartMailbox(ctx, a.client, contract.MailboxInput{
				Mailbox:        contract.MailboxRef{Key: row.Key, Address: row.Address, Org: row.Org, DisplayName: row.DisplayName},
				WaveID:         in.WaveID,
				MigrateAt:      in.MigrateAt,
				NoticeLead:     in.NoticeLead,
				ReminderLead:   in.ReminderLead,
				WaveWorkflowID: contract.WaveWorkflowID(in.WaveID),
				WaveIndex:      row.Index,
				DatedNotices:   true,
				Prestage:       in.Prestage,
				WaveSize:       in.Total,
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
				res.Refused = append(res.Refused, contract.Refusal{Index: row.Index, Key: row.Key, Reason: st.Refusal})
			}
		}(row)
	}
	wg.Wait()
	if firstEr != nil {
		return StartMailboxesResult{}, firstEr
	}
	if err := ctx.Err(); err != nil {
		return StartMailboxesResult{}, err
	}
	sort.Slice(res.Refused, func(i, j int) bool { return res.Refused[i].Index < res.Refused[j].Index })
	activity.GetLogger(ctx).Info("wave page started", "wave", in.WaveID, "from", in.From, "started", res.Started, "refused", len(res.Refused))
	return res, nil
}

// ReadMailboxKeys returns the keys of a page of a wave's mailbox file.
func (a *WaveActivities) ReadMailboxKeys(ctx context.Context, in ReadMailboxKeysInput) ([]string, error) {
	rows, err := a.rosters.Rows(ctx, in.WaveID, in.From, in.To)
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
func (a *WaveActivities) CancelMailboxes(ctx context.Context, in CancelMailboxesInput) (int, error) {
	cancelled := 0
	err := a.eachOfWave(ctx, in.WaveID, in.Indexes, func(row wavefile.Mailbox, prev control.Run) error {
		if !prev.Running {
			return nil
		}
		id := contract.MailboxWorkflowID(row.Key)
		var notFound *serviceerror.NotFound
		if err := a.client.CancelWorkflow(ctx, id, prev.RunID); err != nil && !errors.As(err, &notFound) {
			return fmt.Errorf("cancelling workflow %s: %w", id, err)
		}
		cancelled++
		return nil
	})
	return cancelled, err
}
