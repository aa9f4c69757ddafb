// Package smtpnotify is an activities.Notifier that sends each notice by
// SMTP through a relay: one connection per notice, opened and closed by Send.
// User notices go to the user; a failure notice goes to the organisation's
// admin contact.
//
// # Idempotency
//
// A send that already succeeded is not repeated on retry. Once the server
// has accepted a message, a small record <key>-<kind>.sent (the Message-ID
// and the time) is written atomically to the ledger directory, and Send reads
// it before it connects. Sent answers from the same ledger; the cutover
// consults it to prove that the T-14 notice went out, so the ledger must be
// on storage that outlives the worker and is shared by every worker that
// sends notices.
//
// One window is left open: if the server accepts a message and the process
// dies (or the record cannot be written) before the record is on disk, the
// retry sends the notice again. The copy carries the same Message-ID, so the
// relay and the user's mail client can recognise it as a duplicate. Closing
// the window would need the relay to report what it has accepted, which SMTP
// cannot do.
//
// # Errors
//
// Errors are shaped for Temporal's retries (see activities/errors.go):
//
//   - a 5xx reply to MAIL FROM, RCPT TO or the message data, and a notice
//     that cannot be built: permanent, activities.ErrTypeNoticeNotSent;
//   - a 5xx reply to AUTH, or a mechanism the server does not offer:
//     permanent, activities.ErrTypeBadCredentials;
//   - a 421, 450 or 451 reply that asks us to try later (rate limits, too
//     many connections): *activities.ThrottledError with ThrottleRetryAfter,
//     so that a busy relay is not hammered at the retry policy's pace;
//   - any other 4xx reply, and every connection, timeout or TLS failure:
//     a plain error, which Temporal retries.
//
// No error carries an email address: errors end up in workflow histories and
// logs, so they name the mailbox by its opaque key. The server's reply text
// to a message is left out too, since servers often echo the recipient.
package smtpnotify

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"

	"mailwave/activities"
	"mailwave/contract"
	"mailwave/internal/atomicfile"
	"mailwave/internal/tlsconf"
	"mailwave/mail/notices"
)

// Values of Options.Security.
const (
	SecurityTLS      = "tls"      // implicit TLS from the first byte (usually port 465)
	SecurityStartTLS = "starttls" // STARTTLS, required: no fallback to plain text
	SecurityNone     = "none"     // plain text, for a relay on the same host
)

// Values of Options.AuthMechanism.
const (
	AuthPlain = "plain"
	AuthLogin = "login"
)

const (
	// DefaultTimeout bounds the dial and each SMTP command when
	// Options.Timeout is zero.
	DefaultTimeout = 30 * time.Second
	// ThrottleRetryAfter is the retry delay when the server asks us to try
	// again later: long enough for a rate limit to ease, short enough to
	// keep a notice's lead time.
	ThrottleRetryAfter = 30 * time.Second
)

const (
	ledgerSuffix = ".sent"
	// ledgerIDField and ledgerAtField are the fields of a ledger record.
	ledgerIDField = "Message-ID"
	ledgerAtField = "Sent-At"
)

// Options configures a Notifier.
type Options struct {
	// Host and Port are the relay's address.
	Host string
	Port int
	// Security is SecurityTLS, SecurityStartTLS or SecurityNone.
	Security string
	// CAFile is an optional PEM file of CA certificates, trusted as well as
	// the system's (for a relay with a private CA).
	CAFile string
	// Username and Password are already-resolved secrets; an empty Username
	// means no authentication.
	Username, Password string
	// AuthMechanism is AuthPlain, AuthLogin, or "" for AuthPlain when
	// Username is set.
	AuthMechanism string
	// From is the organisation's sender, in RFC 5322 form.
	From string
	// AdminContact receives failure notices, in RFC 5322 form. If empty, a
	// failure notice cannot be sent.
	AdminContact string
	// Templates renders the notices; nil means the embedded defaults.
	Templates *notices.Templates
	// LedgerDir holds the record of each notice sent; it is created if
	// missing. Required.
	LedgerDir string
	// Timeout bounds the dial and each SMTP command; DefaultTimeout if zero.
	Timeout time.Duration
	// HELO is the name given in EHLO; the local host name if empty.
	HELO string
}

