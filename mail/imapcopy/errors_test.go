package imapcopy

import (
	"errors"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/mail/port"
)

func TestClassify(t *testing.T) {
	c := &Copier{o: Options{ThrottleDelay: 30 * time.Second}}
	no := func(code imap.ResponseCode, text string) error {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: text}
	}
	for name, tc := range map[string]struct {
		err       error
		what      string
		permanent string
		throttle  time.Duration
	}{
		"refused login":        {no(imap.ResponseCodeAuthenticationFailed, "Authentication failed."), "login", contract.ErrTypeBadCredentials, 0},
		"login NO, no code":    {no("", "LOGIN failed"), "login", contract.ErrTypeBadCredentials, 0},
		"bearer token refused": {errTokenRefused, "login", contract.ErrTypeBadCredentials, 0},
		"target full":          {no(imap.ResponseCodeOverQuota, "Quota exceeded"), "append", contract.ErrTypeOverQuota, 0},
		"unavailable":          {no(imap.ResponseCodeUnavailable, "try later"), "fetch", "", 30 * time.Second},
		"exchange back-off": {no("", "Request is throttled. Suggested Backoff Time: 299961 milliseconds"), "fetch", "",
			299961 * time.Millisecond},
		"connection reset": {errors.New("read: connection reset by peer"), "fetch", "", 0},
	} {
		t.Run(name, func(t *testing.T) {
			err := c.classify(tc.err, Target, tc.what, "k1")
			require.Error(t, err)
			typ, permanent := port.IsPermanent(err)
			assert.Equal(t, tc.permanent != "", permanent, "%v", err)
			assert.Equal(t, tc.permanent, typ)
			var thr *port.ThrottledError
			if tc.throttle > 0 {
				require.ErrorAs(t, err, &thr)
				assert.Equal(t, tc.throttle, thr.RetryAfter)
			} else {
				assert.False(t, errors.As(err, &thr))
			}
			assert.Contains(t, err.Error(), "k1")
		})
	}
}

func TestServerTextNamingAnAddressIsWithheld(t *testing.T) {
	err := (&Copier{}).classify(&imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed,
		Text: "no such user jo.bloggs@trust.nhs.example"}, Source, "login", "k1")
	assert.NotContains(t, err.Error(), "@")
	assert.Contains(t, err.Error(), "withheld")
}

func TestRefusedIsOneMessageNotTheAccount(t *testing.T) {
	_, one := refused(&imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit, Text: "Mail size is too large"})
	assert.True(t, one)
	_, one = refused(&imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeOverQuota})
	assert.False(t, one)
	_, one = refused(&imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable})
	assert.False(t, one)
	_, one = refused(errors.New("EOF"))
	assert.False(t, one)
}

func TestStatusErrorParsesTaggedAnswers(t *testing.T) {
	assert.NoError(t, statusError("OK [APPENDUID 7 1:3] Append completed."))
	err := statusError("NO [LIMIT] Mail size is larger than the maximum size allowed by server configuration")
	var ie *imap.Error
	require.ErrorAs(t, err, &ie)
	assert.Equal(t, imap.StatusResponseTypeNo, ie.Type)
	assert.Equal(t, imap.ResponseCodeLimit, ie.Code)
	assert.Equal(t, "Mail size is larger than the maximum size allowed by server configuration", ie.Text)
	n, ok := literalSize(`* 1 FETCH (BODY[] {42}`)
	assert.True(t, ok)
	assert.Equal(t, int64(42), n)
	q, err := quoted(`pa"ss\word`)
	require.NoError(t, err)
	assert.Equal(t, `"pa\"ss\\word"`, q)
	_, err = quoted("a\r\nb")
	assert.Error(t, err)
}

// TestThrottledAnswerIsThePaceNotTheMessage: an APPEND's refusal is taken
// as throttling, to wait and send again, only when it asks for a slower
// pace; a size refusal with the same [LIMIT] code is the message's.
func TestThrottledAnswerIsThePaceNotTheMessage(t *testing.T) {
	c := &Copier{}
	no := func(code imap.ResponseCode, text string) error {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: text}
	}
	for name, tc := range map[string]struct {
		err  error
		wait time.Duration // 0: not throttling
	}{
		"exchange back-off":        {no("", "Request is throttled. Suggested Backoff Time: 1500 milliseconds"), 1500 * time.Millisecond},
		"limit code with back-off": {no(imap.ResponseCodeLimit, "Suggested Backoff Time: 20 milliseconds"), 20 * time.Millisecond},
		"no figure":                {no(imap.ResponseCodeUnavailable, "try again later"), throttleWait},
		"throttled, no figure":     {no("", "Request is throttled."), throttleWait},
		"dovecot size limit":       {no(imap.ResponseCodeLimit, "Mail size is larger than the maximum size allowed by server configuration"), 0},
		"bad message":              {no(imap.ResponseCodeParse, "Invalid message"), 0},
		"limit of the message":     {no(imap.ResponseCodeLimit, "Too many recipients in the message, try again with fewer"), 0},
		"accepted":                 {nil, 0},
		"connection reset":         {errors.New("read: connection reset by peer"), 0},
	} {
		t.Run(name, func(t *testing.T) {
			wait, ok := c.throttledAnswer(tc.err)
			assert.Equal(t, tc.wait != 0, ok)
			assert.Equal(t, tc.wait, wait)
			if tc.wait != 0 {
				_, one := refused(tc.err)
				assert.False(t, one, "a throttled message is not a bad item")
			}
		})
	}
}
