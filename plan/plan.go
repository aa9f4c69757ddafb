// Package plan is the pre-staging planner: from the mailboxes' sizes, their
// nights and notices, the target's limits and the pre-stage policy, when
// each bulk pass starts and ends, how many copies run at once on each day,
// the peak, and which mailboxes and nights cannot be done and why. It is a
// pure function: no I/O, no clock, no Temporal; the same input in any order
// gives the same plan.
//
// The model: a copy moves a mailbox at its pace (the per-mailbox budget
// times the efficiency achieved) for the whole pass, its overhead included,
// and that pace is what it takes from the tenant's limit. Every copy has
// the same pace, so the tenant's limit is a number of lanes: copies at once.
// A bulk pass starts as late as it can and still end a margin before T, but
// not before its notice and a delay; when the lanes are full, earlier.
package plan

import (
	"cmp"
	"container/heap"
	"fmt"
	"math"
	"slices"
	"time"
)

// DefaultMailboxRate is Exchange Online's upload budget for one
// application and one mailbox: 150 MB per 5 minutes (0.5 MB/s).
const DefaultMailboxRate = 150e6 / 300

// Limits are the target's.
type Limits struct {
	// MailboxRate is the per-mailbox budget, bytes per second.
	MailboxRate float64
	// TenantRate is the tenant's limit for the application across all its
	// mailboxes, bytes per second; 0 is unlimited.
	TenantRate float64
	// PassOverhead is added to every pass (listing folders, verification).
	PassOverhead time.Duration
	// Efficiency is the share of the budget a copy achieves (0.906-0.938
	// measured against the fake Graph: docs/benchmarks.md), in (0, 1].
	Efficiency float64
}

// DefaultLimits are Exchange Online's per-mailbox budget at the efficiency
// measured, with no tenant limit.
var DefaultLimits = Limits{MailboxRate: DefaultMailboxRate, PassOverhead: 2 * time.Minute, Efficiency: 0.9}

// Pace is the bytes per second a copy moves, and takes from the tenant.
func (l Limits) Pace() float64 { return l.MailboxRate * l.Efficiency }

// PassDuration is how long a pass of bytes takes at the pace, its overhead
// included (rounded up to the nanosecond, so that the pace is never passed).
func (l Limits) PassDuration(bytes int64) time.Duration {
	return l.PassOverhead + time.Duration(math.Ceil(float64(bytes)/l.Pace()*1e9))
}

// Check refuses limits that cannot be planned with.
func (l Limits) Check() error {
	switch {
	case !(l.MailboxRate > 0) || math.IsInf(l.MailboxRate, 0):
		return fmt.Errorf("plan limits: mailbox rate %g bytes/s: must be more than zero", l.MailboxRate)
	case !(l.TenantRate >= 0) || math.IsInf(l.TenantRate, 0):
		return fmt.Errorf("plan limits: tenant rate %g bytes/s: must not be negative (0 is unlimited)", l.TenantRate)
	case l.PassOverhead < 0:
		return fmt.Errorf("plan limits: pass overhead %s: must not be negative", l.PassOverhead)
	case !(l.Efficiency > 0 && l.Efficiency <= 1):
		return fmt.Errorf("plan limits: efficiency %g: must be in (0, 1]", l.Efficiency)
	}
	return nil
}

// Policy is the pre-stage policy and the night's window.
type Policy struct {
	// StartDelay: a bulk pass starts at the earliest this long after the
	// mailbox's notice.
	StartDelay time.Duration
	// Margin: a bulk pass ends at the latest this long before T (24 h: done
	// before the T-1 reminder).
	Margin time.Duration
	// IncrementalEvery: after the bulk pass, an incremental pass this often
	// until T; 0 is none.
	IncrementalEvery time.Duration
	// The change a mailbox takes per day, read by each pass after the bulk
	// and by the final delta: ChangeShare of its size (0.005) plus
	// ChangeBytes.
	ChangeShare float64
	ChangeBytes int64
	// Window is the time from T the night has for the final deltas and the
	// cutovers, NightCap how many run at once (0 is no cap but the
	// tenant's), Cutover the verification and cutover of one mailbox.
	Window   time.Duration
	NightCap int
	Cutover  time.Duration
	// AtT plans today's copy at T instead: each mailbox's whole copy (bulk
	// pass and cutover) starts at T at the earliest and ends within the
	// night's window, under the tenant's limit only (the night's cap is not
	// applied: the best case of copying at T).
	AtT bool
}

