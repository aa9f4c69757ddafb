package plan

import (
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
// The result is the mailboxes' plan only, as Plan's, and before the plan
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

// laneBusy is each lane's passes, in time order, in the lanes the plan
// laid them in (with no limit of lanes, Plan gives each pass its own).
func laneBusy(planned []Planned, lanes int) [][]span {
	busy := make([][]span, lanes)
	for _, m := range planned {
		if m.Problem != nil || !m.End.After(m.Start) {
			continue
		}
		for m.lane >= len(busy) {
			busy = append(busy, nil)
		}
		busy[m.lane] = append(busy[m.lane], span{m.Start, m.End})
	}
	for _, b := range busy {
		slices.SortFunc(b, func(x, y span) int { return x.from.Compare(y.from) })
	}
	return busy
}

// layAround lays the jobs, in their order (latest deadline first, then the
// longest), backwards into lanes already taken by busy: each job goes to
// the lane where it can end latest, no later than its deadline, in a gap
// of that lane's spans (the earlier nights' passes and the jobs laid so
// far) long enough for it, and its pass joins that lane's spans. A job
// that fits no lane after its earliest: TenantLimitTooLow.
func layAround(jobs []*job, busy [][]span, pace float64) {
	for _, j := range jobs {
		if j.p.Problem != nil {
			continue
		}
		best, bestEnd := -1, time.Time{}
		for l := range busy {
			end, ok := latestGap(busy[l], j.p.Deadline, j.d, j.p.Earliest)
			if ok && (best < 0 || end.After(bestEnd)) {
				best, bestEnd = l, end
				if end.Equal(j.p.Deadline) {
					break // no lane does better
				}
			}
		}
		if best < 0 {
			j.p.Problem = &Problem{Reason: TenantLimitTooLow, Bytes: j.p.Bytes, Estimated: j.p.Estimated,
				NeededHours: j.d.Hours(), AvailableHours: j.p.Deadline.Sub(j.p.Earliest).Hours()}
			continue
		}
		j.p.Start, j.p.End, j.p.Rate, j.p.lane = bestEnd.Add(-j.d), bestEnd, pace, best
		b := busy[best]
		i, _ := slices.BinarySearchFunc(b, j.p.Start, func(x span, t time.Time) int { return x.from.Compare(t) })
		busy[best] = slices.Insert(b, i, span{j.p.Start, j.p.End})
	}
}

// latestGap is the latest end, no later than limit, of a pass of d that
// takes none of the lane's busy spans (in time order, not overlapping)
// and starts no sooner than earliest.
func latestGap(spans []span, limit time.Time, d time.Duration, earliest time.Time) (time.Time, bool) {
	end := limit
	// The spans beginning before limit; those after cannot be in the way.
	n := sort.Search(len(spans), func(i int) bool { return !spans[i].from.Before(limit) })
	for i := n - 1; i >= 0; i-- {
		s := spans[i]
		if !s.to.After(end.Add(-d)) {
			break // before the pass, and so is every one before this
		}
		end = s.from // in the way: the pass ends where it begins
		if end.Add(-d).Before(earliest) {
			return end, false
		}
	}
	return end, !end.Add(-d).Before(earliest)
}
