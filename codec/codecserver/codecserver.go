// Package codecserver serves the payload codec to the Temporal UI and CLI
// over the codec server protocol: POST .../encode and .../decode with a
// Payloads object as protobuf JSON, the namespace in the X-Namespace header
// (or as the path's first segment). Every request needs a bearer token, in
// the Authorization header (the CLI's --codec-auth) or in the session cookie
// that /login sets for a browser (the UI, with "include cross-origin
// credentials" on). CORS answers only the UI origins it is given.
package codecserver

import (
	"crypto/subtle"
	"fmt"
	"html"
	"net/http"
	"slices"
	"strings"

	"go.temporal.io/sdk/converter"
	"go.uber.org/zap"
)

// CookieName is the session cookie /login sets.
const CookieName = "mailwave_codec"

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
	// Tokens accepted as bearer tokens; at least one.
	Tokens []string
	// SecureCookie marks the session cookie Secure (the server is on HTTPS).
	SecureCookie bool
	Logger       *zap.Logger
}

type server struct {
	o     Options
	codec http.Handler
}

// New returns the server's handler.
func New(o Options) (http.Handler, error) {
	switch {
	case o.Codec == nil:
		return nil, fmt.Errorf("codec server: no codec")
	case len(o.Namespaces) == 0:
		return nil, fmt.Errorf("codec server: no namespace to serve")
	case len(o.Tokens) == 0:
		return nil, fmt.Errorf("codec server: no token: every request must carry one")
	}
	for _, t := range o.Tokens {
		if len(t) < 16 {
			return nil, fmt.Errorf("codec server: a token is %d characters; use 16 or more", len(t))
		}
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	s := &server{o: o, codec: converter.NewPayloadCodecHTTPHandler(o.Codec)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("/", s.serveCodec)
	return mux, nil
}

// serveCodec is .../encode and .../decode, behind CORS, the token and the
// namespace check.
func (s *server) serveCodec(w http.ResponseWriter, r *http.Request) {
	s.cors(w, r)
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent) // a preflight carries no credentials
		return
	}
	if r.Method != http.MethodPost || !(strings.HasSuffix(r.URL.Path, "/encode") || strings.HasSuffix(r.URL.Path, "/decode")) {
		http.Error(w, "not found: POST .../encode or .../decode", http.StatusNotFound)
		return
	}
	if !s.authorized(r) {
		s.o.Logger.Warn("codec request refused: no valid token", zap.String("path", r.URL.Path), zap.String("remote", r.RemoteAddr))
		http.Error(w, "unauthorized: a bearer token is required (Authorization header, or sign in at /login)", http.StatusUnauthorized)
		return
	}
	ns := namespaceOf(r)
	if ns == "" && len(s.o.Namespaces) == 1 {
		// The Temporal CLI sends an empty X-Namespace: a server of one
		// namespace serves it; one of several needs /NAMESPACE/decode.
		ns = s.o.Namespaces[0]
	}
	if ns == "" {
		s.o.Logger.Warn("codec request refused: no namespace", zap.String("path", r.URL.Path))
		http.Error(w, "bad request: no namespace (X-Namespace header, or /NAMESPACE/decode)", http.StatusBadRequest)
		return
	}
	if !slices.Contains(s.o.Namespaces, ns) {
		s.o.Logger.Warn("codec request refused: namespace not served", zap.String("namespace", ns))
		http.Error(w, fmt.Sprintf("forbidden: namespace %q is not served here", ns), http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	s.o.Logger.Info("codec request", zap.String("op", r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]), zap.String("namespace", ns))
	s.codec.ServeHTTP(w, r)
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

// authorized checks the bearer token or the session cookie.
func (s *server) authorized(r *http.Request) bool {
	if auth := r.Header.Get("Authorization"); auth != "" {
		token, ok := strings.CutPrefix(auth, "Bearer ")
		return ok && s.valid(token)
	}
	if c, err := r.Cookie(CookieName); err == nil {
		return s.valid(c.Value)
	}
	return false
}

func (s *server) valid(token string) bool {
	ok := false
	for _, t := range s.o.Tokens {
		if subtle.ConstantTimeCompare([]byte(token), []byte(t)) == 1 {
			ok = true
		}
	}
	return ok
}

const loginForm = `<!doctype html><meta charset="utf-8"><title>mailwave codec server</title>
<h1>mailwave codec server</h1><p>%s</p>
<form method="post" action="/login"><label>Token <input type="password" name="token" autocomplete="off" autofocus></label>
<button type="submit">Sign in</button></form>`

// loginPage asks for the token.
func (s *server) loginPage(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = fmt.Fprintf(w, loginForm, "Sign in to let this browser's Temporal UI decode mailwave's payloads.")
}

// login sets the session cookie for a valid token. The cookie is HttpOnly
// and SameSite=Strict: the UI (same site, another port) sends it with
// "include cross-origin credentials", no other site can.
func (s *server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	token := r.PostFormValue("token")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if !s.valid(token) {
		s.o.Logger.Warn("codec sign-in refused", zap.String("remote", r.RemoteAddr))
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = fmt.Fprintf(w, loginForm, "That token is not valid.")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: token, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: s.o.SecureCookie, MaxAge: 12 * 3600,
	})
	s.o.Logger.Info("codec sign-in", zap.String("remote", r.RemoteAddr))
	_, _ = fmt.Fprintf(w, "<!doctype html><meta charset=\"utf-8\"><title>signed in</title><p id=\"signed-in\">%s</p>",
		html.EscapeString("Signed in: the Temporal UI in this browser can now decode payloads (turn on \"include cross-origin credentials\" in its codec settings)."))
}