// DefaultPolicy: from an hour after the notice, done a day before T, no
// incremental pass (its change is read by the final delta), 0.5 % of a
// mailbox's size changed a day, a night of twelve hours for 1,000 at once.
var DefaultPolicy = Policy{
	StartDelay: time.Hour, Margin: 24 * time.Hour,
	ChangeShare: 0.005,
	Window:      12 * time.Hour, NightCap: 1000, Cutover: time.Minute,
}

// Check refuses a policy that cannot be planned with.
func (p Policy) Check() error {
	switch {
	case p.StartDelay < 0 || p.Margin < 0 || p.IncrementalEvery < 0 || p.Cutover < 0:
		return fmt.Errorf("plan policy: start delay %s, margin %s, incremental every %s, cutover %s: none may be negative",
			p.StartDelay, p.Margin, p.IncrementalEvery, p.Cutover)
	case !(p.ChangeShare >= 0 && p.ChangeShare <= 1) || p.ChangeBytes < 0:
		return fmt.Errorf("plan policy: change %g of the size plus %d bytes a day: the share must be in [0, 1], the bytes not negative",
			p.ChangeShare, p.ChangeBytes)
	case p.Window <= 0:
		return fmt.Errorf("plan policy: night window %s: must be more than zero", p.Window)
	case p.NightCap < 0:
		return fmt.Errorf("plan policy: night cap %d: must not be negative (0 is no cap)", p.NightCap)
	}
	return nil
}

// Mailbox is one mailbox to plan, by its key (never its address).
type Mailbox struct {
	Key   string
	Bytes int64
	// Estimated: the size is an estimate, not read from the source.
	Estimated bool
	// T is its night's; Notice its T-14 notice's time.
	T      time.Time
	Notice time.Time
}

// Reason is why a mailbox or a night cannot be done as planned. The set
// is fixed.
type Reason string

const (
	// TooLargeForLeadTime: even starting at its earliest at the full pace,
	// its bulk pass cannot end by its deadline.
	TooLargeForLeadTime Reason = "TooLargeForLeadTime"
	// TenantLimitTooLow: it would fit alone, but the tenant's lanes are
	// full from its earliest start to its deadline; for a night, its bulk
	// passes need more than the limit over the time they have.
	TenantLimitTooLow Reason = "TenantLimitTooLow"
	// NightWindowTooShort: the night's final deltas and cutovers, at its
	// cap, do not fit its window.
	NightWindowTooShort Reason = "NightWindowTooShort"
)

// Problem is a reason with its figures. For a mailbox: its bytes, the
// hours its pass needs and the hours it has. For a night: its mailboxes
// and bytes; with TenantLimitTooLow the rate they need (their bytes over
// the time they have) against the limit, and how many got no lane; with
// NightWindowTooShort the hours its final work takes at the cap against
// the window.
type Problem struct {
	Reason         Reason
	Bytes          int64
	NeededHours    float64
	AvailableHours float64
	NeededRate     float64 `json:",omitempty"`
	TenantRate     float64 `json:",omitempty"`
	Mailboxes      int     `json:",omitempty"`
	Unplanned      int     `json:",omitempty"`
	UnplannedBytes int64   `json:",omitempty"`
	Estimated      bool    `json:",omitempty"`
}

