package fakegraph

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func token(t *testing.T, s *Server) string {
	t.Helper()
	resp, err := s.Client().PostForm(s.URL+"/t1/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"},
		"client_id": {"app"}, "client_secret": {"pw"}, "scope": {"https://graph.microsoft.com/.default"}})
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tok))
	return tok.AccessToken
}

func call(t *testing.T, s *Server, tok, method, path string, body []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, s.GraphURL()+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := s.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp
}

// TestTheDocumentedLimitsAreEnforced: a fifth request at once is refused
// with 429 and a Retry-After, a body over 4 MB with 413, an expired token
// with 401.
func TestTheDocumentedLimitsAreEnforced(t *testing.T) {
	s := Start(Options{Tenant: "t1", ClientID: "app", Secret: "pw", Mailboxes: []string{"a@x.example"},
		Latency: 300 * time.Millisecond, TokenTTL: time.Second})
	defer s.Close()
	tok := token(t, s)

	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			resp := call(t, s, tok, http.MethodGet, "/users/a@x.example/mailFolders/inbox", nil)
			mu.Lock()
			codes[resp.StatusCode]++
			if resp.StatusCode == http.StatusTooManyRequests {
				assert.Equal(t, "1", resp.Header.Get("Retry-After"))
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	assert.Equal(t, map[int]int{http.StatusOK: 4, http.StatusTooManyRequests: 2}, codes)

	time.Sleep(1100 * time.Millisecond) // past the Retry-After, and the token's life
	big := []byte(`{"subject":"` + strings.Repeat("x", 4<<20) + `"}`)
	resp := call(t, s, tok, http.MethodPost, "/users/a@x.example/mailFolders/inbox/messages", big)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the token has expired")
	tok = token(t, s)
	resp = call(t, s, tok, http.MethodPost, "/users/a@x.example/mailFolders/inbox/messages", big)
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	resp = call(t, s, tok, http.MethodGet, "/users/nobody@x.example/mailFolders/inbox", nil)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.Zero(t, s.Stats().Early, "nothing came before a Retry-After")
}
