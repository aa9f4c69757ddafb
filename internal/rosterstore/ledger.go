package rosterstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"mailwave/contract"
)

const ledgerSchema = `
CREATE TABLE IF NOT EXISTS mailwave_notice_ledger (
	key text NOT NULL,
	kind text NOT NULL,
	message_id text NOT NULL,
	sent_at timestamptz NOT NULL,
	PRIMARY KEY (key, kind)
);`

// Ledger is the SMTP notifier's record of the notices sent, in PostgreSQL,
// so that every worker of a fleet sees what any of them sent (a retry on
// another host sends nothing twice, and a cutover anywhere finds its T-14
// notice). It holds opaque keys and Message-IDs only.
type Ledger struct{ pool *pgxpool.Pool }

// OpenLedger connects and creates the table if missing.
func OpenLedger(ctx context.Context, url string) (*Ledger, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("notice ledger: %w", err)
	}
	if err := createSchema(ctx, pool, ledgerSchema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("notice ledger: creating its table: %w", err)
	}
	return &Ledger{pool: pool}, nil
}

// Close closes the pool.
func (l *Ledger) Close() { l.pool.Close() }

// Recorded returns the Message-ID recorded for the notice, or "".
func (l *Ledger) Recorded(ctx context.Context, key string, kind contract.NoticeKind) (string, error) {
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

// Record records that the notice went out with that Message-ID.
func (l *Ledger) Record(ctx context.Context, key string, kind contract.NoticeKind, messageID string, at time.Time) error {
	_, err := l.pool.Exec(ctx, `INSERT INTO mailwave_notice_ledger (key, kind, message_id, sent_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (key, kind) DO UPDATE SET message_id = EXCLUDED.message_id, sent_at = EXCLUDED.sent_at`,
		key, string(kind), messageID, at.UTC())
	if err != nil {
		return fmt.Errorf("notice ledger: %w", err)
	}
	return nil
}
