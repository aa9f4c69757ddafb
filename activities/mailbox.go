package activities

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"mailwave/contract"
	"mailwave/mail/port"
)

// Activities are mailwave's side effects, each reaching out through a port.
// Register one value with the worker; workflows call the methods through a
// nil *Activities.
type Activities struct {
	notifier port.Notifier
	copier   port.Copier
	router   port.Router
	meter    *meter
}

// New builds the activities over their ports. They report no metrics
// until WithMetrics.
func New(n port.Notifier, c port.Copier, r port.Router) *Activities {
	return &Activities{notifier: n, copier: c, router: r, meter: newMeter(nil)}
}

// SendNoticeInput asks for one notice to one mailbox.
type SendNoticeInput struct {
	Mailbox   contract.MailboxRef
	Kind      contract.NoticeKind
	WaveID    string `json:",omitempty"`
	MigrateAt time.Time
	// Failure is set for a NoticeFailure (to the organisation's admin).
	Failure *contract.Failure `json:",omitempty"`
	// Dated: a T-14 or T-1 notice's Message-ID carries MigrateAt.
	Dated bool `json:",omitempty"`
}

// SendNoticeResult says which message went out.
type SendNoticeResult struct {
	MessageID   string
	AlreadySent bool
	Attempt     int32
}

// SendNotice sends a notice with its deterministic Message-ID, so a retry
// after a crash is recognised by the notifier and not sent twice.
func (a *Activities) SendNotice(ctx context.Context, in SendNoticeInput) (SendNoticeResult, error) {
	if in.Mailbox.Key == "" || in.Kind == "" {
		return SendNoticeResult{}, toTemporal(port.Permanent(contract.ErrTypeInvalidMailbox, "notice needs a mailbox key and a kind"))
	}
	id := contract.NoticeMessageID(in.Mailbox.Key, in.Kind)
	switch {
	case in.Kind == contract.NoticeRescheduled:
		// One per new date: a mailbox moved twice is told twice.
		id = contract.RescheduledMessageID(in.Mailbox.Key, in.MigrateAt)
	case in.Dated && (in.Kind == contract.NoticeT14 || in.Kind == contract.NoticeT1):
		id = contract.AdvanceNoticeMessageID(in.Mailbox.Key, in.Kind, in.MigrateAt)
	}
	already, err := a.notifier.Send(ctx, port.Notice{
		Mailbox: in.Mailbox, Kind: in.Kind, MessageID: id, WaveID: in.WaveID, MigrateAt: in.MigrateAt, Failure: in.Failure,
	})
	if err != nil {
		return SendNoticeResult{}, a.fail(contract.ActivitySendNotice, err)
	}
	if !already {
		a.meter.noticeSent(in.Kind)
	}
	activity.GetLogger(ctx).Info("notice sent", "mailbox", in.Mailbox.Key, "kind", string(in.Kind), "alreadySent", already)
	return SendNoticeResult{MessageID: id, AlreadySent: already, Attempt: activity.GetInfo(ctx).Attempt}, nil
}

// PreflightInput asks for one mailbox's check before its T-14 notice.
type PreflightInput struct {
	Mailbox contract.MailboxRef
}

// PreflightResult is what the check found. Checked is false where the
// mailbox's copier has no preflight: it is not checked, which stops
// nothing.
type PreflightResult struct {
	Checked bool
	Figures contract.Preflight
	Attempt int32
}

// Preflight checks, before anyone is told, that a mailbox can go (its
// copier's port.Preflighter). A definite "cannot go" (one of
// contract.DeferReasons) fails it for good, with its type, the fixed words
// of its reason (never the server's text, which may name a folder or an
// address) and, as its details, the figures read before it (a Preflight);
// anything else is retried, a throttled one after the server's delay.
func (a *Activities) Preflight(ctx context.Context, in PreflightInput) (PreflightResult, error) {
	attempt := activity.GetInfo(ctx).Attempt
	pf, ok := a.copier.(port.Preflighter)
	if !ok {
		return PreflightResult{Attempt: attempt}, nil
	}
	p, err := pf.Preflight(ctx, in.Mailbox)
	if errors.Is(err, port.ErrNoPreflight) {
		return PreflightResult{Attempt: attempt}, nil
	}
	if typ, refused := port.IsPermanent(err); refused && contract.IsDeferReason(typ) {
		activity.GetLogger(ctx).Warn("preflight: the mailbox cannot go", "mailbox", in.Mailbox.Key, "reason", typ, "error", err)
		return PreflightResult{}, temporal.NewNonRetryableApplicationError(contract.DeferReason(typ), typ, nil, p)
	}
	if err != nil {
		return PreflightResult{}, a.fail(contract.ActivityPreflight, err)
	}
	activity.GetLogger(ctx).Info("preflight passed", "mailbox", in.Mailbox.Key, "bytes", p.SourceBytes,
		"messages", p.SourceMessages, "oversize", p.Oversize, "roomKnown", p.RoomKnown)
	return PreflightResult{Checked: true, Figures: p, Attempt: attempt}, nil
}

