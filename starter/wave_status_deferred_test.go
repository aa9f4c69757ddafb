package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/starter/printer"
)

// TestWaveStatusShowsDeferred: `wave status` shows the mailboxes their
// preflight deferred, by reason, apart from those needing support, and
// leaves them out of the failure rate.
func TestWaveStatusShowsDeferred(t *testing.T) {
	p := contract.WaveProgress{WaveID: "w1", Total: 10, Started: 10, Migrated: 4, NeedsSupport: 1, Deferred: 3,
		DeferredBy: []contract.ReasonCount{{Reason: contract.ErrTypeSourceLogin, Count: 1}, {Reason: contract.ErrTypeTargetNoRoom, Count: 2}}}
	st := waveStatusOf(p, nil, sourceLive, time.Now())
	assert.Equal(t, 3, st.Deferred)
	assert.Equal(t, p.DeferredBy, st.DeferredBy)
	assert.Equal(t, printer.Share(0.2), st.FailureRate, "1 of the 5 migrated or needing support")
	var b bytes.Buffer
	require.NoError(t, st.WriteText(&b))
	assert.Contains(t, b.String(), "  deferred      3 by reason: SourceLogin 1, TargetNoRoom 2\n")
}
