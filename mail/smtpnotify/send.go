package smtpnotify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	gomail "github.com/wneessen/go-mail"

	"mailwave/contract"
	"mailwave/mail/notices"
	"mailwave/mail/port"
)

// Send sends the notice unless the ledger says it already went out with the
// same Message-ID, in which case it makes no connection and reports
// alreadySent. Before it connects it takes the ledger's claim on the
// notice, so no two workers send it at once: while another worker holds
// it, the attempt fails (a retry finds the notice recorded, or the claim
// expired). After the server accepts the message the ledger record is
// written before the connection is closed, tried again for a while if the
// ledger is down; if that still fails the error says so, a retry in this
// process records it without sending, and a retry elsewhere waits for the
// claim to expire and then sends again (see the package documentation).
// Sends of one notice within this process are serialised, so a retry
// racing the original cannot deliver twice.
func (n *Notifier) Send(ctx context.Context, nt port.Notice) (alreadySent bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	key := nt.Mailbox.Key
	if err := checkRecord(key, nt.Kind); err != nil {
		return false, err
	}
	msgID, err := notices.BareMessageID(nt.MessageID)
	if err != nil {
		return false, port.Permanent(contract.ErrTypeNoticeNotSent, "smtpnotify: mailbox %s: %v", key, err)
	}
	// Build first, so a bad notice is an error even if the ledger has it.
	msg, err := n.message(nt)
	if err != nil {
		return false, err
	}

	name := key + "-" + string(nt.Kind)
	defer n.lock(name)()

	wantID := "<" + msgID + ">"
	if n.takeUnrecorded(name) == wantID {
		// Accepted by the relay in an earlier attempt here, not recorded:
		// record it now, never send it again.
		return true, n.record(ctx, key, nt.Kind, name, wantID)
	}
	var held *contract.NoticeClaimHeld
	switch id, err := n.ledger.Claim(ctx, key, nt.Kind, n.owner, claimFor); {
	case errors.As(err, &held):
		return false, fmt.Errorf("smtpnotify: mailbox %s: %s notice: %w", key, nt.Kind, err)
	case err != nil:
		return false, fmt.Errorf("smtpnotify: mailbox %s: ledger: %w", key, err)
	case id == wantID:
		return true, nil
	}
	// Not sent, or a record of another message under this name: send.
	quit, err := n.deliver(ctx, nt, msg)
	if err != nil {
		// Not accepted: let a retry anywhere send it at once. A release
		// that fails leaves the claim to expire.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = n.ledger.Release(rctx, key, nt.Kind, n.owner)
		return false, err
	}
	defer quit()
	return false, n.record(ctx, key, nt.Kind, name, wantID)
}

// claimFor is how long a claim to send a notice lasts: longer than an
// attempt (the notice activity's minute) and its record's retries, so a
// claim expires only when its worker died or lost its ledger.
var claimFor = 2 * time.Minute

// recordFor is how long a notice the relay accepted is tried to be
// recorded before the attempt gives up (a ledger database restarting takes
// seconds), within the notice activity's minute: a retry elsewhere that
// finds no record sends the notice again.
var recordFor = 20 * time.Second

// record writes the ledger record of a notice the relay accepted, trying
// again while the ledger is unreachable, for recordFor even if the
// attempt's context ends first. If it still fails, the notice is remembered in this process so
// that a retry here records it instead of sending it twice.
func (n *Notifier) record(ctx context.Context, key string, kind contract.NoticeKind, name, id string) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordFor)
	defer cancel()
	wait := 100 * time.Millisecond
	for {
		err := n.ledger.Record(rctx, key, kind, id, time.Now())
		if err == nil {
			return nil
		}
		select {
		case <-rctx.Done():
			n.mu.Lock()
			n.unrecorded[name] = id
			n.mu.Unlock()
			return fmt.Errorf("smtpnotify: mailbox %s: %s notice sent but not recorded (a retry in this worker records it; one elsewhere sends it again): %w", key, kind, err)
		case <-time.After(wait):
			wait = min(2*wait, 5*time.Second)
		}
	}
}

// takeUnrecorded returns (and forgets) the Message-ID of a notice this
// process sent but could not record, or "".
func (n *Notifier) takeUnrecorded(name string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	id := n.unrecorded[name]
	delete(n.unrecorded, name)
	return id
}

// Sent reports whether the ledger records the notice of that kind for that
// mailbox as sent.
func (n *Notifier) Sent(ctx context.Context, key string, kind contract.NoticeKind) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if err := checkRecord(key, kind); err != nil {
		return false, err
	}
	id, err := n.ledger.Recorded(ctx, key, kind)
	if err != nil {
		return false, fmt.Errorf("smtpnotify: mailbox %s: ledger: %w", key, err)
	}
	return id != "", nil
}

