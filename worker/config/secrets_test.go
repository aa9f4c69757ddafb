package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSecretEnv(t *testing.T) {
	assert.Equal(t, "MAILWAVE_SECRET_IMAP_SRC", SecretEnv("imap-src"))
	assert.Equal(t, "MAILWAVE_SECRET_OAUTH_JO_SMITH", SecretEnv("oauth-jo.smith"))
	assert.Equal(t, "MAILWAVE_SECRET_CAF_", SecretEnv("café"))
}

func TestSecretsLookup(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "secrets.yaml", "imap-src: from-file\nsmtp-pw: 'hunter2'\npin: 0123\nempty: ''\n")
	f := &File{Path: "mailwave.yaml", SecretsFile: filepath.Join(dir, "secrets.yaml")}
	t.Setenv("MAILWAVE_SECRET_IMAP_SRC", "from-env")
	t.Setenv("MAILWAVE_SECRET_SMTP_PW", "") // empty counts as unset

	s, err := f.Secrets()
	require.NoError(t, err)

	v, err := s.Lookup("imap-src")
	require.NoError(t, err)
	assert.Equal(t, "from-env", v, "the environment beats the file")

	v, err = s.Lookup("smtp-pw")
	require.NoError(t, err)
	assert.Equal(t, "hunter2", v)

	v, err = s.Lookup("pin")
	require.NoError(t, err)
	assert.Equal(t, "0123", v, "the value's text as written, not a number")

	_, err = s.Lookup("dir-token")
	require.EqualError(t, err, `secret "dir-token" not found: environment variable MAILWAVE_SECRET_DIR_TOKEN is unset and `+
		f.SecretsFile+` does not name it`)

	_, err = s.Lookup("empty")
	require.EqualError(t, err, `secret "empty" is empty in `+f.SecretsFile+` and environment variable MAILWAVE_SECRET_EMPTY is unset`)
}

func TestSecretsWithoutFile(t *testing.T) {
	s, err := (&File{Path: "mailwave.yaml"}).Secrets()
	require.NoError(t, err)
	t.Setenv("MAILWAVE_SECRET_A", "x")
	v, err := s.Lookup("a")
	require.NoError(t, err)
	assert.Equal(t, "x", v)
	_, err = s.Lookup("b")
	require.EqualError(t, err, `secret "b" not found: environment variable MAILWAVE_SECRET_B is unset and no secrets_file is configured`)
}

func TestSecretsFileProblemsHideValues(t *testing.T) {
	dir := t.TempDir()
	p := write(t, dir, "secrets.yaml", "a: [sekrit-one]\nb: {x: sekrit-two}\na: again\n")
	_, err := (&File{SecretsFile: p}).Secrets()
	require.Error(t, err)
	assert.Equal(t, p+":1: a: the value must be a string\n"+
		p+":2: b: the value must be a string\n"+
		p+":3: a: given twice (first on line 1)", err.Error())
	assert.NotContains(t, err.Error(), "sekrit")

	_, err = (&File{SecretsFile: filepath.Join(dir, "absent.yaml")}).Secrets()
	assert.ErrorContains(t, err, "absent.yaml")
}

func TestExpand(t *testing.T) {
	for _, tc := range []struct{ tmpl, want string }{
		{"{address}", "jo.smith@a.example"},
		{"{local}", "jo.smith"},
		{"{domain}", "a.example"},
		{"oauth-{local}-{domain}", "oauth-jo.smith-a.example"},
		{"plain", "plain"},
		{"", ""},
	} {
		got, err := Expand(tc.tmpl, "jo.smith@a.example")
		require.NoError(t, err, tc.tmpl)
		assert.Equal(t, tc.want, got, tc.tmpl)
	}

	// Only the last @ splits, since a quoted local part may hold one.
	got, err := Expand("{local}|{domain}", `"a@b"@c.example`)
	require.NoError(t, err)
	assert.Equal(t, `"a@b"|c.example`, got)

	_, err = Expand("{user}", "jo@a.example")
	require.EqualError(t, err, `unknown placeholder {user} in "{user}" (use {address}, {local} or {domain})`)
	_, err = Expand("x{local", "jo@a.example")
	require.EqualError(t, err, `"x{local" has a { with no closing }`)
	for _, bad := range []string{"jo.smith", "jo.smith@", "@a.example"} {
		_, err = Expand("{local}", bad)
		require.Error(t, err)
		assert.False(t, strings.Contains(err.Error(), "jo.smith") || strings.Contains(err.Error(), "a.example"),
			"the error must not quote the address: %v", err)
	}
}

func TestSecretsFileMustBePrivate(t *testing.T) {
	dir := t.TempDir()
	for _, perm := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o601} {
		p := write(t, dir, "secrets.yaml", "smtp-pw: sekrit\n")
		require.NoError(t, os.Chmod(p, perm))
		_, err := (&File{SecretsFile: p}).Secrets()
		require.Error(t, err, "%04o", perm)
		assert.Equal(t, fmt.Sprintf("secrets file: %s has mode %04o: group and others must have no access (chmod 600 %s)", p, perm, p), err.Error())
		assert.NotContains(t, err.Error(), "sekrit")
	}
	for _, perm := range []os.FileMode{0o600, 0o400} {
		p := write(t, dir, "secrets.yaml", "smtp-pw: sekrit\n")
		require.NoError(t, os.Chmod(p, perm))
		s, err := (&File{SecretsFile: p}).Secrets()
		require.NoError(t, err, "%04o", perm)
		v, err := s.Lookup("smtp-pw")
		require.NoError(t, err)
		assert.Equal(t, "sekrit", v)
	}

	// A link to a private file, as secret mounts make, is read.
	p := write(t, dir, "real.yaml", "smtp-pw: linked\n")
	link := filepath.Join(dir, "link.yaml")
	require.NoError(t, os.Symlink(p, link))
	s, err := (&File{SecretsFile: link}).Secrets()
	require.NoError(t, err)
	v, err := s.Lookup("smtp-pw")
	require.NoError(t, err)
	assert.Equal(t, "linked", v)

	// Neither a directory nor a FIFO (which would block the read) is a
	// secrets file.
	sub := filepath.Join(dir, "sub")
	require.NoError(t, os.Mkdir(sub, 0o700))
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	for _, p := range []string{sub, fifo} {
		_, err := (&File{SecretsFile: p}).Secrets()
		require.EqualError(t, err, "secrets file: "+p+" is not a regular file")
	}
}
