package storesetup_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/internal/pgschema"
	"mailwave/mail/smtpnotify"
	"mailwave/roster/estate"
	"mailwave/roster/rosterstore"
	"mailwave/roster/storesetup"
	"mailwave/roster/wavefile"
	"mailwave/testkit/pki"
	"mailwave/testkit/postgres"
)

// nonLoopback is this machine's first IPv4 address that is not loopback:
// the roster store's TLS rule is tested against a real remote-looking
// host. A machine without one fails the test, never skips it.
func nonLoopback(t *testing.T) string {
	ifaces, err := net.Interfaces()
	require.NoError(t, err)
	for _, i := range ifaces {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := i.Addrs()
		require.NoError(t, err)
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
				return n.IP.String()
			}
		}
	}
	t.Fatal("this machine has no IPv4 address beyond loopback to test the roster store's TLS rule on")
	return ""
}

// A private file: a pgpass line or an administrator's URL.
func private(t *testing.T, dir, name, content string) string {
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// The roster store locked down, on a real PostgreSQL that authenticates by
// password and listens with TLS on this machine's address beyond loopback:
// setup as the administrator makes mailwave's own role; the store refuses
// that host without verify-full (the server itself would take it), works
// with verify-full as that role, and the role can neither read Temporal's
// tables nor create one; a loose password file and a password in the URL
// are refused.
func TestLockedDownStore(t *testing.T) {
	addr := nonLoopback(t)
	ca := pki.NewCA(t, "store CA")
	cert := ca.ServerFor(t, "postgresql", addr)
	pg := postgres.StartWithT(t, postgres.Options{User: "postgres", Password: true, TLSCert: cert.CertFile, TLSKey: cert.KeyFile, Listen: []string{addr}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	port := strconv.Itoa(pg.Port)

	// No trust: the superuser without its password is refused, on loopback.
	empty := private(t, dir, "empty.pgpass", "")
	_, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres@127.0.0.1:%s/postgres?sslmode=disable&passfile=%s", port, url.QueryEscape(empty)))
	require.Error(t, err, "a connection without a password")

	// Temporal's database, as the production shape makes it: its own role
	// owning its own tables.
	require.NoError(t, pg.Exec(ctx, "postgres", "CREATE ROLE temporal LOGIN CREATEDB PASSWORD 'temporal-password'"))
	require.NoError(t, pg.Exec(ctx, "postgres", "CREATE DATABASE temporal OWNER temporal"))
	require.NoError(t, pg.Exec(ctx, "temporal", "SET ROLE temporal; CREATE TABLE executions (shard_id int, namespace_id bytea, data bytea); INSERT INTO executions VALUES (1, 'x', 'history')"))

	// The administrator's URL in a private file, its password in it.
	super, err := os.ReadFile(pg.PassFile)
	require.NoError(t, err)
	superPW := strings.TrimSpace(string(super[strings.LastIndex(string(super), ":")+1:]))
	adminFile := private(t, dir, "admin-url", fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%s/postgres?sslmode=disable\n", superPW, port))
	passfile := private(t, dir, "mailwave.pgpass", fmt.Sprintf("*:%s:mailwave:mailwave:%s\n", port, "store-password-0123456789"))
	q := url.Values{"sslmode": {"verify-full"}, "sslrootcert": {ca.CertFile}, "passfile": {passfile}}
	store := fmt.Sprintf("postgres://mailwave@%s/mailwave?%s", net.JoinHostPort(addr, port), q.Encode())

	res, err := storesetup.Run(ctx, adminFile, store)
	require.NoError(t, err)
	assert.True(t, res.RoleCreated)
	assert.True(t, res.DBCreated)
	assert.Contains(t, res.Tables, "mailwave_rosters")
	assert.Contains(t, res.Tables, "mailwave_notice_ledger")
	again, err := storesetup.Run(ctx, adminFile, store)
	require.NoError(t, err, "setup again is harmless")
	assert.False(t, again.RoleCreated)

	// Plain text, or TLS without verifying the server, to a host beyond
	// loopback: refused before dialling, naming the host and the fix,
	// though the server itself would take the connection.
	for _, mode := range []string{"disable", "prefer", "require", "verify-ca"} {
		plain := url.Values{"sslmode": {mode}, "sslrootcert": {ca.CertFile}, "passfile": {passfile}}
		u := fmt.Sprintf("postgres://mailwave@%s/mailwave?%s", net.JoinHostPort(addr, port), plain.Encode())
		_, err := rosterstore.Open(ctx, u)
		require.Error(t, err, mode)
		assert.ErrorContains(t, err, "host "+addr+" is not on loopback", mode)
		assert.ErrorContains(t, err, "sslmode=verify-full", mode)
	}
	cfg, err := pgx.ParseConfig(fmt.Sprintf("postgres://mailwave@%s/mailwave?sslmode=disable&passfile=%s", net.JoinHostPort(addr, port), url.QueryEscape(passfile)))
	require.NoError(t, err)
	raw, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err, "the server takes plain text from this host: the refusal is mailwave's own")
	require.NoError(t, raw.Close(ctx))
	noCA := url.Values{"sslmode": {"verify-full"}, "passfile": {passfile}}
	_, err = rosterstore.Open(ctx, fmt.Sprintf("postgres://mailwave@%s/mailwave?%s", net.JoinHostPort(addr, port), noCA.Encode()))
	assert.ErrorContains(t, err, "names no CA file")

	// verify-full, as mailwave's own role: it works.
	rosters, err := rosterstore.Open(ctx, store)
	require.NoError(t, err)
	defer rosters.Close()
	mailboxes := []wavefile.Mailbox{{Index: 0, Key: "k0", Address: "a@trust.example", Org: "trust", DisplayName: "Ann"}}
	require.NoError(t, rosters.Write(ctx, "night-1", mailboxes))
	got, err := rosters.All(ctx, "night-1")
	require.NoError(t, err)
	assert.Equal(t, mailboxes, got)
	require.NoError(t, rosters.CheckFingerprint(ctx, "0123456789abcdef"))
	est, err := estate.Open(ctx, store)
	require.NoError(t, err)
	defer est.Close()
	imp, err := est.Import(ctx, []estate.Mailbox{{Key: "k0", Address: "a@trust.example", Org: "trust"}}, time.Now())
	require.NoError(t, err, "the estate's import makes a temporary table")
	assert.Equal(t, 1, imp.Added)
	ledger, err := smtpnotify.OpenPostgresLedger(ctx, store)
	require.NoError(t, err)
	ledger.Close()

	// The role, connected, may not read Temporal's tables, nor create a
	// table in its own database.
	mcfg, err := pgschema.Parse(store, "test")
	require.NoError(t, err)
	own, err := pgx.ConnectConfig(ctx, mcfg.ConnConfig)
	require.NoError(t, err)
	defer func() { _ = own.Close(ctx) }()
	var super2 bool
	require.NoError(t, own.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super2))
	assert.False(t, super2)
	_, err = own.Exec(ctx, "CREATE TABLE mailwave_extra (x int)")
	assert.Equal(t, "42501", pgCode(err), "no CREATE in its own database: %v", err)
	tcfg := mcfg.ConnConfig.Copy()
	tcfg.Database = "temporal"
	tconn, err := pgx.ConnectConfig(ctx, tcfg)
	if err == nil {
		// PUBLIC may connect to Temporal's database (PostgreSQL's default):
		// its tables are still closed.
		defer func() { _ = tconn.Close(ctx) }()
		var n int
		err = tconn.QueryRow(ctx, "SELECT count(*) FROM executions").Scan(&n)
	}
	require.Error(t, err)
	assert.Equal(t, "42501", pgCode(err), "permission denied for Temporal's table: %v", err)

	// A right taken away: the store says so at open and names setup, which
	// mends it.
	require.NoError(t, pg.Exec(ctx, "mailwave", "REVOKE SELECT ON mailwave_waves FROM mailwave"))
	_, err = rosterstore.Open(ctx, store)
	assert.ErrorContains(t, err, "role mailwave may not use its tables")
	assert.ErrorContains(t, err, "starter store setup")
	_, err = storesetup.Run(ctx, adminFile, store)
	require.NoError(t, err)
	mended, err := rosterstore.Open(ctx, store)
	require.NoError(t, err)
	mended.Close()

	// A password file group or others may read: refused before dialling.
	require.NoError(t, os.Chmod(passfile, 0o644))
	_, err = rosterstore.Open(ctx, store)
	assert.ErrorContains(t, err, "mode 0644")
	assert.ErrorContains(t, err, "chmod 600")
	require.NoError(t, os.Chmod(passfile, 0o600))

	// A password in the URL: refused, and not repeated.
	withPW := strings.Replace(store, "mailwave@", "mailwave:store-password-0123456789@", 1)
	_, err = rosterstore.Open(ctx, withPW)
	require.Error(t, err)
	assert.ErrorContains(t, err, "carries a password")
	assert.NotContains(t, err.Error(), "store-password-0123456789")
	t.Setenv("PGPASSWORD", "store-password-0123456789")
	_, err = rosterstore.Open(ctx, store)
	assert.ErrorContains(t, err, "PGPASSWORD is set")
}

// Setup refuses, before connecting anywhere: an administrator's file that
// others may read or that holds no URL, mailwave's role the
// administrator's, and a role without a password in its file.
func TestSetupRefusals(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	t.Setenv("PGPASSFILE", "")
	t.Setenv("PGPASSWORD", "")
	passfile := private(t, dir, "mailwave.pgpass", "*:*:mailwave:mailwave:store-password-0123456789\n")
	store := "postgres://mailwave@127.0.0.1:1/mailwave?sslmode=disable&passfile=" + url.QueryEscape(passfile)

	admin := private(t, dir, "admin", "postgres://postgres:admin-password@127.0.0.1:1/postgres?sslmode=disable\n")
	require.NoError(t, os.Chmod(admin, 0o644))
	_, err := storesetup.Run(ctx, admin, store)
	assert.ErrorContains(t, err, "mode 0644")

	notURL := private(t, dir, "not-url", "host=127.0.0.1 user=postgres\n")
	_, err = storesetup.Run(ctx, notURL, store)
	assert.ErrorContains(t, err, "want one postgres:// URL")

	same := private(t, dir, "same", "postgres://mailwave:admin-password@127.0.0.1:1/postgres?sslmode=disable\n")
	_, err = storesetup.Run(ctx, same, store)
	assert.ErrorContains(t, err, "the store's role mailwave is the administrator's")

	remote := private(t, dir, "remote", "postgres://postgres:admin-password@db.example:5432/postgres?sslmode=require\n")
	_, err = storesetup.Run(ctx, remote, store)
	assert.ErrorContains(t, err, "host db.example is not on loopback", "the administrator's connection keeps the TLS rule too")
	assert.NotContains(t, err.Error(), "admin-password")

	good := private(t, dir, "good", "postgres://postgres:admin-password@127.0.0.1:1/postgres?sslmode=disable\n")
	nopw := private(t, dir, "other.pgpass", "*:*:other:other:x\n")
	_, err = storesetup.Run(ctx, good, "postgres://mailwave@127.0.0.1:1/mailwave?sslmode=disable&passfile="+url.QueryEscape(nopw))
	assert.ErrorContains(t, err, "no password for role mailwave")
}
