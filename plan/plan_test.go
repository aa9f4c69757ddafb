package plan

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// night is a weeknight's T (a Tuesday, 18:00 UTC).
var night = time.Date(2026, 3, 10, 18, 0, 0, 0, time.UTC)

// exact is the documented budget at full efficiency and no overhead.
var exact = Limits{MailboxRate: DefaultMailboxRate, Efficiency: 1}

// estateSizes draws n mailbox sizes with the estate's distribution:
// log-normal with a median of 300 MB and a mean of 1 GB, between 1 MB and
// 50 GB, from the seed.
func estateSizes(n int, seed uint64) []int64 {
	const median, mean = 300e6, 1e9
	sigma := math.Sqrt(2 * math.Log(mean/median))
	rng := rand.New(rand.NewPCG(seed, 0))
	out := make([]int64, n)
	for i := range out {
		b := math.Exp(math.Log(median) + sigma*rng.NormFloat64())
		out[i] = int64(min(max(b, 1e6), 50e9))
	}
	return out
}

// weeknight is a night of n mailboxes told at T-14.
func weeknight(n int, t time.Time, seed uint64) []Mailbox {
	var out []Mailbox
	for i, b := range estateSizes(n, seed) {
		out = append(out, Mailbox{Key: fmt.Sprintf("k%05d", i), Bytes: b, T: t, Notice: t.Add(-14 * 24 * time.Hour)})
	}
	return out
}

func byKey(r Result, key string) Planned {
	i, ok := slices.BinarySearchFunc(r.Mailboxes, key, func(p Planned, k string) int { return strings.Compare(p.Key, k) })
	if !ok {
		panic("no mailbox " + key)
	}
	return r.Mailboxes[i]
}

// The arithmetic: 150 MB per 5 minutes is 0.5 MB/s; 1 GB takes
// 33 1/3 minutes at best (the 34, rounded up), 50 GB 27.8 hours.
func TestPassDurationAtTheBudget(t *testing.T) {
	require.Equal(t, 500_000.0, exact.Pace())
	require.InDelta(t, 34, exact.PassDuration(1e9).Minutes(), 1)
	require.InDelta(t, 28, exact.PassDuration(50e9).Hours(), 0.5)
	with := exact
	with.PassOverhead, with.Efficiency = 2*time.Minute, 0.9
	require.Equal(t, 2*time.Minute+time.Duration(math.Ceil(1e9/450e3*1e9)), with.PassDuration(1e9))
}

// A 50 GB mailbox told at T-14 is copied in the days before its night: it
// starts its 28 hours plus the 24-hour margin before T, and ends at T-24h.
func TestLargeMailboxPreStaged(t *testing.T) {
	m := Mailbox{Key: "big", Bytes: 50e9, T: night, Notice: night.Add(-14 * 24 * time.Hour)}
	r, err := Plan([]Mailbox{m}, exact, DefaultPolicy)
	require.NoError(t, err)
	p := r.Mailboxes[0]
	require.Nil(t, p.Problem)
	require.Equal(t, night.Add(-24*time.Hour), p.End)
	require.InDelta(t, 28+24, p.LeadHours, 0.5)
	require.Equal(t, 1, r.PeakCopies)
	require.Equal(t, DefaultMailboxRate, r.PeakRate)
	require.Empty(t, r.Nights[0].Problems)
	// Its final delta is a day's change, 0.5 % of it.
	require.Equal(t, int64(250e6), p.FinalDeltaBytes)
}

// A 3 TB mailbox cannot be copied in the 14 days less an hour and the
// margin, even alone at the full pace: flagged with its figures.
func TestTooLargeForLeadTime(t *testing.T) {
	m := Mailbox{Key: "huge", Bytes: 3e12, T: night, Notice: night.Add(-14 * 24 * time.Hour)}
	r, err := Plan([]Mailbox{m}, exact, DefaultPolicy)
	require.NoError(t, err)
	p := r.Mailboxes[0]
	require.NotNil(t, p.Problem)
	require.Equal(t, TooLargeForLeadTime, p.Problem.Reason)
	require.Equal(t, int64(3e12), p.Problem.Bytes)
	require.InDelta(t, 3e12/500e3/3600, p.Problem.NeededHours, 0.01) // 1,666.7 h
	require.InDelta(t, 14*24-1-24, p.Problem.AvailableHours, 0.01)   // 311 h
	require.True(t, p.Start.IsZero())
	require.Equal(t, 1, r.Infeasible)
	require.Equal(t, "TooLargeForLeadTime: 3000000000000 bytes need 1666.7 h at the per-mailbox pace, 311.0 h available", p.Problem.String())
	require.Zero(t, r.PeakCopies)
}

