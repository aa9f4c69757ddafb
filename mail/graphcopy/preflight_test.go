package graphcopy_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/mail/port"
	"mailwave/testkit/imaptest"
)

// TestPreflightIntoGraph: a mailbox Graph has is measured at the source
// (the IMAP copier's reading) with its room unknown, which stops nothing;
// one Graph does not know is refused as missing at the target.
func TestPreflightIntoGraph(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	p, err := e.copier.Preflight(ctx, mailbox)
	require.NoError(t, err)
	cl, err := imaptest.Dial(e.src.Addr(), user, password)
	require.NoError(t, err)
	snap, err := imaptest.Snapshot(cl)
	cl.Close()
	require.NoError(t, err)
	var total int64
	for _, m := range snap {
		total += m.Size
	}
	assert.Equal(t, int64(len(snap)), p.SourceMessages)
	assert.Equal(t, total, p.SourceBytes)
	assert.False(t, p.RoomKnown, "no quota read from Graph")

	_, err = e.copier.Preflight(ctx, contract.MailboxRef{Key: "k-nobody", Address: "nobody@trust.nhs.example"})
	typ, ok := port.IsPermanent(err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, contract.ErrTypeTargetMissing, typ, "%v", err)
}
