package graph

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // x5t is SHA-1 of the certificate, as the protocol names it
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"mailwave/contract"
	"mailwave/mail/port"
)

// Scopes of app-only tokens.
const (
	ScopeGraph = "https://graph.microsoft.com/.default"
	// ScopeIMAP is Exchange Online's IMAP, logged in with XOAUTH2 as the
	// mailbox's address (app-only access, granted per mailbox).
	ScopeIMAP = "https://outlook.office365.com/.default"
)

// DefaultLoginURL is the public cloud's identity platform; national
// clouds and tests name their own.
const DefaultLoginURL = "https://login.microsoftonline.com"

// App is an application registered in a tenant, with a client secret or
// a certificate (whose private key signs an assertion for each token).
type App struct {
	Tenant   string
	ClientID string
	Secret   string
	Cert     *x509.Certificate
	Key      crypto.Signer // RSA: the assertion is RS256
	LoginURL string        // "" is DefaultLoginURL
	// HTTP, if set, carries the token requests (extra CAs, a proxy); nil
	// is the Tokens' own, else http.DefaultClient.
	HTTP *http.Client
}

// tokenURL is the tenant's token endpoint.
func (a App) tokenURL() string {
	base := a.LoginURL
	if base == "" {
		base = DefaultLoginURL
	}
	return strings.TrimSuffix(base, "/") + "/" + url.PathEscape(a.Tenant) + "/oauth2/v2.0/token"
}

// Check refuses an application that cannot ask for a token.
func (a App) Check() error {
	switch {
	case a.Tenant == "" || a.ClientID == "":
		return errors.New("graph: the tenant and the application (client) ID are required")
	case (a.Secret == "") == (a.Cert == nil):
		return errors.New("graph: give the application a client secret or a certificate, one of them")
	case a.Cert != nil && a.Key == nil:
		return errors.New("graph: the certificate's private key is missing")
	}
	return nil
}

// Tokens hands out app-only tokens, one cached token per tenant,
// application and scope, shared by every copy of the worker and renewed
// before it expires.
type Tokens struct {
	mu   sync.Mutex
	srcs map[string]*TokenSource
	ctx  context.Context // may carry oauth2.HTTPClient
}

// NewTokens makes an empty cache; ctx carries the HTTP client the token
// requests use (oauth2.HTTPClient), or none.
func NewTokens(ctx context.Context) *Tokens {
	return &Tokens{srcs: map[string]*TokenSource{}, ctx: ctx}
}

// Source is the token source of an application for a scope.
func (t *Tokens) Source(a App, scope string) (*TokenSource, error) {
	if err := a.Check(); err != nil {
		return nil, err
	}
	k := a.tokenURL() + "\x00" + a.ClientID + "\x00" + scope
	t.mu.Lock()
	defer t.mu.Unlock()
	if s, ok := t.srcs[k]; ok {
		return s, nil
	}
	s := &TokenSource{app: a, scope: scope, ctx: t.ctx}
	t.srcs[k] = s
	return s, nil
}

// TokenSource is one application's token for one scope.
type TokenSource struct {
	app   App
	scope string
	ctx   context.Context
	mu    sync.Mutex
	tok   *oauth2.Token
	got   time.Time
	// Fetched counts the tokens asked for (the tests read it).
	Fetched int
}

// renewAt is when a token is renewed: five minutes before it expires, or
// half way through a shorter life.
func renewAt(got, expiry time.Time) time.Time {
	return expiry.Add(-min(5*time.Minute, expiry.Sub(got)/2))
}

