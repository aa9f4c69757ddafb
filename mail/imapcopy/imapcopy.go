// Package imapcopy is an port.Copier between two IMAP servers: every
// folder of a mailbox, with flags and INTERNALDATE, copied incrementally by
// UID so that a retried or resumed copy goes on from its checkpoint and adds
// nothing twice.
//
// For each folder it reads the source's message list, looks on the target
// for messages a lost checkpoint did not record (by Message-ID and size, or
// size and date for messages without one), then copies the rest over Lanes
// pairs of connections: each lane fetches up to Window messages at a time
// and appends them as they stream in, so memory is bounded by the window and
// MaxBytesInFlight, never by the mailbox. After the folder it verifies the
// target holds every source message up to the checkpoint, and none more
// often than the source: extra copies the copy made (an earlier attempt's
// appends applied late) are removed, the user's own mail never touched; a
// mismatch blocks cutover.
//
// Credentials are looked up per mailbox at copy time through Options.
// Credentials; they never travel in workflow inputs, results or heartbeats.
package imapcopy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"golang.org/x/sync/semaphore"

	"mailwave/contract"
	"mailwave/mail/adapt"
	"mailwave/mail/port"
)

// Security is how a connection is protected.
const (
	SecurityTLS      = "tls"      // implicit TLS (port 993)
	SecurityStartTLS = "starttls" // STARTTLS, required
	SecurityNone     = "none"     // plain text: a loopback host only (New refuses any other)
)

// Endpoint is one IMAP server.
type Endpoint struct {
	Host string
	Port int
	// Security is SecurityTLS, SecurityStartTLS or SecurityNone. Every
	// login sends a password or a token, so SecurityNone is only for a
	// loopback host (127.0.0.0/8, ::1, localhost).
	Security string
	// TLS is the client TLS configuration; nil means the system roots. Its
	// ServerName defaults to Host. With InsecureSkipVerify the Copier's
	// Warnings say so.
	TLS         *tls.Config
	DialTimeout time.Duration
}

// tlsConfig is the endpoint's TLS configuration, naming the host.
func (e Endpoint) tlsConfig() *tls.Config {
	conf := e.TLS
	if conf == nil {
		conf = &tls.Config{}
	}
	if conf.ServerName == "" {
		conf = conf.Clone()
		conf.ServerName = e.Host
	}
	return conf
}

// Addr is host:port.
func (e Endpoint) Addr() string { return net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) }

// isLoopback reports whether host is localhost or a loopback address
// (127.0.0.0/8, ::1). A name is not resolved: only "localhost" counts.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Side is the source or the target.
type Side string

const (
	Source Side = "source"
	Target Side = "target"
)

// Authentication mechanisms.
const (
	MechPlain   = "plain"   // AUTHENTICATE PLAIN, or LOGIN where PLAIN is not offered
	MechLogin   = "login"   // the IMAP LOGIN command
	MechXOAuth2 = "xoauth2" // AUTHENTICATE XOAUTH2 with a bearer token
)

// Credentials log one side in for one mailbox. For a master (admin) user in
// Dovecot style, Username is "user*master" and Password the master's.
type Credentials struct {
	Mechanism string
	Username  string
	Password  string
	Token     string
	// Invalidate, when set, drops Token from the cache it came from: a
	// login refused with it is tried once more, with the credentials
	// asked for again (a token the service ended early, or that ended
	// between being handed out and being used).
	Invalidate func()
}

// CredentialsFunc finds a mailbox's credentials on one side.
type CredentialsFunc func(ctx context.Context, side Side, m contract.MailboxRef) (Credentials, error)