// CopyInput asks for one copy pass over one mailbox.
type CopyInput struct {
	Mailbox contract.MailboxRef
	Pass    contract.CopyPass
	// From is where the previous pass ended (the delta starts from the
	// bulk's end); a retry's heartbeated checkpoint takes precedence.
	From contract.Checkpoint `json:",omitempty"`
}

// CopyResult counts what the pass copied over all its attempts.
type CopyResult struct {
	Stats   contract.CopyStats
	Attempt int32
	// Resumed is true when the pass went on from a heartbeated checkpoint.
	Resumed bool
	// Checkpoint is where the pass ended, for the next pass.
	Checkpoint contract.Checkpoint `json:",omitempty"`
}

// CopyProgress is the heartbeat of a copy: where to resume, what the
// earlier attempts already copied, and how many attempts in a row failed
// without copying anything.
type CopyProgress struct {
	Checkpoint contract.Checkpoint
	Stats      contract.CopyStats
	Stalled    int `json:",omitempty"`
}

// CopyMailbox runs one copy pass. It heartbeats a checkpoint after every
// durable step; a retry reads the last one and goes on from there.
func (a *Activities) CopyMailbox(ctx context.Context, in CopyInput) (CopyResult, error) {
	defer a.meter.copyStarted()()
	prior := CopyProgress{Checkpoint: in.From}
	resumed := false
	if activity.HasHeartbeatDetails(ctx) {
		if err := activity.GetHeartbeatDetails(ctx, &prior); err == nil {
			resumed = true
		} else {
			activity.GetLogger(ctx).Warn("unreadable copy checkpoint; starting the pass over", "mailbox", in.Mailbox.Key, "error", err)
			prior = CopyProgress{Checkpoint: in.From}
		}
	}
	progressed := false
	copied := a.meter.copyCounter(in.Pass)
	last := prior.Checkpoint
	var mu sync.Mutex
	latest := CopyProgress{Checkpoint: prior.Checkpoint, Stats: prior.Stats}
	stopBeating := heartbeatEvery(ctx, CopyHeartbeatEvery, func() {
		mu.Lock()
		p := latest
		mu.Unlock()
		activity.RecordHeartbeat(ctx, p)
	})
	stats, err := a.copier.Copy(ctx, port.CopyRequest{
		Mailbox:    in.Mailbox,
		Pass:       in.Pass,
		Checkpoint: prior.Checkpoint,
		Progress: func(cp contract.Checkpoint, s contract.CopyStats) {
			p := CopyProgress{Checkpoint: cp.Clone(), Stats: prior.Stats.Add(s)}
			copied.saw(s)
			mu.Lock()
			progressed, last, latest = true, cp.Clone(), p
			mu.Unlock()
			activity.RecordHeartbeat(ctx, p)
		},
	})
	stopBeating()
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		// Cancelled (a pre-staged pass paused, or stopped at T): the
		// workflow is handed the checkpoint it reached, to go on from.
		mu.Lock()
		p := latest
		mu.Unlock()
		return CopyResult{}, temporal.NewCanceledError(p)
	}
	if err != nil {
		a.meter.throttled(contract.ActivityCopyMailbox, err)
		return CopyResult{}, copyRetryError(ctx, err, prior, progressed)
	}
	copied.saw(stats)
	total := prior.Stats.Add(stats)
	activity.GetLogger(ctx).Info("copy pass done", "mailbox", in.Mailbox.Key, "pass", string(in.Pass),
		"items", total.Items, "bytes", total.Bytes, "skipped", total.Skipped, "resumed", resumed)
	return CopyResult{Stats: total, Attempt: activity.GetInfo(ctx).Attempt, Resumed: resumed, Checkpoint: last}, nil
}

// CutoverInput asks for one mailbox's routing to move to the target.
type CutoverInput struct {
	Mailbox contract.MailboxRef
}

// CutoverResult says whether the routing had already moved.
type CutoverResult struct {
	AlreadyDone bool
	Attempt     int32
}

