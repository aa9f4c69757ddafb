package plan

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// oneLane is the documented budget at full efficiency, no overhead, and a
// tenant of one lane; hours is what a pass of h hours moves at its pace.
var oneLane = Limits{MailboxRate: DefaultMailboxRate, Efficiency: 1, TenantRate: DefaultMailboxRate}

func hours(h float64) int64 { return int64(h * 3600 * DefaultMailboxRate) }

var dayMargin = Policy{Margin: 24 * time.Hour, Window: 12 * time.Hour}

func told(key string, h float64, t time.Time) Mailbox {
	return Mailbox{Key: key, Bytes: hours(h), T: t, Notice: t.Add(-14 * 24 * time.Hour)}
}

func TestPlanAfterNothingBeforeIsPlan(t *testing.T) {
	limits := DefaultLimits
	limits.TenantRate = 51e6
	ms := weeknight(2_000, night, 7)
	want, err := Plan(ms, limits, DefaultPolicy)
	require.NoError(t, err)
	got, before, err := PlanAfter(nil, ms, limits, DefaultPolicy)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Empty(t, before.Mailboxes)
}

// One lane. The night before has two passes of 10 h, back to back before
// its deadline. The night's pass of 10 h, due 5 h after that, would alone
// begin 10 h before its deadline, where the night before is copying:
// after it, it goes before both of those passes, 35 h before its deadline.
// Due 15 h after, it fits in the 15 h they leave free.
func TestPlanAfterLaysPassesAroundTheNightsBefore(t *testing.T) {
	tA := night
	earlier := []Mailbox{told("a1", 10, tA), told("a2", 10, tA)}
	for _, c := range []struct {
		after  time.Duration
		spread time.Duration
	}{{5 * time.Hour, 35 * time.Hour}, {15 * time.Hour, 10 * time.Hour}} {
		tB := tA.Add(c.after)
		r, before, err := PlanAfter(earlier, []Mailbox{told("b", 10, tB)}, oneLane, dayMargin)
		require.NoError(t, err)
		require.Len(t, before.Mailboxes, 2)
		require.Len(t, r.Mailboxes, 1)
		require.Zero(t, r.Infeasible)
		require.Equal(t, c.spread, r.Nights[0].Spread(dayMargin.Margin).Round(time.Second), "due %s after", c.after)
		for _, a := range before.Mailboxes {
			b := r.Mailboxes[0]
			require.False(t, b.Start.Before(a.End) && a.Start.Before(b.End), "b %s-%s overlaps %s %s-%s", b.Start, b.End, a.Key, a.Start, a.End)
		}
	}
}

// One lane: the night before's pass of 10 h ends at its deadline, 24 h
// before the night's. The night's 30 h pass goes before it; its 5 h pass,
// laid after the longer, still takes the free 24 h nearest its deadline.
func TestPlanAfterAShorterPassTakesTheGapALongerOneSkipped(t *testing.T) {
	tA := night
	tB := tA.Add(24 * time.Hour)
	r, _, err := PlanAfter([]Mailbox{told("a", 10, tA)}, []Mailbox{told("b1", 30, tB), told("b2", 5, tB)}, oneLane, dayMargin)
	require.NoError(t, err)
	require.Zero(t, r.Infeasible)
	dB := tB.Add(-dayMargin.Margin)
	b1, b2 := byKey(r, "b1"), byKey(r, "b2")
	require.Equal(t, dB.Add(-64*time.Hour), b1.Start.Round(time.Second), "before a")
	require.Equal(t, dB.Add(-5*time.Hour), b2.Start.Round(time.Second), "in the gap after a")
	require.Equal(t, 64*time.Hour, r.Nights[0].Spread(dayMargin.Margin).Round(time.Second))
}

// Passes of the nights before that end before the night's earliest start
// take nothing from it: its plan is Plan's.
func TestPlanAfterPassesLongBeforeTakeNothing(t *testing.T) {
	limits := DefaultLimits
	limits.TenantRate = 51e6
	ms := weeknight(2_000, night, 7)
	var earlier []Mailbox
	for _, m := range weeknight(2_000, night.Add(-20*24*time.Hour), 8) {
		m.Key = "before-" + m.Key
		earlier = append(earlier, m)
	}
	want, err := Plan(ms, limits, DefaultPolicy)
	require.NoError(t, err)
	got, before, err := PlanAfter(earlier, ms, limits, DefaultPolicy)
	require.NoError(t, err)
	require.Len(t, before.Mailboxes, 2_000)
	require.Equal(t, want.Nights, got.Nights)
	for i := range want.Mailboxes {
		require.Equal(t, want.Mailboxes[i].Start, got.Mailboxes[i].Start, want.Mailboxes[i].Key)
	}
}

func TestPlanAfterWithNoRoomLeftIsTooLowATenantLimit(t *testing.T) {
	tA := night
	earlier := []Mailbox{told("a", 20, tA)}
	// Told 40 h before T: 16 h before its deadline, all taken by a's pass.
	b := told("b", 10, tA.Add(time.Hour))
	b.Notice = b.T.Add(-40 * time.Hour)
	r, _, err := PlanAfter(earlier, []Mailbox{b}, oneLane, dayMargin)
	require.NoError(t, err)
	require.Equal(t, 1, r.Infeasible)
	require.Equal(t, TenantLimitTooLow, r.Mailboxes[0].Problem.Reason)
}