// Notifier sends notices by SMTP. It is safe for concurrent use.
type Notifier struct {
	host      string
	port      int
	security  string
	tlsConfig *tls.Config // nil with SecurityNone
	username  string
	password  string
	mechanism string // AuthPlain or AuthLogin when username is set
	from      *mail.Address
	admin     *mail.Address // nil: failure notices cannot be sent
	templates *notices.Templates
	ledgerDir string
	timeout   time.Duration
	helo      string

	// sending serialises sends of one notice (by ledger path) and nothing
	// else, so a slow relay holds up only the retry of the same notice.
	mu      sync.Mutex
	sending map[string]*pathLock
}

type pathLock struct {
	mu    sync.Mutex
	users int
}

var _ activities.Notifier = (*Notifier)(nil)

// New checks the options, loads the CA file and creates the ledger
// directory. Each error names the option at fault; secrets are never shown.
func New(o Options) (*Notifier, error) {
	n := &Notifier{
		host:      o.Host,
		port:      o.Port,
		security:  o.Security,
		username:  o.Username,
		password:  o.Password,
		templates: o.Templates,
		ledgerDir: o.LedgerDir,
		timeout:   o.Timeout,
		helo:      o.HELO,
		sending:   make(map[string]*pathLock),
	}
	if err := checkHost(o.Host); err != nil {
		return nil, err
	}
	if o.Port < 1 || o.Port > 65535 {
		return nil, fmt.Errorf("smtpnotify: Port %d: must be 1-65535", o.Port)
	}

	switch o.Security {
	case SecurityTLS, SecurityStartTLS:
		pool, err := tlsconf.CertPool(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("smtpnotify: %w", err)
		}
		n.tlsConfig = &tls.Config{ServerName: o.Host, RootCAs: pool, MinVersion: tls.VersionTLS12}
	case SecurityNone:
		if o.CAFile != "" {
			return nil, fmt.Errorf("smtpnotify: CAFile: set, but Security is %q", SecurityNone)
		}
	default:
		return nil, fmt.Errorf("smtpnotify: Security %q: must be %q, %q or %q", o.Security, SecurityTLS, SecurityStartTLS, SecurityNone)
	}

	if err := n.checkAuth(o); err != nil {
		return nil, err
	}

	if o.From == "" {
		return nil, errors.New("smtpnotify: From: required")
	}
	from, err := mail.ParseAddress(o.From)
	if err != nil {
		return nil, fmt.Errorf("smtpnotify: From %q: %w", o.From, err)
	}
	n.from = from
	if o.AdminContact != "" {
		if n.admin, err = mail.ParseAddress(o.AdminContact); err != nil {
			return nil, fmt.Errorf("smtpnotify: AdminContact %q: %w", o.AdminContact, err)
		}
	}

	if o.Timeout < 0 {
		return nil, fmt.Errorf("smtpnotify: Timeout %s: must not be negative", o.Timeout)
	}
	if o.Timeout == 0 {
		n.timeout = DefaultTimeout
	}
	if o.HELO != "" && strings.ContainsFunc(o.HELO, isSpaceOrControl) {
		return nil, fmt.Errorf("smtpnotify: HELO %q: must be a single word such as a host name", o.HELO)
	}

	if n.templates == nil {
		if n.templates, err = notices.Load(""); err != nil {
			return nil, err
		}
	}
	if o.LedgerDir == "" {
		return nil, errors.New("smtpnotify: LedgerDir: required")
	}
	if err := os.MkdirAll(o.LedgerDir, 0o750); err != nil {
		return nil, fmt.Errorf("smtpnotify: LedgerDir: %w", err)
	}
	return n, nil
}

func checkHost(host string) error {
	if host == "" {
		return errors.New("smtpnotify: Host: required")
	}
	if strings.ContainsFunc(host, isSpaceOrControl) || strings.Contains(host, "/") {
		return fmt.Errorf("smtpnotify: Host %q: not a host name or IP address", host)
	}
	// A colon is only allowed inside an IPv6 address; the port has its own
	// option.
	if strings.Contains(host, ":") && net.ParseIP(host) == nil {
		return fmt.Errorf("smtpnotify: Host %q: give the port in Port, not in Host", host)
	}
	return nil
}

