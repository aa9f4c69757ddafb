package dovecot

import (
	"os"
	"testing"
)

// SkipIfUnavailable skips the test when Dovecot is not installed, unless
// MAILWAVE_REQUIRE_DOVECOT=1, when it fails it instead.
func SkipIfUnavailable(t testing.TB) {
	t.Helper()
	err := Available()
	if err == nil {
		return
	}
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%v (%s=1)", err, RequireEnv)
	}
	t.Skip(err)
}

// StartT starts a server in a fresh t.TempDir and stops it when the test
// ends, printing the tail of its log if the test failed.
func StartT(t testing.TB, o Options) *Server {
	t.Helper()
	SkipIfUnavailable(t)
	s, err := Start(t.TempDir(), o)
	if err != nil {
		t.Fatalf("start dovecot: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dovecot log (%s), tail:\n%s", s.LogFile, s.LogTail())
		}
		if err := s.Stop(); err != nil {
			t.Errorf("stop dovecot: %v", err)
		}
	})
	return s
}