// Options configures a Copier.
type Options struct {
	Source, Target Endpoint
	Credentials    CredentialsFunc
	// Window is how many messages a lane fetches and appends at once (one
	// MULTIAPPEND), at most 8 MiB of them, and through a Rate no more than
	// its next Batch, about what the rate sends in a Cadence (always at
	// least one message) (default 32).
	Window int
	// Lanes is how many folders of one mailbox are copied at once, each
	// over its own pair of connections (default 2).
	Lanes int
	// MaxMessageBytes: a larger message is a bad item (default 35 MiB).
	MaxMessageBytes int64
	// BadItemLimit: more bad items than this fail the copy (default 0).
	BadItemLimit int
	// FolderMap renames source folders on the target, by source name.
	FolderMap map[string]string
	// Rate, shared by every copy of the worker towards this target, paces
	// the bytes appended, sizes the batches, and learns from the target's
	// refusals how fast it may go (package adapt); nil is no pacing.
	Rate *adapt.Rate
	// MaxBytesInFlight bounds message bytes held in memory by all copies of
	// this Copier at once (default 32 MiB, or MaxMessageBytes if larger).
	MaxBytesInFlight int64
	// NoMultiAppend sends one APPEND per message even to a target that
	// offers MULTIAPPEND, still pipelined where it offers LITERAL+ (for
	// comparison and for servers whose batches misbehave).
	NoMultiAppend bool
	// NoPipeline sends each message with go-imap's APPEND and waits for
	// its answer before the next, even to a target that offers LITERAL+
	// (for comparison).
	NoPipeline bool
	// ThrottleDelay is the retry delay after a server's back-off answer that
	// names none (default 30 s).
	ThrottleDelay time.Duration
}

// Copier copies mailboxes between two IMAP servers. It is safe for
// concurrent use by many copy activities.
type Copier struct {
	o        Options
	mem      *semaphore.Weighted
	warnings []string
	dialed   func(*boundedConn) // tests: each connection dialled
}

var _ port.Copier = (*Copier)(nil)

// New checks the options and applies the defaults. It refuses an endpoint
// without TLS (SecurityNone) unless its host is loopback: every mechanism
// sends a password or a token. What is allowed but unsafe is listed by
// Warnings.
func New(o Options) (*Copier, error) {
	var warnings []string
	for _, e := range []struct {
		side Side
		ep   *Endpoint
	}{{Source, &o.Source}, {Target, &o.Target}} {
		w, err := checkEndpoint(e.side, e.ep)
		if err != nil {
			return nil, err
		}
		warnings = append(warnings, w...)
	}
	if o.Credentials == nil {
		return nil, errors.New("imapcopy: no credentials source")
	}
	if o.Window == 0 {
		o.Window = 32
	}
	if o.Window < 1 || o.Window > 256 {
		return nil, fmt.Errorf("imapcopy: window %d: must be 1-256", o.Window)
	}
	if o.Lanes == 0 {
		o.Lanes = 2
	}
	if o.Lanes < 1 || o.Lanes > 16 {
		return nil, fmt.Errorf("imapcopy: lanes %d: must be 1-16", o.Lanes)
	}
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = 35 << 20
	}
	if o.MaxMessageBytes < 0 || o.BadItemLimit < 0 {
		return nil, errors.New("imapcopy: the size and bad-item limits must not be negative")
	}
	if o.MaxBytesInFlight == 0 {
		o.MaxBytesInFlight = 32 << 20
	}
	o.MaxBytesInFlight = max(o.MaxBytesInFlight, o.MaxMessageBytes)
	if o.ThrottleDelay == 0 {
		o.ThrottleDelay = 30 * time.Second
	}
	return &Copier{o: o, mem: semaphore.NewWeighted(o.MaxBytesInFlight), warnings: warnings}, nil
}