// Token is a valid token, fetched afresh when the cached one is near its
// end. A refused application (a wrong or revoked secret, a certificate
// not registered, consent missing) is a permanent error of type
// BadCredentials; it names the tenant, never a mailbox.
func (s *TokenSource) Token(ctx context.Context) (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if s.tok != nil && now.Before(renewAt(s.got, s.tok.Expiry)) {
		return s.tok, nil
	}
	cfg := clientcredentials.Config{ClientID: s.app.ClientID, ClientSecret: s.app.Secret, TokenURL: s.app.tokenURL(),
		Scopes: []string{s.scope}, AuthStyle: oauth2.AuthStyleInParams}
	if s.app.Cert != nil {
		assertion, err := s.app.assertion(now)
		if err != nil {
			return nil, err
		}
		cfg.EndpointParams = url.Values{
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {assertion},
		}
	}
	switch {
	case s.app.HTTP != nil:
		ctx = context.WithValue(ctx, oauth2.HTTPClient, s.app.HTTP)
	case s.ctx != nil:
		if hc := s.ctx.Value(oauth2.HTTPClient); hc != nil {
			ctx = context.WithValue(ctx, oauth2.HTTPClient, hc)
		}
	}
	tok, err := cfg.Token(ctx)
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500 {
			return nil, &port.PermanentError{Type: contract.ErrTypeBadCredentials, Err: refusal(s.app, re)}
		}
		return nil, fmt.Errorf("tenant %s: asking for a token: %w", s.app.Tenant, err)
	}
	s.tok, s.got = tok, now
	s.Fetched++
	return tok, nil
}

// RefusedError is the identity platform refusing an application: its
// OAuth error (invalid_client, unauthorized_client, ...) and the AADSTS
// codes it gave, so that a caller tells consent missing (65001) from a
// wrong secret (7000215) by the codes, not the text. It names the tenant
// and the application, never a mailbox; the token endpoint's answer is
// under it (*oauth2.RetrieveError).
type RefusedError struct {
	Tenant, ClientID string
	Code             string // RFC 6749's error
	AADSTS           []int  // the answer's error_codes, else the description's AADSTSnnnn
	Description      string // its first line
	Err              *oauth2.RetrieveError
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("tenant %s: the identity platform refused application %s (%s): %s", e.Tenant, e.ClientID, e.Code, e.Description)
}

func (e *RefusedError) Unwrap() error { return e.Err }

// Has says whether the refusal gave an AADSTS code.
func (e *RefusedError) Has(aadsts int) bool { return slices.Contains(e.AADSTS, aadsts) }

// aadstsCode is the code a description starts with ("AADSTS65001: ...").
var aadstsCode = regexp.MustCompile(`^AADSTS(\d+)\b`)

// refusal reads the token endpoint's refusal of an application.
func refusal(a App, re *oauth2.RetrieveError) *RefusedError {
	e := &RefusedError{Tenant: a.Tenant, ClientID: a.ClientID, Code: re.ErrorCode, Description: firstLine(re.ErrorDescription), Err: re}
	var body struct {
		Codes []int `json:"error_codes"`
	}
	if json.Unmarshal(re.Body, &body) == nil && len(body.Codes) > 0 {
		e.AADSTS = body.Codes
	} else if m := aadstsCode.FindStringSubmatch(re.ErrorDescription); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil {
			e.AADSTS = []int{n}
		}
	}
	return e
}

// Invalidate drops a token the service refused (Graph's 401, an IMAP
// server's refused XOAUTH2 login), so the next Token asks for a new one;
// a token already replaced is left alone.
func (s *TokenSource) Invalidate(tok *oauth2.Token) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok == tok {
		s.tok = nil
	}
}

// assertion is the signed JWT that proves the application holds its
// certificate's key: valid for ten minutes, made for one token request.
func (a App) assertion(now time.Time) (string, error) {
	thumb := sha1.Sum(a.Cert.Raw) //nolint:gosec // the protocol's x5t
	thumb256 := sha256.Sum256(a.Cert.Raw)
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", err
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.RegisteredClaims{
		Audience:  jwt.ClaimStrings{a.tokenURL()},
		Issuer:    a.ClientID,
		Subject:   a.ClientID,
		ID:        base64.RawURLEncoding.EncodeToString(jti[:]),
		NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(10 * time.Minute)),
	})
	tok.Header["x5t"] = base64.RawURLEncoding.EncodeToString(thumb[:])
	tok.Header["x5t#S256"] = base64.RawURLEncoding.EncodeToString(thumb256[:])
	s, err := tok.SignedString(a.Key)
	if err != nil {
		return "", fmt.Errorf("graph: signing the certificate's assertion: %w", err)
	}
	return s, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
