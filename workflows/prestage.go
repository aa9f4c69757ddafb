package workflows

import (
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"mailwave/activities"
	"mailwave/contract"
	"mailwave/plan"
)

// Pre-staging (contract.Prestage): after its T-14 notice a mailbox's bulk
// pass runs at a planned time, in its wave's pre-stage pool, at the
// target's per-mailbox pace, so that it ends a margin before T;
// incremental passes keep it fresh; at T only what is left (a pass cut
// short by T, and the final delta), the verification and the cutover run,
// in a slot of the night. The passes before T run beside the mailbox's
// notices, in a coroutine of their own: a T-1 reminder is never late for
// a long copy.
//
// No GetVersion: only a mailbox started with MailboxInput.Prestage (by a
// pre-staging wave, from 2026-12-07) runs any of it, and a run started
// without it issues the commands it always did.

// prestager is a mailbox's passes before T.
type prestager struct {
	running  bool // the coroutine has not ended
	atT      bool // T has come: no pass starts, the one running stops
	granted  int  // the pass the wave last granted a place in the pool
	pass     int  // the pass asked for last (counted from 1)
	cancel   workflow.CancelFunc
	interval time.Duration
	budget   time.Duration // a pass's time, its retries included
}

// startPrestage begins the passes before T, once the T-14 notice is out.
func (m *mailbox) startPrestage(ctx workflow.Context) {
	p := m.in.Prestage
	m.pre = &prestager{running: true, interval: p.IncrementalEvery}
	// A mailbox whose size the preflight could not read (a copier that
	// does not measure) is planned as too large: it starts at its
	// earliest, rather than at the last moment an empty one could.
	bytes, known := int64(0), false
	if f := m.state.Preflight; f != nil {
		bytes, known = f.SourceBytes, true
	}
	// The plan is recorded (a marker), so a later planner replays this run
	// as it was planned.
	type planned struct {
		At   time.Time
		Late bool
	}
	var at planned
	limits := plan.Limits{MailboxRate: p.MailboxRate, Efficiency: p.Efficiency, PassOverhead: p.PassOverhead}
	policy := plan.Policy{StartDelay: p.StartDelay, Margin: p.Margin}
	noticed := workflow.Now(ctx)
	if err := workflow.SideEffect(ctx, func(workflow.Context) any {
		if !known {
			return planned{At: noticed.Add(policy.StartDelay), Late: true}
		}
		start, late := plan.BulkStart(bytes, noticed, m.in.MigrateAt, limits, policy)
		if at, ok := m.spreadStart(); ok && at.Before(start) {
			// Its place in the wave's spread is earlier than it needs
			// alone: the night's passes need the time.
			start = maxTime(at, noticed.Add(policy.StartDelay))
		}
		return planned{At: start, Late: late}
	}).Get(&at); err != nil {
		workflow.GetLogger(ctx).Warn("pre-stage plan unreadable; the copy runs at T", "mailbox", m.state.Key, "error", err)
		m.pre.running = false
		return
	}
	m.state.Prestage = &contract.PrestageState{BulkAt: at.At, Late: at.Late, SizeUnknown: !known}
	m.pre.budget = max(3*limits.PassDuration(bytes), minPassBudget)
	if at.Late {
		workflow.GetLogger(ctx).Warn("pre-stage cannot end its margin before T: it starts at once", "mailbox", m.state.Key,
			"bytes", bytes, "migrateAt", m.in.MigrateAt)
	}
	m.details(ctx)
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { m.pre.running = false }()
		m.prestageLoop(ctx, at.At)
	})
}

