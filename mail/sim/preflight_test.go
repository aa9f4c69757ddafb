package sim

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/mail/port"
)

// TestPreflightRefusals: each mailbox meets the refusal its draw gives it,
// as PreflightFault says, about as often as asked; the others are measured
// from their profile; an address the estate does not have is not checked.
func TestPreflightRefusals(t *testing.T) {
	const n = 400
	dir := t.TempDir()
	_, err := Generate(dir, GenerateOptions{Seed: 11, Mailboxes: n})
	require.NoError(t, err)
	e, err := Open(dir, Options{Instant: true, Faults: Faults{
		SourceLoginRate: 0.1, TargetMissingRate: 0.1, TargetNotWritableRate: 0.1, TargetNoRoomRate: 0.1}})
	require.NoError(t, err)
	roster, err := e.Roster()
	require.NoError(t, err)
	ctx := context.Background()
	count := map[string]int{}
	for i, r := range roster {
		m := contract.MailboxRef{Key: fmt.Sprintf("k%d", i), Address: r.Address}
		p, err := e.Preflight(ctx, m)
		want := e.PreflightFault(r.Address)
		count[want]++
		if want == "" {
			require.NoError(t, err, "mailbox %d", i)
			prof, _ := e.Profile(r.Address)
			assert.Equal(t, contract.Preflight{SourceBytes: prof.Bytes, SourceMessages: prof.Messages}, p)
			continue
		}
		typ, ok := port.IsPermanent(err)
		require.True(t, ok, "mailbox %d: %v", i, err)
		assert.Equal(t, want, typ, "mailbox %d", i)
		if want == contract.ErrTypeTargetNoRoom {
			assert.True(t, p.NoRoom(), "mailbox %d: %+v", i, p)
		}
	}
	for _, reason := range contract.DeferReasons {
		assert.InDelta(t, n/10, count[reason], n/20, reason)
	}
	_, err = e.Preflight(ctx, contract.MailboxRef{Key: "ghost", Address: "nobody@org999.nhs.example"})
	assert.ErrorIs(t, err, port.ErrNoPreflight)

	_, err = Open(dir, Options{Faults: Faults{SourceLoginRate: 0.6, TargetNoRoomRate: 0.6}})
	assert.Error(t, err, "refusal rates over 1 in all")
}
