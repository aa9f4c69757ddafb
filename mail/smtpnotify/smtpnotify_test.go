package smtpnotify_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/mail/notices"
	"mailwave/mail/port"
	"mailwave/mail/smtpnotify"
	"mailwave/testkit/smtptest"
)

const (
	key       = "9f86d081884c7d65"
	userAddr  = "jo.bloggs@example.nhs.invalid"
	fromAddr  = "migration@trust.example.invalid"
	adminAddr = "it-admin@trust.example.invalid"
	relayUser = "notices@trust.example.invalid"
	relayPass = "s3cret-relay-password"
)

func notice(key string, kind contract.NoticeKind) port.Notice {
	return port.Notice{
		Mailbox: contract.MailboxRef{
			Key:         key,
			Address:     userAddr,
			Org:         "Example NHS Trust",
			DisplayName: "Jo Bloggs",
		},
		Kind:      kind,
		MessageID: contract.NoticeMessageID(key, kind),
		WaveID:    "wave-07",
		MigrateAt: time.Date(2026, time.December, 5, 20, 0, 0, 0, time.UTC),
	}
}

func failureNotice(key string) port.Notice {
	n := notice(key, contract.NoticeFailure)
	n.Failure = &contract.Failure{Step: "copy", ErrorType: contract.ErrTypeOverQuota, Reason: "target mailbox is over quota"}
	return n
}

// --- an SMTP relay on loopback (testkit/smtptest) ---

// relayOptions are an authenticating relay's options.
func relayOptions() smtptest.Options {
	return smtptest.Options{Username: relayUser, Password: relayPass, Security: smtptest.SecurityStartTLS}
}

// options are a notifier's options for a relay on port, over STARTTLS with
// the test CA and the relay's credentials.
func options(t *testing.T, port int) smtpnotify.Options {
	return smtpnotify.Options{
		Host:         "127.0.0.1",
		Port:         port,
		Security:     smtpnotify.SecurityStartTLS,
		CAFile:       smtptest.WriteCAFile(t),
		Username:     relayUser,
		Password:     relayPass,
		From:         "Example NHS Trust Migration <" + fromAddr + ">",
		AdminContact: "Trust IT <" + adminAddr + ">",
		LedgerDir:    filepath.Join(t.TempDir(), "ledger"),
		Timeout:      5 * time.Second,
		HELO:         "worker.test",
	}
}

// setupRelay starts a relay with ro and a notifier for it; edit, if given,
// changes the notifier's options.
func setupRelay(t *testing.T, ro smtptest.Options, edit func(*smtpnotify.Options)) (*smtpnotify.Notifier, *smtptest.Server, smtpnotify.Options) {
	t.Helper()
	r := smtptest.Start(t, ro)
	o := options(t, r.Port)
	if edit != nil {
		edit(&o)
	}
	n, err := smtpnotify.New(o)
	require.NoError(t, err)
	return n, r, o
}

// setup starts an authenticating STARTTLS relay and a notifier for it;
// edit, if given, changes the notifier's options.
func setup(t *testing.T, edit func(*smtpnotify.Options)) (*smtpnotify.Notifier, *smtptest.Server, smtpnotify.Options) {
	t.Helper()
	return setupRelay(t, relayOptions(), edit)
}

// assertNoAddress checks that an error names no email address.
func assertNoAddress(t *testing.T, err error) {
	t.Helper()
	for _, s := range []string{"jo.bloggs", "example.nhs", "it-admin", "@"} {
		assert.NotContains(t, err.Error(), s, "errors carry no address")
	}
}

// --- tests ---

