package throttleproxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/testkit/dovecot"
	"mailwave/testkit/imaptest"
)

var (
	alice = dovecot.User{Name: "alice", Password: "correct horse"}
	bob   = dovecot.User{Name: "bob", Password: "battery staple"}
)

// startPair starts a Dovecot and a proxy in front of it.
func startPair(t *testing.T, o Options) (*dovecot.Server, *Proxy) {
	t.Helper()
	s := dovecot.StartT(t, dovecot.Options{Users: []dovecot.User{alice, bob}, Plaintext: true})
	p, err := Start(s.Addr(), o)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, p.Close()) })
	return s, p
}

// dial logs in as u at addr with LOGIN.
func dial(t *testing.T, addr string, u dovecot.User) *imapclient.Client {
	t.Helper()
	c, err := imaptest.Dial(addr, u.Name, u.Password)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// inbox counts u's messages, asking the server directly.
func inbox(t *testing.T, s *dovecot.Server, u dovecot.User) uint32 {
	t.Helper()
	c := dial(t, s.Addr(), u)
	defer c.Logout()
	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	require.NoError(t, err)
	return *st.NumMessages
}

// message is a valid message of exactly size bytes (at least 40).
func message(size int) []byte {
	head := "Subject: throttleproxy test\r\n\r\n"
	var b strings.Builder
	b.WriteString(head)
	for b.Len() < size {
		line := min(size-b.Len(), 78)
		if line < 2 {
			b.WriteString(strings.Repeat("x", line))
			continue
		}
		b.WriteString(strings.Repeat("x", line-2) + "\r\n")
	}
	return []byte(b.String())
}

// appendMsg APPENDs a message of size bytes to INBOX with go-imap, which
// sends it as a synchronising literal (Dovecot offers LITERAL+, not
// LITERAL-, and go-imap asks only about the latter).
func appendMsg(c *imapclient.Client, size int) error {
	cmd := c.Append("INBOX", int64(size), nil)
	_, werr := cmd.Write(message(size))
	cerr := cmd.Close()
	if _, err := cmd.Wait(); err != nil {
		return err // the server's (or proxy's) answer says more
	}
	return errors.Join(werr, cerr)
}

var backoffText = regexp.MustCompile(`^Request is throttled\. Suggested Backoff Time: (\d+) milliseconds$`)

// backoff is the back-off a throttling refusal names; it fails the test
// if err is not one.
func backoff(t *testing.T, err error) time.Duration {
	t.Helper()
	ms, ok := suggested(err)
	require.True(t, ok, "want a throttling refusal, got %v", err)
	return ms
}

func suggested(err error) (time.Duration, bool) {
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Type != imap.StatusResponseTypeNo {
		return 0, false
	}
	m := backoffText.FindStringSubmatch(ie.Text)
	if m == nil {
		return 0, false
	}
	ms, err := strconv.Atoi(m[1])
	return time.Duration(ms) * time.Millisecond, err == nil && ms > 0
}

func TestAppendsPassUnderAGenerousLimit(t *testing.T) {
	t.Parallel()
	s, p := startPair(t, Options{Limit: 100 << 20})

	a := dial(t, p.Addr(), alice)
	b, err := imapclient.DialInsecure(p.Addr(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	require.NoError(t, b.Authenticate(sasl.NewPlainClient("", bob.Name, bob.Password)))

	sizes := []int{100, 5000, 200 << 10}
	var total int64
	for _, n := range sizes {
		require.NoError(t, appendMsg(a, n))
		total += int64(n)
	}
	require.NoError(t, appendMsg(b, 3000))

	assert.Equal(t, uint32(len(sizes)), inbox(t, s, alice))
	assert.Equal(t, uint32(1), inbox(t, s, bob))

	// The message comes back whole, through the proxy: server literals
	// pass unchanged.
	_, err = a.Select("INBOX", nil).Wait()
	require.NoError(t, err)
	msgs, err := a.Fetch(imap.SeqSetNum(3), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	assert.Equal(t, message(200<<10), msgs[0].FindBodySection(&imap.FetchItemBodySection{Peek: true}))

	st := p.Stats()
	assert.Equal(t, int64(4), st.AppendsAccepted)
	assert.Equal(t, int64(4), st.MessagesAccepted)
	assert.Equal(t, total+3000, st.BytesAccepted)
	assert.Zero(t, st.AppendsRefused)
	assert.Equal(t, map[string]int64{alice.Name: total, bob.Name: 3000}, st.UserBytes)
	assert.Equal(t, int64(2), st.Connections)
}

func TestRefusalNamesTheBackoffThatWorks(t *testing.T) {
	t.Parallel()
	// A burst of 10,000 bytes at 1,000 a second: the second APPEND below
	// is refused unless two seconds pass between the two.
	s, p := startPair(t, Options{Limit: 1000, Burst: 10000})
	c := dial(t, p.Addr(), alice)

	start := time.Now()
	require.NoError(t, appendMsg(c, 6000))
	err := appendMsg(c, 6000)
	elapsed := time.Since(start)
	wait := backoff(t, err)
	// 4,000 bytes left of 6,000 needed at 1,000 a second: 2 s, less what
	// the time between the two has refilled.
	assert.LessOrEqual(t, wait, 2*time.Second)
	assert.GreaterOrEqual(t, wait, 2*time.Second-elapsed)
	assert.Equal(t, uint32(1), inbox(t, s, alice), "a refused APPEND stores nothing")

	time.Sleep(wait)
	require.NoError(t, appendMsg(c, 6000), "after the back-off it was told, the same APPEND passes")
	assert.Equal(t, uint32(2), inbox(t, s, alice))

	st := p.Stats()
	assert.Equal(t, int64(2), st.AppendsAccepted)
	assert.Equal(t, int64(1), st.AppendsRefused)
	assert.Equal(t, int64(1), st.MessagesRefused)
	assert.Equal(t, int64(6000), st.BytesRefused)
	assert.Zero(t, st.Dropped)
}

// rawClient speaks IMAP over a bare socket, to send exactly what a test
// needs.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	rc := &rawClient{t: t, conn: conn, r: bufio.NewReader(conn)}
	require.True(t, strings.HasPrefix(rc.line(), "* OK"), "greeting")
	return rc
}

func (rc *rawClient) send(s string) {
	rc.t.Helper()
	_, err := rc.conn.Write([]byte(s))
	require.NoError(rc.t, err)
}

// line reads a response line; a literal in it is read and kept inline.
func (rc *rawClient) line() string {
	rc.t.Helper()
	require.NoError(rc.t, rc.conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	var out strings.Builder
	for {
		l, err := rc.r.ReadString('\n')
		require.NoError(rc.t, err, "read after %q", out.String())
		out.WriteString(l)
		lit, ok := literalAt([]byte(l))
		if !ok {
			return strings.TrimRight(out.String(), "\r\n")
		}
		buf := make([]byte, lit.size)
		_, err = io.ReadFull(rc.r, buf)
		require.NoError(rc.t, err)
		out.Write(buf)
	}
}

// until reads lines up to the tagged answer for tag, and returns them all.
func (rc *rawClient) until(tag string) []string {
	rc.t.Helper()
	var lines []string
	for {
		l := rc.line()
		lines = append(lines, l)
		if strings.HasPrefix(l, tag+" ") {
			return lines
		}
	}
}

// ok sends a command and requires an OK for it.
func (rc *rawClient) ok(tag, cmd string) []string {
	rc.t.Helper()
	rc.send(tag + " " + cmd + "\r\n")
	lines := rc.until(tag)
	require.True(rc.t, strings.HasPrefix(lines[len(lines)-1], tag+" OK"), "%s %s: %q", tag, cmd, lines)
	return lines
}

// closed reports whether the other end closes the connection (within a
// few seconds) with nothing more said.
func (rc *rawClient) closed() bool {
	require.NoError(rc.t, rc.conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err := rc.r.ReadByte()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func TestMultiappendIsAllOrNothing(t *testing.T) {
	t.Parallel()
	// 100 bytes a second: the second APPEND below is refused unless nine
	// seconds pass after the first.
	s, p := startPair(t, Options{Limit: 100, Burst: 1500})
	rc := dialRaw(t, p.Addr())
	rc.ok("l", `LOGIN alice "correct horse"`)

	m1, m2 := message(600), message(600)
	multi := fmt.Sprintf("INBOX (\\Seen) {%d+}\r\n%s (\\Flagged) \"01-Jan-2024 10:00:00 +0000\" {%d+}\r\n%s\r\n", len(m1), m1, len(m2), m2)

	rc.send("a1 APPEND " + multi)
	lines := rc.until("a1")
	assert.Regexp(t, `^a1 OK \[APPENDUID \d+ 1:2\]`, lines[len(lines)-1])
	assert.Equal(t, uint32(2), inbox(t, s, alice))

	// 300 bytes left of the 1,200 the same command needs, at 100 a second.
	rc.send("a2 APPEND " + multi)
	lines = rc.until("a2")
	require.Len(t, lines, 1, "nothing but the refusal")
	assert.Regexp(t, `^a2 NO Request is throttled\. Suggested Backoff Time: \d+ milliseconds$`, lines[0])
	assert.Equal(t, uint32(2), inbox(t, s, alice), "a refused MULTIAPPEND stores none of its messages")
	rc.ok("n", "NOOP") // the stream is still in step after the refused literals

	// Synchronising literals: the proxy asks for each, once; the server,
	// sent them as non-synchronising, asks for none.
	p.SetLimit(0)
	rc.send(fmt.Sprintf("a3 APPEND INBOX {%d}\r\n", len(m1)))
	assert.Equal(t, "+ go ahead", rc.line())
	rc.send(fmt.Sprintf("%s {%d}\r\n", m1, len(m2)))
	assert.Equal(t, "+ go ahead", rc.line())
	rc.send(string(m2) + "\r\n")
	lines = rc.until("a3")
	require.Len(t, lines, 1, "no continuation from the server: %q", lines)
	assert.Regexp(t, `^a3 OK \[APPENDUID \d+ 3:4\]`, lines[0])
	assert.Equal(t, uint32(4), inbox(t, s, alice))

	st := p.Stats()
	assert.Equal(t, int64(2), st.AppendsAccepted)
	assert.Equal(t, int64(4), st.MessagesAccepted)
	assert.Equal(t, int64(2400), st.BytesAccepted)
	assert.Equal(t, int64(1), st.AppendsRefused)
	assert.Equal(t, int64(2), st.MessagesRefused)
}

func TestRefusalsInARowDropTheConnection(t *testing.T) {
	t.Parallel()
	// A burst of 1,000 refilled at 10 bytes a second: emptied, the bucket
	// refuses 1,000 bytes for 100 s. MaxRefusals 3.
	s, p := startPair(t, Options{Limit: 10, Burst: 1000})
	c := dial(t, p.Addr(), alice)

	require.NoError(t, appendMsg(c, 1000)) // empties the bucket
	backoff(t, appendMsg(c, 1000))
	backoff(t, appendMsg(c, 1000))

	// An APPEND let through starts the count again.
	p.SetLimit(0)
	require.NoError(t, appendMsg(c, 1000))
	p.SetLimit(10) // a full bucket again
	require.NoError(t, appendMsg(c, 1000))
	backoff(t, appendMsg(c, 1000))
	backoff(t, appendMsg(c, 1000))
	assert.Zero(t, p.Stats().Dropped, "two in a row since the last let through")
	require.NoError(t, c.Noop().Wait())

	err := appendMsg(c, 1000)
	require.Error(t, err, "the third in a row")
	assert.Error(t, c.Noop().Wait(), "the connection is gone")

	st := p.Stats()
	assert.Equal(t, int64(1), st.Dropped)
	assert.Equal(t, int64(5), st.AppendsRefused)
	assert.Equal(t, int64(3), st.AppendsAccepted)
	assert.Equal(t, uint32(3), inbox(t, s, alice))
}

func TestLimitIsSharedByAllConnections(t *testing.T) {
	t.Parallel()
	const (
		limit   = 100_000 // bytes a second; burst one second of it
		size    = 5000
		clients = 4
		run     = 2 * time.Second
	)
	s, p := startPair(t, Options{Limit: limit, MaxRefusals: -1})
	users := []dovecot.User{alice, bob, alice, bob}
	conns := make([]*imapclient.Client, clients)
	for i := range conns {
		conns[i] = dial(t, p.Addr(), users[i])
	}

	before := p.Stats()
	deadline := time.Now().Add(run)
	var wg sync.WaitGroup
	errs := make([]error, clients)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = hammer(c, size, deadline)
		}()
	}
	wg.Wait()
	after := p.Stats()

	for i, err := range errs {
		require.NoError(t, err, "client %d", i)
	}
	got := after.BytesAccepted - before.BytesAccepted
	secs := after.At.Sub(before.At).Seconds()
	t.Logf("%d bytes in %.2fs over %d connections: %.0f bytes/s (limit %d), %d refusals",
		got, secs, clients, after.RateSince(before), limit, after.AppendsRefused)
	assert.LessOrEqual(t, float64(got), limit*secs+limit+size, "at most the rate over the time, plus the burst")
	assert.GreaterOrEqual(t, float64(got), 0.5*limit*secs, "clients that wait as told get most of the rate")
	assert.Positive(t, after.AppendsRefused, "four clients ask for more than the limit")

	assert.Equal(t, after.BytesAccepted, after.UserBytes[alice.Name]+after.UserBytes[bob.Name])
	assert.Positive(t, after.UserBytes[alice.Name])
	assert.Positive(t, after.UserBytes[bob.Name])
	stored := int64(inbox(t, s, alice)) + int64(inbox(t, s, bob))
	assert.Equal(t, after.MessagesAccepted, stored, "every message let through is on the server")
}

// hammer APPENDs until deadline, waiting the back-off it is told after a
// refusal.
func hammer(c *imapclient.Client, size int, deadline time.Time) error {
	for time.Now().Before(deadline) {
		err := appendMsg(c, size)
		if wait, ok := suggested(err); ok {
			time.Sleep(min(wait, time.Until(deadline)))
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func TestSetLimitWhileRunning(t *testing.T) {
	t.Parallel()
	s, p := startPair(t, Options{Limit: 10 << 20})
	c := dial(t, p.Addr(), alice)
	for range 3 {
		require.NoError(t, appendMsg(c, 5000))
	}

	p.SetLimit(1000) // burst one second: 1,000 bytes, all the bucket now holds
	assert.Equal(t, 1000.0, p.Limit())
	start := time.Now()
	require.NoError(t, appendMsg(c, 5000), "a message over the burst passes a full bucket, leaving it 4,000 in debt")
	wait := backoff(t, appendMsg(c, 5000))
	elapsed := time.Since(start)
	// The debt and a full bucket at 1,000 a second: 5 s, less what the
	// time between the two has refilled.
	assert.Greater(t, wait, 5*time.Second-elapsed, "the debt and a full bucket at 1,000 a second")
	assert.LessOrEqual(t, wait, 5*time.Second)

	p.SetLimit(0)
	assert.Zero(t, p.Limit())
	require.NoError(t, appendMsg(c, 5000), "no limit")
	assert.Equal(t, uint32(5), inbox(t, s, alice))
}

func TestCommandOverTheBound(t *testing.T) {
	t.Parallel()
	s, p := startPair(t, Options{MaxCommandBytes: 8192})

	// go-imap sees the code (and then closes its own connection: it gives
	// up on a client whose literal was not asked for).
	err := appendMsg(dial(t, p.Addr(), alice), 10000)
	var ie *imap.Error
	require.ErrorAs(t, err, &ie)
	assert.Equal(t, imap.ResponseCode("TOOBIG"), ie.Code)

	rc := dialRaw(t, p.Addr())
	rc.ok("l", `LOGIN alice "correct horse"`)
	rc.send("a1 APPEND INBOX {10000}\r\n")
	assert.Regexp(t, `^a1 NO \[TOOBIG\]`, rc.line(), "refused instead of a continuation")
	rc.ok("n", "NOOP") // the client sent nothing more of the command, and goes on
	assert.Zero(t, p.Stats().Dropped)

	rc.send(fmt.Sprintf("a2 APPEND INBOX {10000+}\r\n%s\r\n", message(10000)))
	assert.Regexp(t, `^a2 BAD \[TOOBIG\]`, rc.line())
	assert.True(t, strings.HasPrefix(rc.line(), "* BYE"))
	assert.True(t, rc.closed(), "a literal sent unasked over the bound drops the connection")

	st := p.Stats()
	assert.Equal(t, int64(3), st.AppendsTooBig)
	assert.Equal(t, int64(1), st.Dropped)
	assert.Zero(t, st.AppendsAccepted)
	assert.Zero(t, inbox(t, s, alice))
}

func TestOtherCommandsPassThrough(t *testing.T) {
	t.Parallel()
	_, p := startPair(t, Options{Limit: 1 << 20})
	rc := dialRaw(t, p.Addr())

	rc.send("s STARTTLS\r\n")
	assert.Equal(t, []string{"s NO STARTTLS is not offered through throttleproxy (plain TCP only)"}, rc.until("s"))

	// A login in synchronising literals: the server asks for each.
	rc.send("l LOGIN {5}\r\n")
	assert.True(t, strings.HasPrefix(rc.line(), "+"), "the server's continuation")
	rc.send("alice {13}\r\n")
	assert.True(t, strings.HasPrefix(rc.line(), "+"))
	rc.send("correct horse\r\n")
	lines := rc.until("l")
	assert.Regexp(t, `^l OK`, lines[len(lines)-1])

	m := message(3000)
	rc.send(fmt.Sprintf("a APPEND INBOX {%d+}\r\n%s\r\n", len(m), m))
	assert.Regexp(t, `^a OK`, rc.until("a")[0])
	rc.ok("s", "SELECT INBOX")
	lines = rc.ok("f", "FETCH 1 BODY.PEEK[]")
	assert.Equal(t, fmt.Sprintf("* 1 FETCH (BODY[] {%d}\r\n%s)", len(m), m), lines[0])

	rc.send("i IDLE\r\n")
	assert.True(t, strings.HasPrefix(rc.line(), "+ idling"))
	rc.send("DONE\r\n")
	assert.Regexp(t, `^i OK`, rc.until("i")[0])
	rc.ok("o", "LOGOUT")
	assert.True(t, rc.closed())

	assert.Equal(t, map[string]int64{alice.Name: 3000}, p.Stats().UserBytes, "the user from the login's literal")
}

func TestCloseEndsConnections(t *testing.T) {
	t.Parallel()
	_, p := startPair(t, Options{})
	rc := dialRaw(t, p.Addr())
	rc.ok("n", "NOOP")
	require.NoError(t, p.Close())
	assert.True(t, rc.closed())
	_, err := net.DialTimeout("tcp", p.Addr(), time.Second)
	assert.Error(t, err, "no longer listening")
}
