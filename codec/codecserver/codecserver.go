// Package codecserver serves the payload codec to the Temporal UI and CLI
// over the codec server protocol: POST .../encode and .../decode with a
// Payloads object as protobuf JSON, the namespace in the X-Namespace header
// (or as the path's first segment).
//
// Every request is made by a person: with their own access token
// (internal/accesstoken) holding the decoder role, verified against the
// programme's public key and revocation list. The CLI sends the token on
// every request (--codec-auth "Bearer TOKEN"); a browser signs in once at
// /login and gets a session: a random ID in an HttpOnly cookie, the token
// kept on the server, ending at the token's expiry or after MaxSession,
// whichever is first. The token is verified again on every request, so a
// revocation ends a session on its next request. Encoding needs the
// operator role as well: it makes payloads the workers accept.
//
// Every decode and encode is written to the audit file before its answer
// is sent (who, when, namespace, the workflows the payloads were sealed
// for, how many, the outcome; never their content); a decode whose record
// cannot be written is refused. Sign-ins, sign-outs and refusals of a
// named person are recorded too. CORS answers only the UI origins given.
package codecserver

import (
	"errors"
	"fmt"
	"html"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.uber.org/zap"

	"mailwave/codec"
	"mailwave/internal/accesstoken"
)

// CookieName is the session cookie /login sets over plain HTTP; over HTTPS
// it is SecureCookieName, which browsers accept only from a secure origin,
// for the whole host and no other.
const (
	CookieName       = "mailwave_codec_session"
	SecureCookieName = "__Host-" + CookieName
)

// DefaultMaxSession is how long a browser's session lasts at most (the
// token's expiry may end it sooner).
const DefaultMaxSession = 8 * time.Hour

// maxBody bounds a request: Temporal's payloads stay under 2 MB each.
const maxBody = 8 << 20

// Options configure the server.
type Options struct {
	// Codec encodes and decodes; the same one serves every namespace.
	Codec converter.PayloadCodec
	// Namespaces served; a request for another is refused.
	Namespaces []string
	// Origins the browser may call from (the Temporal UI's), exactly.
	Origins []string
	// Verifier checks access tokens (the public key and the revocation
	// list).
	Verifier *accesstoken.Verifier
	// Audit is where every decode is recorded.
	Audit *Audit
	// MaxSession bounds a browser session (DefaultMaxSession when zero).
	MaxSession time.Duration
	// SecureCookie marks the session cookie Secure (the server is on
	// HTTPS), and names it SecureCookieName.
	SecureCookie bool
	// SameSite is the session cookie's SameSite mode: Strict (the default)
	// when the UI is on the same site (scheme and registrable domain; the
	// port does not count), None when it is on another site (needs
	// SecureCookie).
	SameSite http.SameSite
	Logger   *zap.Logger
	// Now is the clock (time.Now when nil; tests move it).
	Now func() time.Time
}

type server struct {
	o        Options
	sessions sessions
}

