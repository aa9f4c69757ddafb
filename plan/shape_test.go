package plan

import (
	"cmp"
	"container/heap"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"mailwave/contract"
)

func TestShapeIsTheQuantilesOfThePlannedStarts(t *testing.T) {
	at := time.Date(2027, 3, 15, 20, 0, 0, 0, time.UTC)
	notice := at.Add(-14 * 24 * time.Hour)
	l := Limits{MailboxRate: DefaultMailboxRate, Efficiency: 1, TenantRate: DefaultMailboxRate}
	p := Policy{Margin: 24 * time.Hour, Window: 12 * time.Hour}
	hours := func(h float64) int64 { return int64(h * 3600 * DefaultMailboxRate) }
	// One lane: 4 h, 2 h, 1 h and 1 h laid back to back before T-24h,
	// longest nearest it: starts at -8 h, -7 h, -6 h and -4 h of the
	// deadline, over a spread of 8 h.
	r, err := Plan([]Mailbox{
		{Key: "a", Bytes: hours(4), T: at, Notice: notice},
		{Key: "b", Bytes: hours(2), T: at, Notice: notice},
		{Key: "c", Bytes: hours(1), T: at, Notice: notice},
		{Key: "d", Bytes: hours(1), T: at, Notice: notice},
	}, l, p)
	require.NoError(t, err)
	require.Equal(t, 8*time.Hour, r.Nights[0].Spread(p.Margin).Round(time.Second))
	got := r.Shape(at, p.Margin, 4)
	require.Len(t, got, 4)
	for j, want := range []float64{0, 1.0 / 8, 2.0 / 8, 4.0 / 8} {
		require.InDelta(t, want, got[j], 1e-6, "point %d", j)
	}
	// Eight points of four passes: each start twice.
	require.InDeltaSlice(t, []float64{0, 0, 1.0 / 8, 1.0 / 8, 2.0 / 8, 2.0 / 8, 4.0 / 8, 4.0 / 8}, r.Shape(at, p.Margin, 8), 1e-6)
	require.Nil(t, r.Shape(at.Add(time.Hour), p.Margin, 4), "no night then")
	require.Nil(t, r.Shape(at, p.Margin, 0))
}

// The twin's nights (bench/twin: ten from a Monday, 220 and 830 at the
// weekend, the first three days after the start, 11 lanes), planned
// together, their passes asking the tenant's pool (simulated as it grants:
// nearest T first, a pass keeps its place to its end) where the mailbox
// workflow puts them: the earlier of its own latest start and its place
// in the spread. Spread evenly, 532 passes end after their deadline
// (T-24h) and one after its T; placed by the shape, at most a few dozen,
// none after T.
func TestAShapedSpreadKeepsThePlanInThePool(t *testing.T) {
	limits := Limits{MailboxRate: 0.5e6, TenantRate: 5.1e6, Efficiency: 0.9, PassOverhead: 2 * time.Minute}
	policy := DefaultPolicy
	policy.IncrementalEvery = 24 * time.Hour
	t0 := night
	var all []Mailbox
	byNight := map[time.Time][]Mailbox{}
	for k := range 10 {
		n := 220
		if k%7 == 5 || k%7 == 6 {
			n = 830
		}
		at := t0.Add(time.Duration(3+k) * 24 * time.Hour)
		notice := maxTime(at.Add(-14*24*time.Hour), t0)
		for i, b := range estateSizes(n, uint64(k+1)) {
			m := Mailbox{Key: fmt.Sprintf("%02d-%05d", k, i), Bytes: b, T: at, Notice: notice}
			all = append(all, m)
			byNight[at] = append(byNight[at], m)
		}
	}
	r, err := Plan(all, limits, policy)
	require.NoError(t, err)
	require.Zero(t, r.Infeasible)
	require.Equal(t, 11, r.Lanes)
	late := func(shaped bool) (pastDeadline, pastT int) {
		var reqs []poolRequest
		for _, n := range r.Nights {
			spread := n.Spread(policy.Margin)
			var shape []float64
			if shaped {
				shape = r.Shape(n.T, policy.Margin, 64)
				require.Len(t, shape, 64)
			}
			reqs = append(reqs, passesAsked(byNight[n.T], spread, shape, limits, policy)...)
		}
		for _, q := range simulatePool(reqs, r.Lanes) {
			if q.end.After(q.deadline) {
				pastDeadline++
			}
			if q.end.After(q.t) {
				pastT++
			}
		}
		return pastDeadline, pastT
	}
	evenDeadline, evenT := late(false)
	shapedDeadline, shapedT := late(true)
	t.Logf("passes ending after their deadline (after T): even %d (%d), shaped %d (%d), of %d", evenDeadline, evenT, shapedDeadline, shapedT, len(all))
	require.Greater(t, evenDeadline, 100)
	require.Less(t, shapedDeadline, evenDeadline/5)
	require.Zero(t, shapedT)
}

