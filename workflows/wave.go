package workflows

import (
	"fmt"
	"sort"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"mailwave/activities"
	"mailwave/contract"
)

// maxRefusalsKept bounds the refusals listed in the state; all are counted.
const maxRefusalsKept = 100

// Wave runs a wave's mailboxes: it starts their MailboxMigration workflows
// page by page at a bounded rate, and from T grants at most Cap of them a
// slot at a time for copy and cutover, in file order. It continues as new
// before its history grows past MaxEventsPerRun, and completes when every
// mailbox it started has reported.
func Wave(ctx workflow.Context, in contract.WaveInput) (contract.WaveResult, error) {
	in = in.WithDefaults()
	if err := in.Validate(); err != nil {
		return contract.WaveResult{}, temporal.NewNonRetryableApplicationError(err.Error(), contract.ErrTypeInvalidInput, nil)
	}
	if in.Total > contract.MaxWaveSize {
		return contract.WaveResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("wave %s has %d mailboxes, more than %d", in.WaveID, in.Total, contract.MaxWaveSize), contract.ErrTypeInvalidInput, nil)
	}
	w := newWave(ctx, in)
	if err := w.setup(ctx); err != nil {
		return contract.WaveResult{}, err
	}
	return w.run(ctx)
}

type wave struct {
	in  contract.WaveInput
	st  *contract.WaveState
	sel workflow.Selector

	// In flight in this run; all are settled before continue-as-new.
	inflight   int // signals sent, activities running
	startBusy  bool
	cancelBusy bool
	atT        bool
	timerArmed bool
	keys       []string // the page of keys last read
	keysFrom   int
	signals    int // signals handled in this run
	// Reconciliation: mailboxes to ask the server about, a check running,
	// and the timer that checks the slot holders.
	toReconcile    []int
	reconcileBusy  bool
	reconcileArmed bool
}

func newWave(ctx workflow.Context, in contract.WaveInput) *wave {
	st := in.State
	if st == nil {
		st = &contract.WaveState{
			StartedAt:  workflow.Now(ctx),
			Started:    contract.NewBitset(in.Total),
			Granted:    contract.NewBitset(in.Total),
			Done:       contract.NewBitset(in.Total),
			Restarting: contract.NewBitset(in.Total),
			Cap:        in.Cap,
		}
	}
	st.Runs++
	in.State = nil
	return &wave{in: in, st: st, keysFrom: -1}
}

func (w *wave) setup(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, contract.QueryProgress, func() (contract.WaveProgress, error) {
		return w.progress(), nil
	}); err != nil {
		return err
	}
	w.sel = workflow.NewSelector(ctx)
	w.sel.AddReceive(workflow.GetSignalChannel(ctx, contract.SignalMailboxDone), func(c workflow.ReceiveChannel, _ bool) {
		var d contract.MailboxDone
		c.Receive(ctx, &d)
		w.signals++
		w.onDone(ctx, d)
	})
	w.sel.AddReceive(workflow.GetSignalChannel(ctx, contract.SignalPause), func(c workflow.ReceiveChannel, _ bool) {
		var req contract.PauseRequest
		c.Receive(ctx, &req)
		w.signals++
		reason := req.Reason
		if reason == "" {
			reason = "paused by an operator"
		}
		w.pause(ctx, reason)
	})
	w.sel.AddReceive(workflow.GetSignalChannel(ctx, contract.SignalResume), func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, nil)
		w.signals++
		w.resume(ctx)
	})
	w.sel.AddReceive(workflow.GetSignalChannel(ctx, contract.SignalSetCap), func(c workflow.ReceiveChannel, _ bool) {
		var req contract.SetCapRequest
		c.Receive(ctx, &req)
		w.signals++
		if req.Cap > 0 {
			workflow.GetLogger(ctx).Info("wave cap set", "wave", w.in.WaveID, "from", w.st.Cap, "to", req.Cap)
			w.st.Cap = req.Cap
		}
	})
	w.sel.AddReceive(workflow.GetSignalChannel(ctx, contract.SignalCancel), func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, nil)
		w.signals++
		if !w.st.Cancelling {
			workflow.GetLogger(ctx).Info("wave cancelling", "wave", w.in.WaveID)
			w.st.Cancelling = true
		}
	})
	w.sel.AddReceive(workflow.GetSignalChannel(ctx, contract.SignalRetryFailed), func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, nil)
		w.signals++
		w.st.RetryPending = true
	})
	return nil
}

