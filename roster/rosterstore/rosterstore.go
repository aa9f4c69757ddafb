// Package rosterstore opens the store of wave rosters (and the
// deployment's key secret fingerprint) that the starter writes and every
// worker reads, by wave ID: a directory on one host (roster/wavefile), or
// PostgreSQL for a fleet of workers on many hosts, which then share nothing
// but Temporal and this database.
package rosterstore

import (
	"context"
	"strings"

	"mailwave/roster/wavefile"
)

// Store is a roster store. Rosters are written once and read by index.
type Store interface {
	Write(ctx context.Context, waveID string, mailboxes []wavefile.Mailbox) error
	Rows(ctx context.Context, waveID string, from, to int) ([]wavefile.Mailbox, error)
	Get(ctx context.Context, waveID string, indexes []int) ([]wavefile.Mailbox, error)
	All(ctx context.Context, waveID string) ([]wavefile.Mailbox, error)
	Remove(ctx context.Context, waveID string) error
	CheckFingerprint(ctx context.Context, fp string) error
	// Where names a wave's roster for people: a path, or a table.
	Where(waveID string) string
	Close()
}

// IsPostgres reports whether spec names a PostgreSQL database.
func IsPostgres(spec string) bool {
	return strings.HasPrefix(spec, "postgres://") || strings.HasPrefix(spec, "postgresql://")
}

// Open opens the store spec names: a postgres:// URL, or a directory.
func Open(ctx context.Context, spec string) (Store, error) {
	if IsPostgres(spec) {
		return OpenPostgres(ctx, spec)
	}
	return dirStore{wavefile.NewStore(spec)}, nil
}

// dirStore is a directory of roster files.
type dirStore struct{ *wavefile.Store }

func (d dirStore) Where(waveID string) string {
	p, err := d.Path(waveID)
	if err != nil {
		return "(no roster: " + err.Error() + ")"
	}
	return p
}

func (dirStore) Close() {}
