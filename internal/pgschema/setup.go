package pgschema

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"
)

// SetupResult says what Setup did.
type SetupResult struct {
	Role, Database string
	RoleCreated    bool // else its password was set again
	DBCreated      bool
	Tables         []string
}

// Setup makes mailwave's database ready for its own role, as a database
// administrator: admin is the administrator's URL (it may carry a
// password: it is read from a secret file), store the URL mailwave will
// connect with (its user is the role, its database the database, its
// password file the role's password). It creates the role (LOGIN, no
// other attribute; its password sent as a SCRAM-SHA-256 verifier, so
// the server's log never holds it) or sets its password again; creates
// the database if missing, which only the role (and the administrator)
// may then connect to; creates the tables of ddls, owned by the
// administrator; and grants the role exactly what mailwave does with
// them: SELECT, INSERT, UPDATE and DELETE on those tables, temporary
// tables (the estate's import), and nothing else: no CREATE anywhere.
// Running it again is harmless.
func Setup(ctx context.Context, admin, store string, ddls ...string) (SetupResult, error) {
	var res SetupResult
	acfg, err := parse(admin, "the administrator's connection", true)
	if err != nil {
		return res, err
	}
	scfg, err := Parse(store, "the store's connection")
	if err != nil {
		return res, err
	}
	role, db, pw := scfg.ConnConfig.User, scfg.ConnConfig.Database, scfg.ConnConfig.Password
	res.Role, res.Database = role, db
	switch {
	case role == "" || db == "":
		return res, errors.New("the store's URL names no user or no database (postgres://ROLE@HOST:PORT/DATABASE?passfile=...)")
	case role == acfg.ConnConfig.User:
		return res, fmt.Errorf("the store's role %s is the administrator's: mailwave needs a role of its own", role)
	case db == acfg.ConnConfig.Database:
		return res, fmt.Errorf("connect the administrator to another database than the store's (%s), e.g. postgres", db)
	case pw == "":
		return res, fmt.Errorf("no password for role %s in its password file (the store URL's passfile= or PGPASSFILE): write its line there first", role)
	}
	verifier, err := Verifier(pw)
	if err != nil {
		return res, fmt.Errorf("role %s's password: %w", role, err)
	}
	conn, err := pgx.ConnectConfig(ctx, acfg.ConnConfig)
	if err != nil {
		return res, fmt.Errorf("the administrator's connection: %w", err)
	}
	defer func() { _ = conn.Close(ctx) }()
	r, d := pgx.Identifier{role}.Sanitize(), pgx.Identifier{db}.Sanitize()
	var super bool
	err = conn.QueryRow(ctx, `SELECT rolsuper FROM pg_roles WHERE rolname = $1`, role).Scan(&super)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		res.RoleCreated = true
		_, err = conn.Exec(ctx, `CREATE ROLE `+r+` LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS PASSWORD '`+verifier+`'`)
	case err == nil && super:
		return res, fmt.Errorf("role %s is a superuser: mailwave's role must be its own, with rights on its tables only", role)
	case err == nil:
		_, err = conn.Exec(ctx, `ALTER ROLE `+r+` LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS PASSWORD '`+verifier+`'`)
	}
	if err != nil {
		return res, fmt.Errorf("role %s: %w", role, err)
	}
	var one int
	err = conn.QueryRow(ctx, `SELECT 1 FROM pg_database WHERE datname = $1`, db).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		res.DBCreated = true
		_, err = conn.Exec(ctx, `CREATE DATABASE `+d)
	}
	if err != nil {
		return res, fmt.Errorf("database %s: %w", db, err)
	}
	for _, sql := range []string{
		`REVOKE ALL ON DATABASE ` + d + ` FROM PUBLIC`,
		`GRANT CONNECT, TEMPORARY ON DATABASE ` + d + ` TO ` + r,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return res, fmt.Errorf("database %s: %w", db, err)
		}
	}

	// The tables, in the store's database, as the administrator.
	acfg.ConnConfig.Database = db
	in, err := pgx.ConnectConfig(ctx, acfg.ConnConfig)
	if err != nil {
		return res, fmt.Errorf("the administrator's connection to %s: %w", db, err)
	}
	defer func() { _ = in.Close(ctx) }()
	var tables []string
	for _, ddl := range ddls {
		tables = append(tables, Tables(ddl)...)
	}
	res.Tables = tables
	err = pgx.BeginFunc(ctx, in, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(lock)); err != nil {
			return err
		}
		for _, ddl := range ddls {
			if _, err := tx.Exec(ctx, ddl); err != nil {
				return err
			}
		}
		quoted := make([]string, len(tables))
		for i, t := range tables {
			quoted[i] = pgx.Identifier{t}.Sanitize()
		}
		for _, sql := range []string{
			`REVOKE ALL ON SCHEMA public FROM PUBLIC`,
			`GRANT USAGE ON SCHEMA public TO ` + r,
			`REVOKE ALL ON ALL TABLES IN SCHEMA public FROM ` + r,
			`GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE ` + strings.Join(quoted, ", ") + ` TO ` + r,
		} {
			if _, err := tx.Exec(ctx, sql); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("the tables in %s: %w", db, err)
	}
	return res, nil
}

// Verifier is the SCRAM-SHA-256 verifier PostgreSQL stores for
// password (RFC 5802, RFC 7677; the form libpq's PQencryptPasswordConn
// makes): the server is told the verifier, never the password.
// PostgreSQL SASLprep-normalises a password; a printable ASCII one is its
// own normal form, and mailwave's are made of openssl rand, so others are
// refused rather than normalised here.
func Verifier(password string) (string, error) {
	for _, c := range password {
		if c < 0x21 || c > 0x7e {
			return "", errors.New("use printable ASCII without spaces (e.g. openssl rand -hex 24)")
		}
	}
	const iterations = 4096
	salt := make([]byte, 16)
	if _, err := io.ReadFull(rand.Reader, salt); err != nil {
		return "", err
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", err
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	stored := sha256.Sum256(mac(salted, "Client Key"))
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(stored[:]), b64(mac(salted, "Server Key"))), nil
}