// checkEndpoint refuses an endpoint without a host, a port or TLS (but on
// loopback), says what is allowed but unsafe, and applies the defaults.
func checkEndpoint(side Side, ep *Endpoint) ([]string, error) {
	var warnings []string
	if ep.Host == "" {
		return nil, fmt.Errorf("imapcopy: %s: no host", side)
	}
	if ep.Port < 1 || ep.Port > 65535 {
		return nil, fmt.Errorf("imapcopy: %s: port %d is not a port", side, ep.Port)
	}
	switch ep.Security {
	case SecurityTLS, SecurityStartTLS:
		if ep.TLS != nil && ep.TLS.InsecureSkipVerify {
			warnings = append(warnings, fmt.Sprintf("%s %s: certificate checks are OFF (insecure_skip_verify): "+
				"anyone on the path can read the logins and the mail", side, ep.Addr()))
		}
	case SecurityNone:
		if !isLoopback(ep.Host) {
			return nil, fmt.Errorf("imapcopy: %s %s: security none sends the login's password or token in clear text; "+
				"it is allowed only to a loopback host (127.0.0.1, ::1, localhost): use tls or starttls", side, ep.Addr())
		}
	default:
		return nil, fmt.Errorf("imapcopy: %s: security %q: must be tls, starttls or none", side, ep.Security)
	}
	if ep.DialTimeout == 0 {
		ep.DialTimeout = 30 * time.Second
	}
	return warnings, nil
}

// Warnings lists what New allowed but the operator should hear about, one
// line each, e.g. "target imap.x.example:993: certificate checks are OFF
// (insecure_skip_verify): ...". The builder logs them at start-up. They name
// sides and hosts, never credentials.
func (c *Copier) Warnings() []string { return slices.Clone(c.warnings) }

// dialAppender opens the target's pipelined appender for a mailbox; nil
// if the target cannot take literals unasked (go-imap's APPEND is used
// instead).
func (c *Copier) dialAppender(ctx context.Context, m contract.MailboxRef) (*appender, error) {
	if c.o.NoPipeline {
		return nil, nil
	}
	return loggedIn(ctx, c, Target, m, func(creds Credentials) (*appender, error) {
		a, err := dialAppender(ctx, c.o.Target, creds, c.o.NoMultiAppend)
		if errors.Is(err, errNoLiteralPlus) {
			return nil, nil
		}
		if err != nil {
			return nil, c.classify(err, Target, "login", m.Key)
		}
		return a, nil
	})
}

// loggedIn asks for a side's credentials and connects and logs in with
// them through dial, which classifies its errors. A login refused as bad
// credentials whose token can be dropped (Credentials.Invalidate) is tried
// once more, with the credentials asked for again: the one place an
// expired or revoked token is renewed on a refusal, as Graph's client does
// after a 401.
func loggedIn[T any](ctx context.Context, c *Copier, side Side, m contract.MailboxRef, dial func(Credentials) (T, error)) (T, error) {
	for retried := false; ; retried = true {
		creds, err := c.o.Credentials(ctx, side, m)
		if err != nil {
			var none T
			return none, fmt.Errorf("%s credentials for mailbox %s: %w", side, m.Key, err)
		}
		v, err := dial(creds)
		if typ, _ := port.IsPermanent(err); typ != contract.ErrTypeBadCredentials || creds.Invalidate == nil || retried {
			return v, err
		}
		creds.Invalidate()
	}
}

// conn is one logged-in connection; selected is the mailbox it has open.
type conn struct {
	c        *imapclient.Client
	side     Side
	selected string
	stop     func() bool
	bound    *boundedConn // what it reads from the server, bounded
}

// bodyBound is the largest message body a server may announce: the
// largest message the copier accepts (a Reader's: any target's).
func (c *Copier) bodyBound() int64 {
	if c.o.MaxMessageBytes > 0 {
		return c.o.MaxMessageBytes
	}
	return maxReaderBody
}

// dial connects and logs in one side for one mailbox. The connection is
// closed if ctx ends, so a cancelled copy stops at once.
func (c *Copier) dial(ctx context.Context, side Side, m contract.MailboxRef) (*conn, error) {
	return loggedIn(ctx, c, side, m, func(creds Credentials) (*conn, error) { return c.dialWith(ctx, side, m, creds) })
}