// A weeknight of 22,000 (about 22 TB) under a tenant limit of 510 MB/s,
// pre-staged over its 14 days: all of it fits, and the tenant's limit
// binds. Back of the envelope: at 0.45 MB/s a copy (the budget at 0.9),
// 510 MB/s is 1,133 copies at once, and 22 TB at 510 MB/s takes about 12
// hours, so the night's bulk passes are laid in the day and a half before
// its margin (the longest, 50 GB, takes 31 hours alone) with the tenant's
// rate in full use for about 12 hours.
func TestWeeknightPreStaged(t *testing.T) {
	limits := DefaultLimits
	limits.TenantRate = 510e6
	boxes := weeknight(22_000, night, 1)
	r, err := Plan(boxes, limits, DefaultPolicy)
	require.NoError(t, err)
	require.Zero(t, r.Infeasible)

	var total int64
	var work time.Duration
	for _, m := range boxes {
		total += m.Bytes
		work += limits.PassDuration(m.Bytes)
	}
	require.InDelta(t, 22e12, float64(total), 2e12, "the estate's sizes: about 22 TB a weeknight")
	envelope := 510e6 / (DefaultMailboxRate * 0.9)
	require.InDelta(t, envelope, float64(r.PeakCopies), envelope*0.01)
	require.Equal(t, r.Lanes, r.PeakCopies)
	require.LessOrEqual(t, r.PeakRate, limits.TenantRate)
	require.Greater(t, r.PeakRate, 0.99*limits.TenantRate)

	// Every byte is moved once, on the days before the margin.
	var moved int64
	for _, d := range r.Days {
		moved += d.BulkBytes
		require.LessOrEqual(t, d.PeakCopies, r.PeakCopies)
	}
	require.InDelta(t, float64(total), float64(moved), float64(len(r.Days)*len(boxes)))
	deadline := night.Add(-DefaultPolicy.Margin)
	first := deadline
	leads := make([]float64, 0, len(r.Mailboxes))
	for _, p := range r.Mailboxes {
		first = minTime(first, p.Start)
		require.False(t, p.End.After(deadline))
		leads = append(leads, p.LeadHours)
	}
	// The span from the first start to the margin: the longest pass, or
	// the work over the lanes, whichever is longer, and not much more.
	longest := limits.PassDuration(slices.Max(sizes(boxes)))
	span := max(longest, work/time.Duration(r.Lanes))
	require.GreaterOrEqual(t, deadline.Sub(first), span)
	require.Less(t, deadline.Sub(first), span+span/10)
	require.Equal(t, 1, len(r.Nights))
	require.Empty(t, r.Nights[0].Problems)
	sort.Float64s(leads)
	t.Logf("22,000 mailboxes, %.1f TB: %d lanes, peak %d copies at %s (%.0f MB/s); work/lanes %.1f h, longest %.1f h; lead p50 %.1f h, p99 %.1f h; final work %.2f h at the cap; days %+v",
		float64(total)/1e12, r.Lanes, r.PeakCopies, r.PeakAt.Format(time.DateTime), r.PeakRate/1e6,
		(work / time.Duration(r.Lanes)).Hours(), longest.Hours(),
		leads[len(leads)/2], leads[len(leads)*99/100], r.Nights[0].FinalHours, r.Days)
}

// With no tenant limit each pass ends exactly at its deadline: all
// 22,000 are in flight just before it.
func TestWeeknightUnlimited(t *testing.T) {
	boxes := weeknight(22_000, night, 1)
	r, err := Plan(boxes, DefaultLimits, DefaultPolicy)
	require.NoError(t, err)
	require.Equal(t, -1, r.Lanes)
	require.Zero(t, r.Infeasible)
	require.Equal(t, 22_000, r.PeakCopies)
	require.InDelta(t, 22_000*DefaultLimits.Pace(), r.PeakRate, 1)
	for _, p := range r.Mailboxes {
		require.Equal(t, night.Add(-24*time.Hour), p.End)
	}
}

