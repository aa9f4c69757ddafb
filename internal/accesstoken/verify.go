package accesstoken

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Verifier checks tokens against the public key and the revocation list.
// It is safe for concurrent use.
type Verifier struct {
	pub     ed25519.PublicKey
	revoked *revocations
}

// NewVerifier verifies with pub; revocationsPath names the revocation list
// ("" for none). The list is re-read when it changes (looked at no more than
// once a second); a missing file revokes nothing, an unreadable or malformed
// one refuses every token until it is mended.
func NewVerifier(pub ed25519.PublicKey, revocationsPath string) *Verifier {
	return &Verifier{pub: pub, revoked: &revocations{path: revocationsPath}}
}

// Verify checks token's signature, issuer, times and roles, and that its
// subject was not revoked after it was issued, as of now.
func (v *Verifier) Verify(token string, now time.Time) (Claims, error) {
	if len(v.pub) != ed25519.PublicKeySize {
		return Claims{}, fmt.Errorf("%w: the verifier has no public key", ErrBadSignature)
	}
	var jc jwtClaims
	_, err := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(Issuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
	).ParseWithClaims(token, &jc, func(*jwt.Token) (any, error) { return v.pub, nil })
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired):
		return Claims{}, fmt.Errorf("%w (at %s)", ErrExpired, expiry(jc))
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return Claims{}, ErrBadSignature
	default:
		// Malformed, another issuer, no expiry, or issued in the future.
		return Claims{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if jc.IssuedAt == nil {
		// jwt checks iat only when it is there: revocation is by it.
		return Claims{}, fmt.Errorf("%w: no issued-at", ErrMalformed)
	}
	c := Claims{
		Subject: jc.Subject, Roles: jc.Roles, Namespace: jc.Namespace,
		IssuedAt: jc.IssuedAt.Time, Expires: jc.ExpiresAt.Time, ID: jc.ID,
	}
	if err := CheckSubject(c.Subject); err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if c.Namespace == "" {
		return Claims{}, fmt.Errorf("%w: no namespace", ErrMalformed)
	}
	if c.Expires.Sub(c.IssuedAt) > MaxValidity {
		return Claims{}, fmt.Errorf("%w: valid for %s, over %s", ErrMalformed, c.Expires.Sub(c.IssuedAt), MaxValidity)
	}
	if len(c.Roles) == 0 {
		return Claims{}, ErrNoRole
	}
	for _, r := range c.Roles {
		if !slices.Contains(Roles, r) {
			return Claims{}, fmt.Errorf("%w: unknown role %q", ErrMalformed, r)
		}
	}
	at, revoked, err := v.revoked.lookup(c.Subject, now)
	if err != nil {
		return Claims{}, err
	}
	if revoked && !c.IssuedAt.After(at) {
		return Claims{}, fmt.Errorf("%w: %s was revoked at %s", ErrRevoked, c.Subject, at.UTC().Format(time.RFC3339))
	}
	return c, nil
}

func expiry(jc jwtClaims) string {
	if jc.ExpiresAt == nil {
		return "?"
	}
	return jc.ExpiresAt.UTC().Format(time.RFC3339)
}

// revocations caches the revocation list, re-reading it when its size or
// modification time changes.
type revocations struct {
	path string

	mu      sync.Mutex
	checked time.Time // wall clock of the last stat
	stamp   fileStamp
	byName  map[string]time.Time
	err     error
}

func (r *revocations) lookup(subject string, now time.Time) (time.Time, bool, error) {
	if r.path == "" {
		return time.Time{}, false, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if wall := time.Now(); r.checked.IsZero() || wall.Sub(r.checked) >= time.Second || wall.Before(r.checked) {
		r.checked = wall
		st, err := stamp(r.path)
		if err != nil || st != r.stamp || r.byName == nil && r.err == nil {
			r.stamp = st
			r.byName, r.err = nil, err
			if err == nil {
				r.byName, r.err = ReadRevocations(r.path)
			}
		}
	}
	if r.err != nil {
		return time.Time{}, false, fmt.Errorf("revocation list (every token refused until it is mended): %w", r.err)
	}
	at, ok := r.byName[subject]
	return at, ok, nil
}
