package imapcopy

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"mailwave/contract"
	"mailwave/mail/port"
)

// backoffHint finds the back-off some services put in their answer, e.g.
// Exchange Online's "Request is throttled. Suggested Backoff Time: 299961
// milliseconds".
var backoffHint = regexp.MustCompile(`(?i)backoff time:\s*(\d+)\s*milliseconds`)

// classify turns a server's answer into the activities' error types:
// refused credentials and a full target are permanent, a server asking us
// to slow down is throttling with its delay, anything else is transient.
// The server's text is kept unless it names an address.
func (c *Copier) classify(err error, side Side, what, key string) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.Is(err, errTokenRefused) {
		return port.Permanent(contract.ErrTypeBadCredentials, "%s refused the login of mailbox %s: %v", side, key, err)
	}
	var ie *imap.Error
	if !errors.As(err, &ie) {
		return fmt.Errorf("%s %s for mailbox %s: %w", side, what, key, err)
	}
	text := safeText(ie)
	switch {
	case ie.Code == imap.ResponseCodeAuthenticationFailed || ie.Code == imap.ResponseCodeAuthorizationFailed ||
		ie.Code == imap.ResponseCodeExpired || ie.Code == imap.ResponseCodePrivacyRequired:
		return port.Permanent(contract.ErrTypeBadCredentials, "%s refused the login of mailbox %s: %s", side, key, text)
	case ie.Code == imap.ResponseCodeOverQuota:
		return port.Permanent(contract.ErrTypeOverQuota, "%s is over quota for mailbox %s: %s", side, key, text)
	case throttled(ie):
		// Before the bare login NO below: "NO Too many connections, try
		// again later" is a server asking for patience, not a wrong password.
		return &port.ThrottledError{RetryAfter: c.backoff(ie), Err: fmt.Errorf("%s %s for mailbox %s: %s", side, what, key, text)}
	case what == "login" && ie.Type == imap.StatusResponseTypeNo && ie.Code == "":
		return port.Permanent(contract.ErrTypeBadCredentials, "%s refused the login of mailbox %s: %s", side, key, text)
	}
	return fmt.Errorf("%s %s for mailbox %s: %s", side, what, key, text)
}

// throttled reports whether an answer asks the client to slow down.
func throttled(ie *imap.Error) bool {
	switch ie.Code {
	case imap.ResponseCodeUnavailable, imap.ResponseCodeInUse, imap.ResponseCodeLimit:
		return true
	}
	return throttleText(ie.Text)
}

// limitThrottle reports whether a [LIMIT] answer's text is about the pace
// (throttled, a back-off figure) rather than the message.
func limitThrottle(text string) bool {
	return strings.Contains(strings.ToLower(text), "throttl") || backoffHint.MatchString(text)
}

// throttleText reports whether an answer's text asks the client to slow
// down.
func throttleText(text string) bool {
	t := strings.ToLower(text)
	return strings.Contains(t, "throttl") || strings.Contains(t, "try again") || strings.Contains(t, "too many") ||
		backoffHint.MatchString(text)
}

func (c *Copier) backoff(ie *imap.Error) time.Duration {
	if d, ok := hintedDelay(ie); ok {
		return d
	}
	return c.o.ThrottleDelay
}

// hintedDelay is the back-off an answer names, if it names one.
func hintedDelay(ie *imap.Error) (time.Duration, bool) {
	if m := backoffHint.FindStringSubmatch(ie.Text); m != nil {
		if ms, err := strconv.ParseInt(m[1], 10, 64); err == nil && ms > 0 {
			return time.Duration(ms) * time.Millisecond, true
		}
	}
	return 0, false
}

// throttledAnswer reports whether an APPEND's answer is the target asking
// to slow down, and how long it asked to wait (throttleWait if it named no
// delay).
func (c *Copier) throttledAnswer(err error) (time.Duration, bool) {
	var ie *imap.Error
	if err == nil || !errors.As(err, &ie) || ie.Type == imap.StatusResponseTypeOK || !throttled(ie) {
		return 0, false
	}
	if _, badItem := refused(err); badItem {
		// e.g. Dovecot's "NO [LIMIT] Mail size is larger than ...": the
		// message, not the pace.
		return 0, false
	}
	if ie.Code == imap.ResponseCodeLimit && !limitThrottle(ie.Text) {
		return 0, false
	}
	if d, ok := hintedDelay(ie); ok {
		return d, true
	}
	return throttleWait, true
}

// refused reports whether an APPEND's failure is the target refusing that
// one message (a bad item) rather than the folder, the connection or the
// account: only the answers about a message's size or form count. A folder
// gone ([TRYCREATE]), a server error or a refusal of rights is retried,
// never taken for a bad message.
func refused(err error) (*imap.Error, bool) {
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Type != imap.StatusResponseTypeNo {
		return nil, false
	}
	switch ie.Code {
	case imap.ResponseCodeTooBig, imap.ResponseCodeParse, imap.ResponseCodeUnknownCTE:
		return ie, true
	case imap.ResponseCodeLimit:
		// [LIMIT] is a message over a size limit, or a rate limit: only a
		// text that says throttled, or names a back-off, is the pace.
		return ie, !limitThrottle(ie.Text)
	case "":
		return ie, !throttleText(ie.Text)
	}
	return nil, false
}

// safeText is a server's answer as it can go in errors and histories.
func safeText(ie *imap.Error) string {
	s := string(ie.Type)
	if ie.Code != "" {
		s += " [" + string(ie.Code) + "]"
	}
	if strings.Contains(ie.Text, "@") {
		return s + " (text withheld: it names an address)"
	}
	return s + " " + ie.Text
}
