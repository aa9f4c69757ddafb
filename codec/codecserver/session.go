package codecserver

import (
	"crypto/rand"
	"encoding/base64"
	"sync"
	"time"

	"mailwave/internal/accesstoken"
)

// session is a browser's sign-in: the token it signed in with (verified
// again on every request, so a revocation or the token's expiry ends it),
// and when it ends.
type session struct {
	token   string
	claims  accesstoken.Claims
	expires time.Time
}

// sessions are kept in memory only: a restart of the codec server signs
// every browser out.
type sessions struct {
	mu sync.Mutex
	m  map[string]*session
}

// keepExpired is how long an expired session is remembered, so that a
// request with it is refused naming who it was.
const keepExpired = time.Hour

// newSessionID is 32 random bytes, URL-safe base64.
func newSessionID() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func (s *sessions) add(id string, sess *session, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]*session{}
	}
	for k, old := range s.m {
		if now.Sub(old.expires) > keepExpired {
			delete(s.m, k)
		}
	}
	s.m[id] = sess
}

func (s *sessions) get(id string) (*session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[id]
	return sess, ok
}

func (s *sessions) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}
