package activities

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/roster/estate"
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
	spread, shape, err := nightSpread(ms, in)
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
		spread, shape, err := nightSpread(ms, in)
		require.NoError(t, err, name)
		assert.Zero(t, spread, name)
		assert.Nil(t, shape, name)
	}
}