func (w *wave) run(ctx workflow.Context) (contract.WaveResult, error) {
	for {
		w.armTimer(ctx)
		w.startNext(ctx)
		w.retryFailed(ctx)
		w.grant(ctx)
		w.cancelNext(ctx)
		w.reconcile(ctx)
		if w.finished() && !w.sel.HasPending() {
			return w.result(ctx), nil
		}
		if w.shouldContinueAsNew(ctx) {
			return contract.WaveResult{}, w.continueAsNew(ctx)
		}
		w.sel.Select(ctx)
	}
}

// armTimer wakes the wave at T, when slots may first be granted.
func (w *wave) armTimer(ctx workflow.Context) {
	if w.atT || w.timerArmed {
		return
	}
	d := w.in.MigrateAt.Sub(workflow.Now(ctx))
	if d <= 0 {
		w.atT = true
		return
	}
	w.timerArmed = true
	w.sel.AddFuture(workflow.NewTimerWithOptions(ctx, d, workflow.TimerOptions{Summary: "until T"}), func(f workflow.Future) {
		_ = f.Get(ctx, nil)
		w.atT = true
	})
}

func (w *wave) activityCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
		},
	})
}

func (w *wave) startInput(from, to int, indexes []int) activities.StartMailboxesInput {
	return activities.StartMailboxesInput{
		WaveID: w.in.WaveID, MailboxFile: w.in.MailboxFile, From: from, To: to, Indexes: indexes,
		MigrateAt: w.in.MigrateAt, NoticeLead: w.in.NoticeLead, ReminderLead: w.in.ReminderLead, StartRate: w.in.StartRate,
	}
}

// startNext starts the next page of mailboxes, one page at a time.
func (w *wave) startNext(ctx workflow.Context) {
	if w.startBusy || w.st.Cancelling || w.st.Paused || w.st.NextStart >= w.in.Total {
		return
	}
	from, to := w.st.NextStart, min(w.st.NextStart+w.in.PageSize, w.in.Total)
	w.startBusy = true
	w.inflight++
	f := workflow.ExecuteActivity(w.activityCtx(ctx), contract.ActivityStartMailboxes, w.startInput(from, to, nil))
	w.sel.AddFuture(f, func(f workflow.Future) {
		w.startBusy = false
		w.inflight--
		var res activities.StartMailboxesResult
		if err := f.Get(ctx, &res); err != nil {
			// Retries are exhausted only by a bad file; say so and hold.
			w.pause(ctx, fmt.Sprintf("starting mailboxes %d-%d failed: %v", from, to-1, err))
			return
		}
		w.recordStarted(from, to, res)
		w.st.NextStart = to
	})
}

// recordStarted marks a page's mailboxes started, but for those refused.
func (w *wave) recordStarted(from, to int, res activities.StartMailboxesResult) {
	refused := map[int]bool{}
	for _, r := range res.Refused {
		refused[r.Index] = true
		w.st.Refused++
		if len(w.st.Refusals) < maxRefusalsKept {
			w.st.Refusals = append(w.st.Refusals, r)
		}
	}
	for i := from; i < to; i++ {
		if !refused[i] && !w.st.Started.Has(i) {
			w.st.Started.Set(i)
			w.st.StartedCount++
		}
	}
}