// New returns the server's handler.
func New(o Options) (http.Handler, error) {
	switch {
	case o.Codec == nil:
		return nil, errors.New("codec server: no codec")
	case len(o.Namespaces) == 0:
		return nil, errors.New("codec server: no namespace to serve")
	case o.Verifier == nil:
		return nil, errors.New("codec server: no token verifier: every request must carry a person's access token")
	case o.Audit == nil:
		return nil, errors.New("codec server: no audit file: every decode must be recorded")
	}
	if o.MaxSession <= 0 {
		o.MaxSession = DefaultMaxSession
	}
	switch o.SameSite {
	case 0, http.SameSiteDefaultMode:
		o.SameSite = http.SameSiteStrictMode
	case http.SameSiteNoneMode:
		if !o.SecureCookie {
			return nil, errors.New("codec server: a SameSite=None session cookie needs HTTPS (browsers refuse it otherwise)")
		}
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &server{o: o}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("POST /logout", s.logout)
	mux.HandleFunc("/", s.serveCodec)
	return mux, nil
}

func (s *server) cookieName() string {
	if s.o.SecureCookie {
		return SecureCookieName
	}
	return CookieName
}

// serveCodec is .../encode and .../decode, behind CORS, the namespace check,
// the person's token and the audit.
func (s *server) serveCodec(w http.ResponseWriter, r *http.Request) {
	s.cors(w, r)
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent) // a preflight carries no credentials
		return
	}
	op := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	if r.Method != http.MethodPost || (op != "encode" && op != "decode") {
		http.Error(w, "not found: POST .../encode or .../decode", http.StatusNotFound)
		return
	}
	w.Header().Set("Cache-Control", "no-store") // decoded personal data is never cached
	ns := namespaceOf(r)
	if ns == "" && len(s.o.Namespaces) == 1 {
		// The Temporal CLI sends an empty X-Namespace: a server of one
		// namespace serves it; one of several needs /NAMESPACE/decode.
		ns = s.o.Namespaces[0]
	}
	if ns == "" {
		http.Error(w, "bad request: no namespace (X-Namespace header, or /NAMESPACE/decode)", http.StatusBadRequest)
		return
	}
	if !slices.Contains(s.o.Namespaces, ns) {
		s.o.Logger.Warn("codec request refused: namespace not served", zap.String("namespace", ns))
		http.Error(w, fmt.Sprintf("forbidden: namespace %q is not served here", ns), http.StatusForbidden)
		return
	}
	who, ok := s.authenticate(w, r, op, ns)
	if !ok {
		return
	}
	need := []accesstoken.Role{accesstoken.Decoder}
	if op == "encode" {
		need = append(need, accesstoken.Operator)
	}
	for _, role := range need {
		if !who.claims.Has(role) {
			s.refuse(w, r, who, op, ns, http.StatusForbidden, fmt.Sprintf("no %s role", role),
				fmt.Sprintf("forbidden: %s's token does not hold the %s role, which %s needs", who.claims.Subject, role, op))
			return
		}
	}
	if who.claims.Namespace != ns {
		s.refuse(w, r, who, op, ns, http.StatusForbidden, "token for namespace "+who.claims.Namespace,
			fmt.Sprintf("forbidden: %s's token is for namespace %q, not %q", who.claims.Subject, who.claims.Namespace, ns))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	rec := Record{Event: op, Subject: who.claims.Subject, TokenID: who.claims.ID, Via: who.via, Namespace: ns, Remote: r.RemoteAddr}
	converter.NewPayloadCodecHTTPHandler(&audited{s: s, rec: rec}).ServeHTTP(w, r)
}

// caller is who made a request, and how.
type caller struct {
	claims    accesstoken.Claims
	via       string // session or bearer
	sessionID string
}

// authenticate finds the person behind a request: the bearer token, else
// the session cookie, verified now. When it cannot, it answers 401.
func (s *server) authenticate(w http.ResponseWriter, r *http.Request, op, ns string) (caller, bool) {
	now := s.o.Now()
	if auth := r.Header.Get("Authorization"); auth != "" {
		token, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok {
			s.unauthorized(w, r, "the Authorization header is not a bearer token")
			return caller{}, false
		}
		claims, err := s.o.Verifier.Verify(strings.TrimSpace(token), now)
		if err != nil {
			s.refuseToken(w, r, caller{via: "bearer"}, token, op, ns, err)
			return caller{}, false
		}
		return caller{claims: claims, via: "bearer"}, true
	}
	c, err := r.Cookie(s.cookieName())
	if err != nil || c.Value == "" {
		s.unauthorized(w, r, "no access token and no session")
		return caller{}, false
	}
	sess, ok := s.sessions.get(c.Value)
	if !ok {
		s.clearCookie(w)
		s.unauthorized(w, r, "unknown session (signed out, or the codec server restarted)")
		return caller{}, false
	}
	who := caller{claims: sess.claims, via: "session", sessionID: c.Value}
	if !now.Before(sess.expires) {
		s.endSession(w, who.sessionID)
		s.refuse(w, r, who, op, ns, http.StatusUnauthorized, "session expired",
			"unauthorized: the session expired at "+sess.expires.UTC().Format(time.RFC3339)+": sign in again at /login")
		return caller{}, false
	}
	claims, err := s.o.Verifier.Verify(sess.token, now)
	if err != nil {
		s.endSession(w, who.sessionID)
		s.refuseToken(w, r, who, sess.token, op, ns, err)
		return caller{}, false
	}
	who.claims = claims
	return who, true
}