func (n *Notifier) checkAuth(o Options) error {
	if o.Username == "" {
		if o.Password != "" {
			return errors.New("smtpnotify: Password: set without Username")
		}
		if o.AuthMechanism != "" {
			return fmt.Errorf("smtpnotify: AuthMechanism %q: set without Username", o.AuthMechanism)
		}
		return nil
	}
	// A NUL or line break would corrupt the AUTH exchange.
	if strings.ContainsFunc(o.Username, isSpaceOrControl) {
		return errors.New("smtpnotify: Username: contains spaces or control characters")
	}
	if o.Password == "" {
		return errors.New("smtpnotify: Password: required when Username is set")
	}
	if strings.ContainsAny(o.Password, "\x00\r\n") {
		return errors.New("smtpnotify: Password: contains NUL or line breaks")
	}
	switch o.AuthMechanism {
	case "", AuthPlain:
		n.mechanism = AuthPlain
	case AuthLogin:
		n.mechanism = AuthLogin
	default:
		return fmt.Errorf("smtpnotify: AuthMechanism %q: must be %q, %q or empty", o.AuthMechanism, AuthPlain, AuthLogin)
	}
	// go-mail refuses PLAIN and LOGIN on a plain-text connection to anything
	// but the local host; say so now rather than at the first send.
	if o.Security == SecurityNone && !isLocalhost(o.Host) {
		return fmt.Errorf("smtpnotify: Username: set with Security %q: the password would cross the network in clear (only allowed for localhost)", SecurityNone)
	}
	return nil
}

// isLocalhost mirrors go-mail's test for a host where plain-text AUTH is
// acceptable.
func isLocalhost(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

// Send sends the notice unless the ledger says it already went out with the
// same Message-ID, in which case it makes no connection and reports
// alreadySent. After the server accepts the message the ledger record is
// written; if that fails the error says so, and the retry sends again (see
// the package documentation). Sends of one notice within this process are
// serialised, so a retry racing the original cannot deliver twice.
func (n *Notifier) Send(ctx context.Context, nt activities.Notice) (alreadySent bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	key := nt.Mailbox.Key
	path, err := n.ledgerPath(key, nt.Kind)
	if err != nil {
		return false, err
	}
	msgID, err := notices.BareMessageID(nt.MessageID)
	if err != nil {
		return false, activities.Permanent(contract.ErrTypeNoticeNotSent, "smtpnotify: mailbox %s: %v", key, err)
	}
	// Build first, so a bad notice is an error even if the ledger has it.
	msg, err := n.message(nt)
	if err != nil {
		return false, err
	}

	defer n.lock(path)()

	wantID := "<" + msgID + ">"
	switch id, err := readLedger(path); {
	case err == nil && id == wantID:
		return true, nil
	case err == nil, errors.Is(err, fs.ErrNotExist):
		// Not sent, or a record of another message under this name: send.
	default:
		return false, fmt.Errorf("smtpnotify: mailbox %s: ledger: %w", key, err)
	}

	if err := n.deliver(ctx, nt, msg); err != nil {
		return false, err
	}
	if err := writeLedger(path, wantID, time.Now()); err != nil {
		return false, fmt.Errorf("smtpnotify: mailbox %s: %s notice sent but not recorded, a retry will send it again: %w", key, nt.Kind, err)
	}
	return false, nil
}

// Sent reports whether the ledger records the notice of that kind for that
// mailbox as sent.
func (n *Notifier) Sent(ctx context.Context, key string, kind contract.NoticeKind) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	path, err := n.ledgerPath(key, kind)
	if err != nil {
		return false, err
	}
	switch _, err := readLedger(path); {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("smtpnotify: mailbox %s: ledger: %w", key, err)
	}
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
func (n *Notifier) message(nt activities.Notice) (*gomail.Msg, error) {
	if nt.Kind == contract.NoticeFailure && n.admin == nil {
		return nil, activities.Permanent(contract.ErrTypeNoticeNotSent, "smtpnotify: mailbox %s: failure notice: no AdminContact configured", nt.Mailbox.Key)
	}
	msg, err := n.templates.Compose(nt, n.from, n.admin)
	if err != nil {
		return nil, activities.Permanent(contract.ErrTypeNoticeNotSent, "smtpnotify: %v", err)
	}
	return msg, nil
}

// deliver dials the relay, sends msg and closes the connection. A message
// the server accepted counts as delivered even if the goodbye then fails:
// reporting an error would make the retry send it twice.
func (n *Notifier) deliver(ctx context.Context, nt activities.Notice, msg *gomail.Msg) error {
	// Our own dial keeps hold of the connection: go-mail leaves it open when
	// EHLO or STARTTLS fails, and does not watch the context once connected.
	// Closing it when ctx ends makes a cancelled activity stop at once.
	var conn net.Conn
	var stop func() bool
	defer func() {
		if stop != nil {
			stop()
		}
		if conn != nil {
			_ = conn.Close() // usually closed already by QUIT; harmless then
		}
	}()
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
		return fmt.Errorf("smtpnotify: mailbox %s: %s notice: client: %w", nt.Mailbox.Key, nt.Kind, err)
	}
	// Each command is also bounded by the timeout.
	err = client.DialAndSendWithContext(ctx, msg)
	if msg.IsDelivered() {
		return nil
	}
	if err == nil {
		// Not expected from go-mail, but an unconfirmed send is not a send.
		err = errors.New("the server did not confirm the message")
	}
	return n.failed(ctx, nt, auth, err)
}

