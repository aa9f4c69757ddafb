package workflows

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"mailwave/activities"
	"mailwave/contract"
)

// prestageHarness runs one run of a Wave, days before its T, and plays its
// mailboxes' pre-stage requests and releases step by step, a minute apart;
// it records the grants the wave signals and its progress after each step.
type prestageHarness struct {
	t     *testing.T
	suite testsuite.WorkflowTestSuite
	env   *testsuite.TestWorkflowEnvironment
	in    contract.WaveInput
	steps int

	mu sync.Mutex
	// grants are the grants the wave sent, in the order it sent them (the
	// test environment delivers signals from goroutines of their own, in
	// no order: an interceptor sees them go).
	grants      []contract.PrestageSlot
	slotGrants  int
	undelivered map[int]bool // a grant to these fails: the mailbox is gone
	gone        map[int]bool // reconcile finds these ended without a word
	reconciled  []int
	progress    []contract.WaveProgress
}

func newPrestageHarness(t *testing.T, total int, prestage *contract.Prestage) *prestageHarness {
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	h := &prestageHarness{t: t, undelivered: map[int]bool{}, gone: map[int]bool{}}
	h.in = contract.WaveInput{WaveID: "w1", Total: total, Cap: 3, MigrateAt: start.Add(15 * 24 * time.Hour), PageSize: 4, Prestage: prestage}
	h.env = h.suite.NewTestWorkflowEnvironment()
	h.env.SetStartTime(start)
	h.env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{&grantsSeen{seen: func(_ workflow.Context, g contract.PrestageSlot) {
		h.mu.Lock()
		h.grants = append(h.grants, g)
		h.mu.Unlock()
	}}}})
	h.env.RegisterWorkflowWithOptions(Wave, workflow.RegisterOptions{Name: contract.WaveWorkflowName})
	h.env.RegisterActivityWithOptions(func(_ context.Context, in activities.StartMailboxesInput) (activities.StartMailboxesResult, error) {
		return activities.StartMailboxesResult{Started: in.To - in.From}, nil
	}, activity.RegisterOptions{Name: contract.ActivityStartMailboxes})
	h.env.RegisterActivityWithOptions(func(_ context.Context, in activities.ReadMailboxKeysInput) ([]string, error) {
		var keys []string
		for i := in.From; i < in.To; i++ {
			keys = append(keys, keyOfIndex(i))
		}
		return keys, nil
	}, activity.RegisterOptions{Name: contract.ActivityReadMailboxKeys})
	h.env.RegisterActivityWithOptions(func(_ context.Context, in activities.CancelMailboxesInput) (int, error) {
		return len(in.Indexes), nil
	}, activity.RegisterOptions{Name: contract.ActivityCancelMailboxes})
	h.env.RegisterActivityWithOptions(h.reconcile, activity.RegisterOptions{Name: contract.ActivityReconcileMailboxes})
	h.env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, mock.Anything, mock.Anything, mock.Anything).Return(
		func(_, id, _, name string, arg any) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			switch name {
			case contract.SignalPrestageGrant:
				g := arg.(contract.PrestageSlot)
				require.Equal(t, contract.MailboxWorkflowID(keyOfIndex(g.Index)), id, "granted to its mailbox")
				require.Equal(t, "w1", g.WaveID)
				require.Empty(t, g.Key, "a grant carries no key")
				if h.undelivered[g.Index] {
					return errors.New("workflow execution already completed")
				}
			case contract.SignalSlotGrant:
				h.slotGrants++
			}
			return nil
		})
	return h
}

// grantsSeen hands seen the pre-stage grants a workflow (a wave, a pool)
// sends, as it sends them.
type grantsSeen struct {
	interceptor.WorkerInterceptorBase
	seen func(workflow.Context, contract.PrestageSlot)
}

func (g *grantsSeen) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &grantsSeenInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}, seen: g.seen}
}

type grantsSeenInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	seen func(workflow.Context, contract.PrestageSlot)
}

func (i *grantsSeenInbound) Init(outbound interceptor.WorkflowOutboundInterceptor) error {
	return i.Next.Init(&grantsSeenOutbound{WorkflowOutboundInterceptorBase: interceptor.WorkflowOutboundInterceptorBase{Next: outbound}, seen: i.seen})
}

type grantsSeenOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
	seen func(workflow.Context, contract.PrestageSlot)
}

func (o *grantsSeenOutbound) SignalExternalWorkflow(ctx workflow.Context, workflowID, runID, name string, arg any) workflow.Future {
	if g, ok := arg.(contract.PrestageSlot); ok && name == contract.SignalPrestageGrant {
		o.seen(ctx, g)
	}
	return o.Next.SignalExternalWorkflow(ctx, workflowID, runID, name, arg)
}