// refuseToken answers a token that does not verify. One whose signature
// held (revoked, expired, no role) names its subject, so the refusal is
// recorded in that name; a forged or malformed one names nobody and is
// only logged.
func (s *server) refuseToken(w http.ResponseWriter, r *http.Request, who caller, token, op, ns string, err error) {
	reason := tokenReason(err)
	if who.claims.Subject == "" {
		who.claims.Subject, who.claims.ID = signedSubject(token, err)
	}
	if who.claims.Subject == "" {
		s.unauthorized(w, r, reason)
		return
	}
	s.refuse(w, r, who, op, ns, http.StatusUnauthorized, reason, "unauthorized: "+err.Error())
}

// signedSubject is the subject and ID of a token the verifier refused
// after its signature held (the JWT library checks the signature before
// the times, the verifier checks roles and revocation after both); empty
// for any other refusal.
func signedSubject(token string, err error) (string, string) {
	if !errors.Is(err, accesstoken.ErrRevoked) && !errors.Is(err, accesstoken.ErrExpired) && !errors.Is(err, accesstoken.ErrNoRole) {
		return "", ""
	}
	var rc jwt.RegisteredClaims
	if _, _, perr := jwt.NewParser().ParseUnverified(token, &rc); perr != nil || accesstoken.CheckSubject(rc.Subject) != nil {
		return "", ""
	}
	return rc.Subject, rc.ID
}

// tokenReason names why a token was refused, without quoting it.
func tokenReason(err error) string {
	switch {
	case errors.Is(err, accesstoken.ErrRevoked):
		return "token revoked"
	case errors.Is(err, accesstoken.ErrExpired):
		return "token expired"
	case errors.Is(err, accesstoken.ErrNoRole):
		return "token grants no role"
	case errors.Is(err, accesstoken.ErrBadSignature):
		return "token not signed by the programme's key"
	case errors.Is(err, accesstoken.ErrMalformed):
		return "malformed token"
	default:
		return "token not verified: " + err.Error()
	}
}

// unauthorized answers 401 for a request that names nobody; it is logged,
// not audited (anyone who reaches the port could fill the audit file).
func (s *server) unauthorized(w http.ResponseWriter, r *http.Request, reason string) {
	s.o.Logger.Warn("codec request refused", zap.String("reason", reason), zap.String("path", r.URL.Path), zap.String("remote", r.RemoteAddr))
	http.Error(w, "unauthorized: "+reason+": sign in at /login, or send your access token (Authorization: Bearer TOKEN)", http.StatusUnauthorized)
}

// refuse answers a named person's refused request, and records it.
func (s *server) refuse(w http.ResponseWriter, r *http.Request, who caller, op, ns string, status int, reason, msg string) {
	s.o.Logger.Warn("codec request refused", zap.String("subject", who.claims.Subject), zap.String("op", op),
		zap.String("reason", reason), zap.String("remote", r.RemoteAddr))
	if err := s.o.Audit.Write(Record{Time: s.o.Now().UTC(), Event: "refused", Subject: who.claims.Subject, TokenID: who.claims.ID,
		Via: who.via, Namespace: ns, Outcome: "refused", Reason: op + ": " + reason, Remote: r.RemoteAddr}); err != nil {
		s.o.Logger.Error("audit record not written", zap.Error(err))
	}
	http.Error(w, msg, status)
}

func (s *server) endSession(w http.ResponseWriter, id string) {
	s.sessions.remove(id)
	s.clearCookie(w)
}

func (s *server) clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(), Value: "", Path: "/", HttpOnly: true,
		SameSite: s.o.SameSite, Secure: s.o.SecureCookie, MaxAge: -1})
}

// audited is the codec for one request: it records what it decodes or
// encodes before the answer goes out, and refuses if the record cannot be
// written.
type audited struct {
	s   *server
	rec Record
}

