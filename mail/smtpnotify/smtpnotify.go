// Package smtpnotify is an port.Notifier that sends each notice by
// SMTP through a relay: one connection per notice, opened and closed by Send.
// User notices go to the user; a failure notice goes to the organisation's
// admin contact.
//
// # Idempotency
//
// A send that already succeeded is not repeated on retry. Before it
// connects, Send takes the ledger's claim on the notice (an owner naming
// this process, and an expiry), so that two workers never send one notice
// at once: a local activity run again on another worker while the first
// still runs finds the claim held and fails, to be retried. Once the server
// has accepted the message the ledger's record (the Message-ID and the
// time) is written, before the connection's QUIT, and drops the claim; a
// message the server refused releases it. Sent answers from the same
// ledger; the cutover consults it to prove that the T-14 notice went out,
// so the ledger must outlive the worker and be shared by every worker that
// sends notices: a directory (<key>-<kind>.sent records, .claim claims
// under an flock of the directory) for the workers of one host, the
// database ledger for a fleet.
//
// One window is left open: if the process dies between the server's
// acceptance and the record (milliseconds), its claim expires and another
// worker sends the notice again; so does a retry on another worker after a
// record that could not be written for recordFor (20 s: a ledger database
// down that long), once the claim has expired. The copy carries the same Message-ID,
// so the relay and the user's mail client can recognise it as a
// duplicate. Closing the window would need the relay to report what it has
// accepted, which SMTP cannot do.
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
//     many connections): *port.ThrottledError with ThrottleRetryAfter,
//     so that a busy relay is not hammered at the retry policy's pace;
//   - any other 4xx reply, and every connection, timeout or TLS failure:
//     a plain error, which Temporal retries.
//
// No error carries an email address: errors end up in workflow histories and
// logs, so they name the mailbox by its opaque key. The server's reply text
// to a message is left out too, since servers often echo the recipient.
package smtpnotify

import (
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/mail"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"mailwave/internal/tlsconf"
	"mailwave/mail/notices"
	"mailwave/mail/port"
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
	// InsecureSkipVerify turns the check of the relay's certificate off
	// (TLS and STARTTLS only): anyone on the path can then read the
	// password and the notices. The Notifier's Warnings say so.
	InsecureSkipVerify bool
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
	// missing. Ledger, when set, is used instead (a database shared by a
	// fleet); one of the two is required.
	LedgerDir string
	Ledger    Ledger
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
	ledger    Ledger
	timeout   time.Duration
	helo      string
	warnings  []string

	// sending serialises sends of one notice (by ledger path) and nothing
	// else, so a slow relay holds up only the retry of the same notice.
	mu      sync.Mutex
	sending map[string]*pathLock
	// unrecorded holds, by ledger path, the Message-ID of each notice the
	// relay accepted but the ledger could not record (it was down): a
	// retry in this process records it instead of sending it again.
	unrecorded map[string]string
	// owner names this process in the ledger's claims.
	owner string
}

// claimOwner names this process in ledger claims: host, process ID and a
// random part, so a restarted worker (perhaps with the same process ID in
// a new container) is another owner.
func claimOwner() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return fmt.Sprintf("%s/%d/%08x", host, os.Getpid(), rand.Uint32())
}

type pathLock struct {
	mu    sync.Mutex
	users int
}

var _ port.Notifier = (*Notifier)(nil)

// New checks the options, loads the CA file and creates the ledger
// directory. Each error names the option at fault; secrets are never shown.
func New(o Options) (*Notifier, error) {
	n := &Notifier{
		host:       o.Host,
		port:       o.Port,
		security:   o.Security,
		username:   o.Username,
		password:   o.Password,
		templates:  o.Templates,
		ledger:     o.Ledger,
		timeout:    o.Timeout,
		helo:       o.HELO,
		sending:    make(map[string]*pathLock),
		unrecorded: make(map[string]string),
		owner:      claimOwner(),
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
			return nil, fmt.Errorf("smtpnotify: CAFile: %w", err)
		}
		n.tlsConfig = &tls.Config{
			ServerName: o.Host, RootCAs: pool, MinVersion: tls.VersionTLS12,
			InsecureSkipVerify: o.InsecureSkipVerify, //nolint:gosec // an operator's explicit choice, warned of
		}
		if o.InsecureSkipVerify {
			n.warnings = append(n.warnings, fmt.Sprintf("smtp %s: certificate checks are OFF (insecure_skip_verify): "+
				"anyone on the path can read the password and the notices", net.JoinHostPort(o.Host, strconv.Itoa(o.Port))))
		}
	case SecurityNone:
		if o.CAFile != "" {
			return nil, fmt.Errorf("smtpnotify: CAFile: set, but Security is %q", SecurityNone)
		}
		if o.InsecureSkipVerify {
			return nil, fmt.Errorf("smtpnotify: InsecureSkipVerify: set, but Security is %q", SecurityNone)
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
	switch {
	case o.Ledger != nil && o.LedgerDir != "":
		return nil, errors.New("smtpnotify: LedgerDir and Ledger: give one")
	case o.Ledger != nil:
	case o.LedgerDir == "":
		return nil, errors.New("smtpnotify: LedgerDir: required")
	default:
		if err := os.MkdirAll(o.LedgerDir, 0o750); err != nil {
			return nil, fmt.Errorf("smtpnotify: LedgerDir: %w", err)
		}
		n.ledger = dirLedger{dir: o.LedgerDir}
	}
	return n, nil
}

// Warnings lists what New allowed but the operator should hear about, one
// line each, e.g. "smtp relay.example:587: certificate checks are OFF
// (insecure_skip_verify): ...". The builder logs them at start-up. They name
// the relay, never a credential.
func (n *Notifier) Warnings() []string { return slices.Clone(n.warnings) }

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

// isLocalhost mirrors go-mail's test for a host where plain-text AUTH is
// acceptable.
func isLocalhost(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }
