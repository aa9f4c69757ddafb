package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"mailwave/activities"
	"mailwave/contract"
)

func (w *wave) startInput(from, to int, indexes []int) activities.StartMailboxesInput {
	return activities.StartMailboxesInput{
		WaveID: w.in.WaveID, From: from, To: to, Indexes: indexes,
		MigrateAt: w.in.MigrateAt, NoticeLead: w.in.NoticeLead, ReminderLead: w.in.ReminderLead, StartRate: w.in.StartRate,
		Prestage: w.in.Prestage,
		Total:    w.prestageTotal(),
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

// prestageTotal is the wave's size for its mailboxes' spread bulk passes,
// 0 without pre-staging (the start input as it always was).
func (w *wave) prestageTotal() int {
	if w.in.Prestage == nil {
		return 0
	}
	return w.in.Total
}
