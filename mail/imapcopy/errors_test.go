package imapcopy

import (
	"errors"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/activities"
	"mailwave/contract"
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
			typ, permanent := activities.IsPermanent(err)
			assert.Equal(t, tc.permanent != "", permanent, "%v", err)
			assert.Equal(t, tc.permanent, typ)
			var thr *activities.ThrottledError
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
