package workflows

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

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
	// keyPages are the roster's pages read in this run for pre-stage
	// requests, by page number (prestageKeyMatches).
	keyPages map[int][]string
	signals  int // signals handled in this run
	// Reconciliation: mailboxes to ask the server about, a check running,
	// and the timer that checks the slot holders.
	toReconcile    []int
	reconcileBusy  bool
	reconcileArmed bool
	// reconcileRounds counts this run's rounds (the pool's holders are
	// checked every prestageReconcileRounds).
	reconcileRounds int
	// Signals to mailboxes waiting for the one before them, by key (a key
	// present: one is in flight; changeOrderedSignals).
	sending map[string][]queuedSignal
	// pub is what the wave last published (changeWaveVisibility).
	pub publisher
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
		if in.Prestage != nil && in.Prestage.Pool == "" {
			st.PrestageCap = in.Prestage.Cap
		}
	}
	st.Runs++
	in.State = nil
	return &wave{in: in, st: st, keysFrom: -1, sending: map[string][]queuedSignal{}}
}

func (w *wave) setup(ctx workflow.Context) error {
	w.setupPublisher(ctx)
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
		if w.fromItsMailbox(ctx, d) {
			w.onDone(ctx, d)
		}
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
		if req.Prestage > 0 {
			w.onPrestageCap(ctx, req.Prestage)
		}
	})
	w.sel.AddReceive(workflow.GetSignalChannel(ctx, contract.SignalPrestageRequest), func(c workflow.ReceiveChannel, _ bool) {
		var r contract.PrestageSlot
		c.Receive(ctx, &r)
		w.signals++
		w.onPrestageRequest(ctx, r)
	})
	w.sel.AddReceive(workflow.GetSignalChannel(ctx, contract.SignalPrestageRelease), func(c workflow.ReceiveChannel, _ bool) {
		var r contract.PrestageSlot
		c.Receive(ctx, &r)
		w.signals++
		w.onPrestageRelease(ctx, r)
	})
	w.sel.AddReceive(workflow.GetSignalChannel(ctx, contract.SignalCancel), func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, nil)
		w.signals++
		if !w.st.Cancelling {
			workflow.GetLogger(ctx).Info("wave cancelling", "wave", w.in.WaveID)
			w.st.Cancelling = true
			w.holdInPool(ctx)
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
		w.grantPrestage(ctx)
		w.cancelNext(ctx)
		w.reconcile(ctx)
		if w.finished() && !w.sel.HasPending() {
			w.publish(ctx, true)
			return w.result(ctx), nil
		}
		w.publish(ctx, false)
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

// finished: every mailbox started has reported, and nothing is left to start.
func (w *wave) finished() bool {
	allStarted := w.st.NextStart >= w.in.Total || w.st.Cancelling
	done := w.done()
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

// done counts the mailboxes that have reported their end.
func (w *wave) done() int {
	return w.st.Migrated + len(w.st.NeedsSupport) + w.st.Cancelled + w.st.Deferred
}

func (w *wave) progress() contract.WaveProgress {
	done := w.done()
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
		Deferred:     w.st.Deferred,
		DeferredBy:   slices.Clone(w.st.DeferredBy),
		Copied:       w.st.Copied,
		Cap:          w.st.Cap,
		Paused:       w.st.Paused,
		PauseReason:  w.st.PauseReason,
		Cancelling:   w.st.Cancelling,
		Runs:         w.st.Runs,
		StartedAt:    w.st.StartedAt,
		Refusals:     w.st.Refusals,
		// The pool's figures are zero, and omitted, for a wave that does
		// not pre-stage.
		PrestageCap:    w.st.PrestageCap,
		Prestaging:     len(w.st.PrestageActive),
		PrestageQueued: len(w.st.PrestageQueue),
		PrestagePool:   w.prestagePool(),
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
		Deferred:     w.st.Deferred,
		DeferredBy:   slices.Clone(w.st.DeferredBy),
		Copied:       w.st.Copied,
		StartedAt:    w.st.StartedAt,
		FinishedAt:   now,
		Duration:     now.Sub(w.st.StartedAt),
		Runs:         w.st.Runs,
		Refusals:     w.st.Refusals,
	}
	workflow.GetLogger(ctx).Info("wave finished", "wave", w.in.WaveID, "migrated", res.Migrated,
		"needsSupport", res.NeedsSupport, "cancelled", res.Cancelled, "refused", res.Refused, "deferred", res.Deferred)
	return res
}
