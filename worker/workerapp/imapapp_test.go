package workerapp_test

import (
	"encoding/pem"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"mailwave/activities"
	"mailwave/contract"
	"mailwave/testkit/dovecot"
	"mailwave/testkit/fakegraph"
	"mailwave/testkit/imaptest"
	"mailwave/worker/workerapp"
)

// TestAnIMAPTargetWithAppOnlyTokens: an IMAP target logged in to with
// app-only tokens (auth.app, XOAUTH2 as the mailbox's address) from the
// fake identity platform, whose tokens live two seconds, into a Dovecot
// that asks the platform about every token. The bulk pass outlasts its
// tokens; the delta pass after it logs in on renewed ones, none refused;
// tokens the service ends early are refused once and asked for again; a
// revoked secret fails the mailbox with BadCredentials, naming no
// address. Source and target end exact.
func TestAnIMAPTargetWithAppOnlyTokens(t *testing.T) {
	const ttl = 2 * time.Second
	const address = "alice@trust-g.example"
	dir := t.TempDir()
	g := fakegraph.Start(fakegraph.Options{Tenant: "contoso", ClientID: "app-1", Secret: "imap-s3cret", TokenTTL: ttl})
	t.Cleanup(g.Close)
	info := g.TokenInfo()
	check := httptest.NewServer(info)
	t.Cleanup(check.Close)
	ca := filepath.Join(dir, "login-ca.pem")
	require.NoError(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: g.Certificate().Raw}), 0o600))

	src := dovecot.StartT(t, dovecot.Options{Users: []dovecot.User{{Name: "alice", Password: "alice-pw"}}, Plaintext: true})
	tgt := dovecot.StartT(t, dovecot.Options{Users: []dovecot.User{{Name: address, Password: "tgt-pw"}}, Plaintext: true,
		OAuth2TokenInfo: check.URL + "/tokeninfo"})
	cl, err := imaptest.Dial(src.Addr(), "alice", "alice-pw")
	require.NoError(t, err)
	folders, msgs := imaptest.StandardSeed()
	require.NoError(t, imaptest.Seed(cl, msgs, folders))
	var size int
	for _, m := range msgs {
		size += len(m.Raw)
	}
	t.Setenv("MAILWAVE_SECRET_SRC_PW", "alice-pw")
	t.Setenv("MAILWAVE_SECRET_IMAP_APP", "imap-s3cret")

	// Paced so that the bulk pass takes about twice the tokens' life.
	path := filepath.Join(dir, "mailwave.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`organisations:
  - name: trust-g
    domains: [trust-g.example]
    copier:
      kind: imap
      source: {host: 127.0.0.1, port: `+strconv.Itoa(src.Port)+`, security: none, auth: {username: "{local}", password_secret: src-pw}}
      target:
        host: 127.0.0.1
        port: `+strconv.Itoa(tgt.Port)+`
        security: none
        auth: {mechanism: xoauth2, app: {tenant: contoso, client_id: app-1, client_secret: imap-app, login_url: "`+g.LoginURL()+`", ca_file: `+ca+`}}
    copy: {bytes_per_second: `+strconv.Itoa(size*int(time.Second)/int(2*ttl))+`}
    notifier: {kind: outbox, from: migration@trust-g.example, outbox: {dir: `+filepath.Join(dir, "outbox")+`}}
    router: {kind: webhook, webhook: {url: "http://127.0.0.1:9/cutover"}}
`), 0o600))
	acts, err := workerapp.BuildActivities(workerapp.Config{ConfigFile: path})
	require.NoError(t, err)
	var suite testsuite.WorkflowTestSuite
	e := suite.NewTestActivityEnvironment()
	acts.Register(e)
	alice := contract.MailboxRef{Key: "k-alice", Address: address, Org: "trust-g"}
	copyPass := func(pass contract.CopyPass) (activities.CopyResult, error) {
		var res activities.CopyResult
		v, err := e.ExecuteActivity(contract.ActivityCopyMailbox, activities.CopyInput{Mailbox: alice, Pass: pass})
		if err == nil {
			err = v.Get(&res)
		}
		return res, err
	}
	arrives := func(n int) {
		t.Helper()
		m := imaptest.SeedMessage{Folder: "INBOX", Flags: []imap.Flag{imap.FlagSeen}, InternalDate: time.Now().Truncate(time.Second),
			Raw: []byte("From: bob@trust-g.example\r\nSubject: arrived " + strconv.Itoa(n) + "\r\nMessage-ID: <arrived-" + strconv.Itoa(n) + "@trust-g.example>\r\n\r\nafter the bulk pass\r\n")}
		require.NoError(t, imaptest.Seed(cl, []imaptest.SeedMessage{m}, nil))
	}
	exact := func() {
		t.Helper()
		tc, err := imaptest.Dial(tgt.Addr(), address, "tgt-pw")
		require.NoError(t, err)
		defer tc.Close()
		want, err := imaptest.Snapshot(cl)
		require.NoError(t, err)
		got, err := imaptest.Snapshot(tc)
		require.NoError(t, err)
		assert.Equal(t, want, got, "the target holds exactly the source's messages")
	}

	start := time.Now()
	res, err := copyPass(contract.PassBulk)
	require.NoError(t, err)
	bulk := time.Since(start)
	require.Greater(t, bulk, ttl, "the bulk pass outlasts the token it logged in with")
	assert.Equal(t, int64(len(msgs)), res.Stats.Items)
	t.Logf("bulk pass %s with tokens of %s", bulk.Round(time.Millisecond), ttl)

	// The delta pass logs in again, after the first token's end: on a
	// token renewed before it ended, none refused (a token not renewed
	// would be refused, and only the retry would save the login).
	arrives(1)
	_, err = copyPass(contract.PassDelta)
	require.NoError(t, err)
	accepted, refused := info.Counts()
	assert.Zero(t, refused, "no login on an ended token")
	assert.GreaterOrEqual(t, accepted, 3, "each connection logged in on a token")
	assert.GreaterOrEqual(t, g.Stats().TokensIssued, 2, "renewed")
	exact()

	// Tokens the service ends before their time: each login's first try
	// is refused, the token dropped and a new one asked for, once.
	issued := g.Stats().TokensIssued
	g.ExpireTokens()
	arrives(2)
	_, err = copyPass(contract.PassDelta)
	require.NoError(t, err)
	_, refused = info.Counts()
	assert.GreaterOrEqual(t, refused, 1)
	assert.Greater(t, g.Stats().TokensIssued, issued, "a new token after the refusal")
	exact()

	// A revoked secret: the mailbox needs support, and the error names
	// the tenant and the application, not the address.
	g.RevokeSecret()
	arrives(3)
	_, err = copyPass(contract.PassDelta)
	require.Error(t, err)
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "%v", err)
	assert.Equal(t, contract.ErrTypeBadCredentials, appErr.Type())
	assert.True(t, appErr.NonRetryable())
	assert.Contains(t, err.Error(), "AADSTS7000215")
	assert.NotContains(t, err.Error(), "@")
	assert.NotContains(t, err.Error(), "alice")
}
