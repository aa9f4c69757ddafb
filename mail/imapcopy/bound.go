package imapcopy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"mailwave/contract"
	"mailwave/mail/port"
)

// go-imap's reader takes whatever a server announces: a literal ({N} or
// ~{N}) in a LIST, STATUS or ENVELOPE answer is read whole into a string,
// and an endless line into a token, before mailwave sees any of it. A
// hostile or broken server could so take a worker's memory, and again on
// every retry of the mailbox's copy, on worker after worker. boundedConn
// sits under go-imap's reader (above TLS) and fails the connection as soon
// as a server announces more than the bounds below.

// Bounds on what a server may send, outside the bodies of messages (whose
// bound is the largest message the copier accepts).
const (
	// maxOtherLiteral bounds a literal that is not a message's body or
	// header (a folder name in LIST or STATUS, an envelope's string).
	maxOtherLiteral = 64 << 10
	// maxAnswerLine bounds a line of an answer outside its literals: a
	// UID SEARCH of a million messages is about 8 MB.
	maxAnswerLine = 16 << 20
	// maxReaderBody is the Reader's bound on a message body (a copier whose
	// target is not IMAP): the largest message any target takes (Exchange
	// Online through Graph, 150 MB).
	maxReaderBody = 150 << 20
)

// AnswerTooLargeError is a server announcing a literal, or sending a line,
// over the copier's bound. The connection is failed at once: nothing more
// of the answer is read.
type AnswerTooLargeError struct {
	Side  Side   // whose server
	What  string // "a message body literal", "a literal", "a line"
	Size  int64  // announced (a literal) or read so far (a line)
	Limit int64
}

func (e *AnswerTooLargeError) Error() string {
	who := "the server"
	if e.Side != "" {
		who = "the " + string(e.Side)
	}
	return fmt.Sprintf("%s sent %s of %d bytes, over the bound of %d: the connection was dropped", who, e.What, e.Size, e.Limit)
}

// tripwire collects the first bound a call's connections hit, so that the
// call (a copy, a preflight) can fail with it whatever go-imap made of the
// broken connection (its errors are text).
type tripwire struct {
	mu  sync.Mutex
	err *AnswerTooLargeError
}

func (t *tripwire) trip(err *AnswerTooLargeError) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err == nil {
		t.err = err
	}
}

// tripped returns the bound hit, or nil.
func (t *tripwire) tripped() *AnswerTooLargeError {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// boundedConn reads a server's answers through a small parser that finds
// each literal's announced size ({N} or ~{N} at the end of a line, split
// across reads or not) and fails the connection with an
// *AnswerTooLargeError when it is over its bound: maxBody for a message's
// body (BODY[...], BINARY[...], RFC822 in a FETCH answer), maxOtherLiteral
// for any other. A line longer than maxAnswerLine outside literals fails it
// too. Writes pass through.
type boundedConn struct {
	net.Conn
	side    Side
	maxBody int64
	trips   *tripwire

	mu   sync.Mutex // one reader at a time (go-imap has one)
	err  *AnswerTooLargeError
	read atomic.Int64 // bytes read from the server, for tests

	// The parser's state.
	literal int64  // bytes of the current literal still to pass
	line    int64  // bytes of the current line (outside literals)
	start   []byte // the first bytes of the current answer (to tell a FETCH)
	tail    []byte // the last bytes before the current position (up to tailLen)
	// prefix is handed over before anything read (a greeting standing in
	// for the one read before STARTTLS).
	prefix []byte
}

const (
	tailLen  = 64
	startLen = 32
)

func newBoundedConn(c net.Conn, side Side, maxBody int64, trips *tripwire) *boundedConn {
	return &boundedConn{Conn: c, side: side, maxBody: maxBody, trips: trips}
}

func (b *boundedConn) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	if len(b.prefix) > 0 {
		n := copy(p, b.prefix)
		b.prefix = b.prefix[n:]
		return n, nil
	}
	n, err := b.Conn.Read(p)
	b.read.Add(int64(n))
	if tooLarge := b.scan(p[:n]); tooLarge != nil {
		tooLarge.Side = b.side
		b.err = tooLarge
		b.trips.trip(tooLarge)
		_ = b.Conn.Close()
		return 0, tooLarge
	}
	return n, err
}

