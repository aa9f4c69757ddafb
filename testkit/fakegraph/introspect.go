package fakegraph

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// TokenInfo is how a mail server checks the tokens this fake issues, as
// Exchange Online's IMAP checks the identity platform's: a GET of
// ?access_token=<token> (the form of Dovecot's oauth2 passdb's
// tokeninfo_url) answered 200 with the application's ID for a token issued
// and not yet expired, and 401 for any other (expired, ended by
// ExpireTokens or RevokeSecret, or never issued). Serve it on a listener
// of its own (httptest.NewServer): it is not on the fake's HTTPS server.
type TokenInfo struct {
	s *Server

	mu                sync.Mutex
	accepted, refused int
}

// TokenInfo makes the fake's token check for a mail server.
func (s *Server) TokenInfo() *TokenInfo { return &TokenInfo{s: s} }

func (ti *TokenInfo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("access_token")
	ti.s.mu.Lock()
	exp, ok := ti.s.tokens[tok]
	ti.s.mu.Unlock()
	ok = ok && tok != "" && time.Now().Before(exp)
	ti.mu.Lock()
	if ok {
		ti.accepted++
	} else {
		ti.refused++
	}
	ti.mu.Unlock()
	if !ok {
		// No body: a mail server takes a 4xx with an "error" field for
		// its own failure rather than the token's refusal.
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	// An app-only token names an application, not a user: the mail
	// server decides which mailboxes the application may open.
	_ = json.NewEncoder(w).Encode(map[string]any{"appid": ti.s.o.ClientID, "aud": "https://outlook.office365.com",
		"roles": "IMAP.AccessAsApp"})
}

// Counts are the tokens the check accepted and refused so far.
func (ti *TokenInfo) Counts() (accepted, refused int) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	return ti.accepted, ti.refused
}

// ExpireTokens ends every token issued so far, as a service that ends an
// application's sessions does; the application's secret and certificate
// still get new ones (RevokeSecret refuses those too).
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for tok := range s.tokens {
		s.tokens[tok] = time.Time{}
	}
}
