package workflows

import (
	"cmp"
	"slices"
	"sort"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"mailwave/contract"
)

// PrestagePool is a tenant's pre-stage pool (contract.PrestagePoolInput):
// the passes before T of every wave pre-staging into the tenant run in it,
// Cap at once, the pass whose T comes first granted first. It runs until
// it is terminated, continuing as new past MaxEventsPerRun events; an
// idle pool makes no events. A pool is started by the first request sent
// to it (signal-with-start), so nobody has to start it before a wave.
//
// A request is checked for its shape only: the pool does not hold the
// waves' rosters. A forged request can move a pass up the queue, or (with
// a real key and a later pass, as a forged release can) free a running
// pass's place, so that more than Cap run for a while; a grant goes to the
// mailbox's own workflow, which gives back one for a pass it did not ask
// for, and a grant to no mailbox frees its place. Only workers and
// operators may signal (docs/access.md).
func PrestagePool(ctx workflow.Context, in contract.PrestagePoolInput) error {
	if err := in.Validate(); err != nil {
		return temporal.NewNonRetryableApplicationError(err.Error(), contract.ErrTypeInvalidInput, nil)
	}
	p := &pool{in: in, sel: workflow.NewSelector(ctx)}
	if in.State != nil {
		p.st = *in.State
	} else {
		p.st.Cap = in.Cap
	}
	p.st.Runs++
	if err := workflow.SetQueryHandler(ctx, contract.QueryPrestagePool, func() (contract.PrestagePoolStatus, error) {
		return p.status(), nil
	}); err != nil {
		return err
	}
	p.receive(ctx)
	p.sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) { p.cancelled = true })
	for {
		if p.cancelled {
			// Cancelled by an operator: no grant goes out; passes waiting
			// ask again within the hour and start a new pool.
			return ctx.Err()
		}
		p.expire(ctx)
		p.grant(ctx)
		p.armTick(ctx)
		if p.shouldContinueAsNew(ctx) {
			return p.continueAsNew(ctx)
		}
		p.sel.Select(ctx)
	}
}

// poolGrantsInFlight bounds the grants sent and not yet delivered, well
// under the server's 2,000 pending signals a run.
const poolGrantsInFlight = 500

// poolLeaseGrace is how long after its budget a granted place is taken
// back when its release never came.
const poolLeaseGrace = time.Hour

// poolMaxBudget bounds the budget a request may claim: a forged one
// cannot hold a place for longer.
const poolMaxBudget = 14 * 24 * time.Hour

type pool struct {
	in        contract.PrestagePoolInput
	st        contract.PrestagePoolState
	sel       workflow.Selector
	inflight  int       // grants sent, not yet delivered or refused
	tickAt    time.Time // when the lease check armed last fires (zero: none armed)
	signals   int
	cancelled bool
}

func (p *pool) receive(ctx workflow.Context) {
	p.sel.AddReceive(workflow.GetSignalChannel(ctx, contract.SignalPrestageRequest), func(c workflow.ReceiveChannel, _ bool) {
		var r contract.PoolSlot
		c.Receive(ctx, &r)
		p.signals++
		p.onRequest(ctx, r)
	})
	p.sel.AddReceive(workflow.GetSignalChannel(ctx, contract.SignalPrestageRelease), func(c workflow.ReceiveChannel, _ bool) {
		var r contract.PoolSlot
		c.Receive(ctx, &r)
		p.signals++
		p.onRelease(ctx, r)
	})
	p.sel.AddReceive(workflow.GetSignalChannel(ctx, contract.SignalPrestagePoolHold), func(c workflow.ReceiveChannel, _ bool) {
		var h contract.PoolHold
		c.Receive(ctx, &h)
		p.signals++
		p.onHold(ctx, h)
	})
	p.sel.AddReceive(workflow.GetSignalChannel(ctx, contract.SignalPrestagePoolCap), func(c workflow.ReceiveChannel, _ bool) {
		var n int
		c.Receive(ctx, &n)
		p.signals++
		if n < 0 {
			workflow.GetLogger(ctx).Warn("pre-stage pool cap ignored: must not be negative", "pool", p.in.Pool, "to", n)
			return
		}
		workflow.GetLogger(ctx).Info("pre-stage pool cap set", "pool", p.in.Pool, "from", p.st.Cap, "to", n)
		p.st.Cap = n
	})
}

