package throttleproxy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// loggedIn is a raw client through the proxy, logged in as alice.
func loggedIn(t *testing.T, p *Proxy) *rawClient {
	t.Helper()
	rc := dialRaw(t, p.Addr())
	rc.ok("l", fmt.Sprintf("LOGIN %s %q", alice.Name, alice.Password))
	return rc
}

// appendRaw sends an APPEND of a small message with a LITERAL+ literal.
func appendRaw(rc *rawClient, tag string) {
	msg := string(message(100))
	rc.send(fmt.Sprintf("%s APPEND INBOX {%d+}\r\n%s\r\n", tag, len(msg), msg))
}

// struck waits for an injected fault to have done all it does.
func struck(t *testing.T, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the fault did not strike")
	}
}

func TestResetBeforeSendNeverReachesTheServer(t *testing.T) {
	t.Parallel()
	s, p := startPair(t, Options{})
	done := p.Inject(Fault{Kind: ResetBeforeSend, At: 2})
	rc := loggedIn(t, p)
	appendRaw(rc, "a1")
	rc.until("a1")
	appendRaw(rc, "a2")
	struck(t, done)
	assert.True(t, rc.closed(), "the connection is reset")
	assert.Equal(t, uint32(1), inbox(t, s, alice), "the second APPEND never reached the server")
	assert.Equal(t, int64(1), p.Stats().Faults)
}

func TestResetAfterApplyLosesOnlyTheAnswer(t *testing.T) {
	t.Parallel()
	s, p := startPair(t, Options{})
	done := p.Inject(Fault{Kind: ResetAfterApply, At: 1})
	rc := loggedIn(t, p)
	appendRaw(rc, "a1")
	struck(t, done)
	assert.True(t, rc.closed(), "the answer never comes: the connection is reset")
	assert.Equal(t, uint32(1), inbox(t, s, alice), "the server applied the APPEND")
}

// TestDeliverLateLandsAfterTheWatchedAnswer: the held APPEND reaches the
// server only once another connection's STATUS has been answered, and
// before that answer reaches its client: the STATUS says 0, and by the
// time the client reads it the server holds the message.
func TestDeliverLateLandsAfterTheWatchedAnswer(t *testing.T) {
	t.Parallel()
	s, p := startPair(t, Options{})
	done := p.Inject(Fault{Kind: DeliverLate, After: func(line string) bool { return strings.Contains(line, "STATUS") }})
	rc := loggedIn(t, p)
	appendRaw(rc, "a1")
	assert.True(t, rc.closed(), "the client's side is reset at once")
	assert.Equal(t, uint32(0), inbox(t, s, alice), "held: the server has not seen it")
	select {
	case <-done:
		t.Fatal("delivered before the watched command")
	case <-time.After(200 * time.Millisecond):
	}

	other := loggedIn(t, p)
	lines := other.ok("s1", "STATUS INBOX (MESSAGES)")
	assert.Contains(t, lines[0], "(MESSAGES 0)", "the STATUS was answered before the held APPEND landed")
	struck(t, done)
	assert.Equal(t, uint32(1), inbox(t, s, alice), "and it had landed before the client read the answer")
	other.ok("s2", "STATUS INBOX (MESSAGES)")
}

func TestCallRunsAtTheAppend(t *testing.T) {
	t.Parallel()
	s, p := startPair(t, Options{})
	var seen uint32
	done := p.Inject(Fault{Kind: Call, At: 2, Do: func() { seen = 1 }})
	rc := loggedIn(t, p)
	appendRaw(rc, "a1")
	rc.until("a1")
	assert.Zero(t, seen, "not at the first APPEND")
	appendRaw(rc, "a2")
	rc.until("a2")
	struck(t, done)
	assert.Equal(t, uint32(1), seen)
	assert.Equal(t, uint32(2), inbox(t, s, alice), "both APPENDs passed on")
}