// scan runs the parser over p, returning the first bound broken.
func (b *boundedConn) scan(p []byte) *AnswerTooLargeError {
	for len(p) > 0 {
		if b.literal > 0 {
			k := int64(len(p))
			if k > b.literal {
				k = b.literal
			}
			b.literal -= k
			p = p[k:]
			continue
		}
		c := p[0]
		p = p[1:]
		if len(b.start) < startLen {
			b.start = append(b.start, c)
		}
		if len(b.tail) == tailLen {
			copy(b.tail, b.tail[1:])
			b.tail = b.tail[:tailLen-1]
		}
		b.tail = append(b.tail, c)
		if c != '\n' {
			if b.line++; b.line > maxAnswerLine {
				return &AnswerTooLargeError{What: "a line", Size: b.line, Limit: maxAnswerLine}
			}
			continue
		}
		b.line = 0
		size, before, ok := announced(b.tail, len(b.tail) == tailLen)
		if ok && isStatusLine(b.start) {
			// go-imap reads a status line's text to its end, "{N}" and
			// all: no literal follows it.
			ok = false
		}
		if !ok {
			// The answer ends here.
			b.start, b.tail = b.start[:0], b.tail[:0]
			continue
		}
		what, limit := "a literal", int64(maxOtherLiteral)
		if isBodyItem(b.start, before) {
			what, limit = "a message body literal", b.maxBody
		}
		if size > limit {
			return &AnswerTooLargeError{What: what, Size: size, Limit: limit}
		}
		b.literal = size
		b.tail = b.tail[:0]
	}
	return nil
}

// announced reads a literal's announcement at the end of a line, tail
// ending in "{N}\r\n", "{N+}\r\n" or "~{N}\r\n": its size and what came
// before it on the line (as far as tail holds). A size too long to be a
// number is announced as over any bound, and so is a run of digits that
// fills the whole of a full tail (its '{' out of sight: go-imap would
// read it, leading zeros and all, as a size).
func announced(tail []byte, full bool) (size int64, before []byte, ok bool) {
	t, found := bytes.CutSuffix(tail, []byte("}\r\n"))
	if !found {
		return 0, nil, false
	}
	t = bytes.TrimSuffix(t, []byte("+"))
	open := bytes.LastIndexByte(t, '{')
	if open < 0 {
		if full && len(t) > 0 && bytes.IndexFunc(t, func(r rune) bool { return r < '0' || r > '9' }) < 0 {
			return 1 << 62, nil, true
		}
		return 0, nil, false
	}
	digits := t[open+1:]
	if len(digits) == 0 {
		return 0, nil, false
	}
	for _, d := range digits {
		if d < '0' || d > '9' {
			return 0, nil, false
		}
		if size > (1<<62)/10 {
			return 1 << 62, nil, true
		}
		size = size*10 + int64(d-'0')
	}
	before = bytes.TrimSuffix(t[:open], []byte("~"))
	return size, before, true
}

// isBodyItem reports whether a literal announced after before, in the
// answer that starts with start, is a message's content: a FETCH answer's
// BODY[...], BINARY[...] (each with an optional <origin>), RFC822,
// RFC822.HEADER or RFC822.TEXT.
func isBodyItem(start, before []byte) bool {
	s := bytes.ToUpper(start)
	if !bytes.HasPrefix(s, []byte("* ")) {
		return false
	}
	if f := bytes.Fields(s[2:]); len(f) < 2 || !bytes.HasPrefix(f[1], []byte("FETCH")) {
		return false
	}
	b := bytes.ToUpper(bytes.TrimRight(before, " "))
	if i := bytes.LastIndexByte(b, '<'); i >= 0 && bytes.HasSuffix(b, []byte(">")) {
		b = b[:i] // the origin of a partial fetch
	}
	if bytes.HasSuffix(b, []byte("]")) {
		return true
	}
	for _, item := range [][]byte{[]byte("RFC822"), []byte("RFC822.HEADER"), []byte("RFC822.TEXT")} {
		if bytes.HasSuffix(b, item) {
			rest := b[:len(b)-len(item)]
			if len(rest) == 0 || rest[len(rest)-1] == ' ' || rest[len(rest)-1] == '(' {
				return true
			}
		}
	}
	return false
}

// asTooLarge finds the bound an error (or the tripwire) says was hit.
func asTooLarge(err error, t *tripwire) *AnswerTooLargeError {
	var tl *AnswerTooLargeError
	if errors.As(err, &tl) {
		return tl
	}
	return t.tripped()
}

// tripwireKey carries a call's tripwire in its context.
type tripwireKey struct{}

// withTripwire gives a call (a copy, a preflight) a tripwire its
// connections report to.
// A call inside another (CheckTarget in a preflight) shares the outer
// call's.
func withTripwire(ctx context.Context) (context.Context, *tripwire) {
	if t := tripwireOf(ctx); t != nil {
		return ctx, t
	}
	t := &tripwire{}
	return context.WithValue(ctx, tripwireKey{}, t), t
}

