package smtpnotify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"mailwave/contract"
	"mailwave/internal/pgschema"
)

// LedgerSchema is the ledger's tables, created if missing.
const LedgerSchema = `
CREATE TABLE IF NOT EXISTS mailwave_notice_ledger (
	key text NOT NULL,
	kind text NOT NULL,
	message_id text NOT NULL,
	sent_at timestamptz NOT NULL,
	PRIMARY KEY (key, kind)
);
CREATE TABLE IF NOT EXISTS mailwave_notice_claims (
	key text NOT NULL,
	kind text NOT NULL,
	owner text NOT NULL,
	until timestamptz NOT NULL,
	PRIMARY KEY (key, kind)
);`

// PostgresLedger is the SMTP notifier's record of the notices sent, in PostgreSQL,
// so that every worker of a fleet sees what any of them sent (a retry on
// another host sends nothing twice, and a cutover anywhere finds its T-14
// notice). It holds opaque keys and Message-IDs only.
type PostgresLedger struct{ pool *pgxpool.Pool }

// OpenPostgresLedger connects and creates the table if missing.
func OpenPostgresLedger(ctx context.Context, url string) (*PostgresLedger, error) {
	pool, err := pgschema.Open(ctx, url, LedgerSchema, "notice ledger")
	if err != nil {
		return nil, err
	}
	return &PostgresLedger{pool: pool}, nil
}

// Close closes the pool.
func (l *PostgresLedger) Close() { l.pool.Close() }

// Recorded returns the Message-ID recorded for the notice, or "".
func (l *PostgresLedger) Recorded(ctx context.Context, key string, kind contract.NoticeKind) (string, error) {
	var id string
	err := l.pool.QueryRow(ctx, `SELECT message_id FROM mailwave_notice_ledger WHERE key = $1 AND kind = $2`, key, string(kind)).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("notice ledger: %w", err)
	}
	return id, nil
}

// Claim takes the claim to send the notice for owner, for lease, unless
// the notice is recorded (its Message-ID is returned) or another owner's
// claim has not expired (a *contract.NoticeClaimHeld error). An owner's own
// claim is renewed; an expired one is taken over. Expiry is judged by the
// database's clock, so the workers' clocks need not agree.
func (l *PostgresLedger) Claim(ctx context.Context, key string, kind contract.NoticeKind, owner string, lease time.Duration) (string, error) {
	var recorded string
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		// The claim first, in one statement: of two workers claiming at
		// once, the second waits on the row the first inserted and then
		// sees its live claim. The ledger is read after it, so a record
		// committed (and its claim dropped) just before is seen.
		var holder string
		var until time.Time
		err := tx.QueryRow(ctx, `INSERT INTO mailwave_notice_claims AS c (key, kind, owner, until)
			VALUES ($1, $2, $3, now() + make_interval(secs => $4))
			ON CONFLICT (key, kind) DO UPDATE SET owner = EXCLUDED.owner, until = EXCLUDED.until
				WHERE c.owner = EXCLUDED.owner OR c.until < now()
			RETURNING owner`, key, string(kind), owner, lease.Seconds()).Scan(&holder)
		if errors.Is(err, pgx.ErrNoRows) {
			if err := tx.QueryRow(ctx, `SELECT owner, until FROM mailwave_notice_claims WHERE key = $1 AND kind = $2`,
				key, string(kind)).Scan(&holder, &until); err != nil {
				return err
			}
			return &contract.NoticeClaimHeld{Owner: holder, Until: until}
		}
		if err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `SELECT message_id FROM mailwave_notice_ledger WHERE key = $1 AND kind = $2`, key, string(kind)).Scan(&recorded)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return nil
		case err != nil:
			return err
		}
		// Sent already: no claim is needed.
		_, err = tx.Exec(ctx, `DELETE FROM mailwave_notice_claims WHERE key = $1 AND kind = $2`, key, string(kind))
		return err
	})
	var held *contract.NoticeClaimHeld
	switch {
	case errors.As(err, &held):
		return "", err
	case err != nil:
		return "", fmt.Errorf("notice ledger: %w", err)
	}
	return recorded, nil
}

// Release gives up owner's claim on a notice that was not sent.
func (l *PostgresLedger) Release(ctx context.Context, key string, kind contract.NoticeKind, owner string) error {
	_, err := l.pool.Exec(ctx, `DELETE FROM mailwave_notice_claims WHERE key = $1 AND kind = $2 AND owner = $3`, key, string(kind), owner)
	if err != nil {
		return fmt.Errorf("notice ledger: %w", err)
	}
	return nil
}

// Record records that the notice went out with that Message-ID, and drops
// its claim, in one transaction.
func (l *PostgresLedger) Record(ctx context.Context, key string, kind contract.NoticeKind, messageID string, at time.Time) error {
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO mailwave_notice_ledger (key, kind, message_id, sent_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (key, kind) DO UPDATE SET message_id = EXCLUDED.message_id, sent_at = EXCLUDED.sent_at`,
			key, string(kind), messageID, at.UTC()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM mailwave_notice_claims WHERE key = $1 AND kind = $2`, key, string(kind))
		return err
	})
	if err != nil {
		return fmt.Errorf("notice ledger: %w", err)
	}
	return nil
}