func TestSendUserNotices(t *testing.T) {
	n, r, o := setup(t, nil)
	ctx := context.Background()
	tpl, err := notices.Load("")
	require.NoError(t, err)

	before := time.Now().Add(-time.Second)
	for _, kind := range contract.NoticeKinds {
		already, err := n.Send(ctx, notice(key, kind))
		require.NoError(t, err)
		assert.False(t, already)
	}
	after := time.Now().Add(time.Second)

	msgs := r.Messages()
	require.Len(t, msgs, len(contract.NoticeKinds), "each notice arrives once")
	assert.ElementsMatch(t, []string{key + "-t14.sent", key + "-t1.sent", key + "-success.sent"}, smtptest.FileNames(t, o.LedgerDir))

	for i, kind := range contract.NoticeKinds {
		t.Run(string(kind), func(t *testing.T) {
			nt := notice(key, kind)
			want, err := tpl.Render(nt)
			require.NoError(t, err)

			got := msgs[i]
			assert.Equal(t, fromAddr, got.From, "envelope sender")
			assert.Equal(t, []string{userAddr}, got.To, "envelope recipient")

			m := smtptest.ParseMessage(t, got.Data)
			h := m.Header
			from, err := mail.ParseAddress(h.Get("From"))
			require.NoError(t, err)
			assert.Equal(t, &mail.Address{Name: "Example NHS Trust Migration", Address: fromAddr}, from)
			to, err := mail.ParseAddress(h.Get("To"))
			require.NoError(t, err)
			assert.Equal(t, &mail.Address{Name: "Jo Bloggs", Address: userAddr}, to)
			assert.Equal(t, want.Subject, h.Get("Subject"))
			assert.Equal(t, fmt.Sprintf("Message-ID: <%s.%s@notices.mailwave.invalid>", kind, key), m.RawMessageID)
			assert.Equal(t, string(kind), h.Get("X-Mailwave-Kind"))
			assert.Equal(t, "wave-07", h.Get("X-Mailwave-Wave"))
			date, err := h.Date()
			require.NoError(t, err)
			assert.True(t, date.After(before) && date.Before(after), "Date %v is the send time", date)

			for _, body := range []string{m.Text, m.HTML} {
				assert.Contains(t, body, "Dear Jo Bloggs,")
				assert.Contains(t, body, "Saturday 5 December 2026 at 20:00 UTC")
			}
			assert.Equal(t, want.Text, strings.ReplaceAll(m.Text, "\r\n", "\n"))
			assert.Contains(t, m.HTML, "<title>"+want.Subject+"</title>")
		})
	}
}

func TestRetryAfterSuccessSendsNothing(t *testing.T) {
	n, r, o := setup(t, nil)
	ctx := context.Background()
	nt := notice(key, contract.NoticeT14)

	sent, err := n.Sent(ctx, key, contract.NoticeT14)
	require.NoError(t, err)
	assert.False(t, sent, "not sent before")

	already, err := n.Send(ctx, nt)
	require.NoError(t, err)
	assert.False(t, already)
	conns := r.Conns()

	already, err = n.Send(ctx, nt)
	require.NoError(t, err)
	assert.True(t, already)
	assert.Len(t, r.Messages(), 1, "the retry sent nothing")
	assert.Equal(t, conns, r.Conns(), "the retry did not even connect")

	sent, err = n.Sent(ctx, key, contract.NoticeT14)
	require.NoError(t, err)
	assert.True(t, sent)
	sent, err = n.Sent(ctx, key, contract.NoticeT1)
	require.NoError(t, err)
	assert.False(t, sent)

	path := filepath.Join(o.LedgerDir, key+"-t14.sent")
	rec, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Contains(t, string(rec), "Message-ID: "+nt.MessageID+"\n")
	assert.Contains(t, string(rec), "Sent-At: "+time.Now().UTC().Format("2006-01-02"))
	assert.Equal(t, []string{key + "-t14.sent"}, smtptest.FileNames(t, o.LedgerDir), "no temporaries left")

	// A record of some other message under the name does not count.
	require.NoError(t, os.WriteFile(path, []byte("Message-ID: <other@x>\n"), 0o600))
	already, err = n.Send(ctx, nt)
	require.NoError(t, err)
	assert.False(t, already)
	assert.Len(t, r.Messages(), 2)
	rec, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.Contains(t, string(rec), nt.MessageID)
}

func TestConcurrentSendsDeliverOnce(t *testing.T) {
	n, r, _ := setup(t, nil)
	ctx := context.Background()
	nt := notice(key, contract.NoticeT1)

	var fresh atomic.Int32
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			already, err := n.Send(ctx, nt)
			assert.NoError(t, err)
			if !already {
				fresh.Add(1)
			}
		})
	}
	wg.Wait()
	assert.Len(t, r.Messages(), 1, "a retry racing the original does not deliver twice")
	assert.Equal(t, int32(1), fresh.Load())
}