func (h *prestageHarness) reconcile(_ context.Context, in activities.ReconcileMailboxesInput) ([]contract.MailboxDone, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ended []contract.MailboxDone
	for _, i := range in.Indexes {
		h.reconciled = append(h.reconciled, i)
		if h.gone[i] {
			delete(h.gone, i)
			ended = append(ended, contract.MailboxDone{Index: i, Key: keyOfIndex(i), Outcome: contract.OutcomeNeedsSupport, Granted: true,
				ErrorType: "WORKFLOW_EXECUTION_STATUS_TERMINATED"})
		}
	}
	return ended, nil
}

// step sends the wave these signals at the next minute, and queries its
// progress half a minute later, once the grants they allow have gone.
func (h *prestageHarness) step(signals ...func()) {
	h.steps++
	at := time.Duration(h.steps) * time.Minute
	h.send(at, signals...)
	h.query(at + 30*time.Second)
}

func (h *prestageHarness) send(at time.Duration, signals ...func()) {
	h.env.RegisterDelayedCallback(func() {
		for _, s := range signals {
			s()
		}
	}, at)
}

func (h *prestageHarness) query(at time.Duration) {
	h.env.RegisterDelayedCallback(func() {
		v, err := h.env.QueryWorkflow(contract.QueryProgress)
		require.NoError(h.t, err)
		var p contract.WaveProgress
		require.NoError(h.t, v.Get(&p))
		h.progress = append(h.progress, p)
	}, at)
}

// at is a step's progress, from 1.
func (h *prestageHarness) at(step int) contract.WaveProgress { return h.progress[step-1] }

func (h *prestageHarness) request(i, pass int) func() {
	return h.requestAs(i, keyOfIndex(i), pass)
}

func (h *prestageHarness) requestAs(i int, key string, pass int) func() {
	return func() {
		h.env.SignalWorkflow(contract.SignalPrestageRequest, contract.PrestageSlot{Index: i, Key: key, Pass: pass})
	}
}

func (h *prestageHarness) release(i int, key string, pass int) func() {
	return func() {
		h.env.SignalWorkflow(contract.SignalPrestageRelease, contract.PrestageSlot{Index: i, Key: key, Pass: pass})
	}
}

func (h *prestageHarness) signal(name string, arg any) func() {
	return func() { h.env.SignalWorkflow(name, arg) }
}

func (h *prestageHarness) done(i int) func() {
	return h.signal(contract.SignalMailboxDone, contract.MailboxDone{Index: i, Key: keyOfIndex(i), Outcome: contract.OutcomeCancelled})
}

// finish has every mailbox report its end after the last step, so the
// wave completes, and runs it.
func (h *prestageHarness) finish() contract.WaveResult {
	var all []func()
	for i := 0; i < h.in.Total; i++ {
		all = append(all, h.done(i))
	}
	h.send(time.Duration(h.steps+1)*time.Minute, all...)
	h.env.ExecuteWorkflow(Wave, h.in)
	require.True(h.t, h.env.IsWorkflowCompleted())
	require.NoError(h.t, h.env.GetWorkflowError())
	var res contract.WaveResult
	require.NoError(h.t, h.env.GetWorkflowResult(&res))
	return res
}

// granted lists the grants as index/pass.
func (h *prestageHarness) granted() [][2]int {
	var out [][2]int
	for _, g := range h.grants {
		out = append(out, [2]int{g.Index, g.Pass})
	}
	return out
}

func prestageOf(capacity int) *contract.Prestage {
	p := contract.DefaultPrestage
	p.Cap = capacity
	return &p
}

type poolFigures struct{ cap, prestaging, queued int }

func poolOf(p contract.WaveProgress) poolFigures {
	return poolFigures{p.PrestageCap, p.Prestaging, p.PrestageQueued}
}