// retryFailed starts the needs-support mailboxes again, once asked.
func (w *wave) retryFailed(ctx workflow.Context) {
	if !w.st.RetryPending || w.st.Cancelling || len(w.st.NeedsSupport) == 0 {
		w.st.RetryPending = false
		return
	}
	if w.startBusy {
		return
	}
	w.st.RetryPending = false
	indexes := w.st.NeedsSupport
	w.st.NeedsSupport = nil
	// The error budget is judged on what happens from here: the retried
	// mailboxes no longer count as failed.
	w.st.BudgetBaseFailed = max(0, w.st.BudgetBaseFailed-len(indexes))
	w.st.BudgetBaseFinished = max(0, w.st.BudgetBaseFinished-len(indexes))
	for _, i := range indexes {
		w.st.Done.Clear(i)
		w.st.Granted.Clear(i)
		w.st.Restarting.Set(i)
		w.st.GrantCursor = min(w.st.GrantCursor, i)
	}
	workflow.GetLogger(ctx).Info("wave retrying needs-support mailboxes", "wave", w.in.WaveID, "count", len(indexes))
	w.startBusy = true
	w.inflight++
	in := w.startInput(0, 0, indexes)
	in.NotBefore = workflow.Now(ctx)
	f := workflow.ExecuteActivity(w.activityCtx(ctx), contract.ActivityStartMailboxes, in)
	w.sel.AddFuture(f, func(f workflow.Future) {
		w.startBusy = false
		w.inflight--
		var res activities.StartMailboxesResult
		err := f.Get(ctx, &res)
		for _, i := range indexes {
			w.st.Restarting.Clear(i)
			if w.st.Cancelling {
				// A cancel passed them by while they were starting.
				w.st.CancelQueue = append(w.st.CancelQueue, i)
			}
		}
		if err != nil {
			w.pause(ctx, fmt.Sprintf("retrying %d mailboxes failed: %v", len(indexes), err))
			res = activities.StartMailboxesResult{}
			for _, i := range indexes {
				res.Refused = append(res.Refused, contract.Refusal{Index: i, Reason: "retry failed to start"})
			}
		}
		for _, r := range res.Refused {
			if !w.st.Done.Has(r.Index) {
				w.st.Done.Set(r.Index)
				w.st.NeedsSupport = append(w.st.NeedsSupport, r.Index)
			}
		}
	})
}

// grant gives free slots to waiting mailboxes in file order, from T on,
// unless the wave is paused or cancelling.
func (w *wave) grant(ctx workflow.Context) {
	if !w.atT || w.st.Paused || w.st.Cancelling {
		return
	}
	for len(w.st.Active) < w.st.Cap {
		i := w.nextWaiting()
		if i < 0 {
			return
		}
		key, ok := w.keyOf(ctx, i)
		if !ok {
			return
		}
		w.st.Granted.Set(i)
		w.addActive(contract.ActiveSlot{Index: i, Key: key})
		w.signal(ctx, key, contract.SignalSlotGrant, contract.SlotGrant{WaveID: w.in.WaveID, Index: i}, func(err error) {
			// The mailbox is gone: it finished (its report settles it) or
			// was stopped without a word; the server is asked which.
			workflow.GetLogger(ctx).Warn("slot grant not delivered", "wave", w.in.WaveID, "mailbox", key, "error", err)
			w.removeActive(i)
			w.toReconcile = append(w.toReconcile, i)
		})
	}
}

// nextWaiting returns the lowest index started, not granted, not done and
// not being restarted, or -1.
func (w *wave) nextWaiting() int {
	for i := w.st.GrantCursor; i < w.in.Total; i++ {
		if w.st.Started.Has(i) && !w.st.Granted.Has(i) && !w.st.Done.Has(i) && !w.st.Restarting.Has(i) {
			w.st.GrantCursor = i
			return i
		}
		if i >= w.st.NextStart && !w.startBusy {
			break
		}
	}
	return -1
}