func TestFailureNoticeGoesToAdmin(t *testing.T) {
	n, r, o := setup(t, nil)
	ctx := context.Background()

	nt := failureNotice(key)
	already, err := n.Send(ctx, nt)
	require.NoError(t, err)
	assert.False(t, already)

	msgs := r.Messages()
	require.Len(t, msgs, 1)
	assert.Equal(t, []string{adminAddr}, msgs[0].To, "to the admin, not the user")
	m := smtptest.ParseMessage(t, msgs[0].Data)
	to, err := mail.ParseAddress(m.Header.Get("To"))
	require.NoError(t, err)
	assert.Equal(t, &mail.Address{Name: "Trust IT", Address: adminAddr}, to)
	assert.Equal(t, "failure", m.Header.Get("X-Mailwave-Kind"))
	assert.Equal(t, nt.MessageID, m.Header.Get("Message-ID"))
	assert.Equal(t, "Mailbox migration needs support: mailbox "+key, m.Header.Get("Subject"))
	for _, body := range []string{m.Text, m.HTML} {
		assert.Contains(t, body, "the target mailbox is full") // fixed words, never the raw reason
		assert.Contains(t, body, "OverQuota")
		assert.Contains(t, body, "Jo Bloggs")
		assert.Contains(t, body, userAddr, "the admin is told which user")
	}
	assert.Equal(t, []string{key + "-failure.sent"}, smtptest.FileNames(t, o.LedgerDir))

	sent, err := n.Sent(ctx, key, contract.NoticeFailure)
	require.NoError(t, err)
	assert.True(t, sent)
}

func TestFailureNoticeWithoutAdminContact(t *testing.T) {
	n, r, _ := setup(t, func(o *smtpnotify.Options) { o.AdminContact = "" })

	_, err := n.Send(context.Background(), failureNotice(key))
	require.Error(t, err)
	typ, ok := port.IsPermanent(err)
	assert.True(t, ok)
	assert.Equal(t, contract.ErrTypeNoticeNotSent, typ)
	assert.Contains(t, err.Error(), "AdminContact")
	assert.Zero(t, r.Conns(), "no connection made")
}

func TestRecipientRejectedIsPermanent(t *testing.T) {
	ro := relayOptions()
	ro.RejectRcpt = func(addr string) bool { return strings.EqualFold(addr, userAddr) }
	n, r, o := setupRelay(t, ro, nil)
	ctx := context.Background()

	_, err := n.Send(ctx, notice(key, contract.NoticeT14))
	require.Error(t, err)
	typ, ok := port.IsPermanent(err)
	assert.True(t, ok, "a 550 is not retried: %v", err)
	assert.Equal(t, contract.ErrTypeNoticeNotSent, typ)
	assert.Contains(t, err.Error(), "550")
	assert.Contains(t, err.Error(), key)
	assertNoAddress(t, err)

	assert.Empty(t, r.Messages())
	assert.Empty(t, smtptest.FileNames(t, o.LedgerDir), "nothing in the ledger")
	sent, err := n.Sent(ctx, key, contract.NoticeT14)
	require.NoError(t, err)
	assert.False(t, sent)
}

func TestTemporaryFailureThenSuccess(t *testing.T) {
	ro := relayOptions()
	ro.FailData, ro.FailDataMsg = 1, "Temporary local problem"
	n, r, _ := setupRelay(t, ro, nil)
	ctx := context.Background()
	nt := notice(key, contract.NoticeT1)

	_, err := n.Send(ctx, nt)
	require.Error(t, err)
	_, permanent := port.IsPermanent(err)
	assert.False(t, permanent, "a 451 is retried: %v", err)
	var thr *port.ThrottledError
	assert.False(t, errors.As(err, &thr), "a plain 451 is not throttling")
	assert.Contains(t, err.Error(), "451")
	assertNoAddress(t, err)
	assert.Empty(t, r.Messages())
	sent, err := n.Sent(ctx, key, contract.NoticeT1)
	require.NoError(t, err)
	assert.False(t, sent)

	already, err := n.Send(ctx, nt)
	require.NoError(t, err)
	assert.False(t, already)
	assert.Len(t, r.Messages(), 1, "delivered once on the retry")
}

func TestTryAgainLaterIsThrottled(t *testing.T) {
	n, r, _ := setup(t, nil)
	r.FailNextData(1, "Too many messages from you, try again later")

	_, err := n.Send(context.Background(), notice(key, contract.NoticeT14))
	var thr *port.ThrottledError
	require.ErrorAs(t, err, &thr)
	assert.Equal(t, smtpnotify.ThrottleRetryAfter, thr.RetryAfter)
	_, permanent := port.IsPermanent(err)
	assert.False(t, permanent)
	assertNoAddress(t, err)
}

func TestWrongPasswordIsPermanent(t *testing.T) {
	n, r, o := setup(t, func(o *smtpnotify.Options) { o.Password = "wrong" })

	_, err := n.Send(context.Background(), notice(key, contract.NoticeT14))
	require.Error(t, err)
	typ, ok := port.IsPermanent(err)
	assert.True(t, ok, "%v", err)
	assert.Equal(t, contract.ErrTypeBadCredentials, typ)
	assert.Contains(t, err.Error(), "535")
	assert.NotContains(t, err.Error(), relayPass)
	assert.Empty(t, r.Messages())
	assert.Empty(t, smtptest.FileNames(t, o.LedgerDir))
}

