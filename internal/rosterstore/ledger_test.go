package rosterstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/activities"
	"mailwave/contract"
	"mailwave/internal/rosterstore"
	"mailwave/internal/testkit/postgres"
	"mailwave/internal/testkit/smtptest"
	"mailwave/mail/smtpnotify"
)

// Two workers' SMTP notifiers sharing the ledger in PostgreSQL: what one
// sent, the other neither sends again nor fails to find (the cutover's
// proof of the T-14 notice on another host).
func TestLedgerSharedByAFleet(t *testing.T) {
	pg := postgres.StartT(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, pg.Exec(ctx, "postgres", "CREATE DATABASE mailwave"))
	relay := smtptest.Start(t, smtptest.Options{})
	notifier := func() *smtpnotify.Notifier {
		l, err := rosterstore.OpenLedger(ctx, pg.DSN("mailwave"))
		require.NoError(t, err)
		t.Cleanup(l.Close)
		n, err := smtpnotify.New(smtpnotify.Options{Host: "127.0.0.1", Port: relay.Port, Security: smtpnotify.SecurityNone,
			From: "Migration <migration@trust.example>", Ledger: l, Timeout: 5 * time.Second, HELO: "worker.test"})
		require.NoError(t, err)
		return n
	}
	a, b := notifier(), notifier()
	nt := activities.Notice{Mailbox: contract.MailboxRef{Key: "k-fleet", Address: "jo@trust.example"}, Kind: contract.NoticeT14,
		MessageID: contract.NoticeMessageID("k-fleet", contract.NoticeT14), MigrateAt: time.Now().Add(14 * 24 * time.Hour)}

	sent, err := b.Sent(ctx, "k-fleet", contract.NoticeT14)
	require.NoError(t, err)
	assert.False(t, sent)
	already, err := a.Send(ctx, nt)
	require.NoError(t, err)
	assert.False(t, already)
	already, err = b.Send(ctx, nt) // the retry, on another worker
	require.NoError(t, err)
	assert.True(t, already)
	assert.Len(t, relay.Messages(), 1, "delivered once across the fleet")
	sent, err = b.Sent(ctx, "k-fleet", contract.NoticeT14)
	require.NoError(t, err)
	assert.True(t, sent)
	sent, err = b.Sent(ctx, "k-fleet", contract.NoticeT1)
	require.NoError(t, err)
	assert.False(t, sent)
}

// A fleet's workers start together: each creates the missing tables of the
// roster store and the ledger at once, and none fails on another's.
func TestAFleetCreatesTheTablesTogether(t *testing.T) {
	pg := postgres.StartT(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, pg.Exec(ctx, "postgres", "CREATE DATABASE mailwave"))
	errs := make(chan error, 16)
	for range 8 {
		go func() {
			s, err := rosterstore.Open(ctx, pg.DSN("mailwave"))
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
		go func() {
			l, err := rosterstore.OpenLedger(ctx, pg.DSN("mailwave"))
			if err == nil {
				l.Close()
			}
			errs <- err
		}()
	}
	for range 16 {
		assert.NoError(t, <-errs)
	}
}
