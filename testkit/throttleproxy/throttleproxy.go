// Package throttleproxy is an IMAP proxy for tests and benchmarks that
// stands in front of a real IMAP server (a Dovecot from
// testkit/dovecot) and throttles APPENDs the way a cloud target
// such as Exchange Online does: one global rate limit shared by every
// connection, refusals that name a back-off, and connections dropped after
// repeated refusals.
//
// The proxy reads what clients send command by command. Every command but
// APPEND passes through unchanged, as a stream. An APPEND (one message, or
// several in one MULTIAPPEND, RFC 3502) is read whole first, the proxy
// itself answering "+ go ahead" to each synchronising literal. If the
// bucket holds its message bytes it takes them and passes the command on
// with every literal made non-synchronising ("{n+}", RFC 7888), so the
// server sends no continuation of its own; otherwise the proxy answers
//
//	TAG NO Request is throttled. Suggested Backoff Time: N milliseconds
//
// itself and passes nothing on. What the server sends passes through
// unchanged, a whole response at a time, so the proxy's own answers never
// land inside one.
//
// Inject arms a connection fault at an APPEND (faults.go): a reset before
// the server reads it, a reset after the server applied it (the answer
// lost), an APPEND held at a reset and delivered later, once another
// connection's chosen command has been answered (so that a client that
// looked at the target after the reset finds it there only afterwards),
// or a call (a test restarts the server there).
//
// Limits, all for tests on loopback:
//   - plain TCP only: STARTTLS (and COMPRESS) are refused with a tagged NO
//     (the Dovecot test servers take plaintext logins on loopback);
//   - the target must offer LITERAL+ (Dovecot does);
//   - a synchronising literal in a command other than APPEND is streamed,
//     the server answering its "+"; should the server refuse one instead
//     (a tagged NO or BAD, which Dovecot does only past its own size
//     bounds), the proxy would wait for literal bytes the client will not
//     send;
//   - CATENATE's text parts count as messages.
package throttleproxy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the zero Options.
const (
	DefaultMaxRefusals     = 3
	DefaultMaxCommandBytes = 64 << 20
	DefaultDialTimeout     = 5 * time.Second
)

// Options configures a proxy. The zero value is a proxy with no limit.
type Options struct {
	// Limit is the rate, in APPEND message bytes a second, that all
	// connections together may send. 0 (or less, or +Inf): no limit.
	Limit float64

	// Burst is the most bytes the bucket holds (it starts full). 0: one
	// second of the limit, following SetLimit. An APPEND larger than the
	// burst is let through when the bucket is full, leaving it in debt.
	Burst float64

	// MaxRefusals is how many refusals in a row (no APPEND let through in
	// between) make the proxy drop a connection. 0: DefaultMaxRefusals;
	// negative: never.
	MaxRefusals int

	// MaxCommandBytes bounds an APPEND command, lines and literals
	// together. A synchronising literal that would pass it is refused with
	// a tagged NO [TOOBIG] instead of a continuation (the client then sends
	// nothing more of the command); a non-synchronising one, whose bytes
	// are already on their way, drops the connection. 0:
	// DefaultMaxCommandBytes.
	MaxCommandBytes int64

	// DialTimeout bounds connecting to the target. 0: DefaultDialTimeout.
	DialTimeout time.Duration

	// NoBackoff leaves the suggested back-off out of a refusal ("NO Request
	// is throttled."), as some targets do.
	NoBackoff bool
}

