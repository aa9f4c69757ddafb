package workflows

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"mailwave/contract"
)

// poolHarness runs a tenant's pre-stage pool and plays requests and
// releases of mailboxes of several waves at it, a minute apart; it records
// the grants the pool sends, step by step, and its status.
type poolHarness struct {
	t     *testing.T
	suite testsuite.WorkflowTestSuite
	env   *testsuite.TestWorkflowEnvironment
	start time.Time
	at    time.Duration // when the last step was played

	mu     sync.Mutex
	stepAt []time.Time               // when each step was played
	sent   []sentGrant               // the grants the pool sent, as it sent them
	grants [][]contract.PrestageSlot // by the step they followed
	status []contract.PrestagePoolStatus
}

type sentGrant struct {
	at time.Time
	g  contract.PrestageSlot
}

func newPoolHarness(t *testing.T) *poolHarness {
	h := &poolHarness{t: t, start: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	h.env = h.suite.NewTestWorkflowEnvironment()
	h.env.SetStartTime(h.start)
	// The test environment delivers signals from goroutines of their own,
	// in no order: an interceptor sees the grants go, with the pool's time.
	h.env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{&grantsSeen{seen: func(ctx workflow.Context, g contract.PrestageSlot) {
		h.mu.Lock()
		h.sent = append(h.sent, sentGrant{workflow.Now(ctx), g})
		h.mu.Unlock()
	}}}})
	h.env.RegisterWorkflowWithOptions(PrestagePool, workflow.RegisterOptions{Name: contract.PrestagePoolWorkflowName})
	h.env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, mock.Anything, mock.Anything, mock.Anything).Return(
		func(_, id, _, name string, arg any) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			require.Equal(t, contract.SignalPrestageGrant, name)
			g := arg.(contract.PrestageSlot)
			require.Equal(t, contract.MailboxWorkflowID(poolKey(g.WaveID, g.Index)), id, "granted to its mailbox")
			require.Empty(t, g.Key, "a grant carries no key")
			return nil
		})
	return h
}

func poolKey(wave string, index int) string { return keyOfIndex(index) + "-" + wave }

// request is a pass's request: the mailbox at index of wave, T days from
// the start.
func (h *poolHarness) request(wave string, index, pass, tDays int) func() {
	return func() {
		h.env.SignalWorkflow(contract.SignalPrestageRequest, contract.PoolSlot{
			PrestageSlot: contract.PrestageSlot{WaveID: wave, Index: index, Key: poolKey(wave, index), Pass: pass},
			Due:          h.start.Add(time.Duration(tDays) * 24 * time.Hour), Budget: 6 * time.Hour,
		})
	}
}

func (h *poolHarness) release(wave string, index, pass int) func() {
	return func() {
		h.env.SignalWorkflow(contract.SignalPrestageRelease, contract.PoolSlot{
			PrestageSlot: contract.PrestageSlot{WaveID: wave, Index: index, Key: poolKey(wave, index), Pass: pass}})
	}
}

// step sends the pool these signals a minute (and after) past the step
// before, then queries it half a minute on.
func (h *poolHarness) step(after time.Duration, signals ...func()) {
	h.at += time.Minute + after
	at := h.at
	h.env.RegisterDelayedCallback(func() {
		h.mu.Lock()
		h.stepAt = append(h.stepAt, h.env.Now())
		h.mu.Unlock()
		for _, s := range signals {
			s()
		}
	}, at)
	h.env.RegisterDelayedCallback(func() {
		v, err := h.env.QueryWorkflow(contract.QueryPrestagePool)
		require.NoError(h.t, err)
		var st contract.PrestagePoolStatus
		require.NoError(h.t, v.Get(&st))
		h.mu.Lock()
		h.status = append(h.status, st)
		h.mu.Unlock()
	}, at+30*time.Second)
}