// The same weeknight copied at T, as today: everything starts at T and
// must end within the night's twelve hours. Every mailbox whose copy
// needs more than the night at the per-mailbox pace (about 19 GB at
// 0.45 MB/s) is too large for it, and the rest ask the tenant for the
// whole night.
func TestWeeknightCopyAtT(t *testing.T) {
	limits := DefaultLimits
	limits.TenantRate = 510e6
	policy := DefaultPolicy
	policy.AtT = true
	boxes := weeknight(22_000, night, 1)
	r, err := Plan(boxes, limits, policy)
	require.NoError(t, err)

	reach := int64((policy.Window - limits.PassOverhead - policy.Cutover).Seconds() * limits.Pace())
	tooLarge, large, largeLost, tail, tailLost, tenant := 0, 0, 0, 0, 0, 0
	for _, m := range boxes {
		p := byKey(r, m.Key)
		if m.Bytes > reach {
			tooLarge++
			require.NotNil(t, p.Problem, m.Key)
			require.Equal(t, TooLargeForLeadTime, p.Problem.Reason)
			require.InDelta(t, 12, p.Problem.AvailableHours, 1e-9)
		}
		if m.Bytes >= 10e9 {
			large++
			if p.Problem != nil {
				largeLost++
			}
		}
		if m.Bytes >= 20e9 {
			tail++
			if p.Problem != nil {
				tailLost++
			}
		}
		if p.Problem != nil && p.Problem.Reason == TenantLimitTooLow {
			tenant++
		}
		if p.Problem == nil {
			require.False(t, p.Start.Before(night))
			require.False(t, p.End.After(night.Add(12*time.Hour)))
		}
	}
	require.Greater(t, tooLarge, 20)
	require.Equal(t, tail, tailLost, "every mailbox of 20 GB or more is lost to the night")
	pre, err := Plan(boxes, limits, DefaultPolicy)
	require.NoError(t, err)
	require.Zero(t, pre.Infeasible)
	t.Logf("copy at T: %d of 22,000 infeasible (%d too large for the night, over %.1f GB; %d for the tenant's limit); %d of %d of 20 GB or more, %d of %d of 10 GB or more; peak %d copies",
		r.Infeasible, tooLarge, float64(reach)/1e9, tenant, tailLost, tail, largeLost, large, r.PeakCopies)
}

// A tenant limit of 10 MB/s cannot pre-stage a weeknight of 22 TB in its
// 13 days: the night needs about 20 MB/s; the mailboxes without room are
// flagged, and the night with its figures.
func TestTenantLimitTooLow(t *testing.T) {
	limits := DefaultLimits
	limits.TenantRate = 10e6
	boxes := weeknight(22_000, night, 2)
	r, err := Plan(boxes, limits, DefaultPolicy)
	require.NoError(t, err)
	require.Equal(t, 22, r.Lanes)
	require.LessOrEqual(t, r.PeakCopies, 22)
	n := r.Nights[0]
	require.NotEmpty(t, n.Problems)
	p := n.Problems[0]
	require.Equal(t, TenantLimitTooLow, p.Reason)
	require.Greater(t, p.NeededRate, limits.TenantRate)
	require.InDelta(t, float64(n.Bytes)/(311*3600), p.NeededRate, 1)
	require.Equal(t, r.Infeasible, p.Unplanned)
	require.Greater(t, p.Unplanned, 1000)
	// The largest are laid first, so the bytes without room, not the
	// count, say how far short the limit is: about half of them.
	require.InDelta(t, 1-limits.TenantRate/p.NeededRate, float64(p.UnplannedBytes)/float64(p.Bytes), 0.05)
	for _, m := range r.Mailboxes {
		if m.Problem != nil {
			require.Equal(t, TenantLimitTooLow, m.Problem.Reason)
			require.Less(t, m.Problem.NeededHours, m.Problem.AvailableHours)
		}
	}
	t.Log(n.Problems)
}