func (a *audited) Encode(ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
	return a.do(ps, a.s.o.Codec.Encode)
}

func (a *audited) Decode(ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
	return a.do(ps, a.s.o.Codec.Decode)
}

func (a *audited) do(ps []*commonpb.Payload, f func([]*commonpb.Payload) ([]*commonpb.Payload, error)) ([]*commonpb.Payload, error) {
	rec := a.rec
	rec.Payloads = len(ps)
	for _, p := range ps {
		switch id := codec.WorkflowIDOf(p); {
		case !codec.Sealed(p):
			rec.Plain++
		case id == "":
			rec.Unlabelled++
		case !slices.Contains(rec.Workflows, id):
			rec.Workflows = append(rec.Workflows, id)
		}
	}
	slices.Sort(rec.Workflows)
	out, err := f(ps)
	rec.Time, rec.Outcome = a.s.o.Now().UTC(), "ok"
	if err != nil {
		rec.Outcome, rec.Reason = "failed", err.Error()
	}
	if werr := a.s.o.Audit.Write(rec); werr != nil {
		a.s.o.Logger.Error("audit record not written: request refused", zap.Error(werr))
		return nil, errors.New("codec server: the audit record could not be written, so nothing is decoded or encoded")
	}
	a.s.o.Logger.Info("codec request", zap.String("op", rec.Event), zap.String("subject", rec.Subject),
		zap.String("namespace", rec.Namespace), zap.Int("payloads", rec.Payloads), zap.Strings("workflows", rec.Workflows),
		zap.String("outcome", rec.Outcome))
	return out, err
}

// namespaceOf is the X-Namespace header, else the path's first segment when
// the path is /NAMESPACE/encode or /NAMESPACE/decode.
func namespaceOf(r *http.Request) string {
	if ns := r.Header.Get("X-Namespace"); ns != "" {
		return ns
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) == 2 {
		return parts[0]
	}
	return ""
}

