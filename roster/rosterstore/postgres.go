package rosterstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"mailwave/contract"
	"mailwave/internal/pgschema"
	"mailwave/roster/wavefile"
)

// Schema is created if missing. A roster row is the mailbox at an index of
// a wave; the deployment table holds the key secret fingerprint.
const Schema = `
CREATE TABLE IF NOT EXISTS mailwave_rosters (
	wave_id text NOT NULL,
	idx integer NOT NULL,
	key text NOT NULL,
	address text NOT NULL,
	org text NOT NULL DEFAULT '',
	display_name text NOT NULL DEFAULT '',
	PRIMARY KEY (wave_id, idx)
);
CREATE TABLE IF NOT EXISTS mailwave_waves (
	wave_id text PRIMARY KEY,
	total integer NOT NULL,
	written_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS mailwave_deployment (
	singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	key_fingerprint text NOT NULL
);`

// Postgres is a roster store in PostgreSQL.
type Postgres struct{ pool *pgxpool.Pool }

// OpenPostgres connects and creates the tables if missing.
func OpenPostgres(ctx context.Context, url string) (*Postgres, error) {
	pool, err := pgschema.Open(ctx, url, Schema, "roster store")
	if err != nil {
		return nil, err
	}
	return &Postgres{pool: pool}, nil
}

// Close closes the pool.
func (p *Postgres) Close() { p.pool.Close() }

// Where names the roster.
func (p *Postgres) Where(waveID string) string {
	return fmt.Sprintf("table mailwave_rosters, wave_id %s", waveID)
}

func checkID(waveID string) error {
	if !contract.ValidWaveID(waveID) {
		return fmt.Errorf("wave ID %.80q: %s", waveID, contract.WaveIDRule)
	}
	return nil
}

// Write stores a wave's roster in one transaction; a wave's roster is
// written once (the error of a second write matches fs.ErrExist).
func (p *Postgres) Write(ctx context.Context, waveID string, mailboxes []wavefile.Mailbox) error {
	if err := checkID(waveID); err != nil {
		return err
	}
	for i, m := range mailboxes {
		if m.Index != i {
			return fmt.Errorf("roster of wave %s: mailbox at position %d has index %d", waveID, i, m.Index)
		}
	}
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO mailwave_waves (wave_id, total) VALUES ($1, $2)`, waveID, len(mailboxes))
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" {
			return fmt.Errorf("roster of wave %s: a wave's roster is never rewritten: %w", waveID, fs.ErrExist)
		}
		if err != nil {
			return fmt.Errorf("roster of wave %s: %w", waveID, err)
		}
		rows := make([][]any, len(mailboxes))
		for i, m := range mailboxes {
			rows[i] = []any{waveID, m.Index, m.Key, m.Address, m.Org, m.DisplayName}
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"mailwave_rosters"},
			[]string{"wave_id", "idx", "key", "address", "org", "display_name"}, pgx.CopyFromRows(rows))
		if err != nil {
			return fmt.Errorf("roster of wave %s: %w", waveID, err)
		}
		return nil
	})
}

// total is the wave's roster size, or an error matching fs.ErrNotExist.
func (p *Postgres) total(ctx context.Context, waveID string) (int, error) {
	if err := checkID(waveID); err != nil {
		return 0, err
	}
	var n int
	err := p.pool.QueryRow(ctx, `SELECT total FROM mailwave_waves WHERE wave_id = $1`, waveID).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("no roster of wave %s in the roster store: %w", waveID, fs.ErrNotExist)
	}
	if err != nil {
		return 0, fmt.Errorf("roster store: %w", err)
	}
	return n, nil
}

func (p *Postgres) query(ctx context.Context, sql string, args ...any) ([]wavefile.Mailbox, error) {
	rows, err := p.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("roster store: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (wavefile.Mailbox, error) {
		var m wavefile.Mailbox
		err := r.Scan(&m.Index, &m.Key, &m.Address, &m.Org, &m.DisplayName)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("roster store: %w", err)
	}
	return out, nil
}

const columns = `idx, key, address, org, display_name`

// Rows returns the wave's mailboxes from index from (inclusive) to to.
func (p *Postgres) Rows(ctx context.Context, waveID string, from, to int) ([]wavefile.Mailbox, error) {
	n, err := p.total(ctx, waveID)
	if err != nil {
		return nil, err
	}
	if from < 0 || to > n || to < from {
		return nil, fmt.Errorf("roster of wave %s has %d rows: rows %d to %d: %w", waveID, n, from, to, wavefile.ErrOutOfRange)
	}
	return p.query(ctx, `SELECT `+columns+` FROM mailwave_rosters WHERE wave_id = $1 AND idx >= $2 AND idx < $3 ORDER BY idx`, waveID, from, to)
}

// Get returns the wave's mailboxes at the given indexes, in that order.
func (p *Postgres) Get(ctx context.Context, waveID string, indexes []int) ([]wavefile.Mailbox, error) {
	n, err := p.total(ctx, waveID)
	if err != nil {
		return nil, err
	}
	for _, i := range indexes {
		if i < 0 || i >= n {
			return nil, fmt.Errorf("roster of wave %s has %d rows: index %d: %w", waveID, n, i, wavefile.ErrOutOfRange)
		}
	}
	found, err := p.query(ctx, `SELECT `+columns+` FROM mailwave_rosters WHERE wave_id = $1 AND idx = ANY($2)`, waveID, indexes)
	if err != nil {
		return nil, err
	}
	byIndex := make(map[int]wavefile.Mailbox, len(found))
	for _, m := range found {
		byIndex[m.Index] = m
	}
	out := make([]wavefile.Mailbox, len(indexes))
	for j, i := range indexes {
		m, ok := byIndex[i]
		if !ok {
			return nil, fmt.Errorf("roster of wave %s lacks row %d", waveID, i)
		}
		out[j] = m
	}
	return out, nil
}

// All returns every mailbox of the wave's roster.
func (p *Postgres) All(ctx context.Context, waveID string) ([]wavefile.Mailbox, error) {
	n, err := p.total(ctx, waveID)
	if err != nil {
		return nil, err
	}
	return p.Rows(ctx, waveID, 0, n)
}

// Remove deletes a wave's roster; one already gone is not an error.
func (p *Postgres) Remove(ctx context.Context, waveID string) error {
	if err := checkID(waveID); err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM mailwave_rosters WHERE wave_id = $1`, waveID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM mailwave_waves WHERE wave_id = $1`, waveID)
		return err
	})
}

// CheckFingerprint records fp as the deployment's key secret fingerprint
// if none is yet, and refuses another.
func (p *Postgres) CheckFingerprint(ctx context.Context, fp string) error {
	if _, err := p.pool.Exec(ctx, `INSERT INTO mailwave_deployment (key_fingerprint) VALUES ($1) ON CONFLICT DO NOTHING`, fp); err != nil {
		return fmt.Errorf("roster store: %w", err)
	}
	var got string
	if err := p.pool.QueryRow(ctx, `SELECT key_fingerprint FROM mailwave_deployment`).Scan(&got); err != nil {
		return fmt.Errorf("roster store: %w", err)
	}
	if got != fp {
		return fmt.Errorf("the key secret's fingerprint is %s, but this deployment began with %s (table mailwave_deployment): "+
			"mailbox keys made with another secret would not match the mailboxes already started; use the deployment's secret", fp, got)
	}
	return nil
}