func tripwireOf(ctx context.Context) *tripwire {
	t, _ := ctx.Value(tripwireKey{}).(*tripwire)
	return t
}

// tooLargeFailure is the error a call fails with once one of its
// connections hit a bound: permanent, for retrying cannot help and would
// only let the server try again on another worker.
func tooLargeFailure(t *tripwire, key string, err error) error {
	if err == nil {
		return nil
	}
	tl := asTooLarge(err, t)
	if tl == nil {
		return err
	}
	return port.Permanent(contract.ErrTypeServerAnswerTooLarge, "mailbox %s: %v", key, tl)
}

// dialBounded connects to ep, with TLS as ep asks (STARTTLS negotiated
// here, so that the bounded reader sits on the clear text), and hands the
// connection to go-imap through a boundedConn.
func dialBounded(ctx context.Context, ep Endpoint, side Side, maxBody int64, trips *tripwire) (*imapclient.Client, *boundedConn, error) {
	d := &net.Dialer{Timeout: ep.DialTimeout}
	raw, err := d.DialContext(ctx, "tcp", ep.Addr())
	if err != nil {
		return nil, nil, err
	}
	var (
		nc       net.Conn = raw
		greeting []byte
	)
	switch ep.Security {
	case SecurityTLS:
		tc := tls.Client(raw, ep.tlsConfig())
		if err := handshake(ctx, tc, ep.DialTimeout); err != nil {
			raw.Close()
			return nil, nil, err
		}
		nc = tc
	case SecurityStartTLS:
		if nc, err = startTLS(ctx, raw, ep); err != nil {
			raw.Close()
			return nil, nil, err
		}
		// go-imap waits for a greeting: it was read before STARTTLS, and
		// its capabilities no longer hold, so a bare one stands in.
		greeting = []byte("* OK TLS negotiated\r\n")
	}
	bc := newBoundedConn(nc, side, maxBody, trips)
	bc.prefix = greeting
	return imapclient.New(bc, nil), bc, nil
}

func handshake(ctx context.Context, tc *tls.Conn, timeout time.Duration) error {
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return tc.HandshakeContext(hctx)
}

// startTLS reads the greeting, asks for STARTTLS and negotiates TLS on raw.
// Every line is bounded, and a server that sends anything after its OK
// before the handshake (an injection) is refused.
func startTLS(ctx context.Context, raw net.Conn, ep Endpoint) (net.Conn, error) {
	_ = raw.SetDeadline(time.Now().Add(ep.DialTimeout))
	br := bufio.NewReaderSize(raw, 4<<10)
	readLine := func() (string, error) {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return "", &AnswerTooLargeError{What: "a line before STARTTLS", Size: int64(len(line)), Limit: int64(br.Size())}
		}
		return string(bytes.TrimRight(line, "\r\n")), err
	}
	greeting, err := readLine()
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(greeting, "* OK") {
		return nil, fmt.Errorf("STARTTLS: unexpected greeting %q", firstWords(greeting))
	}
	if _, err := io.WriteString(raw, "S STARTTLS\r\n"); err != nil {
		return nil, err
	}
	for {
		line, err := readLine()
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(line, "* ") {
			continue
		}
		if !strings.HasPrefix(line, "S OK") {
			return nil, fmt.Errorf("STARTTLS refused: %q", firstWords(line))
		}
		break
	}
	if br.Buffered() > 0 {
		return nil, errors.New("STARTTLS: the server sent data before the TLS handshake: refused")
	}
	_ = raw.SetDeadline(time.Time{})
	tc := tls.Client(raw, ep.tlsConfig())
	if err := handshake(ctx, tc, ep.DialTimeout); err != nil {
		return nil, err
	}
	return tc, nil
}

// isStatusLine reports whether the answer that starts with start is a
// status (untagged or tagged OK, NO, BAD, BYE or PREAUTH) or a
// continuation request, whose text go-imap reads to the line's end.
func isStatusLine(start []byte) bool {
	tag, rest, _ := bytes.Cut(start, []byte(" "))
	if bytes.Equal(tag, []byte("+")) {
		return true
	}
	word, _, _ := bytes.Cut(rest, []byte(" "))
	for _, w := range []string{"OK", "NO", "BAD", "BYE", "PREAUTH"} {
		if bytes.EqualFold(word, []byte(w)) {
			return true
		}
	}
	return false
}