// run starts the pool and cancels it after the last step.
func (h *poolHarness) run(in contract.PrestagePoolInput) error {
	h.env.RegisterDelayedCallback(h.env.CancelWorkflow, h.at+time.Minute)
	h.env.ExecuteWorkflow(contract.PrestagePoolWorkflowName, in)
	require.True(h.t, h.env.IsWorkflowCompleted())
	h.grants = make([][]contract.PrestageSlot, len(h.stepAt))
	for _, s := range h.sent {
		i := len(h.stepAt) - 1
		for i > 0 && s.at.Before(h.stepAt[i]) {
			i--
		}
		h.grants[i] = append(h.grants[i], s.g)
	}
	return h.env.GetWorkflowError()
}

// TestAPoolGrantsThePassWhoseNightComesFirst: with one place, waiting
// passes of three waves are granted by their T, earliest first, then in the
// order asked; a repeated request keeps its place, a release frees the
// place for the next.
func TestAPoolGrantsThePassWhoseNightComesFirst(t *testing.T) {
	h := newPoolHarness(t)
	h.step(0, h.request("w9", 0, 1, 9))                                                     // granted at once
	h.step(0, h.request("w5", 1, 1, 5), h.request("w7", 2, 1, 7), h.request("w5", 3, 1, 5)) // all wait
	h.step(0, h.request("w7", 2, 1, 7))                                                     // repeated: keeps its place
	h.step(0, h.release("w9", 0, 1))
	h.step(0, h.release("w5", 1, 1))
	h.step(0, h.release("w5", 3, 1))
	h.step(0, h.release("w7", 2, 1))
	require.ErrorContains(t, h.run(contract.PrestagePoolInput{Pool: "tenant-a", Cap: 1}), "canceled")

	idx := func(gs []contract.PrestageSlot) []int {
		var out []int
		for _, g := range gs {
			out = append(out, g.Index)
		}
		return out
	}
	require.Len(t, h.grants, 7)
	assert.Equal(t, []int{0}, idx(h.grants[0]))
	assert.Empty(t, h.grants[1], "the place is held")
	assert.Empty(t, h.grants[2])
	assert.Equal(t, []int{1}, idx(h.grants[3]), "the earliest T first")
	assert.Equal(t, []int{3}, idx(h.grants[4]), "same T: the first asked")
	assert.Equal(t, []int{2}, idx(h.grants[5]))
	assert.Empty(t, h.grants[6])
	assert.Equal(t, 3, h.status[1].Queued)
	assert.Equal(t, 3, h.status[2].Queued, "a repeated request queues nothing more")
	assert.Equal(t, map[string]contract.PoolWaveCount{"w9": {Active: 1}, "w5": {Queued: 2}, "w7": {Queued: 1}}, h.status[2].Waves)
	assert.Equal(t, h.start.Add(5*24*time.Hour), h.status[2].NextDue)
	last := h.status[len(h.status)-1]
	assert.Equal(t, contract.PrestagePoolStatus{Pool: "tenant-a", Cap: 1, Granted: 4, Runs: 1}, last)
}

