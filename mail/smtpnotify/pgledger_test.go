package smtpnotify_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/mail/port"
	"mailwave/mail/smtpnotify"
	"mailwave/roster/rosterstore"
	"mailwave/testkit/postgres"
	"mailwave/testkit/smtptest"
)

// fleetNotifier is one worker's SMTP notifier, with its own connection to
// the ledger in PostgreSQL.
func fleetNotifier(t *testing.T, ctx context.Context, pg *postgres.Server, relay *smtptest.Server) *smtpnotify.Notifier {
	t.Helper()
	l, err := smtpnotify.OpenPostgresLedger(ctx, pg.DSN("mailwave"))
	require.NoError(t, err)
	t.Cleanup(l.Close)
	n, err := smtpnotify.New(smtpnotify.Options{Host: "127.0.0.1", Port: relay.Port, Security: smtpnotify.SecurityNone,
		From: "Migration <migration@trust.example>", Ledger: l, Timeout: 5 * time.Second, HELO: "worker.test"})
	require.NoError(t, err)
	return n
}

// fleetNotice is a notice of that kind to one mailbox.
func fleetNotice(key string, kind contract.NoticeKind) port.Notice {
	return port.Notice{Mailbox: contract.MailboxRef{Key: key, Address: "jo@trust.example"}, Kind: kind,
		MessageID: contract.NoticeMessageID(key, kind), MigrateAt: time.Now().Add(14 * 24 * time.Hour)}
}

// Two workers' SMTP notifiers sharing the ledger in PostgreSQL: what one
// sent, the other neither sends again nor fails to find (the cutover's
// proof of the T-14 notice on another host).
func TestLedgerSharedByAFleet(t *testing.T) {
	pg, ctx := postgres.WithDatabase(t, "mailwave")
	relay := smtptest.Start(t, smtptest.Options{})
	a, b := fleetNotifier(t, ctx, pg, relay), fleetNotifier(t, ctx, pg, relay)
	nt := fleetNotice("k-fleet", contract.NoticeT14)

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
	pg, ctx := postgres.WithDatabase(t, "mailwave")
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
			l, err := smtpnotify.OpenPostgresLedger(ctx, pg.DSN("mailwave"))
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

// Workers of a fleet attempting the same notices at the same moment (a
// local activity run again on another worker while the first still runs):
// the ledger's claim lets one send each, the others wait while it is held
// and then find it recorded. A claim its owner left (killed mid-send)
// stops others only until it expires.
func TestLedgerClaimsOneSenderAcrossAFleet(t *testing.T) {
	pg, ctx := postgres.WithDatabase(t, "mailwave")
	relay := smtptest.Start(t, smtptest.Options{})
	var workers []*smtpnotify.Notifier
	for range 6 {
		workers = append(workers, fleetNotifier(t, ctx, pg, relay))
	}
	keys := []string{"k-race-0", "k-race-1", "k-race-2", "k-race-3", "k-race-4"}
	sent, heldSeen := smtptest.Race(t, len(workers), keys, func(w int, k string) (bool, error) {
		return workers[w].Send(ctx, fleetNotice(k, contract.NoticeSuccess))
	})
	assert.Equal(t, len(keys), len(relay.Messages()), "each notice delivered once")
	assert.Equal(t, len(keys), sent)
	t.Logf("attempts that found another worker's claim: %d", heldSeen)

	// An abandoned claim: held, then expired and taken over.
	l, err := smtpnotify.OpenPostgresLedger(ctx, pg.DSN("mailwave"))
	require.NoError(t, err)
	defer l.Close()
	// Held for 2 s: the next claim finds it held even on a loaded machine.
	recorded, err := l.Claim(ctx, "k-dead", contract.NoticeT1, "dead-host/1/0", 2*time.Second)
	require.NoError(t, err)
	assert.Empty(t, recorded)
	_, err = l.Claim(ctx, "k-dead", contract.NoticeT1, "other-host/2/0", time.Minute)
	var held *contract.NoticeClaimHeld
	require.ErrorAs(t, err, &held)
	assert.Equal(t, "dead-host/1/0", held.Owner)
	time.Sleep(2200 * time.Millisecond)
	_, err = l.Claim(ctx, "k-dead", contract.NoticeT1, "other-host/2/0", time.Minute)
	require.NoError(t, err, "expired, taken over")
	require.NoError(t, l.Record(ctx, "k-dead", contract.NoticeT1, "<id>", time.Now()))
	recorded, err = l.Claim(ctx, "k-dead", contract.NoticeT1, "third/3/0", time.Minute)
	require.NoError(t, err)
	assert.Equal(t, "<id>", recorded, "recorded: no claim needed")
	require.NoError(t, l.Release(ctx, "k-dead", contract.NoticeT1, "third/3/0"))
}
