package smtpnotify_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/activities"
	"mailwave/mail/notices"
	"mailwave/mail/smtpnotify"
)

const (
	key       = "9f86d081884c7d65"
	userAddr  = "jo.bloggs@example.nhs.invalid"
	fromAddr  = "migration@trust.example.invalid"
	adminAddr = "it-admin@trust.example.invalid"
	relayUser = "notices@trust.example.invalid"
	relayPass = "s3cret-relay-password"
)

func notice(key string, kind activities.NoticeKind) activities.Notice {
	return activities.Notice{
		Mailbox: activities.MailboxRef{
			Key:         key,
			Address:     userAddr,
			Org:         "Example NHS Trust",
			DisplayName: "Jo Bloggs",
		},
		Kind:      kind,
		MessageID: activities.NoticeMessageID(key, kind),
		WaveID:    "wave-07",
		MigrateAt: time.Date(2026, time.December, 5, 20, 0, 0, 0, time.UTC),
	}
}

func failureNotice(key string) activities.Notice {
	n := notice(key, activities.NoticeFailure)
	n.Failure = &activities.Failure{Step: "copy", ErrorType: activities.ErrTypeOverQuota, Reason: "target mailbox is over quota"}
	return n
}

// --- an SMTP relay on loopback ---

// received is one message the relay accepted.
type received struct {
	from string
	to   []string
	data []byte
}

// relay is the test server's state: what it demands and what it accepted.
type relay struct {
	user, pass string // AUTH required when user is set

	mu          sync.Mutex
	rejectRcpt  string        // answered 550, echoing the address
	failData    int           // the next failData DATA commands get a 451
	failDataMsg string        // the 451's text
	hold        chan struct{} // when set, DATA waits for it to close
	msgs        []received
	conns       atomic.Int32
}

func (r *relay) messages() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.msgs...)
}

func (r *relay) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{r: r}, nil }

type session struct {
	r      *relay
	authed bool
	from   string
	to     []string
}

