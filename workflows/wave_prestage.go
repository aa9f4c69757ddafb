package workflows

import (
	"slices"

	"go.temporal.io/sdk/workflow"

	"mailwave/activities"
	"mailwave/contract"
)

// The pre-stage pool (WaveInput.Prestage): before each pass it runs ahead
// of its T, a pre-staged mailbox asks its wave; the wave lets PrestageCap
// passes run at once, in the order they were asked for, and the mailbox
// gives its place back when the pass ends. Unlike a night's slot, a place
// does not wait for T.
//
// No GetVersion: a wave without Prestage ignores every request, so its
// pool stays empty and none of this issues a command (no grant, no roster
// read, no reconcile of a pass); waves begun before the pool, which all
// have Prestage nil, replay as they ran.

// onPrestageRequest queues a mailbox's request for a pass, once: a request
// repeated (its local activity retried) keeps the place it had.
func (w *wave) onPrestageRequest(ctx workflow.Context, r contract.PrestageSlot) {
	if !w.prestageRequestValid(ctx, r) {
		return
	}
	if j := prestageSlotAt(w.st.PrestageActive, r.Index); j >= 0 {
		switch held := w.st.PrestageActive[j].Pass; {
		case held == r.Pass:
			return // granted already
		case held > r.Pass:
			workflow.GetLogger(ctx).Warn("pre-stage request ignored: a later pass holds a place",
				"wave", w.in.WaveID, "index", r.Index, "pass", r.Pass, "held", held)
			return
		}
		// The release of its pass before was lost: that place is free.
		w.st.PrestageActive = slices.Delete(w.st.PrestageActive, j, j+1)
	}
	if j := prestageSlotAt(w.st.PrestageQueue, r.Index); j >= 0 {
		// Waiting already: it keeps its place, for the latest pass asked
		// (a grant of a pass it gave up would never be released).
		w.st.PrestageQueue[j].Pass = max(w.st.PrestageQueue[j].Pass, r.Pass)
		return
	}
	w.st.PrestageQueue = append(w.st.PrestageQueue, contract.PrestageSlot{Index: r.Index, Key: r.Key, Pass: r.Pass})
}

// prestageRequestValid: the wave pre-stages, the index is its, the key is
// the mailbox's at that index (anyone allowed to signal the wave could
// send a request; one ignored is logged by its index, never an address),
// and the mailbox has not ended.
func (w *wave) prestageRequestValid(ctx workflow.Context, r contract.PrestageSlot) bool {
	ignore := func(why string) bool {
		workflow.GetLogger(ctx).Warn("pre-stage request ignored: "+why, "wave", w.in.WaveID, "index", r.Index, "pass", r.Pass)
		return false
	}
	switch {
	case w.in.Prestage == nil:
		return ignore("the wave does not pre-stage")
	case w.in.Prestage.Pool != "":
		return ignore("the wave's passes run in the tenant's pool")
	case r.Index < 0 || r.Index >= w.in.Total:
		return ignore("no such mailbox index")
	}
	match, read := w.prestageKeyMatches(ctx, r.Index, r.Key)
	switch {
	case !read:
		return false // the roster could not be read: the wave is held, saying why
	case !match:
		return ignore("its key is not the mailbox's at that index")
	case w.st.Done.Has(r.Index):
		return ignore("the mailbox has reported its end")
	}
	return true
}

// onPrestageRelease frees the place of a pass that ended. A release must
// name the pass the wave knows, with the key it was asked with: one of a
// pass dropped since (its mailbox asked for the next) is stale. A pass
// that ended before its grant (paused or stopped while waiting) leaves
// the queue, so that no grant goes to a pass nobody will release.
func (w *wave) onPrestageRelease(ctx workflow.Context, r contract.PrestageSlot) {
	if j := prestageSlotOf(w.st.PrestageActive, r); j >= 0 {
		w.st.PrestageActive = slices.Delete(w.st.PrestageActive, j, j+1)
		return
	}
	if j := prestageSlotOf(w.st.PrestageQueue, r); j >= 0 {
		w.st.PrestageQueue = slices.Delete(w.st.PrestageQueue, j, j+1)
		return
	}
	workflow.GetLogger(ctx).Info("pre-stage release ignored: not a pass the wave knows",
		"wave", w.in.WaveID, "index", r.Index, "pass", r.Pass)
}

// grantPrestage lets waiting passes run, in the order asked for, while the
// pool has room, unless the wave is paused or cancelling. A pause stops
// new grants only: passes running finish (each is short of T, and holds
// nothing of the night). Grants to one mailbox go in order with its other
// signals (w.signal).
func (w *wave) grantPrestage(ctx workflow.Context) {
	if w.st.Paused || w.st.Cancelling {
		return
	}
	for len(w.st.PrestageActive) < w.st.PrestageCap && len(w.st.PrestageQueue) > 0 {
		s := w.st.PrestageQueue[0]
		w.st.PrestageQueue = w.st.PrestageQueue[1:]
		if w.st.Done.Has(s.Index) {
			continue
		}
		w.st.PrestageActive = append(w.st.PrestageActive, s)
		w.signal(ctx, s.Key, contract.SignalPrestageGrant, contract.PrestageSlot{WaveID: w.in.WaveID, Index: s.Index, Pass: s.Pass},
			func(err error) {
				// The mailbox is gone: it finished (its report settles it) or
				// was stopped without a word; the server is asked which.
				workflow.GetLogger(ctx).Warn("pre-stage grant not delivered", "wave", w.in.WaveID, "index", s.Index, "error", err)
				if j := prestageSlotOf(w.st.PrestageActive, s); j >= 0 {
					w.st.PrestageActive = slices.Delete(w.st.PrestageActive, j, j+1)
				}
				w.toReconcile = append(w.toReconcile, s.Index)
			})
	}
}