// lock takes the lock of one ledger record and returns its release.
func (n *Notifier) lock(path string) (unlock func()) {
	n.mu.Lock()
	l := n.sending[path]
	if l == nil {
		l = &pathLock{}
		n.sending[path] = l
	}
	l.users++
	n.mu.Unlock()

	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		n.mu.Lock()
		if l.users--; l.users == 0 {
			delete(n.sending, path)
		}
		n.mu.Unlock()
	}
}

// message builds the notice. Errors never include an address (see
// notices.Templates.Compose). A notice that cannot be built never will be,
// so those errors are permanent.
func (n *Notifier) message(nt port.Notice) (*gomail.Msg, error) {
	if nt.Kind.ToAdmin() && n.admin == nil {
		return nil, port.Permanent(contract.ErrTypeNoticeNotSent, "smtpnotify: mailbox %s: failure notice: no AdminContact configured", nt.Mailbox.Key)
	}
	msg, err := n.templates.Compose(nt, n.from, n.admin)
	if err != nil {
		return nil, port.Permanent(contract.ErrTypeNoticeNotSent, "smtpnotify: %v", err)
	}
	return msg, nil
}

// deliver dials the relay and sends msg. A message the server accepted
// counts as delivered even if the goodbye then fails: reporting an error
// would make the retry send it twice. On success the caller calls quit
// (which says goodbye and closes the connection) once it has recorded the
// message, so that a worker dying in between has as little time as can be.
func (n *Notifier) deliver(ctx context.Context, nt port.Notice, msg *gomail.Msg) (quit func(), err error) {
	// Our own dial keeps hold of the connection: go-mail leaves it open when
	// EHLO or STARTTLS fails, and does not watch the context once connected.
	// Closing it when ctx ends makes a cancelled activity stop at once.
	var conn net.Conn
	var stop func() bool
	closeConn := func() {
		if stop != nil {
			stop()
		}
		if conn != nil {
			_ = conn.Close() // usually closed already by QUIT; harmless then
		}
	}
	dial := func(dctx context.Context, network, addr string) (net.Conn, error) {
		d := &net.Dialer{}
		var c net.Conn
		var err error
		if n.security == SecurityTLS {
			c, err = (&tls.Dialer{NetDialer: d, Config: n.tlsConfig.Clone()}).DialContext(dctx, network, addr)
		} else {
			c, err = d.DialContext(dctx, network, addr)
		}
		if err != nil {
			return nil, err
		}
		conn = c
		// Not dctx: go-mail cancels that as soon as the dial is done.
		stop = context.AfterFunc(ctx, func() { _ = c.Close() })
		return c, nil
	}

	opts := []gomail.Option{
		gomail.WithPort(n.port),
		gomail.WithTimeout(n.timeout),
		gomail.WithDialContextFunc(dial),
		// No RSET after the message: the record is written as soon as the
		// server accepts it, before anything else on the connection.
		gomail.WithoutRset(),
	}
	switch n.security {
	case SecurityTLS:
		// The TLS is dialled above; WithSSL keeps go-mail from trying STARTTLS.
		opts = append(opts, gomail.WithSSL())
	case SecurityStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory), gomail.WithTLSConfig(n.tlsConfig.Clone()))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if n.helo != "" {
		opts = append(opts, gomail.WithHELO(n.helo))
	}
	var auth *trackedAuth
	if n.username != "" {
		auth = n.newAuth()
		opts = append(opts, gomail.WithSMTPAuthCustom(auth))
	}
	client, err := gomail.NewClient(n.host, opts...)
	if err != nil {
		return nil, fmt.Errorf("smtpnotify: mailbox %s: %s notice: client: %w", nt.Mailbox.Key, nt.Kind, err)
	}
	// Each command is also bounded by the timeout.
	sc, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		closeConn()
		return nil, n.failed(ctx, nt, auth, fmt.Errorf("dial failed: %w", err))
	}
	quit = func() {
		_ = client.CloseWithSMTPClient(sc)
		closeConn()
	}
	err = client.SendWithSMTPClient(sc, msg)
	if msg.IsDelivered() {
		return quit, nil
	}
	quit()
	if err == nil {
		// Not expected from go-mail, but an unconfirmed send is not a send.
		err = errors.New("the server did not confirm the message")
	}
	return nil, n.failed(ctx, nt, auth, fmt.Errorf("send failed: %w", err))
}