// spreadStart is the mailbox's place in its wave's spread (Prestage.
// Spread): the wave's bulk passes begin Spread before T-Margin, one after
// another by index, evenly or as the plan's Shape places them. It runs in
// the plan's side effect: a run replays the place it recorded.
func (m *mailbox) spreadStart() (time.Time, bool) {
	p := m.in.Prestage
	if p.Spread <= 0 || m.in.WaveSize <= 0 {
		return time.Time{}, false
	}
	end := m.in.MigrateAt.Add(-p.Margin)
	share := float64(m.in.WaveIndex) / float64(m.in.WaveSize)
	return end.Add(-p.Spread + time.Duration(p.ShapeAt(share)*float64(p.Spread))), true
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// prestageLoop waits for the bulk pass's time, runs it, then an
// incremental pass every interval while another interval is left before
// T. A pass that fails for good leaves the rest to T (its copy starts
// from the last checkpoint).
func (m *mailbox) prestageLoop(ctx workflow.Context, bulkAt time.Time) {
	if !m.prestageWait(ctx, bulkAt) {
		return
	}
	if err := m.prestagePass(ctx, contract.PassBulk); err != nil {
		m.prestageFailed(ctx, err)
		return
	}
	m.state.Prestage.BulkDone = true
	every := m.pre.interval
	if every <= 0 {
		return
	}
	// Each from the end of the one before: a pass held back (queued,
	// paused) does not leave the next ones to run back to back.
	for next := workflow.Now(ctx).Add(every); !next.Add(every).After(m.in.MigrateAt); next = workflow.Now(ctx).Add(every) {
		if !m.prestageWait(ctx, next) {
			return
		}
		if err := m.prestagePass(ctx, contract.PassIncremental); err != nil {
			m.prestageFailed(ctx, err)
			return
		}
	}
}

// prestageWait sleeps until t, or until T comes or the mailbox's run ends;
// it reports whether a pass may start.
func (m *mailbox) prestageWait(ctx workflow.Context, t time.Time) bool {
	if d := t.Sub(workflow.Now(ctx)); d > 0 {
		if _, err := workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{
			Timeout: d, TimerOptions: workflow.TimerOptions{Summary: "until the pre-stage pass"},
		}, func() bool { return m.pre.atT }); err != nil {
			return false
		}
	}
	return !m.pre.atT && ctx.Err() == nil
}

// errAtT ends a pass that T came upon: what is left is copied at T.
var errAtT = errors.New("the pre-stage pass was stopped at T")

// prestagePass runs one pass before T: held while the mailbox is paused,
// queued in its wave's pool, then the copy, which a pause or T stops (the
// pass goes on from its checkpoint once resumed, or at T).
func (m *mailbox) prestagePass(ctx workflow.Context, pass contract.CopyPass) error {
	st := m.state.Prestage
	for {
		held := func() bool { return m.state.Paused || m.state.HeldByWave }
		if err := workflow.Await(ctx, func() bool { return !held() || m.pre.atT }); err != nil {
			return err
		}
		if m.pre.atT {
			return errAtT
		}
		m.pre.pass++
		n := m.pre.pass
		st.Pass = n
		if m.in.WaveWorkflowID != "" {
			st.Queued = true
			m.details(ctx)
			err := m.awaitPlace(ctx, n)
			st.Queued = false
			pooled := m.in.Prestage.Pool != ""
			switch {
			case err != nil && pooled:
				// The run is ending (cancelled, moved) while waiting:
				// the tenant's pool hears of no done report, so the
				// pass leaves it (a wave's own pool is cleaned by the
				// mailbox's report).
				m.signalWave(ctx, contract.SignalPrestageRelease, n)
				return err
			case err != nil:
				return err
			case pooled && m.pre.atT:
				// T came, granted or not: the place goes back.
				m.signalWave(ctx, contract.SignalPrestageRelease, n)
				return errAtT
			}
			if m.pre.granted != n {
				// T came first; the wave may grant it yet: give it back.
				m.signalWave(ctx, contract.SignalPrestageRelease, n)
				return errAtT
			}
			if held() {
				m.signalWave(ctx, contract.SignalPrestageRelease, n)
				continue
			}
		}
		err := m.prestageCopy(ctx, pass)
		// Not running any more from here: the place goes back, and the
		// pool may grant it before this run hears that it was given.
		st.Pass = 0
		if m.in.WaveWorkflowID != "" {
			m.signalWave(ctx, contract.SignalPrestageRelease, n)
		}
		var ce *temporal.CanceledError
		switch {
		case err == nil:
			st.Passes++
			st.LastPassEnded = workflow.Now(ctx)
			m.details(ctx)
			return nil
		case errors.As(err, &ce) && ctx.Err() == nil:
			// Paused, or T came: the checkpoint it reached is kept.
			if m.pre.atT {
				return errAtT
			}
			st.Interrupted++
			m.details(ctx)
		default:
			return err
		}
	}
}

