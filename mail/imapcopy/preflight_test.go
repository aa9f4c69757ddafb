package imapcopy_test

import (
	"context"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/mail/imapcopy"
	"mailwave/mail/port"
	"mailwave/testkit/dovecot"
	"mailwave/testkit/imaptest"
)

// TestPreflightAgainstDovecot checks mailboxes before their notice against
// real servers: a good one is measured (its size and messages as the
// source's index lists them, the messages over the limit counted), and a
// bad source credential, a target without the mailbox and a target whose
// quota leaves no room are each refused with their reason.
func TestPreflightAgainstDovecot(t *testing.T) {
	// Each mailbox's name is its key and its user on both servers.
	names := []string{"good", "badcred", "nomailbox", "full", "roomy"}
	var srcUsers, tgtUsers []dovecot.User
	for _, n := range names {
		srcUsers = append(srcUsers, dovecot.User{Name: n, Password: n + "-pw"})
		switch n {
		case "nomailbox":
			continue // not provisioned at the target
		case "full":
			tgtUsers = append(tgtUsers, dovecot.User{Name: n, Password: n + "-pw", QuotaBytes: 8 << 10})
		case "roomy":
			tgtUsers = append(tgtUsers, dovecot.User{Name: n, Password: n + "-pw", QuotaBytes: 64 << 20})
		default:
			tgtUsers = append(tgtUsers, dovecot.User{Name: n, Password: n + "-pw"})
		}
	}
	src := dovecot.StartT(t, dovecot.Options{Users: srcUsers, Plaintext: true})
	tgt := dovecot.StartT(t, dovecot.Options{Users: tgtUsers, Plaintext: true})
	// A source without STATUS=SIZE: the sizes are read message by message.
	plain := dovecot.StartT(t, dovecot.Options{Users: srcUsers[:1], Plaintext: true,
		IMAPCapability: "IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE IDLE NAMESPACE UIDPLUS SPECIAL-USE"})

	folders, msgs := imaptest.StandardSeed()
	for _, s := range []struct {
		srv  *dovecot.Server
		name string
	}{{src, "good"}, {src, "badcred"}, {src, "nomailbox"}, {src, "full"}, {src, "roomy"}, {plain, "good"}} {
		cl, err := imaptest.Dial(s.srv.Addr(), s.name, s.name+"-pw")
		require.NoError(t, err)
		require.NoError(t, imaptest.Seed(cl, msgs, folders))
		cl.Close()
	}
	// What the source's index says, and a limit with some messages over it.
	cl, err := imaptest.Dial(src.Addr(), "good", "good-pw")
	require.NoError(t, err)
	snap, err := imaptest.Snapshot(cl)
	cl.Close()
	require.NoError(t, err)
	var total int64
	sizes := make([]int64, len(snap))
	for i, m := range snap {
		total += m.Size
		sizes[i] = m.Size
	}
	sort.Slice(sizes, func(i, j int) bool { return sizes[i] < sizes[j] })
	limit := sizes[len(sizes)*3/4]
	var over int64
	for _, s := range sizes {
		if s > limit {
			over++
		}
	}
	require.Positive(t, over)

	copier := func(source *dovecot.Server) *imapcopy.Copier {
		c, err := imapcopy.New(imapcopy.Options{
			Source: endpoint(source), Target: endpoint(tgt), MaxMessageBytes: limit,
			Credentials: func(_ context.Context, side imapcopy.Side, m contract.MailboxRef) (imapcopy.Credentials, error) {
				pw := m.Key + "-pw"
				if m.Key == "badcred" && side == imapcopy.Source {
					pw = "not-the-password"
				}
				return imapcopy.Credentials{Mechanism: imapcopy.MechPlain, Username: m.Key, Password: pw}, nil
			},
		})
		require.NoError(t, err)
		return c
	}
	ref := func(name string) contract.MailboxRef {
		return contract.MailboxRef{Key: name, Address: name + "@trust.nhs.example"}
	}
	ctx := context.Background()
	c := copier(src)

	t.Run("good", func(t *testing.T) {
		p, err := c.Preflight(ctx, ref("good"))
		require.NoError(t, err)
		assert.Equal(t, contract.Preflight{SourceBytes: total, SourceMessages: int64(len(snap)), Oversize: over, OversizeLimit: limit}, p,
			"no quota at the target: its room unknown, and no reason to stop")
		q, err := copier(plain).Preflight(ctx, ref("good"))
		require.NoError(t, err)
		assert.Equal(t, p, q, "read message by message where STATUS=SIZE is not offered: the same figures")
	})
	t.Run("room known", func(t *testing.T) {
		p, err := c.Preflight(ctx, ref("roomy"))
		require.NoError(t, err)
		assert.True(t, p.RoomKnown)
		assert.Equal(t, int64(64<<20), p.TargetRoom, "the quota's whole limit: the test message was removed")
	})
	for _, tc := range []struct{ name, reason string }{
		{"badcred", contract.ErrTypeSourceLogin},
		{"nomailbox", contract.ErrTypeTargetMissing},
		{"full", contract.ErrTypeTargetNoRoom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := c.Preflight(ctx, ref(tc.name))
			typ, ok := port.IsPermanent(err)
			require.True(t, ok, "a definite cannot-go, not retried: %v", err)
			assert.Equal(t, tc.reason, typ, "%v", err)
			assert.NotContains(t, err.Error(), "@", "no address in the error")
			if tc.name == "full" {
				assert.Equal(t, total, p.SourceBytes, "the source was measured before the target refused")
			}
		})
	}
}
