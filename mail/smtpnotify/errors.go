package smtpnotify

import (
	"context"
	"errors"
	"fmt"
	"net/textproto"
	"slices"
	"strings"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"

	"mailwave/contract"
	"mailwave/mail/port"
)

// failed turns a failed delivery into an error for Temporal's retries (see
// the package documentation).
func (n *Notifier) failed(ctx context.Context, nt port.Notice, auth *trackedAuth, err error) error {
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
			return port.Permanent(contract.ErrTypeBadCredentials, "%s: the SMTP server refused authentication: %d %s", prefix, reply.Code, reply.Msg)
		case errors.Is(err, errMechanismNotOffered), errors.Is(err, smtp.ErrUnencrypted), errors.Is(err, smtp.ErrWrongHostname),
			errors.Is(err, smtp.ErrUnexpectedServerChallange), errors.Is(err, smtp.ErrUnexpectedServerResponse):
			return port.Permanent(contract.ErrTypeBadCredentials, "%s: SMTP authentication: %v", prefix, err)
		}
	}
	if isReply && askedToWait(reply.Code, reply.Msg) {
		return &port.ThrottledError{RetryAfter: ThrottleRetryAfter, Err: fmt.Errorf("%s: %w", prefix, err)}
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
		return port.Permanent(contract.ErrTypeNoticeNotSent, "%s", what)
	case code == 0 && slices.Contains(badMessage, se.Reason):
		return port.Permanent(contract.ErrTypeNoticeNotSent, "%s", what)
	case askedToWait(code, se.Error()):
		// se.Error() is only searched for the server's words, never returned.
		return &port.ThrottledError{RetryAfter: ThrottleRetryAfter, Err: errors.New(what)}
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