func TestAuthLogin(t *testing.T) {
	n, r, _ := setup(t, func(o *smtpnotify.Options) { o.AuthMechanism = smtpnotify.AuthLogin })
	_, err := n.Send(context.Background(), notice(key, contract.NoticeT14))
	require.NoError(t, err)
	assert.Len(t, r.Messages(), 1)
}

func TestAuthNotOfferedIsPermanent(t *testing.T) {
	// No AUTH advertised.
	n, r, _ := setupRelay(t, smtptest.Options{Security: smtptest.SecurityStartTLS}, nil)

	_, err := n.Send(context.Background(), notice(key, contract.NoticeT14))
	typ, ok := port.IsPermanent(err)
	assert.True(t, ok, "%v", err)
	assert.Equal(t, contract.ErrTypeBadCredentials, typ)
	assert.Contains(t, err.Error(), "AUTH PLAIN")
	assert.Empty(t, r.Messages())
}

func TestStartTLSNeedsTheCA(t *testing.T) {
	n, r, _ := setup(t, func(o *smtpnotify.Options) { o.CAFile = "" })

	_, err := n.Send(context.Background(), notice(key, contract.NoticeT14))
	require.Error(t, err)
	var verr *tls.CertificateVerificationError
	assert.ErrorAs(t, err, &verr, "a TLS error: %v", err)
	_, permanent := port.IsPermanent(err)
	assert.False(t, permanent, "a TLS failure is about the relay and is retried")
	assert.Empty(t, r.Messages())
}

func TestImplicitTLS(t *testing.T) {
	ro := relayOptions()
	ro.Security = smtptest.SecurityTLS
	r := smtptest.Start(t, ro)
	o := options(t, r.Port)
	o.Security, o.CAFile = smtpnotify.SecurityTLS, r.CAFile
	n, err := smtpnotify.New(o)
	require.NoError(t, err)

	_, err = n.Send(context.Background(), notice(key, contract.NoticeSuccess))
	require.NoError(t, err)
	require.Len(t, r.Messages(), 1)
	assert.Equal(t, "success", smtptest.ParseMessage(t, r.Messages()[0].Data).Header.Get("X-Mailwave-Kind"))

	// Without the CA, implicit TLS fails the same way.
	o.CAFile, o.LedgerDir = "", t.TempDir()
	n, err = smtpnotify.New(o)
	require.NoError(t, err)
	_, err = n.Send(context.Background(), notice(key, contract.NoticeSuccess))
	var verr *tls.CertificateVerificationError
	assert.ErrorAs(t, err, &verr)
}

func TestPlainTextToLocalhost(t *testing.T) {
	ro := relayOptions()
	ro.Security = smtptest.SecurityNone
	r := smtptest.Start(t, ro)
	o := options(t, r.Port)
	o.Security, o.CAFile = smtpnotify.SecurityNone, ""
	n, err := smtpnotify.New(o)
	require.NoError(t, err)

	_, err = n.Send(context.Background(), notice(key, contract.NoticeT14))
	require.NoError(t, err)
	assert.Len(t, r.Messages(), 1)
}

func TestConnectionRefusedIsRetryable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	free := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())

	o := options(t, free)
	n, err := smtpnotify.New(o)
	require.NoError(t, err)
	_, err = n.Send(context.Background(), notice(key, contract.NoticeT14))
	require.Error(t, err)
	_, permanent := port.IsPermanent(err)
	assert.False(t, permanent)
	assert.Contains(t, err.Error(), key)
	assertNoAddress(t, err)
	assert.Empty(t, smtptest.FileNames(t, o.LedgerDir))
}

func TestCancelStopsASend(t *testing.T) {
	ro := relayOptions()
	ro.Hold = make(chan struct{}) // never released: the server releases it as it closes
	n, _, o := setupRelay(t, ro, func(o *smtpnotify.Options) { o.Timeout = time.Minute })

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := n.Send(ctx, notice(key, contract.NoticeT14))
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 10*time.Second, "the send stopped with its context, not its timeout")
	assert.Empty(t, smtptest.FileNames(t, o.LedgerDir))

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	_, err = n.Send(ctx, notice(key, contract.NoticeT14))
	assert.ErrorIs(t, err, context.Canceled)
}

