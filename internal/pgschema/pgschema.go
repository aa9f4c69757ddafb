// Package pgschema creates mailwave's tables in a PostgreSQL database that
// every worker of a fleet shares, connects to it under the rules of
// dial.go, and sets up its own least-privilege role (setup.go).
package pgschema

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// lock is the advisory lock held while creating tables.
const lock = 0x6d61696c77617665 // "mailwave"

// Open connects a pool to url (see Parse) and creates the tables ddl makes
// if they are missing; what names the store in errors ("roster store").
// Where the tables are there already (`starter store setup` made them),
// nothing is created: mailwave's own role may read and write its tables
// but not create any.
func Open(ctx context.Context, url, ddl, what string) (*pgxpool.Pool, error) {
	cfg, err := Parse(url, what)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := ensure(ctx, pool, ddl); err != nil {
		pool.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return pool, nil
}

// ensure probes the tables ddl makes and creates them if one (or a column)
// is missing.
func ensure(ctx context.Context, pool *pgxpool.Pool, ddl string) error {
	_, err := pool.Exec(ctx, Probe(ddl))
	var pe *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pe) && pe.Code == "42501": // insufficient_privilege
		return fmt.Errorf("role %s may not use its tables (%s): a database administrator runs `starter store setup` (docs/fleet.md)",
			pool.Config().ConnConfig.User, pe.Message)
	case errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "42703"): // undefined table or column
	default:
		return err
	}
	err = Create(ctx, pool, ddl)
	if errors.As(err, &pe) && pe.Code == "42501" {
		return fmt.Errorf("its tables are missing or out of date, and role %s may not create them (%s): a database administrator runs `starter store setup` (docs/fleet.md)",
			pool.Config().ConnConfig.User, pe.Message)
	}
	if err != nil {
		return fmt.Errorf("creating its tables: %w", err)
	}
	return nil
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

var (
	createTable = regexp.MustCompile(`(?i)CREATE TABLE IF NOT EXISTS (\w+)`)
	addColumn   = regexp.MustCompile(`(?i)ALTER TABLE (\w+) ADD COLUMN IF NOT EXISTS (\w+)`)
)

// Tables are the tables ddl creates, in its order.
func Tables(ddl string) []string {
	var out []string
	for _, m := range createTable.FindAllStringSubmatch(ddl, -1) {
		out = append(out, m[1])
	}
	return out
}

// Probe is a statement that fails if a table ddl creates, or a column it
// adds later, is missing, or may not be read: it reads no rows.
func Probe(ddl string) string {
	cols := map[string][]string{}
	for _, m := range addColumn.FindAllStringSubmatch(ddl, -1) {
		cols[m[1]] = append(cols[m[1]], m[2])
	}
	var b strings.Builder
	for _, t := range Tables(ddl) {
		list := "*"
		if c := cols[t]; len(c) > 0 {
			list = "*, " + strings.Join(c, ", ")
		}
		fmt.Fprintf(&b, "SELECT %s FROM %s LIMIT 0;\n", list, t)
	}
	return b.String()
}