func TestPlanAfterRefusesWhatPlanRefuses(t *testing.T) {
	_, _, err := PlanAfter(nil, []Mailbox{{Key: "", Bytes: 1, T: night, Notice: night}}, oneLane, dayMargin)
	require.ErrorContains(t, err, "no key")
	_, _, err = PlanAfter([]Mailbox{{Key: "a", Bytes: -1, T: night, Notice: night}}, []Mailbox{told("b", 1, night)}, oneLane, dayMargin)
	require.ErrorContains(t, err, "the nights before: plan: mailbox a: -1 bytes")
}

// A weekend at 1:10, as a calendar launches it: Saturday's 8,300
// mailboxes planned alone when chosen, then Sunday's, chosen a day later.
// Each night's passes ask the tenant's pool where the mailbox workflow
// puts them, by its night's spread and shape; the pool is simulated as it
// grants (nearest T first, a pass keeps its place to its end). Sunday
// planned alone, its passes queue behind Saturday's and end after their
// deadline (T-24h); planned after Saturday, none does.
func TestPlanAfterKeepsAWeekendInTimeInThePool(t *testing.T) {
	limits := DefaultLimits
	limits.TenantRate = 51e6
	policy := DefaultPolicy
	sat := night.Add(4 * 24 * time.Hour)
	sun := sat.Add(24 * time.Hour)
	boxes := func(prefix string, at time.Time, seed uint64) []Mailbox {
		var out []Mailbox
		for _, m := range weeknight(8_300, at, seed) {
			m.Key = prefix + m.Key
			out = append(out, m)
		}
		return out
	}
	satBoxes, sunBoxes := boxes("sat-", sat, 61), boxes("sun-", sun, 62)
	satPlan, err := Plan(satBoxes, limits, policy)
	require.NoError(t, err)
	sunAlone, err := Plan(sunBoxes, limits, policy)
	require.NoError(t, err)
	sunAfter, before, err := PlanAfter(satBoxes, sunBoxes, limits, policy)
	require.NoError(t, err)
	require.Equal(t, satPlan, before)
	require.Zero(t, sunAfter.Infeasible)

	requests := func(boxes []Mailbox, r Result) []poolRequest {
		n := r.Nights[0]
		return passesAsked(boxes, n.Spread(policy.Margin), r.Shape(n.T, policy.Margin, 64), limits, policy)
	}
	late := func(sunPlan Result) (satLate, sunLate int, worst time.Duration) {
		for _, r := range simulatePool(append(requests(satBoxes, satPlan), requests(sunBoxes, sunPlan)...), satPlan.Lanes) {
			worst = max(worst, r.end.Sub(r.deadline))
			if r.end.After(r.deadline) {
				if r.t.Equal(sat) {
					satLate++
				} else {
					sunLate++
				}
			}
		}
		return satLate, sunLate, worst
	}
	aloneSat, aloneSun, aloneWorst := late(sunAlone)
	afterSat, afterSun, afterWorst := late(sunAfter)
	t.Logf("Sunday's spread %.1f h alone, %.1f h after Saturday", sunAlone.Nights[0].Spread(policy.Margin).Hours(), sunAfter.Nights[0].Spread(policy.Margin).Hours())
	t.Logf("passes after their deadline, Saturday's and Sunday's (the latest): alone %d, %d (%.1f h); after %d, %d (%.1f h)",
		aloneSat, aloneSun, aloneWorst.Hours(), afterSat, afterSun, afterWorst.Hours())
	require.Greater(t, aloneSun, 1000, "alone, Sunday's passes queue behind Saturday's")
	require.Less(t, afterSun, 83, "after Saturday, under 1 % of Sunday's")
	require.Less(t, afterSat+afterSun, (aloneSat+aloneSun)/10)
}

// BenchmarkPlanAfterThirteenNights plans a weeknight of 22,000 after the
// thirteen nights before it at the programme's full size (two weekends of
// 83,000: 469,000 mailboxes) under 510 MB/s, 1,133 lanes, as ChooseNight
// does (go test -run '^$' -bench PlanAfterThirteenNights -benchtime 1x
// ./plan).
func BenchmarkPlanAfterThirteenNights(b *testing.B) {
	limits := DefaultLimits
	limits.TenantRate = 510e6
	var earlier []Mailbox
	for k := range 13 {
		n := 22_000
		if k%7 == 5 || k%7 == 6 {
			n = 83_000
		}
		for _, m := range weeknight(n, night.Add(time.Duration(k)*24*time.Hour), uint64(k)) {
			m.Key = fmt.Sprintf("%02d-%s", k, m.Key)
			earlier = append(earlier, m)
		}
	}
	boxes := weeknight(22_000, night.Add(13*24*time.Hour), 99)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := PlanAfter(earlier, boxes, limits, DefaultPolicy); err != nil {
			b.Fatal(err)
		}
	}
}