func (s *session) AuthMechanisms() []string {
	if s.r.user == "" {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

func (s *session) check(user, pass string) error {
	if user != s.r.user || pass != s.r.pass {
		return smtp.ErrAuthFailed
	}
	s.authed = true
	return nil
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(_, user, pass string) error { return s.check(user, pass) }), nil
	case sasl.Login:
		return &loginServer{check: s.check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.r.user != "" && !s.authed {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.r.mu.Lock()
	reject := s.r.rejectRcpt
	s.r.mu.Unlock()
	if strings.EqualFold(to, reject) {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<" + to + ">: no such user here"}
	}
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(rd io.Reader) error {
	s.r.mu.Lock()
	hold := s.r.hold
	s.r.mu.Unlock()
	if hold != nil {
		<-hold
	}
	data, err := io.ReadAll(rd)
	if err != nil {
		return err
	}
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if s.r.failData > 0 {
		s.r.failData--
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: s.r.failDataMsg}
	}
	s.r.msgs = append(s.r.msgs, received{from: s.from, to: s.to, data: data})
	return nil
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }

// loginServer is the server side of AUTH LOGIN, which go-sasl lacks.
type loginServer struct {
	step  int
	user  string
	check func(user, pass string) error
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	l.step++
	switch {
	case l.step == 1 && len(resp) == 0:
		return []byte("Username:"), false, nil
	case l.step == 1, l.step == 2:
		l.step = 2
		l.user = string(resp)
		return []byte("Password:"), false, nil
	default:
		return nil, true, l.check(l.user, string(resp))
	}
}

// countingListener counts connections, so a test can tell that Send made none.
type countingListener struct {
	net.Listener
	n *atomic.Int32
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// testCA is a self-signed certificate for 127.0.0.1, made once.
var testCA = sync.OnceValues(func() (tls.Certificate, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mailwave test relay"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}, nil
})

// caFile writes the test certificate as PEM and returns its path.
func caFile(t *testing.T) string {
	t.Helper()
	cert, err := testCA()
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600))
	return path
}

// startRelay serves r on 127.0.0.1 with the given security and returns its
// port.
func startRelay(t *testing.T, r *relay, security string) int {
	t.Helper()
	cert, err := testCA()
	require.NoError(t, err)
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := smtp.NewServer(r)
	s.Domain = "relay.test"
	s.ReadTimeout = 10 * time.Second
	s.WriteTimeout = 10 * time.Second
	s.ErrorLog = log.New(io.Discard, "", 0) // failed handshakes are expected
	var l net.Listener = countingListener{Listener: ln, n: &r.conns}
	switch security {
	case smtpnotify.SecurityStartTLS:
		s.TLSConfig = tlsConfig
	case smtpnotify.SecurityTLS:
		l = tls.NewListener(l, tlsConfig)
	case smtpnotify.SecurityNone:
		s.AllowInsecureAuth = true
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(l)
	}()
	t.Cleanup(func() {
		_ = s.Close()
		<-done
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// options are a notifier's options for a relay on port, over STARTTLS with
// the test CA and the relay's credentials.
func options(t *testing.T, port int) smtpnotify.Options {
	return smtpnotify.Options{
		Host:         "127.0.0.1",
		Port:         port,
		Security:     smtpnotify.SecurityStartTLS,
		CAFile:       caFile(t),
		Username:     relayUser,
		Password:     relayPass,
		From:         "Example NHS Trust Migration <" + fromAddr + ">",
		AdminContact: "Trust IT <" + adminAddr + ">",
		LedgerDir:    filepath.Join(t.TempDir(), "ledger"),
		Timeout:      5 * time.Second,
		HELO:         "worker.test",
	}
}

// setup starts an authenticating STARTTLS relay and a notifier for it;
// edit, if given, changes the notifier's options.
func setup(t *testing.T, edit func(*smtpnotify.Options)) (*smtpnotify.Notifier, *relay, smtpnotify.Options) {
	t.Helper()
	r := &relay{user: relayUser, pass: relayPass}
	o := options(t, startRelay(t, r, smtpnotify.SecurityStartTLS))
	if edit != nil {
		edit(&o)
	}
	n, err := smtpnotify.New(o)
	require.NoError(t, err)
	return n, r, o
}

// parsed is a received message read back with the standard library.
type parsed struct {
	header     mail.Header
	rawMsgID   string
	text, html string
}

func parse(t *testing.T, raw []byte) parsed {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(string(raw)))
	require.NoError(t, err)
	p := parsed{header: m.Header}
	for line := range strings.SplitSeq(string(raw), "\r\n") {
		if strings.HasPrefix(line, "Message-ID:") {
			p.rawMsgID = line
		}
	}
	mediaType, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, "multipart/alternative", mediaType)
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		// multipart decodes quoted-printable by itself.
		body, err := io.ReadAll(part)
		require.NoError(t, err)
		switch ct := part.Header.Get("Content-Type"); {
		case strings.HasPrefix(ct, "text/plain"):
			p.text = string(body)
		case strings.HasPrefix(ct, "text/html"):
			p.html = string(body)
		default:
			t.Fatalf("unexpected part %q", ct)
		}
	}
	return p
}

func ledgerFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
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
	for _, kind := range activities.NoticeKinds {
		already, err := n.Send(ctx, notice(key, kind))
		require.NoError(t, err)
		assert.False(t, already)
	}
	after := time.Now().Add(time.Second)

	msgs := r.messages()
	require.Len(t, msgs, len(activities.NoticeKinds), "each notice arrives once")
	assert.ElementsMatch(t, []string{key + "-t14.sent", key + "-t1.sent", key + "-success.sent"}, ledgerFiles(t, o.LedgerDir))

	for i, kind := range activities.NoticeKinds {
		t.Run(string(kind), func(t *testing.T) {
			nt := notice(key, kind)
			want, err := tpl.Render(nt)
			require.NoError(t, err)

			got := msgs[i]
			assert.Equal(t, fromAddr, got.from, "envelope sender")
			assert.Equal(t, []string{userAddr}, got.to, "envelope recipient")

			m := parse(t, got.data)
			h := m.header
			from, err := mail.ParseAddress(h.Get("From"))
			require.NoError(t, err)
			assert.Equal(t, &mail.Address{Name: "Example NHS Trust Migration", Address: fromAddr}, from)
			to, err := mail.ParseAddress(h.Get("To"))
			require.NoError(t, err)
			assert.Equal(t, &mail.Address{Name: "Jo Bloggs", Address: userAddr}, to)
			assert.Equal(t, want.Subject, h.Get("Subject"))
			assert.Equal(t, fmt.Sprintf("Message-ID: <%s.%s@notices.mailwave.invalid>", kind, key), m.rawMsgID)
			assert.Equal(t, string(kind), h.Get("X-Mailwave-Kind"))
			assert.Equal(t, "wave-07", h.Get("X-Mailwave-Wave"))
			date, err := h.Date()
			require.NoError(t, err)
			assert.True(t, date.After(before) && date.Before(after), "Date %v is the send time", date)

			for _, body := range []string{m.text, m.html} {
				assert.Contains(t, body, "Dear Jo Bloggs,")
				assert.Contains(t, body, "Saturday 5 December 2026 at 20:00 UTC")
			}
			assert.Equal(t, want.Text, strings.ReplaceAll(m.text, "\r\n", "\n"))
			assert.Contains(t, m.html, "<title>"+want.Subject+"</title>")
		})
	}
}

func TestRetryAfterSuccessSendsNothing(t *testing.T) {
	n, r, o := setup(t, nil)
	ctx := context.Background()
	nt := notice(key, activities.NoticeT14)

	sent, err := n.Sent(ctx, key, activities.NoticeT14)
	require.NoError(t, err)
	assert.False(t, sent, "not sent before")

	already, err := n.Send(ctx, nt)
	require.NoError(t, err)
	assert.False(t, already)
	conns := r.conns.Load()

	already, err = n.Send(ctx, nt)
	require.NoError(t, err)
	assert.True(t, already)
	assert.Len(t, r.messages(), 1, "the retry sent nothing")
	assert.Equal(t, conns, r.conns.Load(), "the retry did not even connect")

	sent, err = n.Sent(ctx, key, activities.NoticeT14)
	require.NoError(t, err)
	assert.True(t, sent)
	sent, err = n.Sent(ctx, key, activities.NoticeT1)
	require.NoError(t, err)
	assert.False(t, sent)

	path := filepath.Join(o.LedgerDir, key+"-t14.sent")
	rec, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Contains(t, string(rec), "Message-ID: "+nt.MessageID+"\n")
	assert.Contains(t, string(rec), "Sent-At: "+time.Now().UTC().Format("2006-01-02"))
	assert.Equal(t, []string{key + "-t14.sent"}, ledgerFiles(t, o.LedgerDir), "no temporaries left")

	// A record of some other message under the name does not count.
	require.NoError(t, os.WriteFile(path, []byte("Message-ID: <other@x>\n"), 0o600))
	already, err = n.Send(ctx, nt)
	require.NoError(t, err)
	assert.False(t, already)
	assert.Len(t, r.messages(), 2)
	rec, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.Contains(t, string(rec), nt.MessageID)
}

func TestConcurrentSendsDeliverOnce(t *testing.T) {
	n, r, _ := setup(t, nil)
	ctx := context.Background()
	nt := notice(key, activities.NoticeT1)

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
	assert.Len(t, r.messages(), 1, "a retry racing the original does not deliver twice")
	assert.Equal(t, int32(1), fresh.Load())
}

func TestFailureNoticeGoesToAdmin(t *testing.T) {
	n, r, o := setup(t, nil)
	ctx := context.Background()

	nt := failureNotice(key)
	already, err := n.Send(ctx, nt)
	require.NoError(t, err)
	assert.False(t, already)

	msgs := r.messages()
	require.Len(t, msgs, 1)
	assert.Equal(t, []string{adminAddr}, msgs[0].to, "to the admin, not the user")
	m := parse(t, msgs[0].data)
	to, err := mail.ParseAddress(m.header.Get("To"))
	require.NoError(t, err)
	assert.Equal(t, &mail.Address{Name: "Trust IT", Address: adminAddr}, to)
	assert.Equal(t, "failure", m.header.Get("X-Mailwave-Kind"))
	assert.Equal(t, nt.MessageID, m.header.Get("Message-ID"))
	assert.Equal(t, "Mailbox migration needs support: mailbox "+key, m.header.Get("Subject"))
	for _, body := range []string{m.text, m.html} {
		assert.Contains(t, body, "target mailbox is over quota")
		assert.Contains(t, body, "OverQuota")
		assert.Contains(t, body, "Jo Bloggs")
		assert.Contains(t, body, userAddr, "the admin is told which user")
	}
	assert.Equal(t, []string{key + "-failure.sent"}, ledgerFiles(t, o.LedgerDir))

	sent, err := n.Sent(ctx, key, activities.NoticeFailure)
	require.NoError(t, err)
	assert.True(t, sent)
}

func TestFailureNoticeWithoutAdminContact(t *testing.T) {
	n, r, _ := setup(t, func(o *smtpnotify.Options) { o.AdminContact = "" })

	_, err := n.Send(context.Background(), failureNotice(key))
	require.Error(t, err)
	typ, ok := activities.IsPermanent(err)
	assert.True(t, ok)
	assert.Equal(t, activities.ErrTypeNoticeNotSent, typ)
	assert.Contains(t, err.Error(), "AdminContact")
	assert.Zero(t, r.conns.Load(), "no connection made")
}

func TestRecipientRejectedIsPermanent(t *testing.T) {
	n, r, o := setup(t, nil)
	r.rejectRcpt = userAddr
	ctx := context.Background()

	_, err := n.Send(ctx, notice(key, activities.NoticeT14))
	require.Error(t, err)
	typ, ok := activities.IsPermanent(err)
	assert.True(t, ok, "a 550 is not retried: %v", err)
	assert.Equal(t, activities.ErrTypeNoticeNotSent, typ)
	assert.Contains(t, err.Error(), "550")
	assert.Contains(t, err.Error(), key)
	assertNoAddress(t, err)

	assert.Empty(t, r.messages())
	assert.Empty(t, ledgerFiles(t, o.LedgerDir), "nothing in the ledger")
	sent, err := n.Sent(ctx, key, activities.NoticeT14)
	require.NoError(t, err)
	assert.False(t, sent)
}

func TestTemporaryFailureThenSuccess(t *testing.T) {
	n, r, _ := setup(t, nil)
	r.failData, r.failDataMsg = 1, "Temporary local problem"
	ctx := context.Background()
	nt := notice(key, activities.NoticeT1)

	_, err := n.Send(ctx, nt)
	require.Error(t, err)
	_, permanent := activities.IsPermanent(err)
	assert.False(t, permanent, "a 451 is retried: %v", err)
	var thr *activities.ThrottledError
	assert.False(t, errors.As(err, &thr), "a plain 451 is not throttling")
	assert.Contains(t, err.Error(), "451")
	assertNoAddress(t, err)
	assert.Empty(t, r.messages())
	sent, err := n.Sent(ctx, key, activities.NoticeT1)
	require.NoError(t, err)
	assert.False(t, sent)

	already, err := n.Send(ctx, nt)
	require.NoError(t, err)
	assert.False(t, already)
	assert.Len(t, r.messages(), 1, "delivered once on the retry")
}

func TestTryAgainLaterIsThrottled(t *testing.T) {
	n, r, _ := setup(t, nil)
	r.failData, r.failDataMsg = 1, "Too many messages from you, try again later"

	_, err := n.Send(context.Background(), notice(key, activities.NoticeT14))
	var thr *activities.ThrottledError
	require.ErrorAs(t, err, &thr)
	assert.Equal(t, smtpnotify.ThrottleRetryAfter, thr.RetryAfter)
	_, permanent := activities.IsPermanent(err)
	assert.False(t, permanent)
	assertNoAddress(t, err)
}

func TestWrongPasswordIsPermanent(t *testing.T) {
	n, r, o := setup(t, func(o *smtpnotify.Options) { o.Password = "wrong" })

	_, err := n.Send(context.Background(), notice(key, activities.NoticeT14))
	require.Error(t, err)
	typ, ok := activities.IsPermanent(err)
	assert.True(t, ok, "%v", err)
	assert.Equal(t, activities.ErrTypeBadCredentials, typ)
	assert.Contains(t, err.Error(), "535")
	assert.NotContains(t, err.Error(), relayPass)
	assert.Empty(t, r.messages())
	assert.Empty(t, ledgerFiles(t, o.LedgerDir))
}

func TestAuthLogin(t *testing.T) {
	n, r, _ := setup(t, func(o *smtpnotify.Options) { o.AuthMechanism = smtpnotify.AuthLogin })
	_, err := n.Send(context.Background(), notice(key, activities.NoticeT14))
	require.NoError(t, err)
	assert.Len(t, r.messages(), 1)
}

func TestAuthNotOfferedIsPermanent(t *testing.T) {
	r := &relay{} // no AUTH advertised
	o := options(t, startRelay(t, r, smtpnotify.SecurityStartTLS))
	n, err := smtpnotify.New(o)
	require.NoError(t, err)

	_, err = n.Send(context.Background(), notice(key, activities.NoticeT14))
	typ, ok := activities.IsPermanent(err)
	assert.True(t, ok, "%v", err)
	assert.Equal(t, activities.ErrTypeBadCredentials, typ)
	assert.Contains(t, err.Error(), "AUTH PLAIN")
	assert.Empty(t, r.messages())
}

func TestStartTLSNeedsTheCA(t *testing.T) {
	n, r, _ := setup(t, func(o *smtpnotify.Options) { o.CAFile = "" })

	_, err := n.Send(context.Background(), notice(key, activities.NoticeT14))
	require.Error(t, err)
	var verr *tls.CertificateVerificationError
	assert.ErrorAs(t, err, &verr, "a TLS error: %v", err)
	_, permanent := activities.IsPermanent(err)
	assert.False(t, permanent, "a TLS failure is about the relay and is retried")
	assert.Empty(t, r.messages())
}

func TestImplicitTLS(t *testing.T) {
	r := &relay{user: relayUser, pass: relayPass}
	o := options(t, startRelay(t, r, smtpnotify.SecurityTLS))
	o.Security = smtpnotify.SecurityTLS
	n, err := smtpnotify.New(o)
	require.NoError(t, err)

	_, err = n.Send(context.Background(), notice(key, activities.NoticeSuccess))
	require.NoError(t, err)
	require.Len(t, r.messages(), 1)
	assert.Equal(t, "success", parse(t, r.messages()[0].data).header.Get("X-Mailwave-Kind"))

	// Without the CA, implicit TLS fails the same way.
	o.CAFile, o.LedgerDir = "", t.TempDir()
	n, err = smtpnotify.New(o)
	require.NoError(t, err)
	_, err = n.Send(context.Background(), notice(key, activities.NoticeSuccess))
	var verr *tls.CertificateVerificationError
	assert.ErrorAs(t, err, &verr)
}

func TestPlainTextToLocalhost(t *testing.T) {
	r := &relay{user: relayUser, pass: relayPass}
	o := options(t, startRelay(t, r, smtpnotify.SecurityNone))
	o.Security, o.CAFile = smtpnotify.SecurityNone, ""
	n, err := smtpnotify.New(o)
	require.NoError(t, err)

	_, err = n.Send(context.Background(), notice(key, activities.NoticeT14))
	require.NoError(t, err)
	assert.Len(t, r.messages(), 1)
}

func TestConnectionRefusedIsRetryable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())

	o := options(t, port)
	n, err := smtpnotify.New(o)
	require.NoError(t, err)
	_, err = n.Send(context.Background(), notice(key, activities.NoticeT14))
	require.Error(t, err)
	_, permanent := activities.IsPermanent(err)
	assert.False(t, permanent)
	assert.Contains(t, err.Error(), key)
	assertNoAddress(t, err)
	assert.Empty(t, ledgerFiles(t, o.LedgerDir))
}