// leavePrestage frees a mailbox's place in the pool, held or waited for:
// it has reported its end (or ended without reporting, settled by
// reconcile).
func (w *wave) leavePrestage(index int) {
	del := func(s contract.PrestageSlot) bool { return s.Index == index }
	w.st.PrestageActive = slices.DeleteFunc(w.st.PrestageActive, del)
	w.st.PrestageQueue = slices.DeleteFunc(w.st.PrestageQueue, del)
}

// onPrestageCap sets the pool's cap (SetCapRequest.Prestage): a lower cap
// lets the passes running finish, granting none until below it.
func (w *wave) onPrestageCap(ctx workflow.Context, capacity int) {
	if w.in.Prestage == nil {
		workflow.GetLogger(ctx).Warn("pre-stage cap ignored: the wave does not pre-stage", "wave", w.in.WaveID, "to", capacity)
		return
	}
	if w.in.Prestage.Pool != "" {
		workflow.GetLogger(ctx).Warn("pre-stage cap ignored: the wave's passes run in the tenant's pool; set its cap there",
			"wave", w.in.WaveID, "pool", w.in.Prestage.Pool, "to", capacity)
		return
	}
	workflow.GetLogger(ctx).Info("wave pre-stage cap set", "wave", w.in.WaveID, "from", w.st.PrestageCap, "to", capacity)
	w.st.PrestageCap = capacity
}

// prestageSlotAt returns the position of the mailbox at index in a pool list,
// or -1.
func prestageSlotAt(slots []contract.PrestageSlot, index int) int {
	return slices.IndexFunc(slots, func(s contract.PrestageSlot) bool { return s.Index == index })
}

// prestageSlotOf returns the position of the pass r names (index, pass, and
// the key it was asked with) in a pool list, or -1.
func prestageSlotOf(slots []contract.PrestageSlot, r contract.PrestageSlot) int {
	return slices.IndexFunc(slots, func(s contract.PrestageSlot) bool {
		return s.Index == r.Index && s.Pass == r.Pass && s.Key == r.Key
	})
}

// prestageKeyMatches is keyMatches for pre-stage requests, which come in no
// order and several a mailbox: the roster's pages read in this run are
// kept (a wave's at most 200 pages of 500 keys, about 3 MB), so a page is
// read once a run (a local activity's marker of about 17 KB in the
// history), not once a request. (keyMatches keeps only the page last
// read: the done reports of waves begun before this replay as they ran.)
func (w *wave) prestageKeyMatches(ctx workflow.Context, index int, key string) (match, read bool) {
	if want, ok := w.keyHeld(index); ok {
		return want == key, true
	}
	page := index / w.in.PageSize
	if keys, ok := w.keyPages[page]; ok {
		return keys[index-page*w.in.PageSize] == key, true
	}
	want, ok := w.keyOf(ctx, index)
	if !ok {
		return false, false
	}
	if w.keyPages == nil {
		w.keyPages = map[int][]string{}
	}
	w.keyPages[page] = w.keys
	return want == key, true
}

// prestagePool is the tenant's pool the wave's passes run in, or "".
func (w *wave) prestagePool() string {
	if w.in.Prestage == nil {
		return ""
	}
	return w.in.Prestage.Pool
}

// holdInPool tells the tenant's pool whether the wave's passes waiting may
// be granted: not while it is paused or cancelling (passes running
// finish, as in the wave's own pool). Only a wave pre-staging into a pool
// (Prestage.Pool, from 2026-12-07) sends it: no command for any other.
func (w *wave) holdInPool(ctx workflow.Context) {
	pool := w.prestagePool()
	if pool == "" {
		return
	}
	w.st.PoolHolds++
	h := contract.PoolHold{WaveID: w.in.WaveID, Held: w.st.Paused || w.st.Cancelling, Seq: w.st.PoolHolds}
	w.inflight++
	f := workflow.ExecuteLocalActivity(waveSignalOptions(ctx), contract.ActivitySignalWave, activities.SignalWaveInput{
		Signal: contract.SignalPrestagePoolHold, Pool: pool, PoolCap: w.in.Prestage.Cap, Hold: &h,
	})
	w.sel.AddFuture(f, func(f workflow.Future) {
		w.inflight--
		if err := f.Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Warn("pre-stage pool not told of the wave's hold", "wave", w.in.WaveID, "pool", pool,
				"held", h.Held, "error", err)
		}
	})
}
