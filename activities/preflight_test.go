package activities

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"mailwave/contract"
	"mailwave/mail/imapcopy"
	"mailwave/mail/port"
	"mailwave/testkit/dovecot"
	"mailwave/testkit/imaptest"
)

// TestPreflightAgainstDovecot runs the activity over the IMAP copier
// between two real servers: a good mailbox passes with its figures; a bad
// source credential, a mailbox the target lacks and a target whose quota
// leaves no room each fail it for good, with the reason's type, its fixed
// words (no server text, no address) and the figures read before it.
func TestPreflightAgainstDovecot(t *testing.T) {
	names := []string{"good", "badcred", "nomailbox", "full"}
	var srcUsers, tgtUsers []dovecot.User
	for _, n := range names {
		srcUsers = append(srcUsers, dovecot.User{Name: n, Password: n + "-pw"})
		switch n {
		case "nomailbox":
		case "full":
			tgtUsers = append(tgtUsers, dovecot.User{Name: n, Password: n + "-pw", QuotaBytes: 16 << 10})
		default:
			tgtUsers = append(tgtUsers, dovecot.User{Name: n, Password: n + "-pw", QuotaBytes: 1 << 30})
		}
	}
	src := dovecot.StartT(t, dovecot.Options{Users: srcUsers, Plaintext: true})
	tgt := dovecot.StartT(t, dovecot.Options{Users: tgtUsers, Plaintext: true})
	folders, msgs := imaptest.StandardSeed()
	for _, n := range names {
		cl, err := imaptest.Dial(src.Addr(), n, n+"-pw")
		require.NoError(t, err)
		require.NoError(t, imaptest.Seed(cl, msgs, folders))
		cl.Close()
	}
	ep := func(s *dovecot.Server) imapcopy.Endpoint {
		return imapcopy.Endpoint{Host: "127.0.0.1", Port: s.Port, Security: imapcopy.SecurityNone}
	}
	c, err := imapcopy.New(imapcopy.Options{Source: ep(src), Target: ep(tgt),
		Credentials: func(_ context.Context, side imapcopy.Side, m contract.MailboxRef) (imapcopy.Credentials, error) {
			pw := m.Key + "-pw"
			if m.Key == "badcred" && side == imapcopy.Source {
				pw = "wrong"
			}
			return imapcopy.Credentials{Mechanism: imapcopy.MechPlain, Username: m.Key, Password: pw}, nil
		}})
	require.NoError(t, err)
	env := activityEnv()
	New(nil, c, nil).Register(env)
	ref := func(n string) contract.MailboxRef {
		return contract.MailboxRef{Key: n, Address: n + "@trust.nhs.example"}
	}

	v, err := env.ExecuteActivity(contract.ActivityPreflight, PreflightInput{Mailbox: ref("good")})
	require.NoError(t, err)
	var good PreflightResult
	require.NoError(t, v.Get(&good))
	assert.True(t, good.Checked)
	assert.Equal(t, int64(len(msgs)), good.Figures.SourceMessages)
	assert.Positive(t, good.Figures.SourceBytes)
	assert.True(t, good.Figures.RoomKnown)
	assert.False(t, good.Figures.NoRoom())

	for _, tc := range []struct{ name, reason string }{
		{"badcred", contract.ErrTypeSourceLogin},
		{"nomailbox", contract.ErrTypeTargetMissing},
		{"full", contract.ErrTypeTargetNoRoom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := env.ExecuteActivity(contract.ActivityPreflight, PreflightInput{Mailbox: ref(tc.name)})
			var app *temporal.ApplicationError
			require.ErrorAs(t, err, &app)
			assert.Equal(t, tc.reason, app.Type())
			assert.True(t, app.NonRetryable(), "a definite cannot-go is not retried")
			assert.Equal(t, contract.DeferReason(tc.reason), app.Message(), "the reason's own words, not the server's")
			assert.Nil(t, errors.Unwrap(app), "no server text under it")
			var figures contract.Preflight
			require.NoError(t, app.Details(&figures))
			if tc.name == "full" {
				assert.Equal(t, good.Figures.SourceBytes, figures.SourceBytes, "measured before the target said no")
				assert.True(t, figures.NoRoom())
			}
		})
	}
}

// preflighter answers every preflight with err.
type preflighter struct {
	port.Copier
	err error
}

func (p preflighter) Preflight(context.Context, contract.MailboxRef) (contract.Preflight, error) {
	return contract.Preflight{}, p.err
}

// TestPreflightRetriesWhatMayPass: a failure that is no "cannot go" (the
// server unreachable, throttled, a permanent failure of another kind) is
// left to the retry policy or to needs support, never taken for a reason
// to defer; a copier without a preflight leaves the mailbox unchecked.
func TestPreflightRetriesWhatMayPass(t *testing.T) {
	for _, tc := range []struct {
		err       error
		errType   string
		retryable bool
	}{
		{errors.New("connection refused"), contract.ErrTypeTransient, true},
		{&port.ThrottledError{Err: errors.New("busy")}, contract.ErrTypeThrottled, true},
		{port.Permanent(contract.ErrTypeInvalidMailbox, "no organisation"), contract.ErrTypeInvalidMailbox, false},
	} {
		env := activityEnv()
		New(nil, preflighter{err: tc.err}, nil).Register(env)
		_, err := env.ExecuteActivity(contract.ActivityPreflight, PreflightInput{Mailbox: mbx})
		var app *temporal.ApplicationError
		require.ErrorAs(t, err, &app)
		assert.Equal(t, tc.errType, app.Type())
		assert.Equal(t, tc.retryable, !app.NonRetryable())
	}
	env := activityEnv()
	New(nil, preflighter{err: port.ErrNoPreflight}, nil).Register(env)
	v, err := env.ExecuteActivity(contract.ActivityPreflight, PreflightInput{Mailbox: mbx})
	require.NoError(t, err)
	var res PreflightResult
	require.NoError(t, v.Get(&res))
	assert.False(t, res.Checked)
}
