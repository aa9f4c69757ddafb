package imapcopy_test

import (
	"context"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/mail/imapcopy"
	"mailwave/mail/port"
	"mailwave/testkit/dovecot"
	"mailwave/testkit/imaptest"
	"mailwave/testkit/throttleproxy"
)

// lateAppendCopy copies the standard account with the target behind a
// proxy that holds the third APPEND at a reset and delivers it after the
// next attempt's scan of INBOX, over one lane; it returns the last
// attempt's error and the stats of them all.
func lateAppendCopy(t *testing.T, p pair) (contract.CopyStats, error) {
	t.Helper()
	px, err := throttleproxy.Start(p.tgt.Addr(), throttleproxy.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { px.Close() })
	c := p.copier(t, func(o *imapcopy.Options) {
		o.Target = imapcopy.Endpoint{Host: px.Host(), Port: px.Port(), Security: imapcopy.SecurityNone}
		o.Lanes, o.NoMultiAppend = 1, true
	})
	delivered := px.Inject(throttleproxy.Fault{Kind: throttleproxy.DeliverLate, At: 3, After: isScan})
	var cp contract.Checkpoint
	var total contract.CopyStats
	for attempt := 1; attempt <= 10; attempt++ {
		stats, err := c.Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk, Checkpoint: cp,
			Progress: func(c contract.Checkpoint, _ contract.CopyStats) { cp = c }})
		total = total.Add(stats)
		if _, permanent := port.IsPermanent(err); err == nil || permanent {
			select {
			case <-delivered:
			case <-time.After(5 * time.Second):
				t.Fatal("the held APPEND was never delivered")
			}
			return total, err
		}
	}
	t.Fatal("the copy never ended")
	return total, nil
}

// countIDs counts a folder's messages by Message-ID.
func countIDs(msgs []imaptest.Message, folder string) map[string]int {
	out := map[string]int{}
	for _, m := range msgs {
		if m.Folder == folder {
			out[m.MessageID]++
		}
	}
	return out
}

// TestMailOnTheTargetBeforeTheCopyIsNeverADuplicate: the user's own INBOX
// on the target already holds the source's first message twice. The copy
// makes a duplicate of its own (an APPEND delivered late) and removes it,
// and leaves the user's two copies: they were there before the copy.
func TestMailOnTheTargetBeforeTheCopyIsNeverADuplicate(t *testing.T) {
	p := startPair(t)
	p.seed(t)
	_, msgs := imaptest.StandardSeed()
	tc, err := imaptest.Dial(p.tgt.Addr(), user, password)
	require.NoError(t, err)
	require.NoError(t, imaptest.Seed(tc, []imaptest.SeedMessage{msgs[0], msgs[0]}, nil))
	tc.Close()

	stats, err := lateAppendCopy(t, p)
	require.NoError(t, err)
	assert.Positive(t, stats.Duplicates, "the copy's own duplicate was found and removed")

	src, tgt := snapshot(t, p.src), snapshot(t, p.tgt)
	want := countIDs(src, "INBOX")
	first := imaptest.Expected(msgs[:1])[0].MessageID
	want[first]++ // the user's second copy stays
	assert.Equal(t, want, countIDs(tgt, "INBOX"), "INBOX: the source's messages once each, and the user's own second copy")
	assert.Len(t, tgt, len(src)+1)
}

// TestDuplicatesATargetCannotExpungeFailTheVerification: a target without
// UIDPLUS cannot expunge one message without the user's other \Deleted
// ones, so the copy's duplicate is left there and the verification fails
// for good, naming the count.
func TestDuplicatesATargetCannotExpungeFailTheVerification(t *testing.T) {
	p := startPairWith(t, nil, func(o *dovecot.Options) {
		o.IMAPCapability = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ NAMESPACE SPECIAL-USE MULTIAPPEND"
	})
	p.seed(t)
	_, err := lateAppendCopy(t, p)
	typ, permanent := port.IsPermanent(err)
	require.True(t, permanent, "%v", err)
	assert.Equal(t, contract.ErrTypeVerifyMismatch, typ)
	assert.Contains(t, err.Error(), "0 of 16 source messages")
	assert.Contains(t, err.Error(), "1 extra copies of source messages")
	assert.Contains(t, err.Error(), "no UIDPLUS")
	assert.NotContains(t, err.Error(), "@", "no address in the error")
	// INBOX (where it failed) holds the source's messages and one twice.
	src, tgt := countIDs(snapshot(t, p.src), "INBOX"), countIDs(snapshot(t, p.tgt), "INBOX")
	extra := 0
	for id, n := range tgt {
		assert.GreaterOrEqual(t, n, src[id], "message %q", id)
		extra += n - src[id]
	}
	assert.Len(t, tgt, len(src), "no message the source lacks")
	assert.Equal(t, 1, extra, "the duplicate is left, and nothing else touched")

}

// TestDifferentMessagesOfOneSizeAndDateAreNeverTakenForOne: two messages
// without a Message-ID, of the same size and INTERNALDATE but different
// text, are copied; then the user deletes one at the source, and puts a
// third such message of their own on the target. The delta pass removes
// nothing: none of them is a copy of another.
func TestDifferentMessagesOfOneSizeAndDateAreNeverTakenForOne(t *testing.T) {
	p := startPair(t)
	date := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	raw := func(text string) []byte {
		return []byte("From: a@example.com\r\nSubject: same size\r\n\r\n" + text + "\r\n")
	}
	a, b, u := raw("text A"), raw("text B"), raw("text U")
	require.Equal(t, len(a), len(u))
	sc, err := imaptest.Dial(p.src.Addr(), user, password)
	require.NoError(t, err)
	defer sc.Close()
	require.NoError(t, imaptest.Seed(sc, []imaptest.SeedMessage{
		{Folder: "INBOX", Raw: a, InternalDate: date}, {Folder: "INBOX", Raw: b, InternalDate: date},
	}, nil))
	c := p.copier(t, nil)
	var cp contract.Checkpoint
	_, err = c.Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk,
		Progress: func(c contract.Checkpoint, _ contract.CopyStats) { cp = c }})
	require.NoError(t, err)

	// A is deleted at the source; U arrives on the target.
	_, err = sc.Select("INBOX", nil).Wait()
	require.NoError(t, err)
	require.NoError(t, sc.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close())
	require.NoError(t, sc.Expunge().Close())
	tc, err := imaptest.Dial(p.tgt.Addr(), user, password)
	require.NoError(t, err)
	require.NoError(t, imaptest.Seed(tc, []imaptest.SeedMessage{{Folder: "INBOX", Raw: u, InternalDate: date}}, nil))
	tc.Close()

	stats, err := c.Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassDelta, Checkpoint: cp})
	require.NoError(t, err)
	assert.Zero(t, stats.Duplicates)
	assert.Len(t, snapshot(t, p.tgt), 3, "A, B and U are all still on the target")
}