// The night's final deltas and cutovers at a cap of 100 take longer than
// its twelve hours; at 2,000 they fit.
func TestNightWindowTooShort(t *testing.T) {
	policy := DefaultPolicy
	policy.NightCap, policy.Cutover = 100, 5*time.Minute
	boxes := weeknight(22_000, night, 3)
	r, err := Plan(boxes, DefaultLimits, policy)
	require.NoError(t, err)
	n := r.Nights[0]
	require.Len(t, n.Problems, 1)
	require.Equal(t, NightWindowTooShort, n.Problems[0].Reason)
	// Each takes at least its overhead and cutover, 7 minutes: 22,000 of
	// them 100 at a time, at least 25.7 hours.
	require.Greater(t, n.FinalHours, 22_000*7.0/60/100)
	require.Equal(t, 22_000, n.Problems[0].Mailboxes)
	t.Log(n.Problems[0].String())

	policy.NightCap = 2000
	r, err = Plan(boxes, DefaultLimits, policy)
	require.NoError(t, err)
	require.Empty(t, r.Nights[0].Problems)
	require.Less(t, r.Nights[0].FinalHours, 12.0)
}

// Incremental passes every day from the bulk pass's end until T, and a
// final delta of the change since the last.
func TestIncrementalPasses(t *testing.T) {
	policy := DefaultPolicy
	policy.Margin, policy.IncrementalEvery = 72*time.Hour, 24*time.Hour
	policy.ChangeShare, policy.ChangeBytes = 0.01, 1e6
	m := Mailbox{Key: "k", Bytes: 1e9, T: night, Notice: night.Add(-14 * 24 * time.Hour)}
	r, err := Plan([]Mailbox{m}, exact, policy)
	require.NoError(t, err)
	p := r.Mailboxes[0]
	require.Equal(t, night.Add(-72*time.Hour), p.End)
	require.Equal(t, 2, p.Incrementals) // at T-48h and T-24h
	require.Equal(t, int64(2*11e6), p.IncrementalBytes)
	require.Equal(t, int64(11e6), p.FinalDeltaBytes)
	var incr int64
	for _, d := range r.Days {
		incr += d.IncrementalBytes
	}
	require.Equal(t, p.IncrementalBytes, incr)
}

// The same mailboxes in any order give the same plan.
func TestDeterministic(t *testing.T) {
	limits := DefaultLimits
	limits.TenantRate = 3e6
	var boxes []Mailbox
	for d := range 4 {
		boxes = append(boxes, weeknight(2000, night.Add(time.Duration(d)*24*time.Hour), uint64(10+d))...)
	}
	for i := range boxes {
		boxes[i].Key = fmt.Sprintf("%s-%05d", boxes[i].Key, i)
	}
	want, err := Plan(boxes, limits, DefaultPolicy)
	require.NoError(t, err)
	require.NotZero(t, want.Infeasible, "the limit binds")
	rng := rand.New(rand.NewPCG(7, 7))
	for range 3 {
		shuffled := slices.Clone(boxes)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		got, err := Plan(shuffled, limits, DefaultPolicy)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
}

// Over random estates, limits and policies: no planned copy runs above
// the per-mailbox rate, starts before its earliest or ends after its
// deadline; at every start and end of a pass the rates in flight stay
// within the tenant's limit, and the peak is the most in flight at one of
// them; a mailbox is too large only if it is.
func TestPlanProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 1))
	for round := range 300 {
		limits := Limits{
			MailboxRate:  DefaultMailboxRate * (0.5 + rng.Float64()),
			PassOverhead: time.Duration(rng.IntN(600)) * time.Second,
			Efficiency:   0.5 + rng.Float64()/2,
		}
		if rng.IntN(4) > 0 {
			limits.TenantRate = limits.Pace() * (rng.Float64()*40 + 0.5)
		}
		policy := DefaultPolicy
		policy.StartDelay = time.Duration(rng.IntN(4)) * time.Hour
		policy.Margin = time.Duration(rng.IntN(72)) * time.Hour
		policy.AtT = rng.IntN(5) == 0
		policy.IncrementalEvery = time.Duration(rng.IntN(3)) * 12 * time.Hour
		n := 1 + rng.IntN(300)
		boxes := make([]Mailbox, n)
		for i := range boxes {
			tt := night.Add(time.Duration(rng.IntN(7*24)) * time.Hour)
			boxes[i] = Mailbox{
				Key:    fmt.Sprintf("r%d-%d", round, i),
				Bytes:  int64(math.Exp(math.Log(300e6) + 1.55*rng.NormFloat64())),
				T:      tt,
				Notice: tt.Add(-time.Duration(rng.IntN(14*24)) * time.Hour),
			}
		}
		r, err := Plan(boxes, limits, policy)
		require.NoError(t, err)
		require.Len(t, r.Mailboxes, n)

		var bounds []time.Time
		for _, m := range boxes {
			p := byKey(r, m.Key)
			earliest, deadline := m.Notice.Add(policy.StartDelay), m.T.Add(-policy.Margin)
			if policy.AtT {
				earliest, deadline = m.T, m.T.Add(policy.Window)
			}
			need := limits.PassDuration(m.Bytes)
			if policy.AtT {
				need += policy.Cutover
			}
			if p.Problem != nil {
				require.Equal(t, p.Problem.Reason == TooLargeForLeadTime, need > deadline.Sub(earliest), "%+v", p)
				continue
			}
			require.False(t, p.Start.Before(earliest), "%+v", p)
			require.False(t, p.End.After(deadline), "%+v", p)
			require.LessOrEqual(t, p.Rate, limits.MailboxRate)
			require.GreaterOrEqual(t, p.Rate*p.End.Sub(p.Start).Seconds(), float64(m.Bytes))
			bounds = append(bounds, p.Start, p.End)
		}
		peak := 0
		for _, at := range bounds {
			copies, rate := 0, 0.0
			for _, p := range r.Mailboxes {
				if p.Problem == nil && !at.Before(p.Start) && at.Before(p.End) {
					copies++
					rate += p.Rate
				}
			}
			if limits.TenantRate > 0 {
				require.LessOrEqual(t, rate, limits.TenantRate*(1+1e-9), "round %d at %s", round, at)
			}
			peak = max(peak, copies)
		}
		require.Equal(t, peak, r.PeakCopies, "round %d", round)
		for _, d := range r.Days {
			midnight, err := time.Parse(time.DateOnly, d.Date)
			require.NoError(t, err)
			want := 0
			for _, at := range append(bounds, midnight) {
				if at.Before(midnight) || !at.Before(midnight.Add(24*time.Hour)) {
					continue
				}
				copies := 0
				for _, p := range r.Mailboxes {
					if p.Problem == nil && !at.Before(p.Start) && at.Before(p.End) {
						copies++
					}
				}
				want = max(want, copies)
			}
			require.Equal(t, want, d.PeakCopies, "round %d, %s", round, d.Date)
		}
	}
}

