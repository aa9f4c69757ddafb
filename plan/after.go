package plan

import (
	"container/heap"
	"fmt"
	"slices"
	"sort"
	"time"
)

// PlanAfter plans mailboxes after the nights before them: earlier are the
// mailboxes of nights already launched and still to be copied, planned
// together by Plan; their passes keep the lanes Plan gives them, and the
// mailboxes' passes are laid backwards from their deadlines into the time
// those leave free. It is how a night chosen on a calendar plans its
// spread and shape while the nights launched before it pre-stage into the
// same tenant: the tenant's pool grants the nearest T first, so their
// passes go first. (Plan over all of them would instead give the latest
// night the lanes nearest its deadline and move the launched nights'
// passes earlier, where they no longer can go.)
//
// The result is the mailboxes' plan only, as Plan's; Earlier is the plan
// of the nights before. With no tenant limit nights do not share lanes,
// and it is Plan's.
func PlanAfter(earlier, mailboxes []Mailbox, limits Limits, policy Policy) (r, before Result, err error) {
	order, lanes, err := prepare(mailboxes, limits, policy)
	if err != nil {
		return r, before, err
	}
	if lanes < 0 || len(earlier) == 0 {
		schedule(order, lanes, limits.Pace())
		return result(order, limits, policy, lanes), before, nil
	}
	if before, err = Plan(earlier, limits, policy); err != nil {
		return r, before, fmt.Errorf("plan: the nights before: %w", err)
	}
	layAround(order, laneBusy(before.Mailboxes, lanes), limits.Pace())
	return result(order, limits, policy, lanes), before, nil
}

// span is a time a lane is taken, [from, to).
type span struct{ from, to time.Time }

// laneBusy deals the planned passes out to lanes (each to a lane free at
// its start, the one free longest; the passes never take more than the
// lanes at once, as Plan lays them), each lane's spans in time order.
func laneBusy(planned []Planned, lanes int) [][]span {
	var passes []span
	for _, m := range planned {
		if m.Problem == nil && m.End.After(m.Start) {
			passes = append(passes, span{m.Start, m.End})
		}
	}
	slices.SortFunc(passes, func(a, b span) int { return a.from.Compare(b.from) })
	busy := make([][]span, lanes)
	free := &laneEnds{}
	for i := range lanes {
		heap.Push(free, laneEnd{lane: i})
	}
	for _, p := range passes {
		if free.Len() == 0 {
			break // no lanes at all
		}
		l := heap.Pop(free).(laneEnd) // ends first: free at p.from, as Plan lays them
		busy[l.lane] = append(busy[l.lane], p)
		heap.Push(free, laneEnd{lane: l.lane, end: p.to})
	}
	return busy
}

// layAround lays the jobs, in their order (latest deadline first, then the
// longest), backwards into lanes already taken by busy: each job goes to
// the lane where it can end latest, no later than its deadline and that
// lane's frontier (before which the lane is free of the jobs laid so far),
// in a gap of the busy spans long enough for it; that lane's frontier
// moves to its start. As in schedule, the time a lane leaves above a
// frontier is of no use to the jobs after (their deadlines are no later).
// A job that fits no lane after its earliest: TenantLimitTooLow.
func layAround(jobs []*job, busy [][]span, pace float64) {
	frontier := make([]time.Time, len(busy))
	for _, j := range jobs {
		if j.p.Problem != nil {
			continue
		}
		best, bestEnd := -1, time.Time{}
		for l := range busy {
			limit := j.p.Deadline
			if !frontier[l].IsZero() && frontier[l].Before(limit) {
				limit = frontier[l]
			}
			end, ok := latestGap(busy[l], limit, j.d, j.p.Earliest)
			if ok && (best < 0 || end.After(bestEnd)) {
				best, bestEnd = l, end
			}
		}
		if best < 0 {
			j.p.Problem = &Problem{Reason: TenantLimitTooLow, Bytes: j.p.Bytes, Estimated: j.p.Estimated,
				NeededHours: j.d.Hours(), AvailableHours: j.p.Deadline.Sub(j.p.Earliest).Hours()}
			continue
		}
		j.p.Start, j.p.End, j.p.Rate = bestEnd.Add(-j.d), bestEnd, pace
		frontier[best] = j.p.Start
	}
}

// latestGap is the latest end, no later than limit, of a pass of d that
// takes none of the lane's busy spans (in time order) and starts no
// sooner than earliest.
func latestGap(spans []span, limit time.Time, d time.Duration, earliest time.Time) (time.Time, bool) {
	end := limit
	// The spans beginning before limit; those after cannot be in the way.
	n := sort.Search(len(spans), func(i int) bool { return !spans[i].from.Before(limit) })
	for i := n - 1; i >= 0; i-- {
		s := spans[i]
		if !s.from.Before(end) {
			continue // after the pass
		}
		if !s.to.After(end.Add(-d)) {
			break // before it, and so is every one before this
		}
		end = s.from // in the way: the pass ends where it begins
	}
	return end, !end.Add(-d).Before(earliest)
}

// laneEnd is a lane and when its last pass ends.
type laneEnd struct {
	lane int
	end  time.Time
}

type laneEnds []laneEnd

func (h laneEnds) Len() int { return len(h) }
func (h laneEnds) Less(i, j int) bool {
	if !h[i].end.Equal(h[j].end) {
		return h[i].end.Before(h[j].end)
	}
	return h[i].lane < h[j].lane
}
func (h laneEnds) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *laneEnds) Push(x any)   { *h = append(*h, x.(laneEnd)) }
func (h *laneEnds) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