func (p Problem) String() string {
	est := ""
	if p.Estimated {
		est = " (size estimated)"
	}
	switch {
	case p.Reason == NightWindowTooShort:
		return fmt.Sprintf("%s: the final deltas and cutovers of %d mailboxes take %.1f h at the night's cap, the window is %.1f h",
			p.Reason, p.Mailboxes, p.NeededHours, p.AvailableHours)
	case p.Reason == TenantLimitTooLow && p.Mailboxes > 0:
		return fmt.Sprintf("%s: %d mailboxes, %d bytes in %.1f h need %.0f bytes/s, the tenant's limit is %.0f; %d of them, %d bytes, get no room",
			p.Reason, p.Mailboxes, p.Bytes, p.AvailableHours, p.NeededRate, p.TenantRate, p.Unplanned, p.UnplannedBytes)
	case p.Reason == TenantLimitTooLow:
		return fmt.Sprintf("%s: %d bytes%s need %.1f h at the per-mailbox pace; the tenant's limit has no room for them in the %.1f h available",
			p.Reason, p.Bytes, est, p.NeededHours, p.AvailableHours)
	}
	return fmt.Sprintf("%s: %d bytes%s need %.1f h at the per-mailbox pace, %.1f h available",
		p.Reason, p.Bytes, est, p.NeededHours, p.AvailableHours)
}

// Planned is one mailbox's plan. Start and End are its bulk pass (its
// whole copy with AtT), zero when it has a problem.
type Planned struct {
	Key       string
	Bytes     int64
	Estimated bool `json:",omitempty"`
	T         time.Time
	// Earliest and Deadline bound the bulk pass.
	Earliest, Deadline time.Time
	Start, End         time.Time
	// Rate is what the pass takes from the tenant, bytes per second, for
	// all of [Start, End).
	Rate float64
	// LeadHours is T minus Start (prestage_lead_hours).
	LeadHours float64
	// Incrementals passes after the bulk, moving IncrementalBytes in all;
	// FinalDeltaBytes is what is left for T.
	Incrementals     int
	IncrementalBytes int64
	FinalDeltaBytes  int64
	Problem          *Problem `json:",omitempty"`
	// lane is the lane the pass is laid in (PlanAfter keeps the passes
	// of the nights before it in theirs).
	lane int
}

// Day is one UTC date of the plan: the most bulk passes running at once on
// it, their rate then, and the bytes they move on it; the bytes of the
// incremental passes made on it (not counted in the peak: they are small).
type Day struct {
	Date             string // 2006-01-02
	PeakCopies       int
	PeakRate         float64
	BulkBytes        int64
	IncrementalBytes int64
}

// Night is one T's summary.
type Night struct {
	T         time.Time
	Mailboxes int
	Planned   int
	Bytes     int64
	Estimated int `json:",omitempty"`
	// FirstStart is when its first planned pass starts (zero: none
	// planned): T-Margin minus it is the spread a pre-staged wave of the
	// night needs (contract.Prestage.Spread).
	FirstStart time.Time `json:",omitempty"`
	// FinalHours is how long its final deltas and cutovers take at its cap.
	FinalHours float64
	Problems   []Problem `json:",omitempty"`
}

// Spread is how long before its deadline (T-margin) the night's first
// bulk pass begins: what a pre-staging wave's Spread must give for its
// passes to begin as planned (0: none begins before its own latest start).
func (n Night) Spread(margin time.Duration) time.Duration {
	if n.FirstStart.IsZero() {
		return 0
	}
	return max(n.T.Add(-margin).Sub(n.FirstStart), 0)
}

// Shape is how the night at t's bulk passes begin over its spread
// (contract.Prestage.Shape): points quantiles of their planned starts,
// each as the fraction of the spread from its beginning (T-margin-Spread)
// at which the passes of that share of the night, in the order of their
// starts, begin. A wave whose mailboxes begin where their share falls in
// it begins them as planned, not evenly: where another night's passes
// take the lanes the plan leaves a gap. The quantiles are of the passes
// planned: a mailbox that cannot be done (Problem) starts at its earliest
// whatever its place. Nil when the night has no spread or no pass planned.
func (r Result) Shape(t time.Time, margin time.Duration, points int) []float64 {
	i := slices.IndexFunc(r.Nights, func(n Night) bool { return n.T.Equal(t) })
	if i < 0 || points <= 0 {
		return nil
	}
	spread := r.Nights[i].Spread(margin)
	if spread <= 0 {
		return nil
	}
	var starts []time.Time
	for _, m := range r.Mailboxes {
		if m.Problem == nil && m.T.Equal(t) && !m.Start.IsZero() {
			starts = append(starts, m.Start)
		}
	}
	if len(starts) == 0 {
		return nil
	}
	slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })
	from := t.Add(-margin).Add(-spread)
	out := make([]float64, points)
	for j := range out {
		f := float64(starts[j*len(starts)/points].Sub(from)) / float64(spread)
		out[j] = min(max(f, 0), 1)
	}
	return out
}

