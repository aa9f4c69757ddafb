package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"mailwave/activities"
	"mailwave/contract"
)

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
	// The reason may be an operator's free text, naming people: debug only.
	workflow.GetLogger(ctx).Info("wave paused", "wave", w.in.WaveID)
	workflow.GetLogger(ctx).Debug("wave pause reason", "wave", w.in.WaveID, "reason", reason)
	for _, s := range w.st.Active {
		w.signal(ctx, s.Key, contract.SignalPause, contract.PauseRequest{Reason: reason, ByWave: true}, nil)
	}
	w.holdInPool(ctx)
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
	w.holdInPool(ctx)
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
		WaveID: w.in.WaveID, Indexes: indexes,
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

// prestageReconcileRounds: the pool's holders are checked on every this
// many rounds of the slot holders' (hourly at the default ten minutes).
const prestageReconcileRounds = 6

// reconcile settles mailboxes that ended without reporting: those a grant
// could not reach, and, every ReconcileEvery, any slot holder no longer
// running (terminated by an operator, or whose report could not be sent).
// A pass holding a place in the pre-stage pool is checked on alike: its
// mailbox gone without a word would hold that place for the days left to
// T; settled here through onDone, it leaves the pool. (A wave without
// Prestage never has one: the timer is armed, and the activity asked, as
// they always were.)
func (w *wave) reconcile(ctx workflow.Context) {
	if !w.reconcileArmed && (len(w.st.Active) > 0 || len(w.st.PrestageActive) > 0) {
		w.reconcileArmed = true
		w.sel.AddFuture(workflow.NewTimerWithOptions(ctx, w.in.ReconcileEvery, workflow.TimerOptions{Summary: "check the slot holders"}),
			func(f workflow.Future) {
				w.reconcileArmed = false
				if f.Get(ctx, nil) == nil {
					for _, s := range w.st.Active {
						w.toReconcile = append(w.toReconcile, s.Index)
					}
					// The pool's holders (up to thousands, for days) every
					// prestageReconcileRounds rounds: a place held by a
					// mailbox gone can wait an hour.
					w.reconcileRounds++
					if (w.reconcileRounds-1)%prestageReconcileRounds == 0 {
						for _, s := range w.st.PrestageActive {
							w.toReconcile = append(w.toReconcile, s.Index)
						}
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
		WaveID: w.in.WaveID, Indexes: indexes,
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