// TestWavePrestagePoolGrantsInRequestOrderUpToItsCap: the pool lets Cap
// passes run at once, in the order asked for, days before T; a repeated
// request keeps one place, a forged one and a stale release change
// nothing, a release or a done report lets the next one go, a raised cap
// lets the rest go, and a request for a later pass drops the place of a
// pass whose release was lost.
func TestWavePrestagePoolGrantsInRequestOrderUpToItsCap(t *testing.T) {
	h := newPrestageHarness(t, 6, prestageOf(2))
	h.step(h.request(3, 1), h.request(1, 1), h.request(4, 1), h.request(0, 1), h.request(2, 1))       // 1
	h.step(h.request(4, 1), h.request(3, 1), h.requestAs(5, "forged", 1))                             // 2: repeats, a forged key
	h.step(h.release(3, keyOfIndex(3), 7), h.release(3, "forged", 1), h.release(2, keyOfIndex(2), 2)) // 3: stale, forged
	h.step(h.release(1, keyOfIndex(1), 1))                                                            // 4
	h.step(h.signal(contract.SignalSetCap, contract.SetCapRequest{Prestage: 4}))                      // 5
	h.step(h.request(5, 1))                                                                           // 6: the pool is full
	h.step(h.done(3))                                                                                 // 7
	h.step(h.request(4, 2))                                                                           // 8: pass 1's release was lost
	h.step(h.request(3, 2), h.request(0, 1))                                                          // 9: done, and held already
	res := h.finish()

	assert.Equal(t, [][2]int{{3, 1}, {1, 1}, {4, 1}, {0, 1}, {2, 1}, {5, 1}, {4, 2}}, h.granted(), "in request order, once each")
	assert.Equal(t, []poolFigures{
		{2, 2, 3}, // two granted, three waiting
		{2, 2, 3}, // repeats not queued twice, the forged one not at all
		{2, 2, 3}, // the stale and forged releases free nothing
		{2, 2, 2}, // 1 released: 4 granted
		{4, 4, 0}, // cap 4: 0 and 2 granted
		{4, 4, 1}, // 5 waits
		{4, 4, 0}, // 3 reported its end: 5 granted
		{4, 4, 0}, // 4's pass 1 dropped, its pass 2 granted
		{4, 4, 0}, // 3 has ended; 0 holds its place
	}, poolsOf(h.progress))
	assert.Zero(t, h.slotGrants, "no slot of the night before T")
	assert.Equal(t, 6, res.Cancelled)
}

// TestWavePrestagePausedGrantsNone: a paused wave grants no pass (those
// running go on); resumed, it grants them in order. Cancelled, it grants
// none again.
func TestWavePrestagePausedGrantsNone(t *testing.T) {
	h := newPrestageHarness(t, 5, prestageOf(2))
	h.step(h.request(0, 1))                                                                   // 1
	h.step(h.signal(contract.SignalPause, contract.PauseRequest{Reason: "a look"}))           // 2
	h.step(h.request(1, 1), h.request(2, 1), h.request(3, 1), h.release(0, keyOfIndex(0), 1)) // 3
	h.step(h.signal(contract.SignalResume, nil))                                              // 4
	h.step(h.signal(contract.SignalCancel, nil), h.release(1, keyOfIndex(1), 1))              // 5
	h.finish()

	assert.Equal(t, [][2]int{{0, 1}, {1, 1}, {2, 1}}, h.granted())
	assert.Equal(t, poolFigures{2, 0, 3}, poolOf(h.at(3)), "paused: nothing granted, the pool free")
	assert.True(t, h.at(3).Paused)
	assert.Equal(t, poolFigures{2, 2, 1}, poolOf(h.at(4)), "resumed")
	assert.Equal(t, poolFigures{2, 1, 1}, poolOf(h.at(5)), "cancelling: the place freed goes to nobody")
	assert.True(t, h.at(5).Cancelling)
}

// TestWaveWithoutPrestageIgnoresARequest: a wave that does not pre-stage
// grants nothing and keeps no pool, even asked to set its cap.
func TestWaveWithoutPrestageIgnoresARequest(t *testing.T) {
	h := newPrestageHarness(t, 3, nil)
	h.step(h.request(0, 1), h.signal(contract.SignalSetCap, contract.SetCapRequest{Prestage: 5}), h.request(1, 1))
	h.finish()

	assert.Empty(t, h.grants)
	assert.Equal(t, poolFigures{}, poolOf(h.at(1)))
}

// TestWavePrestageFreesAGoneHoldersPlace: a grant that cannot be delivered
// frees its place at once; a holder gone without a word is found by the
// reconcile of the slot holders, and its place goes to the next.
func TestWavePrestageFreesAGoneHoldersPlace(t *testing.T) {
	h := newPrestageHarness(t, 4, prestageOf(1))
	h.undelivered[0] = true
	h.gone[1] = true
	h.step(h.request(0, 1), h.request(1, 1), h.request(2, 1))
	h.query(contract.DefaultReconcileEvery + 5*time.Minute)
	h.steps = int((contract.DefaultReconcileEvery + 10*time.Minute) / time.Minute)
	res := h.finish()

	assert.Equal(t, [][2]int{{0, 1}, {1, 1}, {2, 1}}, h.granted(), "0's not delivered: 1 next; 1 gone: 2 next")
	assert.Equal(t, poolFigures{1, 1, 1}, poolOf(h.at(1)), "1 holds the place")
	assert.Equal(t, poolFigures{1, 1, 0}, poolOf(h.at(2)), "1 settled by reconcile: 2 holds it")
	assert.Contains(t, h.reconciled, 0, "the mailbox a grant could not reach is asked about")
	assert.Contains(t, h.reconciled, 1, "the pool's holders are checked on")
	assert.Equal(t, 1, res.NeedsSupport, "1, settled from the server")
}

