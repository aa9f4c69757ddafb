// Package smtptest runs an SMTP relay on loopback for tests: it accepts mail
// (optionally over STARTTLS or implicit TLS, optionally behind AUTH) and
// records what it accepted, and it can be told to refuse recipients, fail
// DATA with a 451 or hold DATA open.
package smtptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Security values for Options.Security; they match smtpnotify's.
const (
	SecurityNone     = "none"     // plain text; AUTH allowed without TLS
	SecurityStartTLS = "starttls" // STARTTLS offered
	SecurityTLS      = "tls"      // implicit TLS from the first byte
)

// Message is one message the relay accepted.
type Message struct {
	From string    // envelope sender (MAIL FROM)
	To   []string  // envelope recipients (RCPT TO), in order
	Data []byte    // the message as sent in DATA
	At   time.Time // when the relay accepted it
}

// Options say what the relay demands and how it misbehaves.
type Options struct {
	// Username and Password, when Username is set, make AUTH (PLAIN or
	// LOGIN) required before MAIL; wrong credentials get a 535.
	Username, Password string

	// Security is SecurityNone (the default when empty), SecurityStartTLS or
	// SecurityTLS. The TLS certificate is self-signed for 127.0.0.1;
	// Server.CAFile holds it as PEM.
	Security string

	// RejectRcpt, when set, answers RCPT TO with 550 5.1.1 for each address
	// it returns true for.
	RejectRcpt func(addr string) bool

	// FailData is how many of the first DATA commands get a 451 4.3.0 with
	// the text FailDataMsg ("Temporary local problem" when empty). The
	// message is read first and then discarded. See also Server.FailNextData.
	FailData    int
	FailDataMsg string

	// Hold, when set, makes every DATA wait until it is closed (or the
	// server closes) before reading the message.
	Hold <-chan struct{}
}

// Server is a running relay.
type Server struct {
	Host   string // always "127.0.0.1"
	Port   int
	CAFile string // PEM of the server's self-signed certificate; "" with SecurityNone

	opts    Options
	closing chan struct{} // closed when the test ends, to release held DATA
	conns   atomic.Int32

	mu          sync.Mutex
	failData    int
	failDataMsg string
	msgs        []Message
}

// Start serves a relay on 127.0.0.1:0 until the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	cert, err := testCert()
	if err != nil {
		t.Fatalf("smtptest: certificate: %v", err)
	}
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}

	srv := &Server{
		Host:        "127.0.0.1",
		opts:        o,
		closing:     make(chan struct{}),
		failData:    o.FailData,
		failDataMsg: o.FailDataMsg,
	}
	s := smtp.NewServer(backend{srv})
	s.Domain = "relay.test"
	s.ReadTimeout = 10 * time.Second
	s.WriteTimeout = 10 * time.Second
	s.ErrorLog = log.New(io.Discard, "", 0) // failed handshakes are expected

	switch o.Security {
	case "", SecurityNone:
		s.AllowInsecureAuth = true
	case SecurityStartTLS, SecurityTLS:
		srv.CAFile = WriteCAFile(t)
	default:
		t.Fatalf("smtptest: Security %q: want %q, %q or %q", o.Security, SecurityNone, SecurityStartTLS, SecurityTLS)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: %v", err)
	}
	srv.Port = ln.Addr().(*net.TCPAddr).Port
	var l net.Listener = countingListener{Listener: ln, n: &srv.conns}
	switch o.Security {
	case SecurityStartTLS:
		s.TLSConfig = tlsConfig
	case SecurityTLS:
		l = tls.NewListener(l, tlsConfig)
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(l)
	}()
	t.Cleanup(func() {
		close(srv.closing)
		_ = s.Close()
		// Serve may not have registered the listener yet, so Close may
		// not have closed it: close it here, or Serve waits forever.
		_ = ln.Close()
		<-done
	})
	return srv
}

// Addr is the server's "host:port".
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Messages returns copies of the accepted messages, in arrival order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.msgs))
	for i, m := range s.msgs {
		out[i] = Message{
			From: m.From,
			To:   append([]string(nil), m.To...),
			Data: append([]byte(nil), m.Data...),
			At:   m.At,
		}
	}
	return out
}

// Conns is how many connections the server has accepted, so a test can
// tell that a client made none.
func (s *Server) Conns() int { return int(s.conns.Load()) }

// FailNextData makes the next n DATA commands get a 451 4.3.0 with the text
// msg ("Temporary local problem" when empty), replacing what was pending.
func (s *Server) FailNextData(n int, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failData, s.failDataMsg = n, msg
}

// --- go-smtp backend ---

type backend struct{ s *Server }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{s: b.s}, nil }

type session struct {
	s      *Server
	authed bool
	from   string
	to     []string
}

func (ss *session) AuthMechanisms() []string {
	if ss.s.opts.Username == "" {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

func (ss *session) check(user, pass string) error {
	if user != ss.s.opts.Username || pass != ss.s.opts.Password {
		return smtp.ErrAuthFailed
	}
	ss.authed = true
	return nil
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(_, user, pass string) error { return ss.check(user, pass) }), nil
	case sasl.Login:
		return &loginServer{check: ss.check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.opts.Username != "" && !ss.authed {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if r := ss.s.opts.RejectRcpt; r != nil && r(to) {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<" + to + ">: no such user here"}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(rd io.Reader) error {
	if hold := ss.s.opts.Hold; hold != nil {
		select {
		case <-hold:
		case <-ss.s.closing:
		}
	}
	data, err := io.ReadAll(rd)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	if ss.s.failData > 0 {
		ss.s.failData--
		msg := ss.s.failDataMsg
		if msg == "" {
			msg = "Temporary local problem"
		}
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: msg}
	}
	ss.s.msgs = append(ss.s.msgs, Message{From: ss.from, To: append([]string(nil), ss.to...), Data: data, At: time.Now()})
	return nil
}

func (ss *session) Reset()        { ss.from, ss.to = "", nil }
func (ss *session) Logout() error { return nil }

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

// countingListener counts accepted connections.
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

// --- certificate ---

// testCert is a self-signed certificate for 127.0.0.1, made once per process
// and shared by every server.
var testCert = sync.OnceValues(func() (tls.Certificate, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mailwave test relay"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
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

// CAPEM is the PEM of the certificate every TLS server here presents.
func CAPEM() ([]byte, error) {
	cert, err := testCert()
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), nil
}

// WriteCAFile writes CAPEM to a file in t.TempDir() and returns its path,
// for clients configured before (or without) a server.
func WriteCAFile(t testing.TB) string {
	t.Helper()
	b, err := CAPEM()
	if err != nil {
		t.Fatalf("smtptest: certificate: %v", err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatalf("smtptest: %v", err)
	}
	return path
}
