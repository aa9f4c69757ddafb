package smtpnotify

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/wneessen/go-mail/smtp"
)

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
