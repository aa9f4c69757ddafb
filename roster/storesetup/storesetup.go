// Package storesetup sets up mailwave's PostgreSQL database for its own
// least-privilege role: every table the roster store, the estate and the
// notice ledger keep (internal/pgschema.Setup does the work).
package storesetup

import (
	"context"
	"fmt"
	"strings"

	"mailwave/internal/pgschema"
	"mailwave/internal/secretfile"
	"mailwave/mail/smtpnotify"
	"mailwave/roster/estate"
	"mailwave/roster/rosterstore"
)

// Schemas are the statements creating every table of mailwave's database.
func Schemas() []string {
	return []string{rosterstore.Schema, estate.Schema, smtpnotify.LedgerSchema}
}

// Run sets the database up as the administrator whose connection URL is
// in adminFile (a secret file: mode-checked; it may carry the password),
// for mailwave's connection URL store (see pgschema.Setup).
func Run(ctx context.Context, adminFile, store string) (pgschema.SetupResult, error) {
	b, err := secretfile.Read(adminFile)
	if err != nil {
		return pgschema.SetupResult{}, fmt.Errorf("the administrator's connection file: %w", err)
	}
	admin := strings.TrimSpace(string(b))
	if !rosterstore.IsPostgres(admin) {
		return pgschema.SetupResult{}, fmt.Errorf("the administrator's connection file %s: want one postgres:// URL", adminFile)
	}
	return pgschema.Setup(ctx, admin, store, Schemas()...)
}
