package workflows

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"mailwave/activities"
	"mailwave/contract"
)

// waveHarness runs a Wave across its continue-as-new runs in the test
// environment and plays its mailboxes: a granted mailbox reports done after
// its duration; signals not yet delivered when a run ends are delivered to
// the next run, as the server does.
type waveHarness struct {
	t     *testing.T
	suite testsuite.WorkflowTestSuite
	in    contract.WaveInput
	start time.Time
	now   time.Time

	// how a mailbox behaves once granted, and which fail before T
	outcome   func(i int) (contract.Outcome, time.Duration)
	earlyFail map[int]bool
	silent    map[int]bool // granted, then terminated: they never report
	refuse    map[int]string
	ops       []op

	mu        sync.Mutex
	pending   []delivery
	active    map[int]bool
	maxActive int
	grants    []event
	holds     []event
	done      map[int]bool
	started   map[int]bool
	cancelled map[int]bool
	runs      int
	// signalDelay is how long a signal to a mailbox takes to be delivered;
	// sends records each, by mailbox workflow ID.
	signalDelay time.Duration
	sends       map[string][]sent
	settled     int                          // finished mailboxes settled by reconcile
	reports     map[int]contract.MailboxDone // the last report each mailbox sent
	progress    []contract.WaveProgress
	published   []contract.WaveProgress // the memos the wave published
}

type op struct {
	at    time.Duration // from the wave's start
	name  string
	arg   any
	fired bool
	run   int       // the run it fired in
	when  time.Time // and when
}

type sent struct {
	name string
	at   time.Time
}

type delivery struct {
	at   time.Time
	done contract.MailboxDone
	sent bool
	run  int
}

type event struct {
	index int
	at    time.Time
}

const (
	queryOp           = "query"
	reportCancelledOp = "report-cancelled"
)

func newWaveHarness(t *testing.T, total, cap int) *waveHarness {
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	return &waveHarness{
		t: t,
		in: contract.WaveInput{
			WaveID: "w1", Total: total, Cap: cap,
			MigrateAt: start.Add(15 * 24 * time.Hour), PageSize: 50,
		},
		start: start, now: start,
		outcome: func(i int) (contract.Outcome, time.Duration) {
			return contract.OutcomeMigrated, time.Duration(10+i%7) * time.Minute
		},
		earlyFail: map[int]bool{}, silent: map[int]bool{}, refuse: map[int]string{},
		active: map[int]bool{}, done: map[int]bool{}, started: map[int]bool{}, cancelled: map[int]bool{},
		reports: map[int]contract.MailboxDone{}, sends: map[string][]sent{},
	}
}

func keyOfIndex(i int) string { return fmt.Sprintf("key%05d", i) }

func (h *waveHarness) startMailboxes(_ context.Context, in activities.StartMailboxesInput) (activities.StartMailboxesResult, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	idx := in.Indexes
	if len(idx) == 0 {
		for i := in.From; i < in.To; i++ {
			idx = append(idx, i)
		}
	}
	var res activities.StartMailboxesResult
	for _, i := range idx {
		if r, ok := h.refuse[i]; ok {
			res.Refused = append(res.Refused, contract.Refusal{Index: i, Key: keyOfIndex(i), Reason: r})
			continue
		}
		h.started[i] = true
		if !in.NotBefore.IsZero() {
			delete(h.done, i)
		}
		res.Started++
	}
	return res, nil
}

// reconcile reports the silent mailboxes as ended (terminated), and, as
// the real activity does from each mailbox's closed workflow, any mailbox
// that finished: a report the wave did not count (the test environment
// drops a signal sent at the instant a run continues as new) is settled
// here, as on a server, instead of leaving the wave waiting for ever.
func (h *waveHarness) reconcile(_ context.Context, in activities.ReconcileMailboxesInput) ([]contract.MailboxDone, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ended []contract.MailboxDone
	for _, i := range in.Indexes {
		if h.silent[i] && h.active[i] {
			delete(h.active, i)
			h.done[i] = true
			ended = append(ended, contract.MailboxDone{Index: i, Key: keyOfIndex(i), Outcome: contract.OutcomeNeedsSupport, Granted: true,
				ErrorType: "WORKFLOW_EXECUTION_STATUS_TERMINATED"})
			continue
		}
		if !h.done[i] {
			continue
		}
		if d, ok := h.reports[i]; ok {
			h.t.Logf("reconcile settled mailbox %d, whose report the wave did not count", i)
			h.settled++
			ended = append(ended, d)
		}
	}
	return ended, nil
}