// Result is the plan. Mailboxes are in key order, days in date order,
// nights in T order.
type Result struct {
	Mailboxes []Planned
	Days      []Day
	Nights    []Night
	// Lanes is the tenant's limit in copies at once: its rate over a
	// copy's pace, rounded down; -1 when it has none.
	Lanes int
	// The most bulk passes in flight at once, when, and their rate.
	PeakCopies int
	PeakAt     time.Time
	PeakRate   float64
	// Infeasible counts the mailboxes with a problem.
	Infeasible int
}

// Plan plans mailboxes under the limits and the policy. Keys must be
// unique; sizes not negative; T and the notice set.
func Plan(mailboxes []Mailbox, limits Limits, policy Policy) (Result, error) {
	order, lanes, err := prepare(mailboxes, limits, policy)
	if err != nil {
		return Result{}, err
	}
	schedule(order, lanes, limits.Pace())
	return result(order, limits, policy, lanes), nil
}

// prepare checks the input and makes its jobs, in the order they are laid
// backwards into the lanes (latest deadline first, then the longest, then
// by key, whatever the input's order), and the tenant's lanes (-1: none).
func prepare(mailboxes []Mailbox, limits Limits, policy Policy) ([]*job, int, error) {
	if err := limits.Check(); err != nil {
		return nil, 0, err
	}
	if err := policy.Check(); err != nil {
		return nil, 0, err
	}
	jobs := make([]job, len(mailboxes))
	for i, m := range mailboxes {
		switch {
		case m.Key == "":
			return nil, 0, fmt.Errorf("plan: mailbox %d: no key", i)
		case m.Bytes < 0:
			return nil, 0, fmt.Errorf("plan: mailbox %s: %d bytes", m.Key, m.Bytes)
		case m.T.IsZero() || (m.Notice.IsZero() && !policy.AtT):
			return nil, 0, fmt.Errorf("plan: mailbox %s: its T and its notice must be set", m.Key)
		}
		jobs[i] = newJob(m, limits, policy)
	}
	// The jobs are sorted by pointer: a job is a few hundred bytes.
	order := make([]*job, len(jobs))
	for i := range jobs {
		order[i] = &jobs[i]
	}
	slices.SortFunc(order, jobsByKey)
	for i := 1; i < len(order); i++ {
		if order[i].p.Key == order[i-1].p.Key {
			return nil, 0, fmt.Errorf("plan: mailbox %s: listed twice", order[i].p.Key)
		}
	}
	slices.SortFunc(order, func(a, b *job) int {
		return cmp.Or(b.p.Deadline.Compare(a.p.Deadline), cmp.Compare(b.d, a.d), cmp.Compare(a.p.Key, b.p.Key))
	})
	lanes := -1
	if limits.TenantRate > 0 {
		lanes = int(min(math.Floor(limits.TenantRate/limits.Pace()), math.MaxInt32))
	}
	return order, lanes, nil
}

func jobsByKey(a, b *job) int { return cmp.Compare(a.p.Key, b.p.Key) }

// result is the plan of laid jobs: each finished, in key order, with the
// days, the peak and the nights.
func result(order []*job, limits Limits, policy Policy, lanes int) Result {
	r := Result{Lanes: lanes}
	for _, j := range order {
		finish(j, limits, policy)
	}
	slices.SortFunc(order, jobsByKey)
	r.Mailboxes = make([]Planned, len(order))
	for i, j := range order {
		r.Mailboxes[i] = j.p
		if j.p.Problem != nil {
			r.Infeasible++
		}
	}
	r.Days, r.PeakCopies, r.PeakAt, r.PeakRate = days(order, limits.Pace())
	r.Nights = nights(order, limits, policy, r.Lanes)
	return r
}