// passesAsked are a night's bulk passes (boxes, in wave order) asking the
// pool where the mailbox workflow puts them: the earlier of its own latest
// start and its place in the wave's spread, through the shape (nil:
// evenly), never before its notice and the start delay.
func passesAsked(boxes []Mailbox, spread time.Duration, shape []float64, limits Limits, policy Policy) []poolRequest {
	p := contract.Prestage{Shape: shape}
	out := make([]poolRequest, 0, len(boxes))
	for i, m := range boxes {
		start, _ := BulkStart(m.Bytes, m.Notice, m.T, limits, policy)
		deadline := m.T.Add(-policy.Margin)
		share := p.ShapeAt(float64(i) / float64(len(boxes)))
		if place := deadline.Add(-spread + time.Duration(share*float64(spread))); place.Before(start) {
			start = maxTime(place, m.Notice.Add(policy.StartDelay))
		}
		out = append(out, poolRequest{at: start, t: m.T, d: limits.PassDuration(m.Bytes), deadline: deadline})
	}
	return out
}

// poolRequest is a pass asking the pool for a place at `at`, for d, for a
// night of T t.
type poolRequest struct {
	at, t, deadline, end time.Time
	d                    time.Duration
}

// simulatePool grants places as the tenant's pool does: to the waiting
// pass of the nearest T, then the one that asked first; a pass keeps its
// place until it ends. It returns the requests with their ends.
func simulatePool(reqs []poolRequest, lanes int) []poolRequest {
	slices.SortStableFunc(reqs, func(a, b poolRequest) int { return a.at.Compare(b.at) })
	waiting, busy := &requestHeap{}, &timeHeap{}
	next, now := 0, time.Time{}
	for {
		for next < len(reqs) && !reqs[next].at.After(now) {
			heap.Push(waiting, &reqs[next])
			next++
		}
		for busy.Len() > 0 && !(*busy)[0].After(now) {
			heap.Pop(busy)
		}
		for busy.Len() < lanes && waiting.Len() > 0 {
			r := heap.Pop(waiting).(*poolRequest)
			r.end = now.Add(r.d)
			heap.Push(busy, r.end)
		}
		// The next moment: a request asks, or (with passes waiting, so
		// every place taken) a place frees.
		switch {
		case next < len(reqs) && (waiting.Len() == 0 || reqs[next].at.Before((*busy)[0])):
			now = reqs[next].at
		case waiting.Len() > 0:
			now = (*busy)[0]
		default:
			return reqs
		}
	}
}

type requestHeap []*poolRequest

func (h requestHeap) Len() int { return len(h) }
func (h requestHeap) Less(i, j int) bool {
	return cmp.Or(h[i].t.Compare(h[j].t), h[i].at.Compare(h[j].at)) < 0
}
func (h requestHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *requestHeap) Push(x any)   { *h = append(*h, x.(*poolRequest)) }
func (h *requestHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

type timeHeap []time.Time

func (h timeHeap) Len() int           { return len(h) }
func (h timeHeap) Less(i, j int) bool { return h[i].Before(h[j]) }
func (h timeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timeHeap) Push(x any)        { *h = append(*h, x.(time.Time)) }
func (h *timeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