func (h *waveHarness) readKeys(_ context.Context, in activities.ReadMailboxKeysInput) ([]string, error) {
	var keys []string
	for i := in.From; i < in.To; i++ {
		keys = append(keys, keyOfIndex(i))
	}
	return keys, nil
}

func (h *waveHarness) cancelMailboxes(_ context.Context, in activities.CancelMailboxesInput) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, i := range in.Indexes {
		h.cancelled[i] = true
	}
	return len(in.Indexes), nil
}

// later queues a done signal to the wave, delivered at env time + d.
func (h *waveHarness) later(env *testsuite.TestWorkflowEnvironment, d time.Duration, done contract.MailboxDone) {
	dl := &delivery{at: env.Now().Add(d), done: done}
	h.pending = append(h.pending, *dl)
	n := len(h.pending) - 1
	env.RegisterDelayedCallback(func() { h.deliver(env, n) }, d)
}

func (h *waveHarness) deliver(env *testsuite.TestWorkflowEnvironment, n int) {
	h.mu.Lock()
	if h.pending[n].sent || env.IsWorkflowCompleted() {
		// A run that ended hands its signals to the next one, as the server does.
		h.mu.Unlock()
		return
	}
	h.pending[n].sent = true
	h.pending[n].run = h.runs
	d := h.pending[n].done
	delete(h.active, d.Index)
	h.done[d.Index] = true
	h.reports[d.Index] = d
	h.mu.Unlock()
	env.SignalWorkflow(contract.SignalMailboxDone, d)
}

func (h *waveHarness) onSignal(env *testsuite.TestWorkflowEnvironment) func(string, string, string, string, any) error {
	return func(_, id, _, name string, arg any) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.sends[id] = append(h.sends[id], sent{name, env.Now()})
		switch name {
		case contract.SignalSlotGrant:
			g := arg.(contract.SlotGrant)
			if h.done[g.Index] {
				return errors.New("workflow execution already completed")
			}
			require.Equal(h.t, contract.MailboxWorkflowID(keyOfIndex(g.Index)), id)
			require.False(h.t, h.active[g.Index], "mailbox %d granted twice", g.Index)
			h.active[g.Index] = true
			h.maxActive = max(h.maxActive, len(h.active))
			h.grants = append(h.grants, event{g.Index, env.Now()})
			if h.silent[g.Index] {
				return nil
			}
			outcome, d := h.outcome(g.Index)
			h.pending = append(h.pending, delivery{at: env.Now().Add(d), done: contract.MailboxDone{
				Index: g.Index, Key: keyOfIndex(g.Index), Outcome: outcome, Granted: true,
				Copied: contract.CopyStats{Items: 10, Bytes: 1000},
			}})
			n := len(h.pending) - 1
			env.RegisterDelayedCallback(func() { h.deliver(env, n) }, d)
		case contract.SignalPause:
			h.holds = append(h.holds, event{len(h.active), env.Now()})
		}
		return nil
	}
}