// keyOf returns a mailbox's key, reading its page of the mailbox file
// through a local activity when needed.
func (w *wave) keyOf(ctx workflow.Context, i int) (string, bool) {
	if w.keysFrom >= 0 && i >= w.keysFrom && i < w.keysFrom+len(w.keys) {
		return w.keys[i-w.keysFrom], true
	}
	from := i - i%w.in.PageSize
	to := min(from+w.in.PageSize, w.in.Total)
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: 10 * time.Minute,
	})
	var keys []string
	err := workflow.ExecuteLocalActivity(lctx, contract.ActivityReadMailboxKeys, activities.ReadMailboxKeysInput{
		MailboxFile: w.in.MailboxFile, From: from, To: to,
	}).Get(ctx, &keys)
	if err != nil || len(keys) != to-from {
		w.pause(ctx, fmt.Sprintf("reading mailbox keys %d-%d failed: %v", from, to-1, err))
		return "", false
	}
	w.keys, w.keysFrom = keys, from
	return keys[i-from], true
}

// signal sends a signal to a mailbox, tracking it until it is delivered.
func (w *wave) signal(ctx workflow.Context, key, name string, arg any, onError func(error)) {
	w.inflight++
	f := workflow.SignalExternalWorkflow(ctx, contract.MailboxWorkflowID(key), "", name, arg)
	w.sel.AddFuture(f, func(f workflow.Future) {
		w.inflight--
		if err := f.Get(ctx, nil); err != nil && onError != nil {
			onError(err)
		}
	})
}

func (w *wave) addActive(s contract.ActiveSlot) {
	i := sort.Search(len(w.st.Active), func(j int) bool { return w.st.Active[j].Index >= s.Index })
	w.st.Active = append(w.st.Active, contract.ActiveSlot{})
	copy(w.st.Active[i+1:], w.st.Active[i:])
	w.st.Active[i] = s
}

func (w *wave) removeActive(index int) bool {
	for j, s := range w.st.Active {
		if s.Index == index {
			w.st.Active = append(w.st.Active[:j], w.st.Active[j+1:]...)
			return true
		}
	}
	return false
}

// onDone settles a mailbox that reported its end, freeing its slot.
func (w *wave) onDone(ctx workflow.Context, d contract.MailboxDone) {
	if d.Index < 0 || d.Index >= w.in.Total {
		workflow.GetLogger(ctx).Warn("done from an unknown mailbox index", "wave", w.in.WaveID, "index", d.Index)
		return
	}
	w.removeActive(d.Index)
	if w.st.Done.Has(d.Index) {
		return // reported already
	}
	// A mailbox can finish before its page's start is confirmed.
	if !w.st.Started.Has(d.Index) {
		w.st.Started.Set(d.Index)
		w.st.StartedCount++
	}
	w.st.Done.Set(d.Index)
	switch d.Outcome {
	case contract.OutcomeMigrated:
		w.st.Migrated++
	case contract.OutcomeNeedsSupport:
		w.st.NeedsSupport = append(w.st.NeedsSupport, d.Index)
	default:
		w.st.Cancelled++
	}
	w.st.Copied = w.st.Copied.Add(d.Copied)
	w.checkBudget(ctx)
}

// checkBudget pauses the wave when the share of finished mailboxes that
// need support passes the error budget.
func (w *wave) checkBudget(ctx workflow.Context) {
	if w.st.Paused || w.st.Cancelling {
		return
	}
	finished := w.st.Migrated + len(w.st.NeedsSupport) - w.st.BudgetBaseFinished
	failed := len(w.st.NeedsSupport) - w.st.BudgetBaseFailed
	if finished < w.in.ErrorMinSample || float64(failed) <= w.in.ErrorBudget*float64(finished) {
		return
	}
	w.pause(ctx, fmt.Sprintf("error budget exceeded: %d of %d finished mailboxes need support (%.1f%%), budget %.1f%%",
		failed, finished, 100*float64(failed)/float64(finished), 100*w.in.ErrorBudget))
}

