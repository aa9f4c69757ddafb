package accesstoken

import (
	"crypto/ed25519"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	k, err := NewKey()
	require.NoError(t, err)
	return k
}

func issue(t *testing.T, k ed25519.PrivateKey, sub string, roles ...Role) string {
	t.Helper()
	tok, err := Issue(k, Claims{Subject: sub, Roles: roles, Namespace: "default", IssuedAt: t0, Expires: t0.Add(8 * time.Hour)})
	require.NoError(t, err)
	return tok
}

func TestIssueVerifyRoundTrip(t *testing.T) {
	k := newKey(t)
	tok := issue(t, k, "alice", Operator, Viewer)
	c, err := NewVerifier(k.Public().(ed25519.PublicKey), "").Verify(tok, t0.Add(time.Hour))
	require.NoError(t, err)
	assert.Equal(t, "alice", c.Subject)
	assert.Equal(t, []Role{Operator, Viewer}, c.Roles)
	assert.Equal(t, "default", c.Namespace)
	assert.True(t, c.IssuedAt.Equal(t0))
	assert.True(t, c.Expires.Equal(t0.Add(8*time.Hour)))
	assert.Len(t, c.ID, 32)
	assert.True(t, c.Has(Operator))
	assert.True(t, c.Has(Viewer))
	assert.False(t, c.Has(Worker))
	assert.False(t, c.Has(Admin))
	assert.Equal(t, "alice (operator,viewer)", c.Identity())

	// Two tokens for the same claims differ in their ID.
	tok2 := issue(t, k, "alice", Operator, Viewer)
	c2, err := NewVerifier(k.Public().(ed25519.PublicKey), "").Verify(tok2, t0)
	require.NoError(t, err)
	assert.NotEqual(t, c.ID, c2.ID)
}

func TestVerifyRefuses(t *testing.T) {
	k, other := newKey(t), newKey(t)
	v := NewVerifier(k.Public().(ed25519.PublicKey), "")
	good := issue(t, k, "alice", Viewer)

	t.Run("expired", func(t *testing.T) {
		_, err := v.Verify(good, t0.Add(8*time.Hour+time.Minute))
		assert.ErrorIs(t, err, ErrExpired)
		// Within the leeway it still passes.
		_, err = v.Verify(good, t0.Add(8*time.Hour+Leeway/2))
		assert.NoError(t, err)
	})
	t.Run("issued in the future", func(t *testing.T) {
		_, err := v.Verify(good, t0.Add(-time.Hour))
		assert.ErrorIs(t, err, ErrMalformed)
	})
	t.Run("other key", func(t *testing.T) {
		_, err := v.Verify(issue(t, other, "alice", Admin), t0)
		assert.ErrorIs(t, err, ErrBadSignature)
	})
	t.Run("tampered claims", func(t *testing.T) {
		parts := strings.Split(good, ".")
		body, err := base64.RawURLEncoding.DecodeString(parts[1])
		require.NoError(t, err)
		body = []byte(strings.Replace(string(body), `"viewer"`, `"admin"`, 1))
		parts[1] = base64.RawURLEncoding.EncodeToString(body)
		_, err = v.Verify(strings.Join(parts, "."), t0)
		assert.ErrorIs(t, err, ErrBadSignature)
	})
	t.Run("malformed", func(t *testing.T) {
		for _, s := range []string{"", "x", "a.b.c", "Bearer " + good, good + "x."} {
			_, err := v.Verify(s, t0)
			assert.ErrorIs(t, err, ErrMalformed, "%q", s)
		}
	})
	t.Run("unsigned (alg none)", func(t *testing.T) {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwtClaims{Roles: []Role{Admin}, Namespace: "default",
			RegisteredClaims: jwt.RegisteredClaims{Issuer: Issuer, Subject: "mallory", IssuedAt: jwt.NewNumericDate(t0), ExpiresAt: jwt.NewNumericDate(t0.Add(time.Hour))},
		}).SignedString(jwt.UnsafeAllowNoneSignatureType)
		require.NoError(t, err)
		_, err = v.Verify(tok, t0)
		assert.Error(t, err)
		assert.NotErrorIs(t, err, ErrExpired)
	})
	sign := func(c jwtClaims) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(k)
		require.NoError(t, err)
		return tok
	}
	reg := func(iss, sub string, valid time.Duration) jwt.RegisteredClaims {
		return jwt.RegisteredClaims{Issuer: iss, Subject: sub, IssuedAt: jwt.NewNumericDate(t0), ExpiresAt: jwt.NewNumericDate(t0.Add(valid))}
	}
	t.Run("no issued-at", func(t *testing.T) {
		noIat := reg(Issuer, "alice", time.Hour)
		noIat.IssuedAt = nil
		_, err := v.Verify(sign(jwtClaims{Roles: []Role{Admin}, Namespace: "default", RegisteredClaims: noIat}), t0)
		assert.ErrorIs(t, err, ErrMalformed, "refused, not a panic")
	})
	t.Run("roles", func(t *testing.T) {
		_, err := v.Verify(sign(jwtClaims{Namespace: "default", RegisteredClaims: reg(Issuer, "alice", time.Hour)}), t0)
		assert.ErrorIs(t, err, ErrNoRole)
		_, err = v.Verify(sign(jwtClaims{Roles: []Role{"root"}, Namespace: "default", RegisteredClaims: reg(Issuer, "alice", time.Hour)}), t0)
		assert.ErrorIs(t, err, ErrMalformed)
	})
	t.Run("other issuer, no subject, no namespace, no expiry, too long", func(t *testing.T) {
		for name, c := range map[string]jwtClaims{
			"issuer":    {Roles: []Role{Viewer}, Namespace: "default", RegisteredClaims: reg("someone-else", "alice", time.Hour)},
			"subject":   {Roles: []Role{Viewer}, Namespace: "default", RegisteredClaims: reg(Issuer, "", time.Hour)},
			"namespace": {Roles: []Role{Viewer}, RegisteredClaims: reg(Issuer, "alice", time.Hour)},
			"expiry":    {Roles: []Role{Viewer}, Namespace: "default", RegisteredClaims: jwt.RegisteredClaims{Issuer: Issuer, Subject: "alice", IssuedAt: jwt.NewNumericDate(t0)}},
			"validity":  {Roles: []Role{Viewer}, Namespace: "default", RegisteredClaims: reg(Issuer, "alice", 48*time.Hour)},
		} {
			_, err := v.Verify(sign(c), t0)
			assert.ErrorIs(t, err, ErrMalformed, name)
		}
	})
}

