package pgschema_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/internal/pgschema"
	"mailwave/testkit/pki"
)

// The rules, checked before dialling (nothing listens on these hosts).
func TestParseRules(t *testing.T) {
	t.Setenv("PGPASSWORD", "")
	t.Setenv("PGPASSFILE", "")
	t.Setenv("PGSSLMODE", "")
	t.Setenv("PGSSLROOTCERT", "")
	t.Setenv("HOME", t.TempDir())
	dir := t.TempDir()
	pass := filepath.Join(dir, "pgpass")
	require.NoError(t, os.WriteFile(pass, []byte("*:*:*:mailwave:s3cret-password\n"), 0o600))
	ca := pki.NewCA(t, "test CA").CertFile

	for _, ok := range []string{
		"postgres://mailwave@127.0.0.1:5432/mailwave?sslmode=disable",
		"postgres://mailwave@localhost/mailwave",
		"postgres://mailwave@[::1]:5432/mailwave?sslmode=disable",
		"postgres://mailwave@/mailwave?host=/var/run/postgresql",
		"postgresql://mailwave@db.example:5432/mailwave?sslmode=verify-full&sslrootcert=" + ca + "&passfile=" + pass,
	} {
		cfg, err := pgschema.Parse(ok, "roster store")
		require.NoError(t, err, ok)
		assert.Equal(t, "mailwave", cfg.ConnConfig.User)
	}
	cfg, err := pgschema.Parse("postgres://mailwave@db.example/mailwave?sslmode=verify-full&sslrootcert="+ca+"&passfile="+pass, "roster store")
	require.NoError(t, err)
	assert.Equal(t, "s3cret-password", cfg.ConnConfig.Password, "from the password file")

	for url, want := range map[string]string{
		"postgres://mailwave@db.example/mailwave":                                       "host db.example is not on loopback, and the URL does not verify the server (sslmode=prefer, the default)",
		"postgres://mailwave@db.example/mailwave?sslmode=disable":                       "host db.example is not on loopback, and the URL does not verify the server (sslmode=disable)",
		"postgres://mailwave@db.example/mailwave?sslmode=require":                       "(sslmode=require)",
		"postgres://mailwave@db.example/mailwave?sslmode=verify-ca&sslrootcert=" + ca:   "(sslmode=verify-ca)",
		"postgres://mailwave@db.example/mailwave?sslmode=verify-full":                   "host db.example is not on loopback, and the URL names no CA file",
		"postgres://mailwave@127.0.0.1,db.example/mailwave?sslmode=prefer":              "host db.example is not on loopback",
		"postgres://mailwave:hunter2-password@db.example/mailwave?sslmode=verify-full":  "carries a password",
		"postgres://mailwave@127.0.0.1/mailwave?password=hunter2-password":              "carries a password",
		"postgres://mailwave@127.0.0.1/mailwave?passfile=" + filepath.Join(dir, "none"): "password file: stat",
		"mysql://mailwave@127.0.0.1/mailwave":                                           "want a postgres:// URL",
	} {
		_, err := pgschema.Parse(url, "roster store")
		require.Error(t, err, url)
		assert.ErrorContains(t, err, want, url)
		assert.True(t, strings.HasPrefix(err.Error(), "roster store: "), err.Error())
		assert.NotContains(t, err.Error(), "hunter2", "the password is never repeated")
		if strings.Contains(want, "loopback") {
			assert.ErrorContains(t, err, "sslmode=verify-full&sslrootcert=", "the fix is named")
		}
	}

	require.NoError(t, os.Chmod(pass, 0o640))
	_, err = pgschema.Parse("postgres://mailwave@127.0.0.1/mailwave?passfile="+pass, "roster store")
	assert.ErrorContains(t, err, "mode 0640")
	t.Setenv("PGPASSFILE", pass)
	_, err = pgschema.Parse("postgres://mailwave@127.0.0.1/mailwave", "roster store")
	assert.ErrorContains(t, err, "mode 0640", "PGPASSFILE is checked too")
	t.Setenv("PGPASSFILE", "")
	require.NoError(t, os.WriteFile(filepath.Join(os.Getenv("HOME"), ".pgpass"), []byte("*:*:*:*:x\n"), 0o644))
	_, err = pgschema.Parse("postgres://mailwave@127.0.0.1/mailwave", "roster store")
	assert.ErrorContains(t, err, "mode 0644", "and ~/.pgpass")

	t.Setenv("PGPASSWORD", "hunter2-password")
	_, err = pgschema.Parse("postgres://mailwave@127.0.0.1/mailwave", "roster store")
	assert.ErrorContains(t, err, "PGPASSWORD is set")
}

func TestRedact(t *testing.T) {
	assert.Equal(t, "postgres://mailwave:xxxxx@db.example/mailwave?sslmode=verify-full",
		pgschema.Redact("postgres://mailwave:hunter2@db.example/mailwave?sslmode=verify-full"))
	assert.NotContains(t, pgschema.Redact("postgres://mailwave@db.example/mailwave?password=hunter2"), "hunter2")
	assert.Equal(t, "postgres://mailwave@127.0.0.1/mailwave", pgschema.Redact("postgres://mailwave@127.0.0.1/mailwave"))
}

func TestProbe(t *testing.T) {
	ddl := `CREATE TABLE IF NOT EXISTS a (x int);
CREATE TABLE IF NOT EXISTS b (y int);
CREATE INDEX IF NOT EXISTS b_y ON b (y);
ALTER TABLE b ADD COLUMN IF NOT EXISTS z int;
ALTER TABLE b ADD COLUMN IF NOT EXISTS w int;`
	assert.Equal(t, []string{"a", "b"}, pgschema.Tables(ddl))
	assert.Equal(t, "SELECT * FROM a LIMIT 0;\nSELECT *, z, w FROM b LIMIT 0;\n", pgschema.Probe(ddl))
}

// The verifier has PostgreSQL's form (the real server's acceptance of it
// is tested in roster/storesetup), a fresh salt each time; a password
// outside printable ASCII is refused rather than normalised.
func TestVerifier(t *testing.T) {
	v, err := pgschema.Verifier("store-password-0123456789")
	require.NoError(t, err)
	assert.Regexp(t, `^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}:[A-Za-z0-9+/=]{44}$`, v)
	w, err := pgschema.Verifier("store-password-0123456789")
	require.NoError(t, err)
	assert.NotEqual(t, v, w)
	_, err = pgschema.Verifier("pass word")
	assert.Error(t, err)
	_, err = pgschema.Verifier("pässword")
	assert.Error(t, err)
}