// failed turns a failed delivery into an error for Temporal's retries (see
// the package documentation).
func (n *Notifier) failed(ctx context.Context, nt activities.Notice, auth *trackedAuth, err error) error {
	prefix := fmt.Sprintf("smtpnotify: mailbox %s: %s notice", nt.Mailbox.Key, nt.Kind)

	// A SendError is about the message itself. Its own text lists the
	// recipients, so it is never wrapped or quoted: only its stage and codes.
	// A reply from the server decides; without one (the connection broke) a
	// cancelled context is the likelier cause and is reported as such.
	var se *gomail.SendError
	isSendErr := errors.As(err, &se)
	if isSendErr && se.ErrorCode() != 0 {
		return refused(prefix, se)
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%s: %w", prefix, cerr)
	}
	if isSendErr {
		return refused(prefix, se)
	}
	var reply *textproto.Error
	isReply := errors.As(err, &reply)
	if auth != nil && auth.started {
		switch {
		case isReply && reply.Code >= 500:
			return activities.Permanent(contract.ErrTypeBadCredentials, "%s: the SMTP server refused authentication: %d %s", prefix, reply.Code, reply.Msg)
		case errors.Is(err, errMechanismNotOffered), errors.Is(err, smtp.ErrUnencrypted), errors.Is(err, smtp.ErrWrongHostname),
			errors.Is(err, smtp.ErrUnexpectedServerChallange), errors.Is(err, smtp.ErrUnexpectedServerResponse):
			return activities.Permanent(contract.ErrTypeBadCredentials, "%s: SMTP authentication: %v", prefix, err)
		}
	}
	if isReply && askedToWait(reply.Code, reply.Msg) {
		return &activities.ThrottledError{RetryAfter: ThrottleRetryAfter, Err: fmt.Errorf("%s: %w", prefix, err)}
	}
	// Connection, TLS and other replies before the message: about the relay,
	// not this notice, so worth retrying. These texts carry no address.
	return fmt.Errorf("%s: %s:%d: %w", prefix, n.host, n.port, err)
}

// refused maps the server's answer to the message.
func refused(prefix string, se *gomail.SendError) error {
	code := se.ErrorCode()
	what := fmt.Sprintf("%s: %s", prefix, se.Reason)
	if code != 0 {
		what += fmt.Sprintf(": server replied %d", code)
		if esc := se.EnhancedStatusCode(); esc != "" {
			what += " " + esc
		}
	}
	switch {
	case code >= 500 && code < 600 && slices.Contains(messageStages, se.Reason):
		return activities.Permanent(contract.ErrTypeNoticeNotSent, "%s", what)
	case code == 0 && slices.Contains(badMessage, se.Reason):
		return activities.Permanent(contract.ErrTypeNoticeNotSent, "%s", what)
	case askedToWait(code, se.Error()):
		// se.Error() is only searched for the server's words, never returned.
		return &activities.ThrottledError{RetryAfter: ThrottleRetryAfter, Err: errors.New(what)}
	default:
		return errors.New(what)
	}
}