// Cutover points the mailbox's mail at the target. It reads the routing
// first and succeeds at once if that is already done; it refuses, for good,
// a mailbox whose T-14 notice was never sent.
func (a *Activities) Cutover(ctx context.Context, in CutoverInput) (CutoverResult, error) {
	attempt := activity.GetInfo(ctx).Attempt
	route, err := a.router.Route(ctx, in.Mailbox)
	if err != nil {
		return CutoverResult{}, a.fail(contract.ActivityCutover, err)
	}
	if route == port.RouteTarget {
		return CutoverResult{AlreadyDone: true, Attempt: attempt}, nil
	}
	sent, err := a.notifier.Sent(ctx, in.Mailbox.Key, contract.NoticeT14)
	if err != nil {
		return CutoverResult{}, a.fail(contract.ActivityCutover, err)
	}
	if !sent {
		return CutoverResult{}, toTemporal(port.Permanent(contract.ErrTypeNoticeNotSent,
			"mailbox %s: the T-14 notice was never sent, so it may not be cut over", in.Mailbox.Key))
	}
	if err := a.router.Cutover(ctx, in.Mailbox); err != nil {
		return CutoverResult{}, a.fail(contract.ActivityCutover, err)
	}
	a.meter.cutover()
	activity.GetLogger(ctx).Info("cut over", "mailbox", in.Mailbox.Key)
	return CutoverResult{Attempt: attempt}, nil
}

// CutoverQueue names the task queue a mailbox's cutover runs on: its
// organisation's routing host's, or "" where any worker may run it.
func (a *Activities) CutoverQueue(_ context.Context, in CutoverInput) (string, error) {
	hosts, ok := a.router.(port.RoutingHosts)
	if !ok {
		return "", nil
	}
	q, err := hosts.CutoverQueue(in.Mailbox)
	return q, toTemporal(err)
}

// Retry delays of a copy after a transient failure. A long copy that meets
// an occasional error resumes from its checkpoint after CopyResumeDelay; only
// attempts in a row that copy nothing back off, doubling up to
// CopyMaxRetryDelay. Left to the retry policy, the delay would grow with
// every attempt of a long copy even while each one makes progress.
const (
	CopyResumeDelay   = 2 * time.Second
	CopyMaxRetryDelay = 5 * time.Minute
)

// copyRetryError is toTemporal for a failed copy attempt, with the retry
// delay of a transient failure set from the attempts in a row that made no
// progress (kept in the heartbeat, which the SDK flushes on failure).
// Permanent failures and throttling (the server's own back-off) are left as
// toTemporal makes them.
func copyRetryError(ctx context.Context, err error, prior CopyProgress, progressed bool) error {
	if !transient(err) {
		return toTemporal(err)
	}
	stalled := 0
	if !progressed {
		stalled = prior.Stalled + 1
		activity.RecordHeartbeat(ctx, CopyProgress{Checkpoint: prior.Checkpoint, Stats: prior.Stats, Stalled: stalled})
	}
	return temporal.NewApplicationErrorWithOptions(fmt.Sprint(err), contract.ErrTypeTransient, temporal.ApplicationErrorOptions{
		NextRetryDelay: CopyRetryDelay(stalled),
		Cause:          err,
	})
}

// CopyRetryDelay is the delay before the next attempt of a copy after
// stalled attempts in a row without progress: CopyResumeDelay for up to one,
// then doubling.
func CopyRetryDelay(stalled int) time.Duration {
	d := CopyResumeDelay
	for i := 1; i < stalled && d < CopyMaxRetryDelay; i++ {
		d *= 2
	}
	return min(d, CopyMaxRetryDelay)
}

// transient reports whether toTemporal makes err a plain retryable failure:
// not a cancellation, a permanent failure or throttling.
func transient(err error) bool {
	var perm *port.PermanentError
	var thr *port.ThrottledError
	return err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) &&
		!errors.As(err, &perm) && !errors.As(err, &thr)
}

// fail is toTemporal for a failed attempt of the named activity, counting
// a throttle reply.
func (a *Activities) fail(activity string, err error) error {
	a.meter.throttled(activity, err)
	return toTemporal(err)
}

// toTemporal turns a port's error into what Temporal's retry machinery
// understands: permanent failures are non-retryable with their type, and
// throttling is retryable with the server's back-off as the next delay.
func toTemporal(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var perm *port.PermanentError
	if errors.As(err, &perm) {
		return temporal.NewNonRetryableApplicationError(perm.Error(), perm.Type, perm.Err)
	}
	var thr *port.ThrottledError
	if errors.As(err, &thr) {
		return temporal.NewApplicationErrorWithOptions(thr.Error(), contract.ErrTypeThrottled, temporal.ApplicationErrorOptions{
			NextRetryDelay: thr.RetryAfter,
			Cause:          thr.Err,
		})
	}
	return temporal.NewApplicationError(fmt.Sprint(err), contract.ErrTypeTransient, err)
}

// CopyHeartbeatEvery is how often a copy heartbeats its latest checkpoint
// even when no batch has finished (a slow target, a large message): the
// copy's heartbeat timeout can then be short, so a copy whose worker died
// resumes on another within half a minute.
const CopyHeartbeatEvery = 5 * time.Second

// heartbeatEvery calls beat every interval until ctx ends or the returned
// stop is called; stop returns once no beat is running.
func heartbeatEvery(ctx context.Context, interval time.Duration, beat func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				beat()
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