// pause stops new grants and holds the mailboxes with a slot at their next
// step boundary.
func (w *wave) pause(ctx workflow.Context, reason string) {
	if w.st.Paused {
		return
	}
	w.st.Paused, w.st.PauseReason = true, reason
	workflow.GetLogger(ctx).Info("wave paused", "wave", w.in.WaveID, "reason", reason)
	for _, s := range w.st.Active {
		w.signal(ctx, s.Key, contract.SignalPause, contract.PauseRequest{Reason: reason, ByWave: true}, nil)
	}
}

func (w *wave) resume(ctx workflow.Context) {
	if !w.st.Paused {
		return
	}
	w.st.Paused, w.st.PauseReason = false, ""
	w.st.BudgetBaseFinished = w.st.Migrated + len(w.st.NeedsSupport)
	w.st.BudgetBaseFailed = len(w.st.NeedsSupport)
	workflow.GetLogger(ctx).Info("wave resumed", "wave", w.in.WaveID)
	for _, s := range w.st.Active {
		w.signal(ctx, s.Key, contract.SignalResume, contract.ResumeRequest{ByWave: true}, nil)
	}
}

// cancelNext cancels, a page at a time, the started mailboxes that have
// not reported.
func (w *wave) cancelNext(ctx workflow.Context) {
	if !w.st.Cancelling || w.cancelBusy {
		return
	}
	var indexes []int
	i := w.st.CancelCursor
	if len(w.st.CancelQueue) > 0 {
		n := min(len(w.st.CancelQueue), w.in.PageSize)
		indexes = append(indexes, w.st.CancelQueue[:n]...)
		w.st.CancelQueue = w.st.CancelQueue[n:]
	} else {
		for ; i < w.st.NextStart && len(indexes) < w.in.PageSize; i++ {
			if w.st.Started.Has(i) && !w.st.Done.Has(i) && !w.st.Restarting.Has(i) {
				indexes = append(indexes, i)
			}
		}
	}
	if len(indexes) == 0 {
		w.st.CancelCursor = i
		return
	}
	queued := i == w.st.CancelCursor
	w.cancelBusy = true
	w.inflight++
	f := workflow.ExecuteActivity(w.activityCtx(ctx), contract.ActivityCancelMailboxes, activities.CancelMailboxesInput{
		WaveID: w.in.WaveID, MailboxFile: w.in.MailboxFile, Indexes: indexes,
	})
	w.sel.AddFuture(f, func(f workflow.Future) {
		w.cancelBusy = false
		w.inflight--
		var n int
		if err := f.Get(ctx, &n); err != nil {
			workflow.GetLogger(ctx).Warn("cancelling mailboxes failed; will try again", "wave", w.in.WaveID, "error", err)
			if queued {
				w.st.CancelQueue = append(indexes, w.st.CancelQueue...)
			}
			return
		}
		if queued {
			return
		}
		w.st.CancelCursor = i
	})
}

// reconcile settles mailboxes that ended without reporting: those a grant
// could not reach, and, every ReconcileEvery, any slot holder no longer
// running (terminated by an operator, or whose report could not be sent).
func (w *wave) reconcile(ctx workflow.Context) {
	if !w.reconcileArmed && len(w.st.Active) > 0 {
		w.reconcileArmed = true
		w.sel.AddFuture(workflow.NewTimerWithOptions(ctx, w.in.ReconcileEvery, workflow.TimerOptions{Summary: "check the slot holders"}),
			func(f workflow.Future) {
				w.reconcileArmed = false
				if f.Get(ctx, nil) == nil {
					for _, s := range w.st.Active {
						w.toReconcile = append(w.toReconcile, s.Index)
					}
				}
			})
	}
	if w.reconcileBusy || len(w.toReconcile) == 0 {
		return
	}
	indexes := w.toReconcile
	w.toReconcile = nil
	w.reconcileBusy = true
	w.inflight++
	f := workflow.ExecuteActivity(w.activityCtx(ctx), contract.ActivityReconcileMailboxes, activities.ReconcileMailboxesInput{
		WaveID: w.in.WaveID, MailboxFile: w.in.MailboxFile, Indexes: indexes,
	})
	w.sel.AddFuture(f, func(f workflow.Future) {
		w.reconcileBusy = false
		w.inflight--
		var ended []contract.MailboxDone
		if err := f.Get(ctx, &ended); err != nil {
			workflow.GetLogger(ctx).Warn("checking on mailboxes failed", "wave", w.in.WaveID, "error", err)
			return
		}
		for _, d := range ended {
			workflow.GetLogger(ctx).Warn("mailbox ended without reporting", "wave", w.in.WaveID, "mailbox", d.Key, "outcome", string(d.Outcome))
			w.onDone(ctx, d)
		}
	})
}