func (o Options) withDefaults() Options {
	if o.MaxRefusals == 0 {
		o.MaxRefusals = DefaultMaxRefusals
	}
	if o.MaxCommandBytes <= 0 {
		o.MaxCommandBytes = DefaultMaxCommandBytes
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	return o
}

// Stats is a snapshot of the proxy's counters. An APPEND "accepted" is one
// the proxy passed on to the server, whatever the server then answered.
type Stats struct {
	At time.Time // when the snapshot was taken

	AppendsAccepted  int64 // APPEND commands passed on
	AppendsRefused   int64 // APPEND commands refused for the rate limit
	AppendsTooBig    int64 // APPEND commands over MaxCommandBytes
	MessagesAccepted int64 // messages in the APPENDs passed on
	MessagesRefused  int64 // messages in the APPENDs refused for the rate
	BytesAccepted    int64 // message bytes passed on
	BytesRefused     int64 // message bytes refused for the rate

	Connections int64 // client connections accepted
	Dropped     int64 // connections the proxy closed: refusals in a row, a command too big
	Faults      int64 // injected faults that struck (Inject)

	// UserBytes is BytesAccepted by login name, for connections that
	// logged in with LOGIN or with AUTHENTICATE PLAIN or XOAUTH2.
	UserBytes map[string]int64
}

// RateSince is the bytes a second accepted between prev and s.
func (s Stats) RateSince(prev Stats) float64 {
	secs := s.At.Sub(prev.At).Seconds()
	if secs <= 0 {
		return 0
	}
	return float64(s.BytesAccepted-prev.BytesAccepted) / secs
}

// counters are the proxy's running totals, updated atomically.
type counters struct {
	appendsAccepted, appendsRefused, appendsTooBig atomic.Int64
	messagesAccepted, messagesRefused              atomic.Int64
	bytesAccepted, bytesRefused                    atomic.Int64
	connections, dropped                           atomic.Int64
	faults                                         atomic.Int64
}

// Proxy is a running throttling proxy.
type Proxy struct {
	target string
	o      Options
	ln     net.Listener
	bucket *bucket
	n      counters

	ctx    context.Context // ends at Close, stopping dials to the target
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loop and every connection's goroutines

	mu        sync.Mutex
	closed    bool
	conns     map[*conn]struct{}
	userBytes map[string]int64
	fault     *fault // armed by Inject
}

// Start listens on a free loopback port and proxies each connection to
// target (host:port of a plain IMAP port).
func Start(target string, o Options) (*Proxy, error) {
	if _, _, err := net.SplitHostPort(target); err != nil {
		return nil, fmt.Errorf("throttleproxy: target %q is not host:port: %w", target, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("throttleproxy: listen on loopback: %w", err)
	}
	o = o.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		target:    target,
		o:         o,
		ln:        ln,
		bucket:    newBucket(o.Limit, o.Burst, time.Now()),
		ctx:       ctx,
		cancel:    cancel,
		conns:     map[*conn]struct{}{},
		userBytes: map[string]int64{},
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is where clients connect, host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Host is the listening address's host, 127.0.0.1.
func (p *Proxy) Host() string { return p.ln.Addr().(*net.TCPAddr).IP.String() }

// Port is the listening port.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// Target is the server the proxy passes commands to.
func (p *Proxy) Target() string { return p.target }

// SetLimit changes the rate, in bytes a second, from now on; 0 (or less,
// or +Inf) lifts it. Lowering it also lowers what the bucket holds to the
// new burst.
func (p *Proxy) SetLimit(bytesPerSecond float64) {
	p.bucket.setLimit(bytesPerSecond, time.Now())
}

// Limit is the rate in bytes a second; 0: no limit.
func (p *Proxy) Limit() float64 { return p.bucket.limit() }

// Stats reads the counters.
func (p *Proxy) Stats() Stats {
	s := Stats{
		At:               time.Now(),
		AppendsAccepted:  p.n.appendsAccepted.Load(),
		AppendsRefused:   p.n.appendsRefused.Load(),
		AppendsTooBig:    p.n.appendsTooBig.Load(),
		MessagesAccepted: p.n.messagesAccepted.Load(),
		MessagesRefused:  p.n.messagesRefused.Load(),
		BytesAccepted:    p.n.bytesAccepted.Load(),
		BytesRefused:     p.n.bytesRefused.Load(),
		Connections:      p.n.connections.Load(),
		Dropped:          p.n.dropped.Load(),
		Faults:           p.n.faults.Load(),
	}
	p.mu.Lock()
	s.UserBytes = maps.Clone(p.userBytes)
	p.mu.Unlock()
	return s
}

// Close stops listening, closes every connection and waits for their
// goroutines to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.cancel()
	err := p.ln.Close()
	for c := range p.conns {
		c.closeBoth()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			// The listener is closed (Close) or broken: either way no more
			// connections come.
			return
		}
		p.n.connections.Add(1)
		p.wg.Add(1)
		go p.handle(client)
	}
}

// handle connects a client to the target and proxies until both sides
// are done.
func (p *Proxy) handle(client net.Conn) {
	defer p.wg.Done()
	d := net.Dialer{Timeout: p.o.DialTimeout}
	server, err := d.DialContext(p.ctx, "tcp", p.target)
	if err != nil {
		fmt.Fprintf(client, "* BYE [UNAVAILABLE] throttleproxy cannot reach %s: %v\r\n", p.target, err)
		client.Close()
		return
	}
	c := newConn(p, client, server)
	if !p.track(c) {
		c.closeBoth()
		return
	}
	defer p.forget(c)
	c.run()
}

// track records a live connection, unless the proxy is closed.
func (p *Proxy) track(c *conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) forget(c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

// admit decides on an APPEND of n message bytes in msgs messages, for
// user ("" if not known), and counts it. It returns 0 if the command may
// pass, else the back-off to suggest (at least a millisecond).
func (p *Proxy) admit(n int64, msgs int, user string) time.Duration {
	ok, wait := p.bucket.take(n, time.Now())
	if !ok {
		p.n.appendsRefused.Add(1)
		p.n.messagesRefused.Add(int64(msgs))
		p.n.bytesRefused.Add(n)
		return ceilMillis(wait)
	}
	p.n.appendsAccepted.Add(1)
	p.n.messagesAccepted.Add(int64(msgs))
	p.n.bytesAccepted.Add(n)
	if user != "" {
		p.mu.Lock()
		p.userBytes[user] += n
		p.mu.Unlock()
	}
	return 0
}

// ceilMillis rounds d up to whole milliseconds, at least one: a client
// that waits the back-off it is told finds the bytes there.
func ceilMillis(d time.Duration) time.Duration {
	ms := (d + time.Millisecond - 1) / time.Millisecond
	return max(ms, 1) * time.Millisecond
}

// throttledText is the refusal, as Exchange Online words it.
func throttledText(backoff time.Duration, figure bool) string {
	if !figure {
		return "Request is throttled."
	}
	return "Request is throttled. Suggested Backoff Time: " +
		strconv.FormatInt(backoff.Milliseconds(), 10) + " milliseconds"
}

// errDropped ends a connection the proxy chose to drop.
var errDropped = errors.New("throttleproxy dropped the connection")