// job is a mailbox being planned: d is its pass's length, final the
// length of its work at T.
type job struct {
	p     Planned
	d     time.Duration
	final time.Duration
	incr  []time.Time
}

func newJob(m Mailbox, l Limits, p Policy) job {
	j := job{p: Planned{Key: m.Key, Bytes: m.Bytes, Estimated: m.Estimated, T: m.T.UTC()}}
	j.d = l.PassDuration(m.Bytes)
	if p.AtT {
		j.p.Earliest, j.p.Deadline = j.p.T, j.p.T.Add(p.Window)
		j.d += p.Cutover
	} else {
		j.p.Earliest, j.p.Deadline = m.Notice.UTC().Add(p.StartDelay), j.p.T.Add(-p.Margin)
	}
	if avail := j.p.Deadline.Sub(j.p.Earliest); j.d > avail {
		j.p.Problem = &Problem{Reason: TooLargeForLeadTime, Bytes: m.Bytes, Estimated: m.Estimated,
			NeededHours: j.d.Hours(), AvailableHours: max(avail, 0).Hours()}
	}
	return j
}

// schedule lays the passes backwards from their deadlines into lanes
// (-1: unlimited), in the jobs' order: latest deadline first, longest
// first. Each lane keeps the time before which it is free (its frontier);
// a pass takes the lane free latest, ends at its deadline or that
// frontier, whichever is earlier, and moves the frontier to its start.
// The jobs after it have deadlines no later, so the time a lane leaves
// above a deadline is of no use to them, and which of the lanes free at
// the deadline it takes does not change the plan. A pass that would start
// before its earliest gets no lane: TenantLimitTooLow.
func schedule(jobs []*job, lanes int, pace float64) {
	limited := lanes >= 0 && lanes < len(jobs)
	var free frontiers
	next := 0 // unlimited: each pass its own lane
	for _, j := range jobs {
		if j.p.Problem != nil {
			continue
		}
		end := j.p.Deadline
		if limited && len(free) < lanes {
			// A lane not used yet: free up to this deadline (and still
			// so if this pass gets no room).
			heap.Push(&free, frontier{at: end, lane: len(free)})
		}
		if limited && len(free) > 0 {
			end = minTime(end, free[0].at)
		}
		start := end.Add(-j.d)
		if start.Before(j.p.Earliest) || (limited && len(free) == 0) {
			j.p.Problem = &Problem{Reason: TenantLimitTooLow, Bytes: j.p.Bytes, Estimated: j.p.Estimated,
				NeededHours: j.d.Hours(), AvailableHours: j.p.Deadline.Sub(j.p.Earliest).Hours()}
			continue
		}
		j.p.Start, j.p.End, j.p.Rate = start, start.Add(j.d), pace
		if limited {
			j.p.lane = free[0].lane
			free[0].at = start
			heap.Fix(&free, 0)
		} else {
			j.p.lane, next = next, next+1
		}
	}
}

// finish sets a planned pass's lead, its incremental passes and its final
// delta. The change a pass reads is counted from the end of the one
// before.
func finish(j *job, l Limits, p Policy) {
	if j.p.Problem != nil {
		return
	}
	j.p.LeadHours = j.p.T.Sub(j.p.Start).Hours()
	perDay := p.ChangeShare*float64(j.p.Bytes) + float64(p.ChangeBytes)
	change := func(d time.Duration) int64 { return int64(math.Ceil(perDay * d.Hours() / 24)) }
	last := j.p.End
	if !p.AtT && p.IncrementalEvery > 0 {
		for at := j.p.End.Add(p.IncrementalEvery); at.Before(j.p.T); at = at.Add(p.IncrementalEvery) {
			j.incr = append(j.incr, at)
			j.p.IncrementalBytes += change(p.IncrementalEvery)
			last = at
		}
		j.p.Incrementals = len(j.incr)
	}
	if !p.AtT {
		j.p.FinalDeltaBytes = change(j.p.T.Sub(last))
		j.final = l.PassDuration(j.p.FinalDeltaBytes) + p.Cutover
	}
}

