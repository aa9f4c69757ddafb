package activities

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/roster/estate"
	"mailwave/roster/wavefile"
)

// TestANightsSpreadIsPlannedFromItsSizes: 220 mailboxes of 1 GB under a
// tenant limit of 10 copies at once take 22 rounds of a 39-minute pass:
// the first passes begin 14.3 h before T-margin. Without a tenant
// limit, with a spread given, or without pre-staging, none is planned; a
// mailbox of unknown size is planned at 1 GB.
func TestANightsSpreadIsPlannedFromItsSizes(t *testing.T) {
	T := time.Date(2026, 12, 21, 20, 0, 0, 0, time.UTC)
	var ms []estate.Mailbox
	for i := range 220 {
		size := int64(1e9)
		if i%2 == 0 {
			size = 0 // not known: planned at the mean
		}
		ms = append(ms, estate.Mailbox{Key: fmt.Sprintf("k%03d", i), SizeBytes: size})
	}
	p := &contract.Prestage{MailboxRate: 0.5e6, Efficiency: 0.9, PassOverhead: 2 * time.Minute, Margin: 24 * time.Hour,
		StartDelay: time.Hour, Cap: 100, TenantRate: 10 * 0.45e6}
	in := ChooseNightInput{MigrateAt: T, Lead: 14 * 24 * time.Hour, Prestage: p}
	spread, shape, err := nightSpread(ms, nil, in)
	require.NoError(t, err)
	secs := 1e9 / 0.45e6
	pass := time.Duration(secs*float64(time.Second)) + 2*time.Minute
	assert.InDelta(t, (22 * pass).Hours(), spread.Hours(), 0.01, "22 rounds, the last ending at T-margin")
	// Ten passes a round, every round a 22nd of the spread: its shape
	// steps by rounds, from 0 to the last round's 21/22.
	require.Len(t, shape, contract.MaxPrestageShape)
	assert.Zero(t, shape[0])
	assert.InDelta(t, 21.0/22, shape[len(shape)-1], 1e-3)
	assert.InDelta(t, 11.0/22, shape[len(shape)/2], 1e-3)
	require.NoError(t, (&contract.Prestage{MailboxRate: 0.5e6, Efficiency: 0.9, Margin: time.Hour, Cap: 1, Spread: spread, Shape: shape}).Validate())

	for name, q := range map[string]*contract.Prestage{
		"no pre-staging": nil,
		"spread given":   {MailboxRate: 0.5e6, Efficiency: 0.9, Margin: 24 * time.Hour, Cap: 1, TenantRate: 4.5e6, Spread: time.Hour},
		"no tenant":      {MailboxRate: 0.5e6, Efficiency: 0.9, Margin: 24 * time.Hour, Cap: 1},
	} {
		in.Prestage = q
		spread, shape, err := nightSpread(ms, nil, in)
		require.NoError(t, err, name)
		assert.Zero(t, spread, name)
		assert.Nil(t, shape, name)
	}
}

// TestANightIsPlannedAfterTheNightsBeforeIt: a schedule's Saturday night
// of 300 mailboxes of 2 GB, chosen and still to be copied, takes the
// tenant's 10 lanes for the 37 h before its T-24h; Sunday's night, chosen
// a day later, plans its passes around Saturday's: its spread is longer
// than alone, by what Saturday takes of its window. A night of another
// schedule on the Saturday is not read.
func TestANightIsPlannedAfterTheNightsBeforeIt(t *testing.T) {
	ctx := context.Background()
	est, err := estate.OpenDir(t.TempDir())
	require.NoError(t, err)
	defer est.Close()
	var ms []estate.Mailbox
	for i := range 900 {
		ms = append(ms, estate.Mailbox{Key: fmt.Sprintf("key-%04d", i), Address: fmt.Sprintf("user%04d@org.example", i),
			Org: "org", DisplayName: "User", SizeBytes: 2e9})
	}
	now := time.Now()
	_, err = est.Import(ctx, ms, now)
	require.NoError(t, err)
	require.NoError(t, est.SetOrg(ctx, estate.Org{Name: "org", State: estate.Ready, Reason: "pilot passed", By: "test", Since: now}))
	a := NewProgramme(nil, est, wavefile.NewStore(t.TempDir()), nil)

	p := &contract.Prestage{MailboxRate: 0.5e6, Efficiency: 0.9, PassOverhead: 2 * time.Minute, Margin: 24 * time.Hour,
		StartDelay: time.Hour, Cap: 100, TenantRate: 10 * 0.45e6}
	sat := now.Add(5 * 24 * time.Hour).UTC().Truncate(time.Second)
	sun := sat.Add(24 * time.Hour)
	choose := func(schedule string, at time.Time) ChooseNightResult {
		in := ChooseNightInput{WaveID: contract.NightWaveID(schedule, at), MigrateAt: at, Schedule: schedule, N: 300, Seed: 1,
			Zone: "UTC", Lead: 14 * 24 * time.Hour, Prestage: p}
		res, err := a.ChooseNight(ctx, in)
		require.NoError(t, err)
		require.Equal(t, 300, res.Chosen)
		return res
	}
	alone := choose("nights", sat)
	require.Len(t, alone.Shape, contract.MaxPrestageShape)
	secs := 2e9 / 0.45e6
	pass := time.Duration(secs*float64(time.Second)) + 2*time.Minute
	assert.InDelta(t, (30 * pass).Hours(), alone.Spread.Hours(), 0.01, "Saturday alone: 30 rounds of 10")
	// A night of another schedule on the Saturday takes nothing from
	// Sunday's plan.
	choose("rehearsal", sat)

	after := choose("nights", sun)
	// Sunday's 30 rounds go into the 24 h after Saturday's deadline, and
	// the rest before Saturday's 30 rounds: 30 + 30 rounds back from its
	// deadline, but for the 24 h gap's part-round.
	assert.Greater(t, after.Spread, alone.Spread+24*time.Hour)
	assert.InDelta(t, (60 * pass).Hours(), after.Spread.Hours(), pass.Hours()+0.01)
	require.NoError(t, (&contract.Prestage{MailboxRate: 0.5e6, Efficiency: 0.9, Margin: 24 * time.Hour, Cap: 1,
		Spread: after.Spread, Shape: after.Shape}).Validate())
	// Sunday's shape leaves Saturday's lanes: none of its passes begins
	// between Saturday's first and its deadline less a pass.
	satFirst := sat.Add(-24 * time.Hour).Add(-alone.Spread)
	from := sun.Add(-24 * time.Hour).Add(-after.Spread)
	for j, f := range after.Shape {
		at := from.Add(time.Duration(f * float64(after.Spread)))
		inside := at.After(satFirst.Add(time.Minute)) && at.Before(sat.Add(-24*time.Hour).Add(-pass))
		assert.False(t, inside, "Sunday's point %d begins at %s, among Saturday's passes (%s to %s)", j, at, satFirst, sat.Add(-24*time.Hour))
	}
}