// cors lets the UI's origins call with credentials; any other origin gets
// no CORS headers, so the browser refuses it.
func (s *server) cors(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	w.Header().Add("Vary", "Origin")
	if origin == "" || !slices.Contains(s.o.Origins, origin) {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Content-Type, X-Namespace, Authorization")
	h.Set("Access-Control-Max-Age", "600")
}

const loginForm = `<!doctype html><meta charset="utf-8"><title>mailwave codec server</title>
<h1>mailwave codec server</h1><p id="message">%s</p>
<form method="post" action="/login"><label>Access token <input type="password" name="token" autocomplete="off" autofocus></label>
<button type="submit">Sign in</button></form>`

// page sets the headers of an HTML page of the codec server: never framed,
// never cached.
func page(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
}

// loginPage asks for the person's access token.
func (s *server) loginPage(w http.ResponseWriter, _ *http.Request) {
	page(w)
	_, _ = fmt.Fprintf(w, loginForm, html.EscapeString("Sign in with your own access token (role decoder) to let this browser's Temporal UI decode mailwave's payloads. Every decode is recorded in your name."))
}

// login verifies the token and starts a session: a random ID in the
// cookie, the token on the server.
func (s *server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	token := strings.TrimSpace(r.PostFormValue("token"))
	page(w)
	now := s.o.Now()
	fail := func(status int, msg string) {
		w.WriteHeader(status)
		_, _ = fmt.Fprintf(w, loginForm, html.EscapeString(msg))
	}
	// A form posted from another site's page (which could sign a browser
	// in under someone else's name) is refused; browsers say where a
	// form came from.
	if origin := r.Header.Get("Origin"); origin != "" && origin != s.selfOrigin(r) {
		s.o.Logger.Warn("codec sign-in refused: posted from another origin", zap.String("origin", origin), zap.String("remote", r.RemoteAddr))
		fail(http.StatusForbidden, "Not signed in: the form was posted from another site.")
		return
	}
	claims, err := s.o.Verifier.Verify(token, now)
	if err != nil {
		reason := tokenReason(err)
		s.o.Logger.Warn("codec sign-in refused", zap.String("reason", reason), zap.String("remote", r.RemoteAddr))
		if sub, jti := signedSubject(token, err); sub != "" {
			_ = s.auditSignIn(r, Record{Subject: sub, TokenID: jti, Outcome: "refused", Reason: reason})
		}
		fail(http.StatusUnauthorized, "Not signed in: "+reason+".")
		return
	}
	rec := Record{Subject: claims.Subject, TokenID: claims.ID, Namespace: claims.Namespace}
	switch {
	case !claims.Has(accesstoken.Decoder):
		rec.Outcome, rec.Reason = "refused", "no decoder role"
		_ = s.auditSignIn(r, rec)
		fail(http.StatusForbidden, "Not signed in: this token does not hold the decoder role.")
		return
	case !slices.Contains(s.o.Namespaces, claims.Namespace):
		rec.Outcome, rec.Reason = "refused", "namespace not served"
		_ = s.auditSignIn(r, rec)
		fail(http.StatusForbidden, fmt.Sprintf("Not signed in: this token is for namespace %q, which this codec server does not serve.", claims.Namespace))
		return
	}
	id, err := newSessionID()
	if err != nil {
		fail(http.StatusInternalServerError, "Not signed in: "+err.Error())
		return
	}
	expires := now.Add(s.o.MaxSession)
	if claims.Expires.Before(expires) {
		expires = claims.Expires
	}
	exp := expires.UTC()
	rec.Outcome, rec.SessionExpires = "ok", &exp
	if err := s.auditSignIn(r, rec); err != nil {
		fail(http.StatusInternalServerError, "Not signed in: the audit record could not be written.")
		return
	}
	s.sessions.add(id, &session{token: token, claims: claims, expires: expires}, now)
	http.SetCookie(w, &http.Cookie{
		Name: s.cookieName(), Value: id, Path: "/", HttpOnly: true, SameSite: s.o.SameSite, Secure: s.o.SecureCookie,
		Expires: expires, MaxAge: int(expires.Sub(now).Seconds()),
	})
	s.o.Logger.Info("codec sign-in", zap.String("subject", claims.Subject), zap.Time("until", expires), zap.String("remote", r.RemoteAddr))
	_, _ = fmt.Fprintf(w, `<!doctype html><meta charset="utf-8"><title>signed in</title><p id="signed-in">%s</p>`+
		`<form method="post" action="/logout"><button type="submit">Sign out</button></form>`,
		html.EscapeString(fmt.Sprintf("Signed in as %s until %s: the Temporal UI in this browser can now decode payloads (turn on \"include cross-origin credentials\" in its codec settings).",
			claims.Subject, expires.UTC().Format(time.RFC3339))))
}

// selfOrigin is the codec server's own origin, as the browser addressed it.
func (s *server) selfOrigin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil || s.o.SecureCookie {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (s *server) auditSignIn(r *http.Request, rec Record) error {
	rec.Time, rec.Event, rec.Via, rec.Remote = s.o.Now().UTC(), "sign-in", "login", r.RemoteAddr
	err := s.o.Audit.Write(rec)
	if err != nil {
		s.o.Logger.Error("audit record not written", zap.Error(err))
	}
	return err
}

// logout ends the browser's session.
func (s *server) logout(w http.ResponseWriter, r *http.Request) {
	page(w)
	if c, err := r.Cookie(s.cookieName()); err == nil {
		if sess, ok := s.sessions.get(c.Value); ok {
			if err := s.o.Audit.Write(Record{Time: s.o.Now().UTC(), Event: "sign-out", Subject: sess.claims.Subject, TokenID: sess.claims.ID,
				Via: "session", Namespace: sess.claims.Namespace, Outcome: "ok", Remote: r.RemoteAddr}); err != nil {
				s.o.Logger.Error("audit record not written", zap.Error(err))
			}
		}
		s.sessions.remove(c.Value)
	}
	s.clearCookie(w)
	_, _ = fmt.Fprint(w, `<!doctype html><meta charset="utf-8"><title>signed out</title><p id="signed-out">Signed out.</p>`)
}