// TestAPoolTakesBackPlacesNobodyGivesBack: a place whose release was lost
// is taken back its budget and an hour after its grant; a later pass of a
// mailbox holding a place replaces it; a malformed request is ignored; a
// higher cap grants more at once.
func TestAPoolTakesBackPlacesNobodyGivesBack(t *testing.T) {
	h := newPoolHarness(t)
	h.step(0, h.request("w1", 0, 1, 9))
	h.step(0, h.request("w1", 2, 1, 9)) // waits
	h.step(0, func() {
		h.env.SignalWorkflow(contract.SignalPrestageRequest, contract.PoolSlot{
			PrestageSlot: contract.PrestageSlot{WaveID: "../etc", Index: 3, Key: "k", Pass: 1}, Due: h.start})
	})
	h.step(7*time.Hour, func() {})      // 0's lease (6 h budget + 1 h) ended at 7h01m: 2 went then
	h.step(0, h.request("w1", 2, 2, 9)) // its release lost, its next pass asks: granted again
	h.step(0, h.request("w1", 4, 1, 9), h.request("w1", 5, 1, 9))
	h.step(0, func() { h.env.SignalWorkflow(contract.SignalPrestagePoolCap, 3) })
	require.ErrorContains(t, h.run(contract.PrestagePoolInput{Pool: "tenant-a", Cap: 1}), "canceled")

	type g struct{ index, pass int }
	got := func(gs []contract.PrestageSlot) []g {
		var out []g
		for _, s := range gs {
			out = append(out, g{s.Index, s.Pass})
		}
		return out
	}
	assert.Equal(t, []g{{0, 1}}, got(h.grants[0]))
	assert.Empty(t, h.grants[1])
	assert.Equal(t, 1, h.status[2].Queued, "a malformed request is ignored")
	assert.Equal(t, []g{{2, 1}}, got(h.grants[2]), "a lease ended frees its place")
	require.GreaterOrEqual(t, len(h.sent), 2)
	assert.Equal(t, h.start.Add(7*time.Hour+time.Minute), h.sent[1].at, "taken back when its lease ended")
	assert.Equal(t, int64(1), h.status[3].Expired)
	assert.Empty(t, h.grants[3])
	assert.Equal(t, []g{{2, 2}}, got(h.grants[4]), "a later pass replaces the one whose release was lost")
	assert.Empty(t, h.grants[5])
	assert.ElementsMatch(t, []g{{4, 1}, {5, 1}}, got(h.grants[6]), "a higher cap grants more")
	assert.Equal(t, 3, h.status[6].Active)
}

// TestAPoolContinuesAsNewWithItsPlaces: past its signals a run, the pool
// carries its places and queue into a new run, in order.
func TestAPoolContinuesAsNewWithItsPlaces(t *testing.T) {
	h := newPoolHarness(t)
	h.step(0, h.request("w1", 0, 1, 9), h.request("w1", 2, 1, 4), h.request("w1", 1, 1, 3))
	h.env.ExecuteWorkflow(contract.PrestagePoolWorkflowName, contract.PrestagePoolInput{Pool: "tenant-a", Cap: 1, MaxSignalsPerRun: 3})
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, h.env.GetWorkflowError(), &can)
	var next contract.PrestagePoolInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.NotNil(t, next.State)
	assert.Equal(t, 1, next.State.Runs)
	require.Len(t, next.State.Active, 1)
	assert.Equal(t, 0, next.State.Active[0].Index, "the first asked holds the place")
	require.Len(t, next.State.Queue, 2)
	assert.Equal(t, []int{1, 2}, []int{next.State.Queue[0].Index, next.State.Queue[1].Index}, "the queue in order of T")
	assert.Equal(t, int64(1), next.State.Granted)
}

// TestAPoolHoldsAPausedWavesPasses: a wave's hold keeps its passes waiting
// while another wave's are granted; freed, they are granted again; a hold
// older than the one the pool has is ignored; cap 0 grants nothing, and
// the passes running finish.
func TestAPoolHoldsAPausedWavesPasses(t *testing.T) {
	h := newPoolHarness(t)
	hold := func(wave string, held bool, seq int64) func() {
		return func() {
			h.env.SignalWorkflow(contract.SignalPrestagePoolHold, contract.PoolHold{WaveID: wave, Held: held, Seq: seq})
		}
	}
	h.step(0, hold("w5", true, 1), h.request("w5", 0, 1, 5), h.request("w9", 1, 1, 9))                      // w5 held: w9 goes
	h.step(0, h.release("w9", 1, 1), hold("w5", false, 1))                                                  // same seq: still held
	h.step(0, hold("w5", false, 3), hold("w5", true, 2))                                                    // the newer (3) wins: freed
	h.step(0, func() { h.env.SignalWorkflow(contract.SignalPrestagePoolCap, 0) }, h.request("w9", 2, 1, 9)) // none granted
	h.step(0, h.release("w5", 0, 1), func() { h.env.SignalWorkflow(contract.SignalPrestagePoolCap, 1) })
	require.ErrorContains(t, h.run(contract.PrestagePoolInput{Pool: "tenant-a", Cap: 1}), "canceled")

	idx := func(gs []contract.PrestageSlot) []int {
		var out []int
		for _, g := range gs {
			out = append(out, g.Index)
		}
		return out
	}
	assert.Equal(t, []int{1}, idx(h.grants[0]), "the held wave's earlier T waits")
	assert.Equal(t, []string{"w5"}, h.status[0].Held)
	assert.Empty(t, h.grants[1], "a hold of the same seq is not newer")
	assert.Equal(t, []int{0}, idx(h.grants[2]), "freed by the newer hold")
	assert.Empty(t, h.status[2].Held)
	assert.Empty(t, h.grants[3], "cap 0 grants nothing")
	assert.Equal(t, 1, h.status[3].Active, "the pass running goes on")
	assert.Equal(t, []int{2}, idx(h.grants[4]))
}