func TestSendRejectsBadNotices(t *testing.T) {
	n, r, o := setup(t, nil)
	ctx := context.Background()

	cases := map[string]struct {
		edit func(*port.Notice)
		want string
	}{
		"empty key":          {func(n *port.Notice) { n.Mailbox.Key = "" }, "empty mailbox key"},
		"path key":           {func(n *port.Notice) { n.Mailbox.Key = "../x" }, "mailbox key"},
		"unknown kind":       {func(n *port.Notice) { n.Kind = "t7" }, "unknown notice kind"},
		"empty address":      {func(n *port.Notice) { n.Mailbox.Address = "" }, "no recipient address"},
		"bad address":        {func(n *port.Notice) { n.Mailbox.Address = "jo.bloggs@" }, "not a valid address"},
		"named address":      {func(n *port.Notice) { n.Mailbox.Address = "Jo <" + userAddr + ">" }, "not a valid address"},
		"no message id":      {func(n *port.Notice) { n.MessageID = "" }, "no Message-ID"},
		"bad message id":     {func(n *port.Notice) { n.MessageID = "<a b@c>" }, "malformed Message-ID"},
		"header in wave":     {func(n *port.Notice) { n.WaveID = "w\r\nBcc: x@y" }, "wave ID"},
		"no migrate time":    {func(n *port.Notice) { n.MigrateAt = time.Time{} }, "no migration time"},
		"failure no details": {func(n *port.Notice) { n.Kind = contract.NoticeFailure }, "no failure details"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			nt := notice(key, contract.NoticeT14)
			c.edit(&nt)
			_, err := n.Send(ctx, nt)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			typ, ok := port.IsPermanent(err)
			assert.True(t, ok, "a bad notice never improves")
			assert.Equal(t, contract.ErrTypeNoticeNotSent, typ)
			assert.NotContains(t, err.Error(), "jo.bloggs", "errors carry no address")
		})
	}
	assert.Zero(t, r.Conns(), "no connection made")
	assert.Empty(t, smtptest.FileNames(t, o.LedgerDir))

	_, err := n.Sent(ctx, "../etc", contract.NoticeT14)
	assert.Error(t, err)
	_, err = n.Sent(ctx, key, "t7")
	assert.Error(t, err)
}

func TestNewRejectsBadOptions(t *testing.T) {
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("not a certificate"), 0o600))

	cases := map[string]struct {
		edit func(*smtpnotify.Options)
		want string
	}{
		"no host":            {func(o *smtpnotify.Options) { o.Host = "" }, "smtpnotify: Host: required"},
		"host with port":     {func(o *smtpnotify.Options) { o.Host = "relay.example:25" }, "Host \"relay.example:25\""},
		"host with space":    {func(o *smtpnotify.Options) { o.Host = "relay example" }, "Host"},
		"port 0":             {func(o *smtpnotify.Options) { o.Port = 0 }, "smtpnotify: Port 0: must be 1-65535"},
		"port too big":       {func(o *smtpnotify.Options) { o.Port = 70000 }, "Port 70000"},
		"no security":        {func(o *smtpnotify.Options) { o.Security = "" }, "Security \"\""},
		"bad security":       {func(o *smtpnotify.Options) { o.Security = "ssl" }, "Security \"ssl\""},
		"missing CA file":    {func(o *smtpnotify.Options) { o.CAFile = "/nonexistent/ca.pem" }, "CAFile"},
		"CA file not PEM":    {func(o *smtpnotify.Options) { o.CAFile = notPEM }, "CAFile"},
		"CA file, no TLS":    {func(o *smtpnotify.Options) { o.Security = smtpnotify.SecurityNone }, "CAFile"},
		"password, no user":  {func(o *smtpnotify.Options) { o.Username = "" }, "Password"},
		"user, no password":  {func(o *smtpnotify.Options) { o.Password = "" }, "Password"},
		"user with newline":  {func(o *smtpnotify.Options) { o.Username = "a\r\nQUIT" }, "Username"},
		"bad mechanism":      {func(o *smtpnotify.Options) { o.AuthMechanism = "cram-md5" }, "AuthMechanism \"cram-md5\""},
		"mechanism, no user": {func(o *smtpnotify.Options) { o.Username, o.Password, o.AuthMechanism = "", "", "login" }, "AuthMechanism"},
		"clear-text remote": {func(o *smtpnotify.Options) {
			o.Host, o.Security, o.CAFile = "relay.example", smtpnotify.SecurityNone, ""
		}, "Username"},
		"no from":       {func(o *smtpnotify.Options) { o.From = "" }, "smtpnotify: From: required"},
		"bad from":      {func(o *smtpnotify.Options) { o.From = "not an address" }, "From"},
		"bad admin":     {func(o *smtpnotify.Options) { o.AdminContact = "it-admin@" }, "AdminContact"},
		"no ledger":     {func(o *smtpnotify.Options) { o.LedgerDir = "" }, "smtpnotify: LedgerDir: required"},
		"ledger a file": {func(o *smtpnotify.Options) { o.LedgerDir = notPEM }, "LedgerDir"},
		"bad timeout":   {func(o *smtpnotify.Options) { o.Timeout = -time.Second }, "Timeout -1s"},
		"bad HELO":      {func(o *smtpnotify.Options) { o.HELO = "two words" }, "HELO"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			o := options(t, 2525)
			c.edit(&o)
			_, err := smtpnotify.New(o)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			assert.NotContains(t, err.Error(), relayPass, "secrets are never shown")
		})
	}

	// The minimum: no auth, no CA file, no admin contact, default timeout.
	_, err := smtpnotify.New(smtpnotify.Options{
		Host: "relay.example", Port: 587, Security: smtpnotify.SecurityStartTLS,
		From: fromAddr, LedgerDir: t.TempDir(),
	})
	assert.NoError(t, err)
}