// days sweeps the passes' starts and ends, in time order (an end before a
// start at the same instant: a pass is [Start, End)), for each UTC date's
// peak and bytes, and the overall peak.
func days(jobs []*job, pace float64) (out []Day, peak int, peakAt time.Time, peakRate float64) {
	type event struct {
		at    time.Time
		delta int
	}
	evs := make([]event, 0, 2*len(jobs))
	var first, last time.Time
	grow := func(t time.Time) {
		if first.IsZero() || t.Before(first) {
			first = t
		}
		if t.After(last) {
			last = t
		}
	}
	for _, j := range jobs {
		if j.p.Problem != nil {
			continue
		}
		evs = append(evs, event{j.p.Start, +1}, event{j.p.End, -1})
		grow(j.p.Start)
		grow(j.p.End)
		for _, at := range j.incr {
			grow(at)
		}
	}
	if len(evs) == 0 {
		return nil, 0, time.Time{}, 0
	}
	slices.SortFunc(evs, func(a, b event) int { return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.delta, b.delta)) })
	day0 := first.Truncate(24 * time.Hour)
	n := int(last.Sub(day0)/(24*time.Hour)) + 1
	out = make([]Day, n)
	for i := range out {
		out[i].Date = day0.Add(time.Duration(i) * 24 * time.Hour).Format(time.DateOnly)
	}
	index := func(t time.Time) int { return int(t.Sub(day0) / (24 * time.Hour)) }
	// The bytes of a pass, shared among the days it runs on pro rata.
	for _, j := range jobs {
		if j.p.Problem != nil {
			continue
		}
		for d := index(j.p.Start); d <= index(j.p.End) && d < n; d++ {
			from := maxTime(j.p.Start, day0.Add(time.Duration(d)*24*time.Hour))
			to := minTime(j.p.End, day0.Add(time.Duration(d+1)*24*time.Hour))
			if to.After(from) {
				out[d].BulkBytes += int64(math.Round(float64(j.p.Bytes) * float64(to.Sub(from)) / float64(j.d)))
			}
		}
		per := int64(0)
		if len(j.incr) > 0 {
			per = j.p.IncrementalBytes / int64(len(j.incr))
		}
		for _, at := range j.incr {
			out[index(at)].IncrementalBytes += per
		}
	}
	// A day's peak starts with what runs at its midnight, once the passes
	// ending then have ended.
	count, k := 0, 0
	for d := range out {
		midnight, next := day0.Add(time.Duration(d)*24*time.Hour), day0.Add(time.Duration(d+1)*24*time.Hour)
		for ; k < len(evs) && evs[k].at.Equal(midnight) && evs[k].delta < 0; k++ {
			count += evs[k].delta
		}
		out[d].PeakCopies = count
		for ; k < len(evs) && evs[k].at.Before(next); k++ {
			count += evs[k].delta
			out[d].PeakCopies = max(out[d].PeakCopies, count)
			if count > peak {
				peak, peakAt = count, evs[k].at
			}
		}
		out[d].PeakRate = float64(out[d].PeakCopies) * pace
	}
	peakRate = float64(peak) * pace
	return out, peak, peakAt, peakRate
}

