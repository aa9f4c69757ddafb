// Package accesstoken issues and verifies mailwave's access tokens: JWTs
// signed with an Ed25519 key that only the programme's administrators hold,
// naming a person or service (the subject), the roles it has and the
// Temporal namespace it is for, valid for at most a day. The Temporal
// server's authorizer and the codec server verify them with the public key
// and a revocation list (a file of names, each with the time it was revoked).
package accesstoken

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/golang-jwt/jwt/v5"

	"mailwave/internal/secretfile"
)

// Role is one right a token grants.
type Role string

// The roles. What each may do on Temporal is the server's authorizer's
// (temporal-server/authz.go); decoder is the codec server's.
const (
	Worker   Role = "worker"
	Operator Role = "operator"
	Viewer   Role = "viewer"
	Decoder  Role = "decoder"
	Admin    Role = "admin"
)

// Roles lists every role, in the order they are documented.
var Roles = []Role{Worker, Operator, Viewer, Decoder, Admin}

// Issuer is every token's iss claim.
const Issuer = "mailwave"

// MaxValidity bounds a token's life: a lost one is good for a day at most.
const MaxValidity = 24 * time.Hour

// Leeway is the clock skew forgiven between the issuer and a verifier.
const Leeway = 30 * time.Second

// The file names WriteKeyPair uses.
const (
	KeyFile       = "signing.key"
	PublicKeyFile = "signing.pub"
)

// The ways a token is refused. Verify's errors wrap exactly one of them.
var (
	ErrMalformed    = errors.New("malformed access token")
	ErrBadSignature = errors.New("access token not signed by this programme's key")
	ErrExpired      = errors.New("access token expired")
	ErrRevoked      = errors.New("access token revoked")
	ErrNoRole       = errors.New("access token grants no role")
)

// Claims is what a token says.
type Claims struct {
	Subject   string
	Roles     []Role
	Namespace string
	IssuedAt  time.Time
	Expires   time.Time
	ID        string
}

// Has reports whether the claims grant role r.
func (c Claims) Has(r Role) bool { return slices.Contains(c.Roles, r) }

// Identity is the name the Temporal server records in history for calls
// made with this token: the subject and its roles, e.g. "alice (operator)".
func (c Claims) Identity() string {
	rs := make([]string, len(c.Roles))
	for i, r := range c.Roles {
		rs[i] = string(r)
	}
	return c.Subject + " (" + strings.Join(rs, ",") + ")"
}

// ParseRole accepts one of Roles.
func ParseRole(s string) (Role, error) {
	r := Role(strings.TrimSpace(s))
	if !slices.Contains(Roles, r) {
		return "", fmt.Errorf("unknown role %q (roles: worker, operator, viewer, decoder, admin)", s)
	}
	return r, nil
}

// ParseRoles accepts a comma-separated list of roles, e.g. "viewer,decoder".
func ParseRoles(s string) ([]Role, error) {
	var out []Role
	for _, f := range strings.Split(s, ",") {
		r, err := ParseRole(f)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// CheckSubject refuses a subject that is empty, too long, or holds spaces or
// control characters (the revocation list is one name and a time a line).
func CheckSubject(s string) error {
	if s == "" {
		return errors.New("empty subject: name the person or service the token is for")
	}
	if len(s) > 128 {
		return fmt.Errorf("subject of %d bytes: at most 128", len(s))
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == '#' {
			return fmt.Errorf("subject %q holds a space, control character or '#'", s)
		}
	}
	return nil
}

// NewKey makes a signing key.
func NewKey() (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	return priv, err
}

// WriteKeyPair writes key to dir as KeyFile (PKCS#8 PEM, mode 0600) and its
// public key as PublicKeyFile (PKIX PEM, 0644), refusing to overwrite either.
func WriteKeyPair(dir string, key ed25519.PrivateKey) (keyPath, pubPath string, err error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return "", "", err
	}
	keyPath, pubPath = filepath.Join(dir, KeyFile), filepath.Join(dir, PublicKeyFile)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	if err := writeNew(keyPath, 0o600, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		return "", "", err
	}
	if err := writeNew(pubPath, 0o644, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})); err != nil {
		return "", "", err
	}
	// An empty revocation list beside them: the servers refuse to start
	// without one (a list that is not there would revoke nobody).
	if err := EnsureRevocations(filepath.Join(dir, RevocationsFile)); err != nil {
		return "", "", err
	}
	return keyPath, pubPath, nil
}

// RevocationsFile is the revocation list's name beside the keys.
const RevocationsFile = "revoked"

// EnsureRevocations makes an empty revocation list at path unless there is
// one.
func EnsureRevocations(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// CheckRevocations is what a server checks at start: the revocation list
// is named and there, and reads. A mistyped path would otherwise revoke
// nobody, silently.
func CheckRevocations(path string) error {
	if path == "" {
		return errors.New("no revocation list named: give its path (starter access key new makes an empty one beside the keys; starter access revoke writes it)")
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("the revocation list %s: %w (an empty file revokes nobody; a missing one is refused, lest a mistyped path revoke nobody)", path, err)
	}
	_, err := ReadRevocations(path)
	return err
}

func writeNew(path string, perm os.FileMode, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists: a signing key is never overwritten (move it away first)", path)
		}
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// LoadSigningKey reads a PKCS#8 PEM Ed25519 private key from a file only
// its owner may read.
func LoadSigningKey(path string) (ed25519.PrivateKey, error) {
	b, err := secretfile.Read(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("signing key %s: not a PEM PRIVATE KEY", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s: a %T, not an Ed25519 key", path, k)
	}
	return priv, nil
}

// LoadPublicKey reads a PKIX PEM Ed25519 public key.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("public key %s: not a PEM PUBLIC KEY", path)
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key %s: a %T, not an Ed25519 key", path, k)
	}
	return pub, nil
}

// jwtClaims is the token's JSON.
type jwtClaims struct {
	Roles     []Role `json:"roles"`
	Namespace string `json:"ns"`
	jwt.RegisteredClaims
}

// Issue signs c. IssuedAt defaults to now and ID to a random one; it
// refuses an empty subject, no role, an unknown role, no namespace, and a
// validity that is not positive or is over MaxValidity.
func Issue(key ed25519.PrivateKey, c Claims) (string, error) {
	if len(key) != ed25519.PrivateKeySize {
		return "", errors.New("no signing key")
	}
	if err := CheckSubject(c.Subject); err != nil {
		return "", err
	}
	if len(c.Roles) == 0 {
		return "", errors.New("no role: name at least one of worker, operator, viewer, decoder, admin")
	}
	for _, r := range c.Roles {
		if _, err := ParseRole(string(r)); err != nil {
			return "", err
		}
	}
	if c.Namespace == "" {
		return "", errors.New("no namespace: a token is for one Temporal namespace")
	}
	if c.IssuedAt.IsZero() {
		c.IssuedAt = time.Now()
	}
	valid := c.Expires.Sub(c.IssuedAt)
	if valid <= 0 {
		return "", fmt.Errorf("validity %s: must be positive", valid)
	}
	if valid > MaxValidity {
		return "", fmt.Errorf("validity %s: at most %s", valid, MaxValidity)
	}
	if c.ID == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		c.ID = hex.EncodeToString(b[:])
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwtClaims{
		Roles:     c.Roles,
		Namespace: c.Namespace,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    Issuer,
			Subject:   c.Subject,
			IssuedAt:  jwt.NewNumericDate(c.IssuedAt),
			ExpiresAt: jwt.NewNumericDate(c.Expires),
			ID:        c.ID,
		},
	})
	return t.SignedString(key)
}