// TestInsecureSkipVerify reaches a relay whose certificate is not trusted
// (no CA file) only with InsecureSkipVerify, over STARTTLS and implicit
// TLS, and says so in Warnings.
func TestInsecureSkipVerify(t *testing.T) {
	for _, security := range []string{smtpnotify.SecurityStartTLS, smtpnotify.SecurityTLS} {
		t.Run(security, func(t *testing.T) {
			ro := relayOptions()
			ro.Security = security
			r := smtptest.Start(t, ro)
			o := options(t, r.Port)
			o.Security, o.CAFile = security, ""

			// Refused without it: the certificate is self-signed.
			n, err := smtpnotify.New(o)
			require.NoError(t, err)
			assert.Empty(t, n.Warnings())
			_, err = n.Send(context.Background(), notice(key, contract.NoticeT14))
			var verr *tls.CertificateVerificationError
			require.ErrorAs(t, err, &verr, "%v", err)
			assert.Empty(t, r.Messages())

			o.InsecureSkipVerify = true
			n, err = smtpnotify.New(o)
			require.NoError(t, err)
			_, err = n.Send(context.Background(), notice(key, contract.NoticeT14))
			require.NoError(t, err)
			assert.Len(t, r.Messages(), 1)
			assert.Equal(t, []string{"smtp " + r.Addr() + ": certificate checks are OFF (insecure_skip_verify): " +
				"anyone on the path can read the password and the notices"}, n.Warnings())
			for _, w := range n.Warnings() {
				assert.NotContains(t, w, relayPass)
			}
		})
	}

	// Without TLS there is no certificate to skip: a mistake, refused.
	o := options(t, 2525)
	o.Security, o.CAFile, o.InsecureSkipVerify = smtpnotify.SecurityNone, "", true
	_, err := smtpnotify.New(o)
	require.EqualError(t, err, `smtpnotify: InsecureSkipVerify: set, but Security is "none"`)
}

// flakyLedger is a ledger in memory that is down for its first down
// Record calls, as a database restarting is.
type flakyLedger struct {
	mu      sync.Mutex
	down    int
	records map[string]string
}

func (l *flakyLedger) Recorded(_ context.Context, key string, kind contract.NoticeKind) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.records[key+"-"+string(kind)], nil
}

func (l *flakyLedger) Claim(ctx context.Context, key string, kind contract.NoticeKind, _ string, _ time.Duration) (string, error) {
	return l.Recorded(ctx, key, kind)
}

func (l *flakyLedger) Release(context.Context, string, contract.NoticeKind, string) error { return nil }

func (l *flakyLedger) Record(_ context.Context, key string, kind contract.NoticeKind, id string, _ time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down > 0 {
		l.down--
		return errors.New("connection refused")
	}
	l.records[key+"-"+string(kind)] = id
	return nil
}

