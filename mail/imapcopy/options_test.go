package imapcopy_test

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/mail/imapcopy"
)

func noCredentials(context.Context, imapcopy.Side, contract.MailboxRef) (imapcopy.Credentials, error) {
	return imapcopy.Credentials{}, errors.New("not used")
}

func TestNewRefusesPlainTextLoginsBeyondLoopback(t *testing.T) {
	tlsEP := imapcopy.Endpoint{Host: "imap.trust.example", Port: 993, Security: imapcopy.SecurityTLS}
	for _, c := range []struct {
		name    string
		side    imapcopy.Side
		ep      imapcopy.Endpoint
		refused string // in the error; "" if accepted
	}{
		{"127.0.0.1", imapcopy.Source, imapcopy.Endpoint{Host: "127.0.0.1", Port: 143, Security: imapcopy.SecurityNone}, ""},
		{"127.0.1.1", imapcopy.Source, imapcopy.Endpoint{Host: "127.0.1.1", Port: 143, Security: imapcopy.SecurityNone}, ""},
		{"::1", imapcopy.Target, imapcopy.Endpoint{Host: "::1", Port: 143, Security: imapcopy.SecurityNone}, ""},
		{"localhost", imapcopy.Target, imapcopy.Endpoint{Host: "LOCALHOST", Port: 143, Security: imapcopy.SecurityNone}, ""},
		{"source by name", imapcopy.Source, imapcopy.Endpoint{Host: "imap.old.example", Port: 143, Security: imapcopy.SecurityNone},
			"imapcopy: source imap.old.example:143: security none"},
		{"target by address", imapcopy.Target, imapcopy.Endpoint{Host: "10.1.2.3", Port: 143, Security: imapcopy.SecurityNone},
			"imapcopy: target 10.1.2.3:143: security none"},
		{"a name that starts like localhost", imapcopy.Target, imapcopy.Endpoint{Host: "localhost.evil.example", Port: 143, Security: imapcopy.SecurityNone},
			"target localhost.evil.example:143"},
		{"starttls anywhere", imapcopy.Target, imapcopy.Endpoint{Host: "imap.new.example", Port: 143, Security: imapcopy.SecurityStartTLS}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := imapcopy.Options{Source: tlsEP, Target: tlsEP, Credentials: noCredentials}
			if c.side == imapcopy.Source {
				o.Source = c.ep
			} else {
				o.Target = c.ep
			}
			_, err := imapcopy.New(o)
			if c.refused == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.refused)
			assert.Contains(t, err.Error(), "loopback")
			assert.Contains(t, err.Error(), "tls or starttls")
		})
	}
}

func TestWarningsNameSkippedCertificateChecks(t *testing.T) {
	insecure := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // what is tested
	c, err := imapcopy.New(imapcopy.Options{
		Source:      imapcopy.Endpoint{Host: "imap.old.example", Port: 993, Security: imapcopy.SecurityTLS, TLS: &tls.Config{}},
		Target:      imapcopy.Endpoint{Host: "imap.new.example", Port: 143, Security: imapcopy.SecurityStartTLS, TLS: insecure},
		Credentials: noCredentials,
	})
	require.NoError(t, err)
	w := c.Warnings()
	require.Len(t, w, 1)
	assert.Contains(t, w[0], "target imap.new.example:143: certificate checks are OFF (insecure_skip_verify)")

	c, err = imapcopy.New(imapcopy.Options{
		Source:      imapcopy.Endpoint{Host: "imap.old.example", Port: 993, Security: imapcopy.SecurityTLS, TLS: insecure},
		Target:      imapcopy.Endpoint{Host: "imap.new.example", Port: 993, Security: imapcopy.SecurityTLS},
		Credentials: noCredentials,
	})
	require.NoError(t, err)
	require.Len(t, c.Warnings(), 1)
	assert.Contains(t, c.Warnings()[0], "source imap.old.example:993: certificate checks are OFF")

	c, err = imapcopy.New(imapcopy.Options{
		Source:      imapcopy.Endpoint{Host: "127.0.0.1", Port: 143, Security: imapcopy.SecurityNone},
		Target:      imapcopy.Endpoint{Host: "imap.new.example", Port: 993, Security: imapcopy.SecurityTLS},
		Credentials: noCredentials,
	})
	require.NoError(t, err)
	assert.Empty(t, c.Warnings())
}