// Nights share the tenant's limit: a weekend of 83,000 laid before
// Monday's weeknight pushes Friday's earlier, by about the time the
// weekend's bulk passes fill the lanes (83 TB at 510 MB/s: about 45
// hours, from a deadline a day after Friday's).
func TestNightsShareTheTenant(t *testing.T) {
	limits := DefaultLimits
	limits.TenantRate = 510e6
	fri := night.Add(3 * 24 * time.Hour)
	sat, mon := fri.Add(24*time.Hour), fri.Add(3*24*time.Hour)
	var boxes []Mailbox
	for i, n := range []struct {
		t     time.Time
		count int
	}{{fri, 22_000}, {sat, 83_000}, {mon, 22_000}} {
		for _, m := range weeknight(n.count, n.t, uint64(100+i)) {
			m.Key = fmt.Sprintf("%d-%s", i, m.Key)
			boxes = append(boxes, m)
		}
	}
	r, err := Plan(boxes, limits, DefaultPolicy)
	require.NoError(t, err)
	require.Zero(t, r.Infeasible)
	require.Equal(t, r.Lanes, r.PeakCopies)
	require.Len(t, r.Nights, 3)

	var satWork time.Duration
	var friEnd time.Time
	for _, m := range boxes {
		if m.T.Equal(sat) {
			satWork += limits.PassDuration(m.Bytes)
		}
		if p := byKey(r, m.Key); m.T.Equal(fri) && p.End.After(friEnd) {
			friEnd = p.End
		}
	}
	// Monday's passes end by Sunday 18:00, 24 hours after Saturday's
	// deadline, and take about 12 hours: they leave the weekend's lanes
	// alone, and the weekend's leave Friday's only what is before them.
	satSpan := satWork / time.Duration(r.Lanes)
	want := sat.Add(-DefaultPolicy.Margin).Add(-satSpan)
	require.WithinDuration(t, want, friEnd, satSpan/10)
	require.True(t, friEnd.Before(fri.Add(-DefaultPolicy.Margin)))
	t.Logf("weekend's passes %.1f h on %d lanes; Friday's last pass ends %.1f h before its deadline", satSpan.Hours(), r.Lanes, fri.Add(-DefaultPolicy.Margin).Sub(friEnd).Hours())
}