// TestALedgerDownAfterTheRelayAcceptedSendsOnce: the relay accepts a
// notice while the ledger is restarting; the record is tried again until it
// is back, so no retry sends the notice a second time. A ledger down for
// longer fails the attempt, and the retry in this worker records the notice
// without sending it.
func TestALedgerDownAfterTheRelayAcceptedSendsOnce(t *testing.T) {
	ctx := context.Background()
	t.Run("down briefly", func(t *testing.T) {
		l := &flakyLedger{down: 3, records: map[string]string{}}
		n, r, _ := setup(t, func(o *smtpnotify.Options) { o.LedgerDir, o.Ledger = "", l })
		already, err := n.Send(ctx, notice(key, contract.NoticeSuccess))
		require.NoError(t, err)
		assert.False(t, already)
		assert.Len(t, r.Messages(), 1)
		sent, err := n.Sent(ctx, key, contract.NoticeSuccess)
		require.NoError(t, err)
		assert.True(t, sent, "recorded once the ledger was back")
	})
	t.Run("down for longer", func(t *testing.T) {
		defer smtpnotify.SetRecordFor(300 * time.Millisecond)()
		l := &flakyLedger{down: 1000, records: map[string]string{}}
		n, r, _ := setup(t, func(o *smtpnotify.Options) { o.LedgerDir, o.Ledger = "", l })
		_, err := n.Send(ctx, notice(key, contract.NoticeSuccess))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "sent but not recorded")
		l.mu.Lock()
		l.down = 0
		l.mu.Unlock()
		already, err := n.Send(ctx, notice(key, contract.NoticeSuccess))
		require.NoError(t, err)
		assert.True(t, already, "the retry recorded it")
		assert.Len(t, r.Messages(), 1, "and sent nothing")
		sent, err := n.Sent(ctx, key, contract.NoticeSuccess)
		require.NoError(t, err)
		assert.True(t, sent)
	})
}

// TestANoticeIsSentByOneWorkerAtOnce: two workers (notifiers with their
// own owners) share the ledger. While one is sending a notice (the relay
// holds its DATA), the other's attempt for the same notice fails naming
// the claim and does not connect; once the first is done, the retry finds
// it sent. A notice the relay refused releases its claim at once.
func TestANoticeIsSentByOneWorkerAtOnce(t *testing.T) {
	ctx := context.Background()
	hold := make(chan struct{})
	ro := relayOptions()
	ro.Hold = hold
	a, r, o := setupRelay(t, ro, nil)
	b, err := smtpnotify.New(o)
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() {
		_, err := a.Send(ctx, notice(key, contract.NoticeT14))
		done <- err
	}()
	require.Eventually(t, func() bool { return r.Conns() == 1 }, 5*time.Second, 10*time.Millisecond)
	time.Sleep(50 * time.Millisecond) // into its DATA
	_, err = b.Send(ctx, notice(key, contract.NoticeT14))
	var held *contract.NoticeClaimHeld
	require.ErrorAs(t, err, &held, "%v", err)
	assert.NotEmpty(t, held.Owner)
	assert.WithinDuration(t, time.Now().Add(2*time.Minute), held.Until, 5*time.Second)
	assert.Equal(t, 1, r.Conns(), "the second worker did not connect")
	assertNoAddress(t, err)

	close(hold)
	require.NoError(t, <-done)
	already, err := b.Send(ctx, notice(key, contract.NoticeT14))
	require.NoError(t, err)
	assert.True(t, already)
	assert.Len(t, r.Messages(), 1)

	// Refused by the relay: the claim goes with the failure.
	r.FailNextData(1, "")
	_, err = a.Send(ctx, notice(key, contract.NoticeT1))
	require.Error(t, err)
	require.NotErrorAs(t, err, &held)
	already, err = b.Send(ctx, notice(key, contract.NoticeT1))
	require.NoError(t, err, "not held by the failed attempt")
	assert.False(t, already)
	assert.Len(t, r.Messages(), 2)
}

// TestAClaimLeftByADeadWorkerExpires: a worker killed while sending
// leaves its claim; another waits until it expires and then sends (the
// one notice a worker's death may cost twice, at least once).
func TestAClaimLeftByADeadWorkerExpires(t *testing.T) {
	// Claims held for 2 s: the second worker finds it held even on a
	// loaded machine.
	defer smtpnotify.SetClaimFor(2 * time.Second)()
	ctx := context.Background()
	a, r, o := setup(t, nil)
	b, err := smtpnotify.New(o)
	require.NoError(t, err)
	_, err = smtpnotify.ClaimOnly(ctx, a, key, contract.NoticeSuccess) // then "killed"
	require.NoError(t, err)

	_, err = b.Send(ctx, notice(key, contract.NoticeSuccess))
	var held *contract.NoticeClaimHeld
	require.ErrorAs(t, err, &held)
	assert.Empty(t, r.Messages())
	time.Sleep(2100 * time.Millisecond)
	already, err := b.Send(ctx, notice(key, contract.NoticeSuccess))
	require.NoError(t, err)
	assert.False(t, already)
	assert.Len(t, r.Messages(), 1)
	entries, err := os.ReadDir(o.LedgerDir)
	require.NoError(t, err)
	for _, e := range entries {
		assert.NotContains(t, e.Name(), ".claim", "the record dropped the claim")
	}
}