// finished: every mailbox started has reported, and nothing is left to start.
func (w *wave) finished() bool {
	allStarted := w.st.NextStart >= w.in.Total || w.st.Cancelling
	done := w.st.Migrated + len(w.st.NeedsSupport) + w.st.Cancelled
	return allStarted && w.inflight == 0 && !w.st.RetryPending && done >= w.st.StartedCount
}

func (w *wave) shouldContinueAsNew(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	return info.GetCurrentHistoryLength() >= w.in.MaxEventsPerRun || w.signals >= w.in.MaxSignalsPerRun ||
		info.GetContinueAsNewSuggested()
}

// continueAsNew settles everything in flight, handles every signal already
// received, and carries the state into a new run.
func (w *wave) continueAsNew(ctx workflow.Context) error {
	for w.inflight > 0 || w.sel.HasPending() {
		w.sel.Select(ctx)
	}
	in := w.in
	in.State = w.st
	workflow.GetLogger(ctx).Info("wave continuing as new", "wave", w.in.WaveID, "run", w.st.Runs,
		"events", workflow.GetInfo(ctx).GetCurrentHistoryLength())
	return workflow.NewContinueAsNewError(ctx, contract.WaveWorkflowName, in)
}

func (w *wave) progress() contract.WaveProgress {
	done := w.st.Migrated + len(w.st.NeedsSupport) + w.st.Cancelled
	return contract.WaveProgress{
		WaveID:       w.in.WaveID,
		Total:        w.in.Total,
		Started:      w.st.StartedCount,
		Refused:      w.st.Refused,
		Waiting:      max(0, w.st.StartedCount-done-len(w.st.Active)),
		Active:       len(w.st.Active),
		Migrated:     w.st.Migrated,
		NeedsSupport: len(w.st.NeedsSupport),
		Cancelled:    w.st.Cancelled,
		Copied:       w.st.Copied,
		Cap:          w.st.Cap,
		Paused:       w.st.Paused,
		PauseReason:  w.st.PauseReason,
		Cancelling:   w.st.Cancelling,
		Runs:         w.st.Runs,
		StartedAt:    w.st.StartedAt,
		Refusals:     w.st.Refusals,
	}
}

func (w *wave) result(ctx workflow.Context) contract.WaveResult {
	now := workflow.Now(ctx)
	res := contract.WaveResult{
		WaveID:       w.in.WaveID,
		Total:        w.in.Total,
		Migrated:     w.st.Migrated,
		NeedsSupport: len(w.st.NeedsSupport),
		Cancelled:    w.st.Cancelled + (w.in.Total - w.st.StartedCount - w.st.Refused),
		Refused:      w.st.Refused,
		Copied:       w.st.Copied,
		StartedAt:    w.st.StartedAt,
		FinishedAt:   now,
		Duration:     now.Sub(w.st.StartedAt),
		Runs:         w.st.Runs,
		Refusals:     w.st.Refusals,
	}
	workflow.GetLogger(ctx).Info("wave finished", "wave", w.in.WaveID, "migrated", res.Migrated,
		"needsSupport", res.NeedsSupport, "cancelled", res.Cancelled, "refused", res.Refused)
	return res
}