// TestWavePrestagePoolCarriedOverContinueAsNew: the pool's cap, holders
// and queue go into the next run, every grant sent first.
func TestWavePrestagePoolCarriedOverContinueAsNew(t *testing.T) {
	h := newPrestageHarness(t, 6, prestageOf(2))
	h.in.MaxSignalsPerRun = 5
	h.send(time.Minute, h.request(3, 1), h.request(1, 1), h.request(4, 1), h.request(0, 1), h.request(2, 1))
	h.env.ExecuteWorkflow(Wave, h.in)
	require.True(t, h.env.IsWorkflowCompleted())
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, h.env.GetWorkflowError(), &can)
	var next contract.WaveInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.NotNil(t, next.State)
	assert.Equal(t, 2, next.State.PrestageCap)
	key := keyOfIndex
	assert.Equal(t, []contract.PrestageSlot{{Index: 3, Key: key(3), Pass: 1}, {Index: 1, Key: key(1), Pass: 1}}, next.State.PrestageActive)
	assert.Equal(t, []contract.PrestageSlot{{Index: 4, Key: key(4), Pass: 1}, {Index: 0, Key: key(0), Pass: 1}, {Index: 2, Key: key(2), Pass: 1}},
		next.State.PrestageQueue)
	assert.Equal(t, [][2]int{{3, 1}, {1, 1}}, h.granted(), "the grants went before the run ended")
	assert.NotNil(t, next.Prestage)
}

func poolsOf(progress []contract.WaveProgress) []poolFigures {
	var out []poolFigures
	for _, p := range progress {
		out = append(out, poolOf(p))
	}
	return out
}

// TestWavePrestagePoolPublishedInItsMemo: the pool's figures change the
// wave's memo (what wave status reads when no worker answers) on their
// own, days before T when nothing else moves.
func TestWavePrestagePoolPublishedInItsMemo(t *testing.T) {
	h := newPrestageHarness(t, 4, prestageOf(1))
	var memos []contract.WaveProgress
	h.env.OnUpsertMemo(mock.Anything).Run(func(args mock.Arguments) {
		if p, ok := args.Get(0).(map[string]any)[contract.MemoProgress].(contract.WaveProgress); ok {
			memos = append(memos, p)
		}
	}).Return(nil)
	h.step(h.request(0, 1), h.request(1, 1))
	h.step(h.release(0, keyOfIndex(0), 1))
	h.finish()

	var seen []poolFigures
	for _, p := range memos {
		if f := poolOf(p); len(seen) == 0 || seen[len(seen)-1] != f {
			seen = append(seen, f)
		}
	}
	// 0 granted; 1 queued (held back publishEvery); 0 released and 1
	// granted; all ended.
	assert.Equal(t, []poolFigures{{1, 0, 0}, {1, 1, 0}, {1, 1, 1}, {1, 1, 0}, {1, 0, 0}}, seen)
}

// TestAPooledWaveHoldsItsPassesInThePool: a wave pre-staging into the
// tenant's pool keeps no pool of its own; pausing, resuming and cancelling
// it tell the pool to hold or free its passes waiting, each hold newer
// than the one before.
func TestAPooledWaveHoldsItsPassesInThePool(t *testing.T) {
	h := newPrestageHarness(t, 4, &contract.Prestage{MailboxRate: 1e6, Efficiency: 1, Margin: time.Hour, Cap: 7, Pool: "tenant-a"})
	var holds []activities.SignalWaveInput
	h.env.RegisterActivityWithOptions(func(_ context.Context, in activities.SignalWaveInput) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		holds = append(holds, in)
		return nil
	}, activity.RegisterOptions{Name: contract.ActivitySignalWave})
	h.step(h.request(1, 1)) // 1: a request sent to the wave is not its to grant
	h.step(h.signal(contract.SignalPause, contract.PauseRequest{Reason: "a look"}))
	h.step(h.signal(contract.SignalResume, nil))
	h.step(h.signal(contract.SignalCancel, nil))
	h.finish()

	assert.Empty(t, h.grants, "no grant from the wave: its passes run in the pool")
	assert.Zero(t, h.at(1).PrestageCap)
	assert.Equal(t, "tenant-a", h.at(1).PrestagePool)
	require.Len(t, holds, 3)
	for i, want := range []bool{true, false, true} {
		assert.Equal(t, contract.SignalPrestagePoolHold, holds[i].Signal)
		assert.Equal(t, "tenant-a", holds[i].Pool)
		assert.Equal(t, 7, holds[i].PoolCap)
		assert.Equal(t, &contract.PoolHold{WaveID: "w1", Held: want, Seq: int64(i + 1)}, holds[i].Hold)
	}
}