func TestPlanRefuses(t *testing.T) {
	m := Mailbox{Key: "k", Bytes: 1, T: night, Notice: night.Add(-time.Hour)}
	_, err := Plan([]Mailbox{m, m}, DefaultLimits, DefaultPolicy)
	require.ErrorContains(t, err, "listed twice")
	_, err = Plan([]Mailbox{{Key: "k", Bytes: 1, T: night}}, DefaultLimits, DefaultPolicy)
	require.ErrorContains(t, err, "notice")
	bad := DefaultLimits
	bad.Efficiency = 0
	_, err = Plan([]Mailbox{m}, bad, DefaultPolicy)
	require.ErrorContains(t, err, "efficiency")
	badPolicy := DefaultPolicy
	badPolicy.Window = 0
	_, err = Plan([]Mailbox{m}, DefaultLimits, badPolicy)
	require.ErrorContains(t, err, "window")
	r, err := Plan(nil, DefaultLimits, DefaultPolicy)
	require.NoError(t, err)
	require.Empty(t, r.Mailboxes)
}

func sizes(boxes []Mailbox) []int64 {
	out := make([]int64, len(boxes))
	for i, m := range boxes {
		out[i] = m.Bytes
	}
	return out
}

// BenchmarkPlanWeeknight plans a weeknight of 22,000 under a tenant limit
// of 510 MB/s: 36-40 ms and 12.4 MB a plan on the shared 2-core machine
// (go test -run '^$' -bench PlanWeeknight -benchtime 20x ./plan).
func BenchmarkPlanWeeknight(b *testing.B) {
	limits := DefaultLimits
	limits.TenantRate = 510e6
	boxes := weeknight(22_000, night, 1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Plan(boxes, limits, DefaultPolicy); err != nil {
			b.Fatal(err)
		}
	}
}

func TestBulkStartIsTheLatestThatEndsInTime(t *testing.T) {
	notice := time.Date(2027, 3, 1, 20, 0, 0, 0, time.UTC)
	at := notice.Add(14 * 24 * time.Hour)
	l := Limits{MailboxRate: DefaultMailboxRate, Efficiency: 1, PassOverhead: 2 * time.Minute}
	p := Policy{StartDelay: time.Hour, Margin: 24 * time.Hour}
	// 1.8 GB at 0.5 MB/s: an hour, and the overhead.
	start, late := BulkStart(1_800_000_000, notice, at, l, p)
	require.False(t, late)
	require.Equal(t, at.Add(-24*time.Hour-time.Hour-2*time.Minute), start)
	// 600 GB needs 333 h: more than the 311 h between notice+1h and T-24h.
	start, late = BulkStart(600e9, notice, at, l, p)
	require.True(t, late, "too large for the lead")
	require.Equal(t, notice.Add(time.Hour), start, "it starts at its earliest")
}

// TestANightsFirstStartIsItsEarliestPass: a night's FirstStart is the
// earliest start of its planned passes (what a pre-staged wave's spread
// must reach back to); a mailbox that cannot be done does not count.
func TestANightsFirstStartIsItsEarliestPass(t *testing.T) {
	at := time.Date(2027, 3, 15, 20, 0, 0, 0, time.UTC)
	notice := at.Add(-14 * 24 * time.Hour)
	l := Limits{MailboxRate: DefaultMailboxRate, Efficiency: 1, TenantRate: DefaultMailboxRate}
	p := Policy{Margin: 24 * time.Hour, Window: 12 * time.Hour}
	r, err := Plan([]Mailbox{
		{Key: "a", Bytes: 1_800_000_000, T: at, Notice: notice},
		{Key: "b", Bytes: 3_600_000_000, T: at, Notice: notice},
		{Key: "c", Bytes: 900e9, T: at, Notice: notice}, // 500 h: too large
	}, l, p)
	require.NoError(t, err)
	require.Len(t, r.Nights, 1)
	var want time.Time
	for _, m := range r.Mailboxes {
		if m.Problem == nil && (want.IsZero() || m.Start.Before(want)) {
			want = m.Start
		}
	}
	// One lane: the two passes (1 h and 2 h) back to back before T-24h.
	require.Equal(t, at.Add(-27*time.Hour), want)
	require.Equal(t, want, r.Nights[0].FirstStart)
}
