package workflows

import (
	"fmt"
	"sort"
	"time"

	"go.temporal.io/sdk/workflow"

	"mailwave/activities"
	"mailwave/contract"
)

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
		WaveID: w.in.WaveID, From: from, To: to,
	}).Get(ctx, &keys)
	if err != nil || len(keys) != to-from {
		w.pause(ctx, fmt.Sprintf("reading mailbox keys %d-%d failed: %v", from, to-1, err))
		return "", false
	}
	w.keys, w.keysFrom = keys, from
	return keys[i-from], true
}

// changeOrderedSignals: the signals to one mailbox go one at a time, each
// sent once the one before it is delivered. Sent together, two signals can
// arrive the other way round: a hold delivered after its release left the
// mailbox held for ever, and its wave waiting for it. Runs begun before it
// replay sending them at once.
const changeOrderedSignals = "ordered-mailbox-signals"

// queuedSignal is a signal waiting for the one before it to the same
// mailbox.
type queuedSignal struct {
	name    string
	arg     any
	onError func(error)
}

// signal sends a signal to a mailbox, tracking it until it is delivered;
// signals to one mailbox are delivered in the order sent. Queued signals
// count as in flight, so the run does not continue as new before they go.
func (w *wave) signal(ctx workflow.Context, key, name string, arg any, onError func(error)) {
	if workflow.GetVersion(ctx, changeOrderedSignals, workflow.DefaultVersion, 1) == 1 {
		if q, busy := w.sending[key]; busy {
			w.inflight++
			w.sending[key] = append(q, queuedSignal{name, arg, onError})
			return
		}
		w.sending[key] = nil
	}
	w.send(ctx, key, queuedSignal{name, arg, onError})
}

func (w *wave) send(ctx workflow.Context, key string, s queuedSignal) {
	w.inflight++
	f := workflow.SignalExternalWorkflow(ctx, contract.MailboxWorkflowID(key), "", s.name, s.arg)
	w.sel.AddFuture(f, func(f workflow.Future) {
		w.inflight--
		if err := f.Get(ctx, nil); err != nil && s.onError != nil {
			s.onError(err)
		}
		q, ordered := w.sending[key]
		if !ordered {
			return
		}
		if len(q) == 0 {
			delete(w.sending, key)
			return
		}
		w.sending[key] = q[1:]
		w.inflight--
		w.send(ctx, key, q[0])
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

// changeVerifyDoneKey: a done report is checked against the roster's key of
// its index, so a forged one cannot free a slot or settle another mailbox.
// Waves begun before it replay without the check (and its key reads).
const changeVerifyDoneKey = "verify-done-key"

// fromItsMailbox reports whether a done report names the key of the mailbox
// at its index: the slot holder's key, else the roster's. Anyone allowed to
// signal the wave could send one; a report that does not match is ignored
// and logged.
func (w *wave) fromItsMailbox(ctx workflow.Context, d contract.MailboxDone) bool {
	if workflow.GetVersion(ctx, changeVerifyDoneKey, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return true
	}
	if d.Index < 0 || d.Index >= w.in.Total {
		return true // onDone refuses it, saying so
	}
	match, read := w.keyMatches(ctx, d.Index, d.Key)
	if !match && read {
		workflow.GetLogger(ctx).Warn("done report ignored: its key is not the mailbox's at that index",
			"wave", w.in.WaveID, "index", d.Index, "key", d.Key)
	}
	return match
}

// keyMatches reports whether key is the key of the mailbox at index (in
// range): a slot holder's key or a pre-stage pass's (checked when it was
// asked for), else the roster's. read is false when the roster could not
// be read: the wave is held, saying why. A key found in the state costs no
// command; a roster read is a local activity, as it always was.
func (w *wave) keyMatches(ctx workflow.Context, index int, key string) (match, read bool) {
	want, known := w.keyHeld(index)
	if !known {
		if want, known = w.keyOf(ctx, index); !known {
			return false, false
		}
	}
	return key == want, true
}

// keyHeld is the key the wave's state holds for the mailbox at index: a
// slot holder's, or a pre-stage pass's (checked when it was asked for).
func (w *wave) keyHeld(index int) (string, bool) {
	for _, s := range w.st.Active {
		if s.Index == index {
			return s.Key, true
		}
	}
	if j := prestageSlotAt(w.st.PrestageActive, index); j >= 0 {
		return w.st.PrestageActive[j].Key, true
	}
	if j := prestageSlotAt(w.st.PrestageQueue, index); j >= 0 {
		return w.st.PrestageQueue[j].Key, true
	}
	return "", false
}

// onDone settles a mailbox that reported its end, freeing its slot and its
// place in the pre-stage pool (held or waited for).
func (w *wave) onDone(ctx workflow.Context, d contract.MailboxDone) {
	if d.Index < 0 || d.Index >= w.in.Total {
		workflow.GetLogger(ctx).Warn("done from an unknown mailbox index", "wave", w.in.WaveID, "index", d.Index)
		return
	}
	w.removeActive(d.Index)
	w.leavePrestage(d.Index)
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
	case contract.OutcomeDeferred:
		// Its preflight found it cannot go, or an operator moved it to
		// another night (ErrTypeRescheduled): back to the pool, not a
		// failure of the wave's, so not in the error budget. Counting it
		// issues no command: no GetVersion (a run begun before it met no
		// deferred mailbox, since none existed).
		w.st.Deferred++
		w.st.DeferredBy = contract.CountReason(w.st.DeferredBy, d.ErrorType)
	default:
		w.st.Cancelled++
	}
	w.st.Copied = w.st.Copied.Add(d.Copied)
	w.checkBudget(ctx)
}
