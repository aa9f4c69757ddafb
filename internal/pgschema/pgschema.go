// Package pgschema creates mailwave's tables in a PostgreSQL database that
// every worker of a fleet shares.
package pgschema

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// lock is the advisory lock held while creating tables.
const lock = 0x6d61696c77617665 // "mailwave"

// Open connects a pool to url and creates the tables ddl makes if they are
// missing; what names the store in errors ("roster store").
func Open(ctx context.Context, url, ddl, what string) (*pgxpool.Pool, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := Create(ctx, pool, ddl); err != nil {
		pool.Close()
		return nil, fmt.Errorf("%s: creating its tables: %w", what, err)
	}
	return pool, nil
}

// Create runs the statements creating missing tables under an advisory
// lock: a fleet's workers start together, and PostgreSQL's CREATE TABLE IF
// NOT EXISTS fails on a race with its own twin.
func Create(ctx context.Context, pool *pgxpool.Pool, ddl string) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(lock)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, ddl)
		return err
	})
}
