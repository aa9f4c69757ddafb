package dovecot_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/testkit/dovecot"
)

var alice = dovecot.User{Name: "alice", Password: "correct horse"}
var bob = dovecot.User{Name: "bob", Password: "battery staple"}

func dial(t *testing.T, addr string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func login(t *testing.T, addr, user, pass string) error {
	t.Helper()
	c := dial(t, addr)
	return c.Login(user, pass).Wait()
}

func requireAuthFailed(t *testing.T, err error) {
	t.Helper()
	var e *imap.Error
	require.True(t, errors.As(err, &e), "want an IMAP NO, got %v", err)
	// AUTHORIZATIONFAILED: the master's password was right but the user
	// it names does not exist.
	assert.Contains(t, []imap.ResponseCode{imap.ResponseCodeAuthenticationFailed, imap.ResponseCodeAuthorizationFailed}, e.Code, "%v", err)
}

func TestTwoServersAtOnce(t *testing.T) {
	var (
		wg      sync.WaitGroup
		servers [2]*dovecot.Server
		took    [2]time.Duration
	)
	for i := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			servers[i] = dovecot.StartT(t, dovecot.Options{Users: []dovecot.User{alice}, Plaintext: true})
			took[i] = time.Since(t0)
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("Start took %v and %v", took[0], took[1])
	a, b := servers[0], servers[1]
	assert.NotEqual(t, a.Dir, b.Dir)
	assert.NotEqual(t, a.Addr(), b.Addr())
	assert.NotEqual(t, a.TLSAddr(), b.TLSAddr())
	for _, s := range servers {
		require.NoError(t, s.Available())
		require.NoError(t, login(t, s.Addr(), alice.Name, alice.Password))
	}

	// Mail written through one server is not seen by the other.
	c := dial(t, a.Addr())
	require.NoError(t, c.Login(alice.Name, alice.Password).Wait())
	require.NoError(t, c.Create("OnlyOnA", nil).Wait())
	c2 := dial(t, b.Addr())
	require.NoError(t, c2.Login(alice.Name, alice.Password).Wait())
	_, err := c2.Status("OnlyOnA", &imap.StatusOptions{NumMessages: true}).Wait()
	require.Error(t, err)

	// Stop ends every process of the server, and only that server.
	pid := a.Pid()
	require.NoError(t, a.Stop())
	require.NoError(t, a.Stop(), "Stop twice")
	require.Error(t, a.Available())
	// Killed children may linger as zombies until init reaps them; none
	// may still be running.
	assert.Eventually(t, func() bool { return len(livingInGroup(pid)) == 0 },
		2*time.Second, 10*time.Millisecond, "processes left in group %d: %v", pid, livingInGroup(pid))
	require.NoError(t, b.Available())
}

// livingInGroup lists the processes of a process group that are not
// zombies, from /proc/<pid>/stat ("pid (comm) state ppid pgrp ...").
func livingInGroup(pgid int) []string {
	var out []string
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		s := string(b)
		end := strings.LastIndexByte(s, ')')
		if end < 0 {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 3 || f[0] == "Z" || f[2] != strconv.Itoa(pgid) {
			continue
		}
		out = append(out, s[:end+1])
	}
	return out
}

func TestLogin(t *testing.T) {
	s := dovecot.StartT(t, dovecot.Options{Users: []dovecot.User{alice, bob}, Plaintext: true})
	require.NoError(t, login(t, s.Addr(), alice.Name, alice.Password))
	require.NoError(t, login(t, s.Addr(), bob.Name, bob.Password))
	requireAuthFailed(t, login(t, s.Addr(), alice.Name, bob.Password))
	requireAuthFailed(t, login(t, s.Addr(), "mallory", alice.Password))
	// User names are taken as given, not lower-cased.
	requireAuthFailed(t, login(t, s.Addr(), "Alice", alice.Password))
	// Without a master user configured, the separator is just a character.
	requireAuthFailed(t, login(t, s.Addr(), "alice*bob", bob.Password))
}

func TestMasterUser(t *testing.T) {
	s := dovecot.StartT(t, dovecot.Options{
		Users:      []dovecot.User{alice, bob},
		MasterUser: "admin", MasterPassword: "master key",
		Plaintext: true,
	})
	c := dial(t, s.Addr())
	require.NoError(t, c.Login("alice*admin", "master key").Wait())
	// Logged in as alice: her mailbox, not the master's.
	require.NoError(t, c.Create("MadeByMaster", nil).Wait())
	c2 := dial(t, s.Addr())
	require.NoError(t, c2.Login(alice.Name, alice.Password).Wait())
	_, err := c2.Status("MadeByMaster", &imap.StatusOptions{NumMessages: true}).Wait()
	require.NoError(t, err)

	requireAuthFailed(t, login(t, s.Addr(), "alice*admin", "wrong"))
	requireAuthFailed(t, login(t, s.Addr(), "alice*admin", alice.Password))
	requireAuthFailed(t, login(t, s.Addr(), "nobody-here*admin", "master key"))
	requireAuthFailed(t, login(t, s.Addr(), "admin", "master key"))
	require.NoError(t, login(t, s.Addr(), alice.Name, alice.Password))
}

// xoauth2 is the SASL XOAUTH2 client (Google's), which go-sasl lacks.
type xoauth2 struct{ user, token string }

func (x xoauth2) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + x.user + "\x01auth=Bearer " + x.token + "\x01\x01"), nil
}