// TestAPoolDropsThePassWhoseNightComesLastWhenFull: with room for two
// waiting, a third pass of an earlier T takes the place of the latest; one
// of a later T is dropped; both are counted and ask again.
func TestAPoolDropsThePassWhoseNightComesLastWhenFull(t *testing.T) {
	h := newPoolHarness(t)
	h.step(0, h.request("w1", 0, 1, 9))                            // granted
	h.step(0, h.request("w1", 1, 1, 7), h.request("w1", 2, 1, 8))  // wait
	h.step(0, h.request("w1", 3, 1, 6), h.request("w1", 4, 1, 10)) // 3 in, 2 out; 4 dropped
	h.step(0, h.release("w1", 0, 1))
	h.step(0, h.release("w1", 3, 1))
	require.ErrorContains(t, h.run(contract.PrestagePoolInput{Pool: "tenant-a", Cap: 1, MaxQueue: 2}), "canceled")
	assert.Equal(t, int64(2), h.status[2].Dropped)
	assert.Equal(t, 2, h.status[2].Queued)
	require.Len(t, h.grants[3], 1)
	assert.Equal(t, 3, h.grants[3][0].Index, "the earliest T")
	require.Len(t, h.grants[4], 1)
	assert.Equal(t, 1, h.grants[4][0].Index)
}

// TestAPoolTakesBackAShortLeaseBeforeALongOne: a place granted after a
// longer one, with a shorter budget, is taken back when its own lease ends.
func TestAPoolTakesBackAShortLeaseBeforeALongOne(t *testing.T) {
	h := newPoolHarness(t)
	long := func() {
		h.env.SignalWorkflow(contract.SignalPrestageRequest, contract.PoolSlot{
			PrestageSlot: contract.PrestageSlot{WaveID: "w1", Index: 0, Key: poolKey("w1", 0), Pass: 1},
			Due:          h.start.Add(9 * 24 * time.Hour), Budget: 48 * time.Hour})
	}
	h.step(0, long)
	h.step(0, h.request("w1", 1, 1, 9)) // 6 h budget: lease ends at 7h02m
	h.step(8*time.Hour, func() {})
	require.ErrorContains(t, h.run(contract.PrestagePoolInput{Pool: "tenant-a", Cap: 2}), "canceled")
	assert.Equal(t, int64(1), h.status[2].Expired, "the short lease ended on time")
	assert.Equal(t, 1, h.status[2].Active, "the long one holds")
}

// TestAPoolCancelledWhileContinuingAsNewEnds: a cancel that comes as the
// pool continues as new ends it, cancelled (it once spun on the closed
// Done channel).
func TestAPoolCancelledWhileContinuingAsNewEnds(t *testing.T) {
	h := newPoolHarness(t)
	h.step(0, h.request("w1", 0, 1, 9), h.env.CancelWorkflow)
	h.env.ExecuteWorkflow(contract.PrestagePoolWorkflowName, contract.PrestagePoolInput{Pool: "tenant-a", Cap: 1, MaxSignalsPerRun: 1})
	require.True(t, h.env.IsWorkflowCompleted())
	require.ErrorContains(t, h.env.GetWorkflowError(), "canceled")
}