// requestEvery is how often a pass waiting for its wave's pool asks again:
// a request the wave could not check (its roster unreadable for a while)
// is dropped, and the wave ignores one it has.
const requestEvery = time.Hour

// awaitPlace asks the wave for a place in its pool for pass n and waits
// for the grant, or for T.
func (m *mailbox) awaitPlace(ctx workflow.Context, n int) error {
	for {
		m.signalWave(ctx, contract.SignalPrestageRequest, n)
		ok, err := workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{
			Timeout: requestEvery, TimerOptions: workflow.TimerOptions{Summary: "waiting for the pre-stage pool"},
		}, func() bool { return m.pre.granted == n || m.pre.atT })
		if err != nil || ok {
			return err
		}
	}
}

// prestageCopy runs the copy activity for one pass, under a context that
// a pause or T cancels; a cancelled pass hands back its checkpoint.
func (m *mailbox) prestageCopy(ctx workflow.Context, pass contract.CopyPass) error {
	cctx, cancel := workflow.WithCancel(ctx)
	m.pre.cancel = cancel
	defer func() { m.pre.cancel = nil }()
	if m.copyStarted.IsZero() {
		m.copyStarted = workflow.Now(ctx)
	}
	if st := m.state.Prestage; st.BulkStarted.IsZero() {
		st.BulkStarted = workflow.Now(ctx)
	}
	var res activities.CopyResult
	err := workflow.ExecuteActivity(prestageCopyOptions(cctx, m.pre.budget), contract.ActivityCopyMailbox, activities.CopyInput{
		Mailbox: m.in.Mailbox, Pass: pass, From: m.checkpoint,
	}).Get(cctx, &res)
	var ce *temporal.CanceledError
	var te *temporal.TimeoutError
	switch {
	case err == nil:
		m.state.Copied = m.state.Copied.Add(res.Stats)
		m.checkpoint = res.Checkpoint
	case errors.As(err, &ce):
		m.keepProgress(ctx, ce.HasDetails(), ce.Details)
	case errors.As(err, &te):
		m.keepProgress(ctx, te.HasLastHeartbeatDetails(), te.LastHeartbeatDetails)
	}
	return err
}

// keepProgress takes the checkpoint a stopped pass reached: a cancelled
// copy returns it, a timed-out one's last heartbeat has it. A pass
// cancelled between attempts has none (the server answers the cancel
// itself): the next pass goes on from where the last pass ended, and
// the copier finds what is already there without copying it again.
func (m *mailbox) keepProgress(ctx workflow.Context, has bool, details func(...any) error) {
	var p activities.CopyProgress
	if !has || details(&p) != nil || p.Checkpoint.Folders == nil {
		workflow.GetLogger(ctx).Info("stopped pre-stage pass left no checkpoint; the next pass looks for what is there",
			"mailbox", m.state.Key)
		return
	}
	m.state.Copied = m.state.Copied.Add(p.Stats)
	m.checkpoint = p.Checkpoint
}

// prestageFailed notes a pass before T that failed for good; the copy at
// T goes on from the last checkpoint, and fails the mailbox there if it
// fails again.
func (m *mailbox) prestageFailed(ctx workflow.Context, err error) {
	if errors.Is(err, errAtT) || ctx.Err() != nil {
		return
	}
	errType, _ := describe(err)
	m.state.Prestage.Failed = errType
	m.details(ctx)
	workflow.GetLogger(ctx).Warn("pre-stage pass failed; the copy is left to T", "mailbox", m.state.Key, "errorType", errType)
}