// onRequest queues a pass, once: a request repeated keeps its place.
func (p *pool) onRequest(ctx workflow.Context, r contract.PoolSlot) {
	switch {
	case !contract.ValidWaveID(r.WaveID) || r.Key == "" || r.Index < 0 || r.Pass < 1 || r.Due.IsZero():
		workflow.GetLogger(ctx).Warn("pre-stage request ignored: malformed", "pool", p.in.Pool, "wave", r.WaveID,
			"index", r.Index, "pass", r.Pass)
		return
	}
	r.Budget = min(max(r.Budget, minPassBudget), poolMaxBudget)
	r.Lease = time.Time{}
	if j := poolSlotOfKey(p.st.Active, r.Key); j >= 0 {
		switch held := p.st.Active[j].Pass; {
		case held == r.Pass:
			return // granted already
		case held > r.Pass:
			workflow.GetLogger(ctx).Warn("pre-stage request ignored: a later pass holds a place",
				"pool", p.in.Pool, "wave", r.WaveID, "index", r.Index, "pass", r.Pass, "held", held)
			return
		}
		// The release of its pass before was lost: that place is free.
		p.st.Active = slices.Delete(p.st.Active, j, j+1)
	}
	if j := poolSlotOfKey(p.st.Queue, r.Key); j >= 0 {
		p.st.Queue[j].Pass = max(p.st.Queue[j].Pass, r.Pass)
		return
	}
	p.st.Seq++
	r.Seq = p.st.Seq
	i := sort.Search(len(p.st.Queue), func(i int) bool { return poolBefore(r, p.st.Queue[i]) })
	if limit := cmp.Or(p.in.MaxQueue, contract.MaxPoolQueue); len(p.st.Queue) >= limit {
		// Full: the pass whose T comes last goes (this one, or the last
		// waiting); its mailbox asks again within the hour.
		p.st.Dropped++
		if i == len(p.st.Queue) {
			return
		}
		p.st.Queue = p.st.Queue[:len(p.st.Queue)-1]
	}
	p.st.Queue = slices.Insert(p.st.Queue, i, r)
}

// onHold holds or frees a wave's passes waiting; an older hold of the
// wave than the one the pool has is ignored.
func (p *pool) onHold(ctx workflow.Context, h contract.PoolHold) {
	i, found := p.holdAt(h.WaveID)
	switch {
	case !contract.ValidWaveID(h.WaveID):
		workflow.GetLogger(ctx).Warn("pre-stage hold ignored: malformed", "pool", p.in.Pool, "wave", h.WaveID)
	case found && p.st.Holds[i].Seq >= h.Seq:
		// Older than the hold the pool has.
	case found:
		p.st.Holds[i] = h
	default:
		p.st.Holds = slices.Insert(p.st.Holds, i, h)
	}
}

// held reports whether a wave's passes are held.
func (p *pool) held(wave string) bool {
	i, found := p.holdAt(wave)
	return found && p.st.Holds[i].Held
}

// holdAt is where a wave's hold is, or would go, in Holds (by wave ID).
func (p *pool) holdAt(wave string) (int, bool) {
	return slices.BinarySearchFunc(p.st.Holds, wave, func(x contract.PoolHold, id string) int {
		return strings.Compare(x.WaveID, id)
	})
}

// poolBefore orders a pool's queue: earliest T first, then first asked.
func poolBefore(a, b contract.PoolSlot) bool {
	if !a.Due.Equal(b.Due) {
		return a.Due.Before(b.Due)
	}
	return a.Seq < b.Seq
}

// onRelease frees the place of a pass that ended, or takes a pass that
// ended before its grant out of the queue. A release must name the pass
// the pool knows, by the mailbox's key.
func (p *pool) onRelease(ctx workflow.Context, r contract.PoolSlot) {
	if j := poolSlotOfPass(p.st.Active, r); j >= 0 {
		p.st.Active = slices.Delete(p.st.Active, j, j+1)
		return
	}
	if j := poolSlotOfPass(p.st.Queue, r); j >= 0 {
		p.st.Queue = slices.Delete(p.st.Queue, j, j+1)
		return
	}
	workflow.GetLogger(ctx).Info("pre-stage release ignored: not a pass the pool knows",
		"pool", p.in.Pool, "wave", r.WaveID, "index", r.Index, "pass", r.Pass)
}

// grant lets waiting passes run while the pool has room.
func (p *pool) grant(ctx workflow.Context) {
	now := workflow.Now(ctx)
	for i := 0; len(p.st.Active) < p.st.Cap && i < len(p.st.Queue) && p.inflight < poolGrantsInFlight; {
		s := p.st.Queue[i]
		if p.held(s.WaveID) {
			i++
			continue
		}
		p.st.Queue = slices.Delete(p.st.Queue, i, i+1)
		s.Lease = now.Add(s.Budget + poolLeaseGrace)
		p.st.Active = append(p.st.Active, s)
		p.st.Granted++
		p.inflight++
		f := workflow.SignalExternalWorkflow(ctx, contract.MailboxWorkflowID(s.Key), "", contract.SignalPrestageGrant,
			contract.PrestageSlot{WaveID: s.WaveID, Index: s.Index, Pass: s.Pass})
		p.sel.AddFuture(f, func(f workflow.Future) {
			p.inflight--
			if err := f.Get(ctx, nil); err != nil {
				// No such mailbox running: the place is free again.
				workflow.GetLogger(ctx).Warn("pre-stage grant not delivered", "pool", p.in.Pool, "wave", s.WaveID,
					"index", s.Index, "error", err)
				if j := poolSlotOfPass(p.st.Active, s); j >= 0 {
					p.st.Active = slices.Delete(p.st.Active, j, j+1)
				}
			}
		})
	}
}

