// Package identity turns an email address into mailwave's opaque mailbox key:
// HMAC-SHA256 of the normalised address under a deployment secret. The key
// goes into workflow IDs, search attributes and logs; the address never does.
// Whoever holds the secret (the starter) can still find a mailbox by address.
package identity

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"os"
	"strings"

	"mailwave/internal/secretfile"
)

// MinSecretLen is the shortest deployment secret accepted, in bytes.
const MinSecretLen = 16

// SecretEnv is the environment variable holding the deployment secret.
const SecretEnv = "MAILWAVE_KEY_SECRET"

// Keyer computes mailbox keys under one secret.
type Keyer struct {
	secret []byte
}

// NewKeyer returns a Keyer, refusing a secret too short to be one.
func NewKeyer(secret []byte) (*Keyer, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("the key secret is %d bytes; it must be at least %d", len(secret), MinSecretLen)
	}
	return &Keyer{secret: append([]byte(nil), secret...)}, nil
}

// PublishedSecret is the demo secret earlier versions of mailwave's Makefile
// set: it is in mailwave's source, so it protects nothing and is refused.
const PublishedSecret = "demo-secret-change-me-in-production"

// LoadSecret reads the secret from a file when path is set (a regular file
// that neither group nor others may read), else from the environment.
func LoadSecret(path string) ([]byte, error) {
	var secret []byte
	switch v := os.Getenv(SecretEnv); {
	case path != "":
		b, err := secretfile.Read(path)
		if err != nil {
			return nil, fmt.Errorf("key secret file: %w", err)
		}
		secret = []byte(strings.TrimSpace(string(b)))
	case v != "":
		secret = []byte(v)
	default:
		return nil, fmt.Errorf("no key secret: set %s or pass --key-secret-file", SecretEnv)
	}
	if string(secret) == PublishedSecret {
		return nil, errors.New("the key secret is the demo secret published in mailwave's source: make your own (openssl rand -hex 32)")
	}
	return secret, nil
}

// Fingerprint identifies the secret without revealing it: a deployment
// records it once, and a starter or worker with another secret (whose keys
// would not match the mailboxes already started) is refused.
func (k *Keyer) Fingerprint() string {
	mac := hmac.New(sha256.New, k.secret)
	mac.Write([]byte("mailwave key secret fingerprint v1"))
	return hex.EncodeToString(mac.Sum(nil))[:16]
}

// Key returns the opaque key of an address: 32 hex characters (128 bits).
func (k *Keyer) Key(address string) (string, error) {
	addr, err := NormalizeAddress(address)
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, k.secret)
	mac.Write([]byte(addr))
	return hex.EncodeToString(mac.Sum(nil))[:32], nil
}

// NormalizeAddress checks that s is a bare address (local@domain, no display
// name) and returns it lower-cased, so that one mailbox has one key.
func NormalizeAddress(s string) (string, error) {
	trimmed := strings.TrimSpace(s)
	if trimmed == "" {
		return "", errors.New("the address is empty")
	}
	parsed, err := mail.ParseAddress(trimmed)
	if err != nil {
		return "", fmt.Errorf("%q is not an email address: %v", s, err)
	}
	if parsed.Name != "" || parsed.Address != trimmed {
		return "", fmt.Errorf("%q is not a bare email address (give local@domain only)", s)
	}
	at := strings.LastIndexByte(parsed.Address, '@')
	domain := parsed.Address[at+1:]
	if !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") {
		return "", fmt.Errorf("%q has no usable domain", s)
	}
	return strings.ToLower(parsed.Address), nil
}
