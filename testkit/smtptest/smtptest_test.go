package smtptest_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/smtp"
	"os"
	"strings"
	"testing"

	"mailwave/testkit/smtptest"
)

const msg = "Subject: hi\r\n\r\nhello\r\n"

func TestSendPlainWithAuth(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{Username: "u", Password: "p"})
	if s.CAFile != "" {
		t.Errorf("CAFile = %q without TLS", s.CAFile)
	}

	// Without AUTH, MAIL is refused.
	if err := smtp.SendMail(s.Addr(), nil, "a@x.invalid", []string{"b@x.invalid"}, []byte(msg)); err == nil || !strings.Contains(err.Error(), "authenticate") {
		t.Errorf("no AUTH: err = %v, want AUTH demanded", err)
	}
	// A wrong password gets a 535.
	if err := smtp.SendMail(s.Addr(), smtp.PlainAuth("", "u", "x", s.Host), "a@x.invalid", []string{"b@x.invalid"}, []byte(msg)); err == nil || !strings.Contains(err.Error(), "535") {
		t.Errorf("wrong password: err = %v, want a 535", err)
	}

	err := smtp.SendMail(s.Addr(), smtp.PlainAuth("", "u", "p", s.Host), "a@x.invalid", []string{"b@x.invalid", "c@x.invalid"}, []byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	got := s.Messages()
	if len(got) != 1 {
		t.Fatalf("got %d messages, want 1", len(got))
	}
	m := got[0]
	if m.From != "a@x.invalid" || strings.Join(m.To, ",") != "b@x.invalid,c@x.invalid" || string(m.Data) != msg {
		t.Errorf("got %+v", m)
	}
	if s.Conns() != 3 {
		t.Errorf("Conns = %d, want 3", s.Conns())
	}

	// Messages returns copies.
	got[0].To[0], got[0].Data[0] = "changed", 'X'
	if m := s.Messages()[0]; m.To[0] != "b@x.invalid" || m.Data[0] != 'S' {
		t.Errorf("Messages shares its slices: %+v", m)
	}
}

func TestRejectAndFail(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{
		RejectRcpt: func(a string) bool { return a == "nobody@x.invalid" },
		FailData:   1,
	})
	send := func(to string) error {
		return smtp.SendMail(s.Addr(), nil, "a@x.invalid", []string{to}, []byte(msg))
	}
	if err := send("nobody@x.invalid"); err == nil || !strings.Contains(err.Error(), "550") {
		t.Errorf("rejected recipient: err = %v, want a 550", err)
	}
	if err := send("b@x.invalid"); err == nil || !strings.Contains(err.Error(), "451") {
		t.Errorf("first DATA: err = %v, want a 451", err)
	}
	if err := send("b@x.invalid"); err != nil {
		t.Errorf("second DATA: %v", err)
	}
	s.FailNextData(1, "try again later")
	if err := send("b@x.invalid"); err == nil || !strings.Contains(err.Error(), "try again later") {
		t.Errorf("after FailNextData: err = %v", err)
	}
	if n := len(s.Messages()); n != 1 {
		t.Errorf("got %d messages, want 1", n)
	}
}

func TestStartTLSAndImplicitTLS(t *testing.T) {
	for _, sec := range []string{smtptest.SecurityStartTLS, smtptest.SecurityTLS} {
		t.Run(sec, func(t *testing.T) {
			s := smtptest.Start(t, smtptest.Options{Security: sec, Username: "u", Password: "p"})
			pemBytes, err := os.ReadFile(s.CAFile)
			if err != nil {
				t.Fatal(err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pemBytes) {
				t.Fatal("CAFile holds no certificate")
			}
			cfg := &tls.Config{RootCAs: pool, ServerName: s.Host}

			var c *smtp.Client
			if sec == smtptest.SecurityTLS {
				conn, err := tls.Dial("tcp", s.Addr(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				c, err = smtp.NewClient(conn, s.Host)
				if err != nil {
					t.Fatal(err)
				}
			} else {
				c, err = smtp.Dial(s.Addr())
				if err != nil {
					t.Fatal(err)
				}
				if err := c.StartTLS(cfg); err != nil {
					t.Fatal(err)
				}
			}
			defer c.Close()
			if err := c.Auth(smtp.PlainAuth("", "u", "p", s.Host)); err != nil {
				t.Fatal(err)
			}
			if err := c.Mail("a@x.invalid"); err != nil {
				t.Fatal(err)
			}
			if err := c.Rcpt("b@x.invalid"); err != nil {
				t.Fatal(err)
			}
			w, err := c.Data()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write([]byte(msg)); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if err := c.Quit(); err != nil {
				t.Fatal(err)
			}
			if got := s.Messages(); len(got) != 1 || string(got[0].Data) != msg {
				t.Errorf("got %+v", got)
			}
		})
	}
}

func TestHoldIsReleasedAtCleanup(t *testing.T) {
	// A DATA held open does not stop the server from closing.
	t.Run("held", func(t *testing.T) {
		s := smtptest.Start(t, smtptest.Options{Hold: make(chan struct{})})
		c, err := smtp.Dial(s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Mail("a@x.invalid"); err != nil {
			t.Fatal(err)
		}
		if err := c.Rcpt("b@x.invalid"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Data(); err != nil {
			t.Fatal(err)
		}
	})
}
