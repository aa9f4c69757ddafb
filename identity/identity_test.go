package identity

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestKeyIsStableOpaqueAndKeyed(t *testing.T) {
	k1, err := NewKeyer([]byte("0123456789abcdef-secret"))
	require.NoError(t, err)
	k2, err := NewKeyer([]byte("another-secret-of-16+"))
	require.NoError(t, err)

	a, err := k1.Key("Jo.Bloggs@Trust.NHS.example")
	require.NoError(t, err)
	b, err := k1.Key("jo.bloggs@trust.nhs.example")
	require.NoError(t, err)
	c, err := k2.Key("jo.bloggs@trust.nhs.example")
	require.NoError(t, err)

	assert.Equal(t, a, b, "case does not change the key")
	assert.NotEqual(t, a, c, "another secret gives another key")
	assert.Len(t, a, 32)
	assert.Regexp(t, "^[0-9a-f]{32}$", a)
	assert.NotContains(t, a, "bloggs")
}

func TestBadAddressesAreNamed(t *testing.T) {
	k, err := NewKeyer([]byte("0123456789abcdef"))
	require.NoError(t, err)
	for in, want := range map[string]string{
		"":                          "empty",
		"no-at-sign":                "not an email address",
		"Jo <jo@trust.nhs.example>": "not a bare email address",
		"jo@localhost":              "no usable domain",
		"jo@@trust.example":         "not an email address",
	} {
		_, err := k.Key(in)
		assert.ErrorContains(t, err, want, "input %q", in)
	}
}

func TestSecretRules(t *testing.T) {
	_, err := NewKeyer([]byte("short"))
	assert.ErrorContains(t, err, "at least 16")

	path := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(path, []byte("from-a-file-secret-value\n"), 0o600))
	s, err := LoadSecret(path)
	require.NoError(t, err)
	assert.Equal(t, "from-a-file-secret-value", string(s))

	t.Setenv(SecretEnv, "")
	_, err = LoadSecret("")
	assert.ErrorContains(t, err, SecretEnv)
	t.Setenv(SecretEnv, "from-the-environment-1")
	s, err = LoadSecret("")
	require.NoError(t, err)
	assert.Equal(t, "from-the-environment-1", string(s))
}

// A secret file must be private; the published demo secret is refused; a
// fingerprint names a secret without revealing it.
func TestSecretHandling(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(path, []byte("a-real-deployment-secret-0123\n"), 0o644))
	_, err := LoadSecret(path)
	assert.ErrorContains(t, err, "group and others must have no access")
	require.NoError(t, os.Chmod(path, 0o600))
	secret, err := LoadSecret(path)
	require.NoError(t, err)
	assert.Equal(t, "a-real-deployment-secret-0123", string(secret))

	t.Setenv(SecretEnv, PublishedSecret)
	_, err = LoadSecret("")
	assert.ErrorContains(t, err, "demo secret published in mailwave's source")

	a, err := NewKeyer([]byte("a-real-deployment-secret-0123"))
	require.NoError(t, err)
	b, err := NewKeyer([]byte("another-deployment-secret-99"))
	require.NoError(t, err)
	assert.Len(t, a.Fingerprint(), 16)
	assert.Equal(t, a.Fingerprint(), a.Fingerprint())
	assert.NotEqual(t, a.Fingerprint(), b.Fingerprint())
	assert.NotContains(t, a.Fingerprint(), "deployment")
}