// TestWorkersRacingForOneNoticeDeliverItOnce: many workers attempt the
// same notices at the same moment, each retrying while another holds the
// claim, as the notice activity's retries do; the relay gets each once.
func TestWorkersRacingForOneNoticeDeliverItOnce(t *testing.T) {
	ctx := context.Background()
	first, r, o := setupRelay(t, smtptest.Options{}, func(o *smtpnotify.Options) {
		o.Security, o.CAFile, o.Username, o.Password = smtpnotify.SecurityNone, "", "", ""
	})
	workers := []*smtpnotify.Notifier{first}
	for range 5 {
		n, err := smtpnotify.New(o)
		require.NoError(t, err)
		workers = append(workers, n)
	}
	keys := []string{"0a1b2c3d4e5f6071", "1a1b2c3d4e5f6071", "2a1b2c3d4e5f6071", "3a1b2c3d4e5f6071"}
	sent, _ := smtptest.Race(t, len(workers), keys, func(w int, k string) (bool, error) {
		return workers[w].Send(ctx, notice(k, contract.NoticeT14))
	})
	assert.Equal(t, len(keys), len(r.Messages()), "each notice delivered once")
	assert.Equal(t, len(keys), sent)
}

// TestTheDirectoryLedgerNeverShowsNeither: while one worker records a
// notice it holds the claim to, another worker's claim sees the claim or
// the record, never neither (which would let it send the notice again).
func TestTheDirectoryLedgerNeverShowsNeither(t *testing.T) {
	ctx := context.Background()
	a, _, o := setup(t, nil)
	b, err := smtpnotify.New(o)
	require.NoError(t, err)
	for i := range 300 {
		k := fmt.Sprintf("%016x", i)
		_, err := smtpnotify.ClaimOnly(ctx, a, k, contract.NoticeT1)
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- smtpnotify.RecordOnly(ctx, a, k, contract.NoticeT1, "<id>") }()
		for {
			recorded, err := smtpnotify.ClaimOnly(ctx, b, k, contract.NoticeT1)
			var held *contract.NoticeClaimHeld
			if errors.As(err, &held) {
				continue
			}
			require.NoError(t, err)
			require.Equal(t, "<id>", recorded, "mailbox %s: claimed with nothing recorded while the other worker was recording", k)
			break
		}
		require.NoError(t, <-done)
	}
}

// TestALedgerLockedElsewhereWaitsNoLongerThanTheContext: another process
// holding the directory ledger's lock (stopped, or on a hung disk) holds a
// send up only as long as the activity's context allows; once it lets go,
// the send goes on.
func TestALedgerLockedElsewhereWaitsNoLongerThanTheContext(t *testing.T) {
	a, r, o := setup(t, nil)
	other, err := os.Open(o.LedgerDir)
	require.NoError(t, err)
	defer other.Close()
	require.NoError(t, syscall.Flock(int(other.Fd()), syscall.LOCK_EX))

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = a.Send(ctx, notice(key, contract.NoticeT14))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, "locking the ledger directory")
	assert.Empty(t, r.Messages(), "nothing sent without the claim")

	require.NoError(t, syscall.Flock(int(other.Fd()), syscall.LOCK_UN))
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	already, err := a.Send(ctx, notice(key, contract.NoticeT14))
	require.NoError(t, err)
	assert.False(t, already)
	assert.Len(t, r.Messages(), 1)
}

// TestRescheduledTwiceSendsEach: the correction of a mailbox moved twice
// goes out for each new date (its Message-ID is per date); a retry of one
// sends nothing.
func TestRescheduledTwiceSendsEach(t *testing.T) {
	n, r, _ := setup(t, nil)
	ctx := context.Background()
	moved := func(to time.Time) port.Notice {
		nt := notice(key, contract.NoticeRescheduled)
		nt.MigrateAt, nt.MessageID = to, contract.RescheduledMessageID(key, to)
		return nt
	}
	first, second := time.Date(2026, 12, 12, 20, 0, 0, 0, time.UTC), time.Date(2026, 12, 19, 20, 0, 0, 0, time.UTC)
	for _, step := range []struct {
		to      time.Time
		already bool
	}{{first, false}, {first, true}, {second, false}} {
		already, err := n.Send(ctx, moved(step.to))
		require.NoError(t, err)
		assert.Equal(t, step.already, already, "to %s", step.to)
	}
	assert.Len(t, r.Messages(), 2, "one per new date")
}