// stopPrestage, at T (or when the migration ends), stops the passes
// before T and waits for them: a pass running is cancelled and hands back
// its checkpoint; the copy at T goes on from there.
func (m *mailbox) stopPrestage(ctx workflow.Context) error {
	if m.pre == nil {
		return nil
	}
	m.pre.atT = true
	if m.pre.cancel != nil {
		m.pre.cancel()
	}
	return workflow.Await(ctx, func() bool { return !m.pre.running })
}

// interruptPrestage stops the pass running for a pause: it goes on from
// its checkpoint once the mailbox is resumed.
func (m *mailbox) interruptPrestage() {
	if m.pre != nil && m.pre.cancel != nil {
		m.pre.cancel()
	}
}

// onPrestageGrant takes the wave's grant of a place in the pool for one of
// this mailbox's passes.
func (m *mailbox) onPrestageGrant(ctx workflow.Context, g contract.PrestageSlot) {
	if m.pre == nil || g.WaveID != m.in.WaveID || g.Index != m.in.WaveIndex {
		workflow.GetLogger(ctx).Warn("pre-stage grant for another mailbox ignored", "mailbox", m.state.Key,
			"wave", g.WaveID, "index", g.Index)
		return
	}
	// A grant of the tenant's pool that comes once the passes have
	// stopped (T came, the run is ending) is given back too: no pass
	// will release it.
	over := m.in.Prestage.Pool != "" && (m.pre.atT || !m.pre.running)
	if g.Pass == m.pre.pass && !over {
		m.pre.granted = g.Pass
		return
	}
	// A grant for a pass given up: the wave's place is given back, from a
	// coroutine of its own (a signal handler must not block).
	workflow.Go(ctx, func(ctx workflow.Context) {
		m.signalWave(ctx, contract.SignalPrestageRelease, g.Pass)
	})
}

// signalWave sends the mailbox's wave (or the tenant's pool, Prestage.
// Pool) a pre-stage request or release, as a local activity (at least
// once; the wave and the pool ignore a repeat).
func (m *mailbox) signalWave(ctx workflow.Context, signal string, pass int) {
	if signal == contract.SignalPrestageRelease {
		// Given back even when the run is ending (cancelled, moved): the
		// place is the pool's, not this pass's.
		ctx, _ = workflow.NewDisconnectedContext(ctx)
	}
	lctx := waveSignalOptions(ctx)
	in := activities.SignalWaveInput{
		WaveWorkflowID: m.in.WaveWorkflowID, Signal: signal,
		Slot: contract.PoolSlot{PrestageSlot: contract.PrestageSlot{Index: m.in.WaveIndex, Key: m.state.Key, Pass: pass}},
	}
	if p := m.in.Prestage; p.Pool != "" {
		// The tenant's pool: it orders passes by their T, and takes back
		// a place its budget after the grant if the release is lost.
		in.Pool, in.PoolCap = p.Pool, p.Cap
		in.Slot.WaveID, in.Slot.Due, in.Slot.Budget = m.in.WaveID, m.in.MigrateAt, m.pre.budget
	}
	err := workflow.ExecuteLocalActivity(lctx, contract.ActivitySignalWave, in).Get(ctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Warn("wave not told of a pre-stage pass", "mailbox", m.state.Key, "wave", m.in.WaveID,
			"signal", signal, "error", err)
	}
}

// minPassBudget is the least time a pass before T has, its retries
// included.
const minPassBudget = 6 * time.Hour

// prestageCopyOptions are for a pass before T: as a copy at T, but without
// the night's bounds (a 50 GB mailbox's bulk pass takes 31 hours at 0.9 of
// Exchange Online's budget), and within budget: three times the pass's
// planned length, at least six hours, its retries included. A pass that
// keeps failing (a target not yet licensed, say) gives its place in the
// pool back then, and leaves the copy to T from its last heartbeat.
func prestageCopyOptions(ctx workflow.Context, budget time.Duration) workflow.Context {
	o := workflow.GetActivityOptions(copyOptions(ctx))
	o.StartToCloseTimeout = budget
	o.ScheduleToCloseTimeout = budget
	o.Summary = "pre-stage pass"
	return workflow.WithActivityOptions(ctx, o)
}