// Next answers the JSON error challenge with an empty response, after which
// the server sends its NO.
func (x xoauth2) Next([]byte) ([]byte, error) { return []byte{}, nil }

func TestOAuth2(t *testing.T) {
	s := dovecot.StartT(t, dovecot.Options{
		Users:        []dovecot.User{alice, bob},
		OAuth2Tokens: map[string]string{"alice": "ya29.token-for-alice"},
		Plaintext:    true,
	})
	auth := func(cl sasl.Client) error {
		c := dial(t, s.Addr())
		return c.Authenticate(cl)
	}
	require.NoError(t, auth(xoauth2{"alice", "ya29.token-for-alice"}))
	require.NoError(t, auth(sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: "alice", Token: "ya29.token-for-alice"})))
	require.Error(t, auth(xoauth2{"alice", "wrong"}))
	require.Error(t, auth(xoauth2{"alice", alice.Password}), "a password is no token")
	require.Error(t, auth(xoauth2{"bob", "ya29.token-for-alice"}))
	requireAuthFailed(t, login(t, s.Addr(), "alice", "ya29.token-for-alice")) // a token is no password
	require.NoError(t, login(t, s.Addr(), alice.Name, alice.Password))
}

// TestOAuth2TokenInfo: with a token check, XOAUTH2 takes a token the
// check accepts for any user, and refuses one it refuses as a failed
// authentication (AUTHENTICATIONFAILED, not a temporary failure), and a
// token is still no password.
func TestOAuth2TokenInfo(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	check := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.URL.Query().Get("access_token")
		mu.Lock()
		asked = append(asked, tok)
		mu.Unlock()
		if tok != "app-token" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{"appid": "app-1"}`))
	}))
	t.Cleanup(check.Close)
	s := dovecot.StartT(t, dovecot.Options{Users: []dovecot.User{alice, bob}, OAuth2TokenInfo: check.URL + "/tokeninfo", Plaintext: true})
	auth := func(cl sasl.Client) error {
		c := dial(t, s.Addr())
		return c.Authenticate(cl)
	}
	require.NoError(t, auth(xoauth2{"alice", "app-token"}))
	require.NoError(t, auth(xoauth2{"bob", "app-token"}), "an app-only token opens any mailbox")
	// By hand: go-imap sends XOAUTH2's empty answer to the error
	// challenge as "=", which Dovecot takes for bad base64.
	raw, err := net.Dial("tcp", s.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { raw.Close() })
	r := bufio.NewReader(raw)
	_, err = r.ReadString('\n')
	require.NoError(t, err)
	ir := base64.StdEncoding.EncodeToString([]byte("user=alice\x01auth=Bearer ended-token\x01\x01"))
	_, err = raw.Write([]byte("a AUTHENTICATE XOAUTH2 " + ir + "\r\n"))
	require.NoError(t, err)
	challenge, err := r.ReadString('\n')
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(challenge, "+ "), challenge)
	_, err = raw.Write([]byte("\r\n"))
	require.NoError(t, err)
	answer, err := r.ReadString('\n')
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(answer, "a NO [AUTHENTICATIONFAILED]"), answer)
	requireAuthFailed(t, login(t, s.Addr(), "alice", "app-token"))
	mu.Lock()
	assert.Equal(t, []string{"app-token", "app-token", "ended-token"}, asked, "every login asks")
	mu.Unlock()
}

func TestTLS(t *testing.T) {
	s := dovecot.StartT(t, dovecot.Options{Users: []dovecot.User{alice}})
	cfg, err := s.TLSConfig()
	require.NoError(t, err)

	for _, name := range []string{"127.0.0.1", "localhost"} {
		cfg := cfg.Clone()
		cfg.ServerName = name
		c, err := imapclient.DialTLS(s.TLSAddr(), &imapclient.Options{TLSConfig: cfg})
		require.NoError(t, err, name)
		require.NoError(t, c.Login(alice.Name, alice.Password).Wait(), name)
		c.Close()
	}

	c, err := imapclient.DialStartTLS(s.Addr(), &imapclient.Options{TLSConfig: cfg})
	require.NoError(t, err)
	require.NoError(t, c.Login(alice.Name, alice.Password).Wait())
	c.Close()

	// Without the CA the certificate is not trusted.
	_, err = imapclient.DialTLS(s.TLSAddr(), &imapclient.Options{TLSConfig: &tls.Config{ServerName: "127.0.0.1"}})
	require.Error(t, err)
	c, err = imapclient.DialTLS(s.TLSAddr(), &imapclient.Options{TLSConfig: &tls.Config{ServerName: "127.0.0.1"}})
	if err == nil {
		// Some TLS stacks only fail on first use.
		require.Error(t, c.Noop().Wait())
	}

	pem, err := os.ReadFile(s.CAFile)
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(pem, []byte("-----BEGIN CERTIFICATE-----")))
}

// Dovecot counts a connection whose two ends have the same address as
// secure, so on 127.0.0.1 plaintext LOGIN works whatever Plaintext says;
// without Plaintext the server only stops advertising AUTH=PLAIN before
// STARTTLS would be on a real network. This pins the loopback behaviour so
// that a test relying on refusal does not silently pass.
func TestPlaintextOnLoopback(t *testing.T) {
	s := dovecot.StartT(t, dovecot.Options{Users: []dovecot.User{alice}})
	c := dial(t, s.Addr())
	assert.False(t, c.Caps().Has(imap.CapLoginDisabled))
	require.NoError(t, c.Login(alice.Name, alice.Password).Wait())
}

func TestMaxMessageBytes(t *testing.T) {
	s := dovecot.StartT(t, dovecot.Options{Users: []dovecot.User{alice}, Plaintext: true, MaxMessageBytes: 64 << 10})
	c := dial(t, s.Addr())
	require.NoError(t, c.Login(alice.Name, alice.Password).Wait())
	appendN := func(n int) error {
		msg := []byte("From: a@example.org\r\nSubject: size\r\n\r\n" + strings.Repeat("x", n) + "\r\n")
		cmd := c.Append("INBOX", int64(len(msg)), nil)
		_, werr := cmd.Write(msg)
		cerr := cmd.Close()
		_, err := cmd.Wait()
		return errors.Join(err, werr, cerr)
	}
	require.NoError(t, appendN(60<<10))
	err := appendN(70 << 10)
	var e *imap.Error
	require.True(t, errors.As(err, &e), "want NO, got %v", err)
	assert.Equal(t, imap.ResponseCodeLimit, e.Code, "%v", err)
	// Dovecot refuses at the APPEND line, before the literal; go-imap then
	// cannot go on with the command and closes the connection.
	c = dial(t, s.Addr())
	require.NoError(t, c.Login(alice.Name, alice.Password).Wait())
	require.NoError(t, appendN(1<<10))
	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	require.NoError(t, err)
	assert.Equal(t, uint32(2), *st.NumMessages)
}

func TestSpecialUse(t *testing.T) {
	s := dovecot.StartT(t, dovecot.Options{
		Users:      []dovecot.User{alice},
		Plaintext:  true,
		SpecialUse: map[string]string{"Sent Items": `\Sent`, "Corbeille": `\Trash`},
	})
	c := dial(t, s.Addr())
	require.NoError(t, c.Login(alice.Name, alice.Password).Wait())
	for _, name := range []string{"Sent", "Sent Items", "Corbeille", "Junk", "Plain"} {
		require.NoError(t, c.Create(name, nil).Wait())
	}
	// Dovecot 2.3 accepts CREATE with USE but ignores it, and does not
	// advertise CREATE-SPECIAL-USE.
	assert.False(t, c.Caps().Has(imap.CapCreateSpecialUse))
	require.NoError(t, c.Create("Asked To Be Drafts", &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{imap.MailboxAttrDrafts}}).Wait())

	list, err := c.List("", "*", &imap.ListOptions{ReturnSpecialUse: true}).Collect()
	require.NoError(t, err)
	got := map[string][]imap.MailboxAttr{}
	for _, l := range list {
		got[l.Mailbox] = l.Attrs
	}
	assert.Contains(t, got["Sent"], imap.MailboxAttrSent)
	assert.Contains(t, got["Sent Items"], imap.MailboxAttrSent)
	assert.Contains(t, got["Corbeille"], imap.MailboxAttrTrash)
	assert.Contains(t, got["Junk"], imap.MailboxAttrJunk)
	assert.NotContains(t, got["Plain"], imap.MailboxAttrSent)
	assert.NotContains(t, got["Asked To Be Drafts"], imap.MailboxAttrDrafts)
	// Not created: not listed, even though configured (auto = no).
	assert.NotContains(t, got, "Trash")
}

func TestStartFailureShowsLog(t *testing.T) {
	dovecot.SkipIfUnavailable(t)
	// A binary that exits at once stands in for a Dovecot that dislikes its
	// configuration.
	script := t.TempDir() + "/dovecot"
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\necho 'Fatal: pretend configuration error' >&2\nexit 89\n"), 0o755))
	t.Setenv(dovecot.BinEnv, script)
	_, err := dovecot.Start(t.TempDir(), dovecot.Options{Users: []dovecot.User{alice}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "pretend configuration error")
	assert.Contains(t, err.Error(), "exit status 89")
}

func TestBadOptions(t *testing.T) {
	for name, o := range map[string]dovecot.Options{
		"colon in password":  {Users: []dovecot.User{{Name: "a", Password: "x:y"}}},
		"star in name":       {Users: []dovecot.User{{Name: "a*b", Password: "x"}}},
		"master without pw":  {Users: []dovecot.User{alice}, MasterUser: "m"},
		"token for stranger": {Users: []dovecot.User{alice}, OAuth2Tokens: map[string]string{"bob": "t"}},
		"duplicate user":     {Users: []dovecot.User{alice, alice}},
		"capability line":    {Users: []dovecot.User{alice}, IMAPCapability: "IMAP4rev1\nssl = no"},
	} {
		_, err := dovecot.Start(t.TempDir(), o)
		assert.Error(t, err, name)
	}
}

// capList is a capability set as a sorted list of names.
func capList(set imap.CapSet) []string {
	var out []string
	for c := range set {
		out = append(out, string(c))
	}
	slices.Sort(out)
	return out
}

func TestIMAPCapability(t *testing.T) {
	own := dovecot.StartT(t, dovecot.Options{Users: []dovecot.User{alice}, Plaintext: true})
	c := dial(t, own.Addr())
	ownBefore, err := c.Capability().Wait()
	require.NoError(t, err)
	require.NoError(t, c.Login(alice.Name, alice.Password).Wait())
	caps, err := c.Capability().Wait()
	require.NoError(t, err)
	t.Logf("Dovecot's own list, before login: %v; after: %v", capList(ownBefore), capList(caps))
	require.True(t, caps.Has(imap.CapMultiAppend), "Dovecot's own list: %v", capList(caps))
	// Dovecot's own list after login, less MULTIAPPEND.
	want := slices.DeleteFunc(capList(caps), func(c string) bool { return c == string(imap.CapMultiAppend) })

	s := dovecot.StartT(t, dovecot.Options{Users: []dovecot.User{alice}, Plaintext: true, IMAPCapability: strings.Join(want, " ")})
	c = dial(t, s.Addr())
	before, err := c.Capability().Wait()
	require.NoError(t, err)
	assert.True(t, before.Has(imap.CapLiteralPlus), "before login: %v", capList(before))
	assert.False(t, before.Has(imap.CapMultiAppend), "before login: %v", capList(before))
	require.NoError(t, c.Login(alice.Name, alice.Password).Wait())
	after, err := c.Capability().Wait()
	require.NoError(t, err)
	assert.Equal(t, want, capList(after))
	t.Logf("with IMAPCapability, before login: %v; after: %v", capList(before), capList(after))
}