// expire takes back places whose lease has ended: their pass ran out its
// budget long ago, and its release was lost.
func (p *pool) expire(ctx workflow.Context) {
	now := workflow.Now(ctx)
	p.st.Active = slices.DeleteFunc(p.st.Active, func(s contract.PoolSlot) bool {
		if now.Before(s.Lease) {
			return false
		}
		workflow.GetLogger(ctx).Warn("pre-stage place taken back: its lease ended without a release", "pool", p.in.Pool,
			"wave", s.WaveID, "index", s.Index, "pass", s.Pass)
		p.st.Expired++
		return true
	})
}

// armTick wakes the pool when the first lease ends, while places are held.
// A lease granted after the check was armed, and ending before it, arms
// another.
func (p *pool) armTick(ctx workflow.Context) {
	if len(p.st.Active) == 0 {
		return
	}
	first := p.st.Active[0].Lease
	for _, s := range p.st.Active[1:] {
		if s.Lease.Before(first) {
			first = s.Lease
		}
	}
	if !p.tickAt.IsZero() && !first.Before(p.tickAt) {
		return
	}
	d := max(first.Sub(workflow.Now(ctx)), time.Second)
	at := workflow.Now(ctx).Add(d)
	p.tickAt = at
	p.sel.AddFuture(workflow.NewTimerWithOptions(ctx, d, workflow.TimerOptions{Summary: "a pre-stage lease ends"}),
		func(f workflow.Future) {
			_ = f.Get(ctx, nil)
			if p.tickAt.Equal(at) {
				p.tickAt = time.Time{}
			}
		})
}

func (p *pool) shouldContinueAsNew(ctx workflow.Context) bool {
	limit := p.in.MaxEventsPerRun
	if limit <= 0 {
		limit = contract.DefaultPoolEventsPerRun
	}
	signals := p.in.MaxSignalsPerRun
	if signals <= 0 {
		signals = contract.DefaultPoolSignalsPerRun
	}
	info := workflow.GetInfo(ctx)
	return info.GetCurrentHistoryLength() >= limit || p.signals >= signals || info.GetContinueAsNewSuggested()
}

// continueAsNew waits for the grants in flight, handles the signals
// already received, and carries the state into a new run. The lease
// timer is dropped: the new run arms its own.
func (p *pool) continueAsNew(ctx workflow.Context) error {
	for p.inflight > 0 || p.sel.HasPending() {
		if p.cancelled {
			return ctx.Err()
		}
		p.sel.Select(ctx)
		p.expire(ctx)
	}
	if p.cancelled {
		return ctx.Err()
	}
	// A wave with nothing in the pool keeps no hold: it has ended, or
	// will hold again if it pauses.
	p.st.Holds = slices.DeleteFunc(p.st.Holds, func(h contract.PoolHold) bool {
		return !slices.ContainsFunc(p.st.Active, func(s contract.PoolSlot) bool { return s.WaveID == h.WaveID }) &&
			!slices.ContainsFunc(p.st.Queue, func(s contract.PoolSlot) bool { return s.WaveID == h.WaveID })
	})
	in := p.in
	st := p.st
	in.State = &st
	workflow.GetLogger(ctx).Info("pre-stage pool continuing as new", "pool", p.in.Pool, "run", p.st.Runs,
		"events", workflow.GetInfo(ctx).GetCurrentHistoryLength())
	return workflow.NewContinueAsNewError(ctx, contract.PrestagePoolWorkflowName, in)
}

func (p *pool) status() contract.PrestagePoolStatus {
	st := contract.PrestagePoolStatus{Pool: p.in.Pool, Cap: p.st.Cap, Active: len(p.st.Active), Queued: len(p.st.Queue),
		Granted: p.st.Granted, Expired: p.st.Expired, Dropped: p.st.Dropped, Runs: p.st.Runs}
	for _, h := range p.st.Holds {
		if h.Held {
			st.Held = append(st.Held, h.WaveID)
		}
	}
	if len(p.st.Queue) > 0 {
		st.NextDue = p.st.Queue[0].Due
	}
	waves := map[string]contract.PoolWaveCount{}
	for _, s := range p.st.Active {
		c := waves[s.WaveID]
		c.Active++
		waves[s.WaveID] = c
	}
	for _, s := range p.st.Queue {
		c := waves[s.WaveID]
		c.Queued++
		waves[s.WaveID] = c
	}
	if len(waves) > 0 {
		st.Waves = waves
	}
	return st
}

// poolSlotOfKey returns the position of the mailbox's pass in a pool list,
// or -1.
func poolSlotOfKey(slots []contract.PoolSlot, key string) int {
	return slices.IndexFunc(slots, func(s contract.PoolSlot) bool { return s.Key == key })
}

// poolSlotOfPass returns the position of r's pass (its mailbox's key and
// pass) in a pool list, or -1.
func poolSlotOfPass(slots []contract.PoolSlot, r contract.PoolSlot) int {
	return slices.IndexFunc(slots, func(s contract.PoolSlot) bool { return s.Key == r.Key && s.Pass == r.Pass })
}