func TestIssueRefuses(t *testing.T) {
	k := newKey(t)
	ok := Claims{Subject: "alice", Roles: []Role{Viewer}, Namespace: "default", IssuedAt: t0, Expires: t0.Add(time.Hour)}
	for name, tc := range map[string]struct {
		mod  func(*Claims)
		want string
	}{
		"empty subject":  {func(c *Claims) { c.Subject = "" }, "empty subject"},
		"spaced subject": {func(c *Claims) { c.Subject = "alice smith" }, "space"},
		"no role":        {func(c *Claims) { c.Roles = nil }, "no role"},
		"unknown role":   {func(c *Claims) { c.Roles = []Role{"root"} }, `unknown role "root"`},
		"no namespace":   {func(c *Claims) { c.Namespace = "" }, "no namespace"},
		"over a day":     {func(c *Claims) { c.Expires = t0.Add(25 * time.Hour) }, "at most 24h"},
		"negative":       {func(c *Claims) { c.Expires = t0.Add(-time.Minute) }, "must be positive"},
	} {
		c := ok
		tc.mod(&c)
		_, err := Issue(k, c)
		assert.ErrorContains(t, err, tc.want, name)
	}
	_, err := Issue(nil, ok)
	assert.ErrorContains(t, err, "no signing key")
}

func TestParseRoles(t *testing.T) {
	rs, err := ParseRoles("viewer, decoder,viewer")
	require.NoError(t, err)
	assert.Equal(t, []Role{Viewer, Decoder}, rs)
	_, err = ParseRoles("viewer,superuser")
	assert.ErrorContains(t, err, `unknown role "superuser"`)
	_, err = ParseRoles("")
	assert.ErrorContains(t, err, "unknown role")
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	k := newKey(t)
	keyPath, pubPath, err := WriteKeyPair(dir, k)
	require.NoError(t, err)
	st, err := os.Stat(keyPath)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	loaded, err := LoadSigningKey(keyPath)
	require.NoError(t, err)
	assert.True(t, k.Equal(loaded))
	pub, err := LoadPublicKey(pubPath)
	require.NoError(t, err)
	assert.True(t, k.Public().(ed25519.PublicKey).Equal(pub))

	// Never overwritten.
	_, _, err = WriteKeyPair(dir, newKey(t))
	assert.ErrorContains(t, err, "never overwritten")

	// A key others may read is refused.
	require.NoError(t, os.Chmod(keyPath, 0o644))
	_, err = LoadSigningKey(keyPath)
	assert.ErrorContains(t, err, "mode 0644")

	// The public key is not a private key, and garbage is neither.
	_, err = LoadSigningKey(pubPath)
	assert.Error(t, err)
	junk := filepath.Join(dir, "junk")
	require.NoError(t, os.WriteFile(junk, []byte("not a key"), 0o600))
	_, err = LoadPublicKey(junk)
	assert.ErrorContains(t, err, "not a PEM PUBLIC KEY")
	_, err = LoadSigningKey(junk)
	assert.ErrorContains(t, err, "not a PEM PRIVATE KEY")
}

