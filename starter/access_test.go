package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/internal/accesstoken"
)

// The access commands: a key pair, a token per role read back by a
// verifier, written to a 0600 file, and a revocation that refuses it.
func TestAccessCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "access")
	out, code := runStarter(t, "access", "key", "new", "--dir", dir)
	require.Equal(t, 0, code, out)
	keyFile, pubFile := filepath.Join(dir, accesstoken.KeyFile), filepath.Join(dir, accesstoken.PublicKeyFile)
	assert.Contains(t, out, keyFile)
	pub, err := accesstoken.LoadPublicKey(pubFile)
	require.NoError(t, err)

	stdout, stderr, code := runStarterSplit(t, "access", "token", "--role", "operator,viewer", "--for", "alice", "--valid", "2h", "--key", keyFile, "--namespace", "mailwave-prod")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "access token for alice (operator,viewer), namespace mailwave-prod, valid until")
	v := accesstoken.NewVerifier(pub, filepath.Join(dir, "revoked"))
	c, err := v.Verify(strings.TrimSpace(stdout), time.Now())
	require.NoError(t, err)
	assert.Equal(t, "alice", c.Subject)
	assert.Equal(t, []accesstoken.Role{accesstoken.Operator, accesstoken.Viewer}, c.Roles)
	assert.Equal(t, "mailwave-prod", c.Namespace)
	assert.InDelta(t, 2*time.Hour, c.Expires.Sub(c.IssuedAt), float64(time.Second))

	tokFile := filepath.Join(t.TempDir(), "worker.token")
	out, code = runStarter(t, "access", "token", "--role", "worker", "--for", "worker-1", "--key", keyFile, "--out", tokFile)
	require.Equal(t, 0, code, out)
	st, err := os.Stat(tokFile)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	b, err := os.ReadFile(tokFile)
	require.NoError(t, err)
	c, err = v.Verify(strings.TrimSpace(string(b)), time.Now())
	require.NoError(t, err)
	assert.Equal(t, "default", c.Namespace, "the default namespace")
	assert.Equal(t, []accesstoken.Role{accesstoken.Worker}, c.Roles)

	out, code = runStarter(t, "access", "revoke", "--for", "alice", "--revocations", filepath.Join(dir, "revoked"))
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "revoked alice at")
	v = accesstoken.NewVerifier(pub, filepath.Join(dir, "revoked")) // one that has not looked at the list yet
	_, err = v.Verify(strings.TrimSpace(stdout), time.Now())
	assert.ErrorIs(t, err, accesstoken.ErrRevoked)
	_, err = v.Verify(strings.TrimSpace(string(b)), time.Now())
	assert.NoError(t, err, "worker-1 was not revoked")

	// A token signed with another key is not this programme's.
	other := filepath.Join(t.TempDir(), "other")
	_, code = runStarter(t, "access", "key", "new", "--dir", other)
	require.Equal(t, 0, code)
	stdout, _, code = runStarterSplit(t, "access", "token", "--role", "admin", "--for", "mallory", "--key", filepath.Join(other, accesstoken.KeyFile))
	require.Equal(t, 0, code)
	_, err = accesstoken.NewVerifier(pub, "").Verify(strings.TrimSpace(stdout), time.Now())
	assert.ErrorIs(t, err, accesstoken.ErrBadSignature)
}

func TestAccessBadInput(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "access")
	_, code := runStarter(t, "access", "key", "new", "--dir", dir)
	require.Equal(t, 0, code)
	keyFile := filepath.Join(dir, accesstoken.KeyFile)
	open := filepath.Join(t.TempDir(), "open.key")
	b, err := os.ReadFile(keyFile)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(open, b, 0o644))
	badList := filepath.Join(t.TempDir(), "revoked")
	require.NoError(t, os.WriteFile(badList, []byte("alice last-tuesday\n"), 0o644))

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"key without dir", []string{"access", "key", "new"}, "--dir is required"},
		{"key over a key", []string{"access", "key", "new", "--dir", dir}, "never overwritten"},
		{"no name", []string{"access", "token", "--role", "viewer", "--key", keyFile}, "--for is required"},
		{"no role", []string{"access", "token", "--for", "alice", "--key", keyFile}, "--role is required"},
		{"no key", []string{"access", "token", "--for", "alice", "--role", "viewer"}, "--key is required"},
		{"unknown role", []string{"access", "token", "--for", "alice", "--role", "viewer,root", "--key", keyFile}, `unknown role "root"`},
		{"name with a space", []string{"access", "token", "--for", "alice smith", "--role", "viewer", "--key", keyFile}, "space"},
		{"over a day", []string{"access", "token", "--for", "alice", "--role", "viewer", "--valid", "48h", "--key", keyFile}, "--valid 48h0m0s"},
		{"negative", []string{"access", "token", "--for", "alice", "--role", "viewer", "--valid", "-1h", "--key", keyFile}, "--valid"},
		{"key others may read", []string{"access", "token", "--for", "alice", "--role", "viewer", "--key", open}, "mode 0644"},
		{"missing key", []string{"access", "token", "--for", "alice", "--role", "viewer", "--key", keyFile + ".nope"}, "no such file"},
		{"public key as signing key", []string{"access", "token", "--for", "alice", "--role", "viewer", "--key", filepath.Join(dir, accesstoken.PublicKeyFile)}, "--key"},
		{"revoke without name", []string{"access", "revoke", "--revocations", badList}, "--for is required"},
		{"revoke without list", []string{"access", "revoke", "--for", "alice"}, "--revocations is required"},
		{"revoke into a malformed list", []string{"access", "revoke", "--for", "bob", "--revocations", badList}, "line 1"},
	} {
		out, code := runStarter(t, tc.args...)
		assert.NotEqual(t, 0, code, tc.name)
		assert.Contains(t, out, tc.want, tc.name)
		assert.NotContains(t, out, "eyJ", "%s: no token printed", tc.name)
	}
}