// nights sums each T's mailboxes and checks its night: its bulk passes
// against the tenant's limit over the time they have, and its final
// deltas and cutovers, longest first, on its cap's lanes (and no more than
// the tenant's), against its window.
func nights(jobs []*job, l Limits, p Policy, lanes int) []Night {
	byT := slices.Clone(jobs)
	slices.SortStableFunc(byT, func(a, b *job) int { return a.p.T.Compare(b.p.T) })
	var out []Night
	for len(byT) > 0 {
		n := 1
		for n < len(byT) && byT[n].p.T.Equal(byT[0].p.T) {
			n++
		}
		group := byT[:n]
		byT = byT[n:]
		night := Night{T: group[0].p.T, Mailboxes: n}
		var finals []time.Duration
		unplanned, unplannedBytes := 0, int64(0)
		earliest := group[0].p.Earliest
		for _, j := range group {
			night.Bytes += j.p.Bytes
			if j.p.Estimated {
				night.Estimated++
			}
			earliest = minTime(earliest, j.p.Earliest)
			switch {
			case j.p.Problem == nil:
				night.Planned++
				finals = append(finals, j.final)
				if night.FirstStart.IsZero() || j.p.Start.Before(night.FirstStart) {
					night.FirstStart = j.p.Start
				}
			case j.p.Problem.Reason == TenantLimitTooLow:
				unplanned++
				unplannedBytes += j.p.Bytes
			}
		}
		if unplanned > 0 {
			avail := group[0].p.Deadline.Sub(earliest)
			night.Problems = append(night.Problems, Problem{Reason: TenantLimitTooLow, Mailboxes: n, Bytes: night.Bytes,
				AvailableHours: avail.Hours(), NeededRate: float64(night.Bytes) / avail.Seconds(), TenantRate: l.TenantRate,
				Unplanned: unplanned, UnplannedBytes: unplannedBytes})
		}
		if !p.AtT {
			at := p.NightCap
			if lanes >= 0 && (at == 0 || lanes < at) {
				at = max(lanes, 1)
			}
			night.FinalHours = makespan(finals, at).Hours()
			if night.FinalHours > p.Window.Hours() {
				night.Problems = append(night.Problems, Problem{Reason: NightWindowTooShort, Mailboxes: night.Planned,
					NeededHours: night.FinalHours, AvailableHours: p.Window.Hours()})
			}
		}
		out = append(out, night)
	}
	return out
}

// makespan is how long the works take on lanes (0: each its own), the
// longest first, each to the lane free soonest.
func makespan(works []time.Duration, lanes int) time.Duration {
	slices.SortFunc(works, func(a, b time.Duration) int { return cmp.Compare(b, a) })
	if lanes == 0 || lanes >= len(works) {
		if len(works) == 0 {
			return 0
		}
		return works[0]
	}
	ends := make(durations, lanes)
	for _, w := range works {
		ends[0] += w
		heap.Fix(&ends, 0)
	}
	return slices.Max(ends)
}

// frontiers is a max-heap of times.
// frontier is a lane and the time before which it is free.
type frontier struct {
	at   time.Time
	lane int
}

type frontiers []frontier

func (f frontiers) Len() int           { return len(f) }
func (f frontiers) Less(i, j int) bool { return f[i].at.After(f[j].at) }
func (f frontiers) Swap(i, j int)      { f[i], f[j] = f[j], f[i] }
func (f *frontiers) Push(x any)        { *f = append(*f, x.(frontier)) }
func (f *frontiers) Pop() any {
	old := *f
	x := old[len(old)-1]
	*f = old[:len(old)-1]
	return x
}

// durations is a min-heap of durations.
type durations []time.Duration

func (d durations) Len() int           { return len(d) }
func (d durations) Less(i, j int) bool { return d[i] < d[j] }
func (d durations) Swap(i, j int)      { d[i], d[j] = d[j], d[i] }
func (d *durations) Push(x any)        { *d = append(*d, x.(time.Duration)) }
func (d *durations) Pop() any {
	old := *d
	x := old[len(old)-1]
	*d = old[:len(old)-1]
	return x
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// BulkStart plans one mailbox's bulk pass alone, with no tenant limit (a
// wave's pre-stage pool bounds the passes at once): the latest start that
// still ends policy.Margin before t, but not before the notice and
// policy.StartDelay. late: even its earliest start cannot end in time (it
// starts at its earliest, and what it has not read by t, the final delta
// reads).
func BulkStart(bytes int64, notice, t time.Time, limits Limits, policy Policy) (start time.Time, late bool) {
	earliest := notice.Add(policy.StartDelay)
	start = t.Add(-policy.Margin).Add(-limits.PassDuration(bytes))
	if start.Before(earliest) {
		return earliest, true
	}
	return start, false
}
