package graph

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWindowNeverHoldsMoreThanItsLimit: whatever arrives, a sliding window
// admits nothing that would put more than its limit in any span, and says
// exactly when the next fits.
func TestWindowNeverHoldsMoreThanItsLimit(t *testing.T) {
	w := window{limit: 150, span: 5 * time.Second}
	t0 := time.Unix(1_700_000_000, 0)
	assert.Zero(t, w.wait(t0, 100))
	w.send(100)
	w.answer(t0, 100)
	assert.Zero(t, w.wait(t0.Add(time.Second), 50))
	w.send(50)
	w.answer(t0.Add(time.Second), 50)
	// Full: 10 more fits once the first 100 leave, at t0+5s.
	assert.Equal(t, 4*time.Second, w.wait(t0.Add(time.Second), 10))
	// 120 more needs the 50 gone too, at t0+6s.
	assert.Equal(t, 5*time.Second, w.wait(t0.Add(time.Second), 120))
	assert.Zero(t, w.wait(t0.Add(5*time.Second), 100))
	assert.Equal(t, int64(50), w.sum, "the first left the window")
}

// TestBudgetKeepsTheDocumentedLimits: at most Concurrent requests at once,
// no more uploaded in a window than the budget, and nothing before a
// Retry-After has passed.
func TestBudgetKeepsTheDocumentedLimits(t *testing.T) {
	b, err := NewBudgets(Limits{Concurrent: 4, UploadBytes: 1000, UploadWindow: 400 * time.Millisecond,
		Requests: 1000, RequestWindow: time.Minute})
	require.NoError(t, err)
	m := b.For("k-1")
	ctx := context.Background()

	// Eight requests at once: never more than four hold a slot.
	var in, most atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			release, err := m.Acquire(ctx, 0)
			assert.NoError(t, err)
			n := in.Add(1)
			for {
				old := most.Load()
				if n <= old || most.CompareAndSwap(old, n) {
					break
				}
			}
			time.Sleep(20 * time.Millisecond)
			in.Add(-1)
			release()
		})
	}
	wg.Wait()
	assert.Equal(t, int32(4), most.Load())

	// 2,500 bytes against 1,000 per 400 ms: at least two windows pass.
	start := time.Now()
	for range 5 {
		release, err := m.Acquire(ctx, 500)
		require.NoError(t, err)
		release()
	}
	assert.GreaterOrEqual(t, time.Since(start), 800*time.Millisecond)

	// A request larger than the whole budget can never go.
	_, err = m.Acquire(ctx, 1001)
	assert.ErrorContains(t, err, "over the upload budget")

	// Retry-After: nothing before it.
	m.RetryAfter(300 * time.Millisecond)
	start = time.Now()
	release, err := m.Acquire(ctx, 0)
	require.NoError(t, err)
	release()
	assert.GreaterOrEqual(t, time.Since(start), 290*time.Millisecond)

	// Another mailbox has budgets of its own.
	assert.NotSame(t, m, b.For("k-2"))
	assert.Same(t, m, b.For("k-1"))
}

// TestASmallerRequestFillsTheRoomALargerOneCannotUse: while the first
// request waiting needs more room than the window has, a later one that
// fits now and still leaves the first its room when its time comes goes at
// once; one that would delay the first waits behind it; and the window
// never holds more than its limit.
func TestASmallerRequestFillsTheRoomALargerOneCannotUse(t *testing.T) {
	const span = 300 * time.Millisecond
	b, err := NewBudgets(Limits{Concurrent: 4, UploadBytes: 100, UploadWindow: span, Requests: 1000, RequestWindow: time.Minute})
	require.NoError(t, err)
	m := b.For("k-1")
	ctx := context.Background()

	start := time.Now()
	release, err := m.Acquire(ctx, 50)
	require.NoError(t, err)
	release()

	type admitted struct {
		name string
		at   time.Duration
	}
	got := make(chan admitted, 3)
	acquire := func(name string, n int64) {
		release, err := m.Acquire(ctx, n)
		assert.NoError(t, err)
		got <- admitted{name, time.Since(start)}
		release()
	}
	// The first waiting needs 60: it goes when the 50 leaves, at span.
	go acquire("head", 60)
	time.Sleep(30 * time.Millisecond)
	// 41 fits now (91) but not beside the head at its time (101): it waits.
	go acquire("too-large", 41)
	time.Sleep(30 * time.Millisecond)
	// 40 fits now (90) and beside the head at its time (100): it goes.
	go acquire("fits", 40)

	var order []string
	at := map[string]time.Duration{}
	for range 3 {
		a := <-got
		order = append(order, a.name)
		at[a.name] = a.at
	}
	assert.Equal(t, []string{"fits", "head", "too-large"}, order)
	assert.Less(t, at["fits"], span/2, "the smaller one went at once")
	assert.GreaterOrEqual(t, at["head"], span, "the head went when the 50 left, not before")
	assert.Less(t, at["head"], span+100*time.Millisecond, "and was not delayed by the smaller one")
	assert.GreaterOrEqual(t, at["too-large"], span+60*time.Millisecond, "41 fits only once the 40 has left too")
	m.mu.Lock()
	defer m.mu.Unlock()
	assert.LessOrEqual(t, m.uploads.sumAt(time.Now()), int64(100))
}

// TestARequestIsCountedFromItsAnswer: the service counts a request at some
// time between its sending and its answer, so the copier counts it in its
// windows until a window after its answer, not after its sending.
func TestARequestIsCountedFromItsAnswer(t *testing.T) {
	const span = 200 * time.Millisecond
	b, err := NewBudgets(Limits{Concurrent: 4, UploadBytes: 100, UploadWindow: span, Requests: 1000, RequestWindow: time.Minute})
	require.NoError(t, err)
	m := b.For("k-1")
	ctx := context.Background()

	release, err := m.Acquire(ctx, 100)
	require.NoError(t, err)
	time.Sleep(150 * time.Millisecond) // a slow answer
	answered := time.Now()
	release()

	_, err = m.Acquire(ctx, 100)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(answered), span, "the window had room only a window after the answer")
}

// TestAPieceInFlightHoldsItsRoomUntilItsAnswer: a request not yet answered
// may yet be counted by the service at any moment, so its room is not
// given to another however long it takes, and once answered it holds it
// for a span from its answer.
func TestAPieceInFlightHoldsItsRoomUntilItsAnswer(t *testing.T) {
	w := window{limit: 100, span: time.Hour}
	t0 := time.Unix(1_700_000_000, 0)
	w.send(60)
	assert.Equal(t, never, w.wait(t0.Add(61*time.Minute), 60), "past its span, still in flight: only its answer frees room")
	assert.Zero(t, w.wait(t0.Add(61*time.Minute), 40))
	w.answer(t0.Add(62*time.Minute), 60)
	assert.Equal(t, time.Hour, w.wait(t0.Add(62*time.Minute), 60), "a span from its answer")
	assert.Equal(t, int64(60), w.sumAt(t0.Add(2*time.Hour)), "still there a span after it was sent")
	assert.Equal(t, int64(0), w.sumAt(t0.Add(3*time.Hour)))
}