// dialWith connects one side and logs in with the credentials given.
func (c *Copier) dialWith(ctx context.Context, side Side, m contract.MailboxRef, creds Credentials) (*conn, error) {
	ep := c.o.Source
	if side == Target {
		ep = c.o.Target
	}
	cl, bc, err := dialBounded(ctx, ep, side, c.bodyBound(), tripwireOf(ctx))
	if err != nil {
		return nil, fmt.Errorf("%s: connecting to %s: %w", side, ep.Addr(), err)
	}
	if c.dialed != nil {
		c.dialed(bc)
	}
	cn := &conn{c: cl, side: side, bound: bc, stop: context.AfterFunc(ctx, func() { cl.Close() })}
	if err := cn.login(creds); err != nil {
		cn.close()
		return nil, c.classify(err, side, "login", m.Key)
	}
	return cn, nil
}

func (cn *conn) login(cr Credentials) error {
	if err := cn.c.WaitGreeting(); err != nil {
		return err
	}
	switch cr.Mechanism {
	case MechXOAuth2:
		return cn.c.Authenticate(xoauth2{user: cr.Username, token: cr.Token})
	case MechLogin:
		return cn.c.Login(cr.Username, cr.Password).Wait()
	default:
		if cn.c.Caps().Has(imap.AuthCap(sasl.Plain)) {
			return cn.c.Authenticate(sasl.NewPlainClient("", cr.Username, cr.Password))
		}
		return cn.c.Login(cr.Username, cr.Password).Wait()
	}
}

// close logs out politely when it can and closes.
func (cn *conn) close() {
	if cn == nil {
		return
	}
	cn.stop()
	if cn.c.State() != imap.ConnStateLogout {
		done := make(chan struct{})
		go func() {
			_ = cn.c.Logout().Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
	}
	_ = cn.c.Close()
}

// selectFolder opens a folder read-only unless it already is open.
func (cn *conn) selectFolder(name string) (*imap.SelectData, error) {
	data, err := cn.c.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		cn.selected = ""
		return nil, err
	}
	cn.selected = name
	return data, nil
}

// removeUIDs removes messages of a folder by UID: it opens the folder
// read-write, checks that it is still the folder those UIDs were read from
// (uidValidity), marks them \Deleted and expunges those UIDs alone (UID
// EXPUNGE, RFC 4315), so a message the user marked \Deleted is never
// expunged with them. If the expunge fails, the mark is taken off again
// (as far as the connection allows), so no client's EXPUNGE takes them
// later. The caller has checked that the server offers UIDPLUS.
func (cn *conn) removeUIDs(name string, uidValidity uint32, uids []imap.UID) error {
	cn.selected = "" // read-write now: the next selectFolder opens it again
	sel, err := cn.c.Select(name, nil).Wait()
	if err != nil {
		return err
	}
	if sel.UIDValidity != uidValidity {
		return errFolderRemade
	}
	set := imap.UIDSetNum(uids...)
	deleted := []imap.Flag{imap.FlagDeleted}
	if err := cn.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: deleted}, nil).Close(); err != nil {
		return err
	}
	if err := cn.c.UIDExpunge(set).Close(); err != nil {
		_ = cn.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsDel, Silent: true, Flags: deleted}, nil).Close()
		return err
	}
	return nil
}

// xoauth2 is the XOAUTH2 SASL mechanism (Google, Microsoft), which go-sasl
// does not offer.
type xoauth2 struct{ user, token string }

func (x xoauth2) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + x.user + "\x01auth=Bearer " + x.token + "\x01\x01"), nil
}

// Next is only called with the server's error challenge: the token was
// refused. (The protocol's empty answer cannot be sent through go-imap,
// which encodes it as "=", so the exchange ends here.)
func (x xoauth2) Next([]byte) ([]byte, error) { return nil, errTokenRefused }

var errTokenRefused = errors.New("the server refused the bearer token")
