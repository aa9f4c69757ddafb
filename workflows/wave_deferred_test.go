package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
)

// TestWaveCountsDeferredApart: mailboxes their preflight deferred at T-14
// are counted by reason, apart from those needing support, take no slot,
// and do not count against the error budget: a third of the wave deferred
// does not pause it.
func TestWaveCountsDeferredApart(t *testing.T) {
	h := newWaveHarness(t, 90, 10)
	h.in.ErrorBudget, h.in.ErrorMinSample = 0.02, 20
	T := h.in.MigrateAt.Sub(h.start)
	deferred := map[int]bool{}
	for i := 0; i < 90; i += 3 {
		reason := contract.ErrTypeTargetNoRoom
		if i%9 == 0 {
			reason = contract.ErrTypeSourceLogin
		}
		deferred[i] = true
		h.ops = append(h.ops, op{at: T - 14*24*time.Hour + time.Duration(i)*time.Second, name: contract.SignalMailboxDone,
			arg: contract.MailboxDone{Index: i, Key: keyOfIndex(i), Outcome: contract.OutcomeDeferred, Step: contract.StepPreflight, ErrorType: reason}})
	}
	h.ops = append(h.ops, op{at: T - 24*time.Hour, name: queryOp}, op{at: T + 30*time.Minute, name: queryOp})
	res := h.run()

	require.Len(t, h.progress, 2)
	before := h.progress[0]
	assert.Equal(t, 30, before.Deferred)
	assert.Equal(t, []contract.ReasonCount{{Reason: contract.ErrTypeSourceLogin, Count: 10}, {Reason: contract.ErrTypeTargetNoRoom, Count: 20}},
		before.DeferredBy, "by reason, sorted")
	assert.Zero(t, before.NeedsSupport)
	assert.Equal(t, 60, before.Waiting, "the deferred are not waiting for a slot")
	assert.False(t, h.progress[1].Paused, "deferred mailboxes are not in the error budget")

	assert.Equal(t, 60, res.Migrated)
	assert.Equal(t, 30, res.Deferred)
	assert.Zero(t, res.NeedsSupport)
	assert.Zero(t, res.Cancelled, "a deferred mailbox is not counted cancelled")
	assert.Equal(t, before.DeferredBy, res.DeferredBy)
	for _, g := range h.grants {
		assert.False(t, deferred[g.index], "mailbox %d was deferred, yet granted a slot", g.index)
	}
	assert.Len(t, h.grants, 60)
	last := h.published[len(h.published)-1]
	assert.Equal(t, 30, last.Deferred, "and published in the memo for wave status")
}