// messageStages are where a 5xx reply refuses this message for good.
var messageStages = []gomail.SendErrReason{gomail.ErrSMTPMailFrom, gomail.ErrSMTPRcptTo, gomail.ErrSMTPData, gomail.ErrSMTPDataClose}

// badMessage are go-mail's own objections to a message, which no retry
// changes.
var badMessage = []gomail.SendErrReason{gomail.ErrGetSender, gomail.ErrGetRcpts, gomail.ErrNoUnencoded}

// waitPhrases are what relays say when they rate-limit; matched in lower case.
var waitPhrases = []string{"try again later", "try later", "rate limit", "too many", "slow down", "throttl"}

// askedToWait reports whether a reply is the server asking us to slow down,
// rather than a passing fault: a 421, 450 or 451 whose text says so.
func askedToWait(code int, text string) bool {
	if code != 421 && code != 450 && code != 451 {
		return false
	}
	text = strings.ToLower(text)
	return slices.ContainsFunc(waitPhrases, func(p string) bool { return strings.Contains(text, p) })
}

var errMechanismNotOffered = errors.New("mechanism not offered by the server")

// trackedAuth wraps go-mail's PLAIN or LOGIN and notes that authentication
// began. go-mail dials, says EHLO, starts TLS and authenticates in one call,
// so this is how a failure of authentication is told from the others
// without matching error text.
type trackedAuth struct {
	smtp.Auth
	mech    string // as the server advertises it
	started bool
}

func (n *Notifier) newAuth() *trackedAuth {
	// allowUnenc is false: go-mail then insists on TLS except to localhost,
	// which New has already checked.
	if n.mechanism == AuthLogin {
		return &trackedAuth{Auth: smtp.LoginAuth(n.username, n.password, n.host, false), mech: "LOGIN"}
	}
	return &trackedAuth{Auth: smtp.PlainAuth("", n.username, n.password, n.host, false), mech: "PLAIN"}
}

func (a *trackedAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	a.started = true
	// Without this a server lacking the mechanism answers the AUTH command
	// with a 5xx that reads like a refusal of the credentials.
	if !slices.ContainsFunc(server.Auth, func(m string) bool { return strings.EqualFold(m, a.mech) }) {
		return "", nil, fmt.Errorf("AUTH %s: %w", a.mech, errMechanismNotOffered)
	}
	return a.Auth.Start(server)
}

// ledgerPath is the ledger record for a mailbox and kind. The key becomes
// part of a file name, so it must pass notices.ValidKey.
func (n *Notifier) ledgerPath(key string, kind contract.NoticeKind) (string, error) {
	if err := notices.ValidKey(key); err != nil {
		return "", activities.Permanent(contract.ErrTypeNoticeNotSent, "smtpnotify: %v", err)
	}
	if !slices.Contains(contract.AllNoticeKinds, kind) {
		return "", activities.Permanent(contract.ErrTypeNoticeNotSent, "smtpnotify: mailbox %s: unknown notice kind %q", key, kind)
	}
	return filepath.Join(n.ledgerDir, key+"-"+string(kind)+ledgerSuffix), nil
}

// readLedger returns the Message-ID of a ledger record; fs.ErrNotExist
// means there is none. The time in the record is for people: Send and Sent
// only need to know what was sent.
func readLedger(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var id string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if name, value, ok := strings.Cut(sc.Text(), ":"); ok && name == ledgerIDField {
			id = strings.TrimSpace(value)
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	if id == "" {
		return "", fmt.Errorf("%s: no %s", filepath.Base(path), ledgerIDField)
	}
	return id, nil
}

// writeLedger writes a record atomically. A leading dot and no .sent suffix
// keep the temporary file out of globs for *.sent.
func writeLedger(path, messageID string, at time.Time) error {
	return atomicfile.Write(path, 0o640, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "%s: %s\n%s: %s\n", ledgerIDField, messageID, ledgerAtField, at.UTC().Format(time.RFC3339))
		return err
	})
}