// run executes the wave to its end across continue-as-new runs.
func (h *waveHarness) run() contract.WaveResult {
	in := h.in
	for {
		env := h.suite.NewTestWorkflowEnvironment()
		env.SetStartTime(h.now)
		// A run that waits for ever (a slot never freed) fails in the mock
		// clock's time, not after the test binary's timeout.
		env.SetWorkflowRunTimeout(120 * 24 * time.Hour)
		env.RegisterWorkflowWithOptions(Wave, workflow.RegisterOptions{Name: contract.WaveWorkflowName})
		env.RegisterActivityWithOptions(h.startMailboxes, activity.RegisterOptions{Name: contract.ActivityStartMailboxes})
		env.RegisterActivityWithOptions(h.readKeys, activity.RegisterOptions{Name: contract.ActivityReadMailboxKeys})
		env.RegisterActivityWithOptions(h.cancelMailboxes, activity.RegisterOptions{Name: contract.ActivityCancelMailboxes})
		env.RegisterActivityWithOptions(h.reconcile, activity.RegisterOptions{Name: contract.ActivityReconcileMailboxes})
		env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, mock.Anything, mock.Anything, mock.Anything).Return(h.onSignal(env)).After(h.signalDelay)
		env.OnUpsertMemo(mock.Anything).Run(func(args mock.Arguments) {
			p, ok := args.Get(0).(map[string]any)[contract.MemoProgress].(contract.WaveProgress)
			require.True(h.t, ok, "memo %v", args.Get(0))
			h.published = append(h.published, p)
		}).Return(nil).Maybe()

		// Signals the last run did not get, and mailboxes that fail before T.
		carried := h.pending
		h.pending = nil
		for _, p := range carried {
			if !p.sent {
				h.later(env, max(time.Millisecond, p.at.Sub(h.now)), p.done)
			}
		}
		if h.runs == 0 {
			for _, i := range sortedKeys(h.earlyFail) {
				h.later(env, time.Hour+time.Duration(i)*time.Second, contract.MailboxDone{Index: i, Key: keyOfIndex(i), Outcome: contract.OutcomeNeedsSupport, Step: contract.StepNoticeT14})
			}
		}
		for j := range h.ops {
			o := &h.ops[j]
			if o.fired {
				continue
			}
			env.RegisterDelayedCallback(func() {
				if o.fired || env.IsWorkflowCompleted() {
					return // the next run takes it
				}
				o.fired, o.run, o.when = true, h.runs, env.Now()
				switch o.name {
				case reportCancelledOp:
					h.reportCancelled(env)
				case queryOp:
					v, err := env.QueryWorkflow(contract.QueryProgress)
					require.NoError(h.t, err)
					var p contract.WaveProgress
					require.NoError(h.t, v.Get(&p))
					h.progress = append(h.progress, p)
				default:
					env.SignalWorkflow(o.name, o.arg)
				}
			}, max(time.Millisecond, h.start.Add(o.at).Sub(h.now)))
		}
		env.ExecuteWorkflow(Wave, in)
		h.now = env.Now()
		h.runs++
		require.True(h.t, env.IsWorkflowCompleted())
		err := env.GetWorkflowError()
		var can *workflow.ContinueAsNewError
		if errors.As(err, &can) {
			require.NoError(h.t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &in))
			// The test environment accepts a signal at the very instant the
			// run continues as new, and drops it; the server would refuse that
			// completion and hand the signal to the workflow first. So such
			// signals go to the next run too: the wave ignores a done it has
			// already counted, which this also exercises.
			for j := range h.pending {
				if p := &h.pending[j]; p.sent && p.run == h.runs-1 && !p.at.Before(h.now) {
					p.sent = false
				}
			}
			for j := range h.ops {
				if o := &h.ops[j]; o.fired && o.name != queryOp && o.run == h.runs-1 && !o.when.Before(h.now) {
					o.fired = false // operator signals are idempotent
				}
			}
			require.NotNil(h.t, in.State, "state carried over")
			require.Less(h.t, h.runs, 200, "runaway continue-as-new")
			continue
		}
		if err != nil {
			if v, qerr := env.QueryWorkflow(contract.QueryProgress); qerr == nil {
				var p contract.WaveProgress
				_ = v.Get(&p)
				h.t.Logf("stuck wave: %+v (harness: %d active, %d pending deliveries)", p, len(h.active), len(h.pending))
				for i := 0; i < 10; i++ {
					h.t.Logf("  mailbox %d: started %v cancelled %v done %v active %v", i, h.started[i], h.cancelled[i], h.done[i], h.active[i])
				}
			}
		}
		require.NoError(h.t, err)
		var res contract.WaveResult
		require.NoError(h.t, env.GetWorkflowResult(&res))
		return res
	}
}

// reportCancelled makes every mailbox the wave cancelled, and that holds
// no slot, report cancelled.
func (h *waveHarness) reportCancelled(env *testsuite.TestWorkflowEnvironment) {
	h.mu.Lock()
	var idx []int
	for i := range h.cancelled {
		if !h.active[i] && !h.done[i] {
			idx = append(idx, i)
			h.done[i] = true
		}
	}
	h.mu.Unlock()
	sort.Ints(idx)
	for _, i := range idx {
		d := contract.MailboxDone{Index: i, Key: keyOfIndex(i), Outcome: contract.OutcomeCancelled}
		h.mu.Lock()
		h.reports[i] = d
		h.mu.Unlock()
		env.SignalWorkflow(contract.SignalMailboxDone, d)
	}
}