func TestCancelStopsASend(t *testing.T) {
	n, r, o := setup(t, func(o *smtpnotify.Options) { o.Timeout = time.Minute })
	hold := make(chan struct{})
	r.hold = hold
	t.Cleanup(func() { close(hold) }) // before the relay closes

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := n.Send(ctx, notice(key, activities.NoticeT14))
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 10*time.Second, "the send stopped with its context, not its timeout")
	assert.Empty(t, ledgerFiles(t, o.LedgerDir))

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	_, err = n.Send(ctx, notice(key, activities.NoticeT14))
	assert.ErrorIs(t, err, context.Canceled)
}

func TestSendRejectsBadNotices(t *testing.T) {
	n, r, o := setup(t, nil)
	ctx := context.Background()

	cases := map[string]struct {
		edit func(*activities.Notice)
		want string
	}{
		"empty key":          {func(n *activities.Notice) { n.Mailbox.Key = "" }, "empty mailbox key"},
		"path key":           {func(n *activities.Notice) { n.Mailbox.Key = "../x" }, "mailbox key"},
		"unknown kind":       {func(n *activities.Notice) { n.Kind = "t7" }, "unknown notice kind"},
		"empty address":      {func(n *activities.Notice) { n.Mailbox.Address = "" }, "no recipient address"},
		"bad address":        {func(n *activities.Notice) { n.Mailbox.Address = "jo.bloggs@" }, "not a valid address"},
		"named address":      {func(n *activities.Notice) { n.Mailbox.Address = "Jo <" + userAddr + ">" }, "not a valid address"},
		"no message id":      {func(n *activities.Notice) { n.MessageID = "" }, "no Message-ID"},
		"bad message id":     {func(n *activities.Notice) { n.MessageID = "<a b@c>" }, "malformed Message-ID"},
		"header in wave":     {func(n *activities.Notice) { n.WaveID = "w\r\nBcc: x@y" }, "wave ID"},
		"no migrate time":    {func(n *activities.Notice) { n.MigrateAt = time.Time{} }, "no migration time"},
		"failure no details": {func(n *activities.Notice) { n.Kind = activities.NoticeFailure }, "no failure details"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			nt := notice(key, activities.NoticeT14)
			c.edit(&nt)
			_, err := n.Send(ctx, nt)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			typ, ok := activities.IsPermanent(err)
			assert.True(t, ok, "a bad notice never improves")
			assert.Equal(t, activities.ErrTypeNoticeNotSent, typ)
			assert.NotContains(t, err.Error(), "jo.bloggs", "errors carry no address")
		})
	}
	assert.Zero(t, r.conns.Load(), "no connection made")
	assert.Empty(t, ledgerFiles(t, o.LedgerDir))

	_, err := n.Sent(ctx, "../etc", activities.NoticeT14)
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