func TestRevocation(t *testing.T) {
	k := newKey(t)
	list := filepath.Join(t.TempDir(), "revoked")
	v := NewVerifier(k.Public().(ed25519.PublicKey), list)
	alice, bob := issue(t, k, "alice", Operator), issue(t, k, "bob", Operator)

	// A missing list revokes nothing.
	_, err := v.Verify(alice, t0.Add(time.Minute))
	require.NoError(t, err)

	require.NoError(t, Revoke(list, "alice", t0.Add(time.Minute)))
	// The verifier looks at the file at most once a second.
	time.Sleep(1100 * time.Millisecond)
	_, err = v.Verify(alice, t0.Add(2*time.Minute))
	assert.ErrorIs(t, err, ErrRevoked)
	_, err = v.Verify(bob, t0.Add(2*time.Minute))
	assert.NoError(t, err, "bob was not revoked")

	// A token issued after the revocation is good again.
	later, err := Issue(k, Claims{Subject: "alice", Roles: []Role{Viewer}, Namespace: "default", IssuedAt: t0.Add(2 * time.Minute), Expires: t0.Add(time.Hour)})
	require.NoError(t, err)
	_, err = v.Verify(later, t0.Add(3*time.Minute))
	assert.NoError(t, err)

	// A second revocation appends.
	require.NoError(t, Revoke(list, "bob", t0.Add(time.Minute)))
	b, err := os.ReadFile(list)
	require.NoError(t, err)
	assert.Equal(t, "alice 2026-12-07T15:01:00Z\nbob 2026-12-07T15:01:00Z\n", string(b))

	// A malformed list refuses every token (fail closed), and Revoke will
	// not rewrite it.
	require.NoError(t, os.WriteFile(list, []byte("alice yesterday\n"), 0o644))
	time.Sleep(1100 * time.Millisecond)
	_, err = v.Verify(later, t0.Add(3*time.Minute))
	assert.ErrorContains(t, err, "line 1")
	assert.ErrorContains(t, Revoke(list, "carol", t0), "not revoking")

	// Mended, tokens pass again.
	require.NoError(t, os.WriteFile(list, []byte("# revoked\n\nalice 2026-12-07T15:01:00Z\n"), 0o644))
	time.Sleep(1100 * time.Millisecond)
	_, err = v.Verify(later, t0.Add(3*time.Minute))
	assert.NoError(t, err)

	assert.ErrorContains(t, Revoke(list, "", t0), "empty subject")
	assert.ErrorContains(t, Revoke(list, "a b", t0), "space")
}

// TestARevocationListMustBeThere: a server checks at start that its
// revocation list is named and there (a mistyped path would revoke
// nobody); the key pair is made with an empty one beside it.
func TestARevocationListMustBeThere(t *testing.T) {
	dir := t.TempDir()
	assert.ErrorContains(t, CheckRevocations(""), "no revocation list named")
	assert.ErrorContains(t, CheckRevocations(filepath.Join(dir, "revokd")), "a missing one is refused")
	k, err := NewKey()
	require.NoError(t, err)
	_, _, err = WriteKeyPair(dir, k)
	require.NoError(t, err)
	require.NoError(t, CheckRevocations(filepath.Join(dir, RevocationsFile)), "made empty beside the keys")
	require.NoError(t, os.WriteFile(filepath.Join(dir, RevocationsFile), []byte("not a list\n"), 0o644))
	assert.Error(t, CheckRevocations(filepath.Join(dir, RevocationsFile)), "a malformed one is refused too")
}