func sortedKeys(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

func TestWaveNeverExceedsTheCap(t *testing.T) {
	h := newWaveHarness(t, 120, 7)
	res := h.run()
	assert.Equal(t, 7, h.maxActive, "the cap is reached and never passed")
	assert.Equal(t, 120, res.Migrated)
	assert.Equal(t, int64(1200), res.Copied.Items)
	assert.Len(t, h.grants, 120)
	for _, g := range h.grants {
		assert.False(t, g.at.Before(h.in.MigrateAt), "no slot before T")
	}
	// File order: no mailbox got its slot after one further down the file.
	for _, a := range h.grants {
		for _, b := range h.grants {
			if a.index < b.index {
				assert.False(t, a.at.After(b.at), "mailbox %d granted after mailbox %d", a.index, b.index)
			}
		}
	}
}

func TestWavePauseHoldsAndResumeReleases(t *testing.T) {
	h := newWaveHarness(t, 60, 5)
	T := h.in.MigrateAt.Sub(h.start)
	h.ops = []op{
		{at: T + 30*time.Minute, name: contract.SignalPause, arg: contract.PauseRequest{Reason: "looks wrong"}},
		{at: T + 31*time.Minute, name: queryOp},
		{at: T + 5*time.Hour, name: contract.SignalResume},
	}
	res := h.run()
	assert.Equal(t, 60, res.Migrated)
	pausedAt, resumedAt := h.start.Add(T+30*time.Minute), h.start.Add(T+5*time.Hour)
	for _, g := range h.grants {
		assert.False(t, g.at.After(pausedAt) && g.at.Before(resumedAt), "mailbox %d granted while paused at %s", g.index, g.at)
	}
	require.Len(t, h.progress, 1)
	assert.True(t, h.progress[0].Paused)
	assert.Equal(t, "looks wrong", h.progress[0].PauseReason)
	assert.NotEmpty(t, h.holds, "the mailboxes holding slots were told to hold")
	assert.Equal(t, 5, h.maxActive)
}

// TestWavePublishesItsProgress: the wave's memo follows its progress, at
// most every publishEvery while it changes, paused when paused, and ends
// with the final counts, across its continue-as-new runs.
func TestWavePublishesItsProgress(t *testing.T) {
	h := newWaveHarness(t, 300, 20)
	h.in.MaxSignalsPerRun = 60 // several runs
	T := h.in.MigrateAt.Sub(h.start)
	h.ops = []op{
		{at: T + 30*time.Minute, name: contract.SignalPause, arg: contract.PauseRequest{Reason: "looks wrong"}},
		{at: T + 5*time.Hour, name: contract.SignalResume},
	}
	res := h.run()
	require.Equal(t, 300, res.Migrated)
	require.Greater(t, h.runs, 1, "continued as new")
	require.NotEmpty(t, h.published)
	last := h.published[len(h.published)-1]
	assert.Equal(t, 300, last.Migrated, "the last memo has the final counts")
	assert.Equal(t, 0, last.Active)
	var sawPaused bool
	for i, p := range h.published {
		assert.False(t, p.PublishedAt.IsZero())
		sawPaused = sawPaused || (p.Paused && p.PauseReason == "looks wrong")
		if i > 0 && p.Runs == h.published[i-1].Runs && i < len(h.published)-1 {
			assert.GreaterOrEqual(t, p.PublishedAt.Sub(h.published[i-1].PublishedAt), publishEvery, "memo %d", i)
		}
	}
	assert.True(t, sawPaused, "a memo shows the pause")
	t.Logf("%d memos over %d runs", len(h.published), h.runs)
}

// Signals to one mailbox go one at a time: a release sent while its hold is
// still on the way waits for it, so the two cannot arrive the other way
// round and leave the mailbox held for ever.
func TestWaveSignalsAMailboxInOrder(t *testing.T) {
	h := newWaveHarness(t, 12, 4)
	h.signalDelay = 30 * time.Second
	T := h.in.MigrateAt.Sub(h.start)
	h.ops = []op{
		{at: T + 5*time.Minute, name: contract.SignalPause, arg: contract.PauseRequest{Reason: "a look"}},
		{at: T + 5*time.Minute + time.Second, name: contract.SignalResume},
	}
	res := h.run()
	assert.Equal(t, 12, res.Migrated)
	pairs := 0
	for id, s := range h.sends {
		for i := 1; i < len(s); i++ {
			assert.GreaterOrEqual(t, s[i].at.Sub(s[i-1].at), h.signalDelay, "%s: %s sent before %s was delivered", id, s[i].name, s[i-1].name)
			if s[i-1].name == contract.SignalPause && s[i].name == contract.SignalResume {
				pairs++
			}
		}
	}
	assert.Equal(t, 4, pairs, "each slot holder was held, then released")
}

func TestWaveSetCapTakesEffect(t *testing.T) {
	h := newWaveHarness(t, 80, 2)
	h.outcome = func(i int) (contract.Outcome, time.Duration) { return contract.OutcomeMigrated, time.Hour }
	T := h.in.MigrateAt.Sub(h.start)
	h.ops = []op{
		{at: T + 90*time.Minute, name: queryOp},
		{at: T + 2*time.Hour + 30*time.Minute, name: contract.SignalSetCap, arg: contract.SetCapRequest{Cap: 6}},
		{at: T + 2*time.Hour + 31*time.Minute, name: queryOp},
	}
	res := h.run()
	assert.Equal(t, 80, res.Migrated)
	require.Len(t, h.progress, 2)
	assert.Equal(t, 2, h.progress[0].Active)
	assert.Equal(t, 6, h.progress[1].Active)
	assert.Equal(t, 6, h.progress[1].Cap)
	assert.Equal(t, 6, h.maxActive)
}

func TestWaveErrorBudgetPausesTheWave(t *testing.T) {
	h := newWaveHarness(t, 200, 10)
	h.in.ErrorBudget, h.in.ErrorMinSample = 0.02, 20
	h.outcome = func(i int) (contract.Outcome, time.Duration) {
		if i%10 == 3 {
			return contract.OutcomeNeedsSupport, 5 * time.Minute
		}
		return contract.OutcomeMigrated, 10 * time.Minute
	}
	T := h.in.MigrateAt.Sub(h.start)
	h.ops = []op{
		{at: T + 3*time.Hour, name: queryOp},
		{at: T + 4*time.Hour, name: contract.SignalCancel},
		{at: T + 4*time.Hour + time.Minute, name: reportCancelledOp},
	}
	res := h.run()
	require.Len(t, h.progress, 1)
	p := h.progress[0]
	assert.True(t, p.Paused, "the wave paused itself")
	assert.Contains(t, p.PauseReason, "error budget exceeded")
	assert.Less(t, p.Migrated+p.NeedsSupport, 200, "it stopped early")
	granted := len(h.grants)
	assert.Equal(t, p.Migrated+p.NeedsSupport, granted, "no new slot once paused")
	assert.Equal(t, 200, res.Migrated+res.NeedsSupport+res.Cancelled)
}

func TestWaveCancelLeavesNothingHalfCutOver(t *testing.T) {
	h := newWaveHarness(t, 100, 8)
	T := h.in.MigrateAt.Sub(h.start)
	h.outcome = func(i int) (contract.Outcome, time.Duration) { return contract.OutcomeMigrated, 25 * time.Minute }
	h.ops = []op{
		{at: T + 40*time.Minute, name: contract.SignalCancel},
		// The cancelled mailboxes without a slot report cancelled; those with
		// one finish their cutover and report migrated on their own.
		{at: T + 42*time.Minute, name: reportCancelledOp},
	}
	res := h.run()
	assert.Equal(t, 100, res.Migrated+res.Cancelled)
	assert.Equal(t, len(h.grants), res.Migrated, "every mailbox with a slot finished its cutover")
	assert.Less(t, res.Migrated, 100)
	assert.NotEmpty(t, h.cancelled)
	for _, g := range h.grants {
		assert.False(t, g.at.After(h.start.Add(T+40*time.Minute)), "no slot after cancel")
	}
}

func TestWaveContinueAsNewLosesNoSignal(t *testing.T) {
	h := newWaveHarness(t, 300, 20)
	h.in.MaxSignalsPerRun = 25 // force many runs
	h.outcome = func(i int) (contract.Outcome, time.Duration) {
		return contract.OutcomeMigrated, time.Duration(1+i%5) * time.Second
	}
	T := h.in.MigrateAt.Sub(h.start)
	h.ops = []op{
		{at: T + 10*time.Second, name: contract.SignalPause, arg: contract.PauseRequest{Reason: "around continue-as-new"}},
		{at: T + 11*time.Second, name: contract.SignalSetCap, arg: contract.SetCapRequest{Cap: 9}},
		{at: T + 40*time.Second, name: contract.SignalResume},
		{at: T + 41*time.Second, name: queryOp},
	}
	res := h.run()
	assert.Greater(t, h.runs, 3, "continue-as-new happened")
	assert.Equal(t, 300, res.Migrated, "every done signal counted once")
	assert.Equal(t, int64(3000), res.Copied.Items)
	assert.Equal(t, h.runs, res.Runs)
	require.Len(t, h.progress, 1)
	assert.False(t, h.progress[0].Paused, "the resume was not lost")
	assert.Equal(t, 9, h.progress[0].Cap, "the new cap was not lost")
	assert.LessOrEqual(t, h.maxActive, 20)
}

func TestWaveRefusesMailboxesOfAnotherWave(t *testing.T) {
	h := newWaveHarness(t, 40, 5)
	h.refuse = map[int]string{3: "already being migrated in wave w0", 17: "already migrated on 2026-11-02T20:00:00Z"}
	res := h.run()
	assert.Equal(t, 38, res.Migrated)
	assert.Equal(t, 2, res.Refused)
	for _, g := range h.grants {
		assert.NotContains(t, []int{3, 17}, g.index, "a refused mailbox is never granted a slot")
	}
}

func TestWaveRetryFailedRunsThemAgain(t *testing.T) {
	h := newWaveHarness(t, 50, 5)
	attempts := map[int]int{}
	h.outcome = func(i int) (contract.Outcome, time.Duration) {
		attempts[i]++
		if (i == 0 || i == 10) && attempts[i] == 1 {
			return contract.OutcomeNeedsSupport, time.Minute
		}
		return contract.OutcomeMigrated, 5 * time.Minute
	}
	h.in.ErrorBudget = 0.5
	h.earlyFail = map[int]bool{7: true}
	T := h.in.MigrateAt.Sub(h.start)
	h.ops = []op{
		{at: T + 20*time.Minute, name: queryOp},
		{at: T + 20*time.Minute + time.Second, name: contract.SignalRetryFailed},
	}
	res := h.run()
	require.Len(t, h.progress, 1)
	assert.Equal(t, 3, h.progress[0].NeedsSupport, "two failed copies and one failure before T, before the retry")
	assert.Equal(t, 50, res.Migrated, "all three migrated on their second run")
	assert.Equal(t, 0, res.NeedsSupport)
}

func TestWaveSettlesAMailboxThatEndsWithoutReporting(t *testing.T) {
	h := newWaveHarness(t, 30, 3)
	h.silent = map[int]bool{4: true, 11: true} // terminated by an operator while holding a slot
	res := h.run()
	assert.Equal(t, 28, res.Migrated)
	assert.Equal(t, 2, res.NeedsSupport, "settled from the server, not waited on forever")
	assert.LessOrEqual(t, h.maxActive, 3)
}

func TestWaveCancelDuringARetryLeavesNoMailboxWaiting(t *testing.T) {
	h := newWaveHarness(t, 40, 4)
	h.in.ErrorBudget = 0.9
	attempts := map[int]int{}
	h.outcome = func(i int) (contract.Outcome, time.Duration) {
		attempts[i]++
		if i < 8 && attempts[i] == 1 {
			return contract.OutcomeNeedsSupport, time.Minute
		}
		return contract.OutcomeMigrated, 20 * time.Minute
	}
	T := h.in.MigrateAt.Sub(h.start)
	h.ops = []op{
		{at: T + 5*time.Minute, name: contract.SignalRetryFailed},
		{at: T + 5*time.Minute, name: contract.SignalCancel},
		{at: T + 7*time.Minute, name: reportCancelledOp},
		{at: T + 30*time.Minute, name: reportCancelledOp},
	}
	res := h.run()
	assert.Equal(t, 40, res.Migrated+res.NeedsSupport+res.Cancelled, "%+v", res)
}

// A done report whose key is not the mailbox's at that index (a forged
// signal) is ignored: it frees no slot and settles no mailbox, whether the
// index holds a slot or has not been granted one yet.
func TestWaveIgnoresForgedDoneReports(t *testing.T) {
	h := newWaveHarness(t, 40, 4)
	T := h.in.MigrateAt.Sub(h.start)
	forged := func(i int) contract.MailboxDone {
		return contract.MailboxDone{Index: i, Key: "forged", Outcome: contract.OutcomeNeedsSupport, Granted: true}
	}
	h.ops = []op{
		{at: T + time.Minute, name: contract.SignalMailboxDone, arg: forged(0)},  // holding a slot
		{at: T + time.Minute, name: contract.SignalMailboxDone, arg: forged(39)}, // not granted yet
		{at: T + 2*time.Minute, name: queryOp},
	}
	res := h.run()
	assert.Equal(t, 40, res.Migrated)
	assert.Zero(t, res.NeedsSupport)
	require.Len(t, h.progress, 1)
	assert.Equal(t, 4, h.progress[0].Active, "the forged report freed no slot")
	assert.Zero(t, h.progress[0].NeedsSupport)
	assert.Equal(t, 4, h.maxActive)
}
