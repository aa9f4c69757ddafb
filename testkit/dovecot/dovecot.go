// Package dovecot runs throwaway Dovecot IMAP servers for tests and
// benchmarks: a private configuration, users, a self-signed certificate and
// free loopback ports in one directory, with the master process run in the
// foreground as a child of ours.
//
// Several servers may run at once; each has its own directory, ports,
// base_dir and state_dir, so they share nothing but the binaries.
package dovecot

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"mailwave/testkit/pki"
)

// Environment variables.
const (
	// RequireEnv set to "1" turns a missing Dovecot from a skipped test into
	// a failed one (CI sets it, so the suite cannot go green by skipping).
	RequireEnv = "MAILWAVE_REQUIRE_DOVECOT"
	// BinEnv overrides where the dovecot binary is.
	BinEnv = "MAILWAVE_DOVECOT_BIN"
	// DoveadmEnv overrides where the doveadm binary is.
	DoveadmEnv = "MAILWAVE_DOVEADM_BIN"
)

// User is a mailbox owner on the test server.
type User struct {
	Name, Password string
	// QuotaBytes, when positive, is the user's storage quota (the quota
	// plugin's count backend, whole messages as stored): an APPEND past it
	// is refused with [OVERQUOTA], and the server offers the QUOTA
	// extension (GETQUOTAROOT), which shows it in units of 1,024 bytes.
	QuotaBytes int64
}

// quotas reports whether any user has a storage quota.
func (o Options) quotas() bool {
	for _, u := range o.Users {
		if u.QuotaBytes > 0 {
			return true
		}
	}
	return false
}

// Options configures a test server. The zero value is a server with no
// users, TLS available and plaintext authentication refused without TLS
// (see Plaintext for the loopback caveat).
type Options struct {
	Users []User

	// MasterUser and MasterPassword, when both set, allow logging in as any
	// user with "user*MasterUser" and the master password.
	MasterUser, MasterPassword string

	// OAuth2Tokens maps a user to the bearer token accepted for them by the
	// XOAUTH2 and OAUTHBEARER mechanisms. The token is not accepted as a
	// LOGIN/PLAIN password.
	OAuth2Tokens map[string]string

	// OAuth2TokenInfo, when set, is the URL of a token check (Dovecot's
	// oauth2 passdb, tokeninfo_url: a GET with ?access_token=<token>,
	// 200 for a good token, 4xx for a refused one), e.g. a
	// fakegraph.TokenInfo's: XOAUTH2 and OAUTHBEARER then take any token
	// it accepts for any user, as Exchange Online takes an application's
	// app-only token for every mailbox the application may open.
	OAuth2TokenInfo string

	// Plaintext allows LOGIN/AUTHENTICATE PLAIN without TLS. Without it the
	// server sets disable_plaintext_auth, but note that Dovecot treats a
	// connection whose local and remote addresses are the same (always the
	// case on 127.0.0.1) as secure, so it only changes what is advertised.
	Plaintext bool

	// MaxMessageBytes, when positive, makes the server refuse an APPEND
	// (or COPY/MOVE) of a message larger than this (quota plugin,
	// quota_max_mail_size). The refusal is a tagged NO with
	// [LIMIT]/"Mail size is too large".
	MaxMessageBytes int64

	// Storage is the mailbox format: SDBox (the default) or Maildir.
	Storage Storage

	// SpecialUse adds or overrides the special-use attributes that the
	// server gives to mailboxes by name, e.g. {"Sent Items": `\Sent`}.
	// Dovecot 2.3 takes special use only from its configuration: it accepts
	// CREATE ... (USE (...)) but ignores the USE list.
	SpecialUse map[string]string

	// IMAPCapability, when set, is Dovecot's imap_capability: the list the
	// server advertises, before login and after, in place of its own (a
	// leading "+" adds to its own lists instead). With a whole list,
	// Dovecot 2.3.19 advertises SPECIAL-USE only if the list names it, and
	// before login adds STARTTLS and the AUTH= mechanisms to it. The copy
	// benchmark uses it for a target without MULTIAPPEND.
	IMAPCapability string
}

// Storage is a Dovecot mailbox format.
type Storage string

const (
	// SDBox (one file per message, index per folder) is the default: on
	// this class of machine it takes APPENDs about twice as fast as Maildir
	// (no dovecot-uidlist to lock and rewrite, no tmp/ to cur/ renames).
	SDBox Storage = "sdbox"
	// Maildir can be seeded by writing files (imaptest.SeedMaildir), the
	// fastest way to fill a benchmark's source account.
	Maildir Storage = "maildir"
)

// DefaultSpecialUse is what every server gives out by mailbox name, unless
// Options.SpecialUse overrides it.
var DefaultSpecialUse = map[string]string{
	"Sent":    `\Sent`,
	"Drafts":  `\Drafts`,
	"Trash":   `\Trash`,
	"Junk":    `\Junk`,
	"Archive": `\Archive`,
}

// Server is a running Dovecot.
type Server struct {
	Dir        string // everything lives here
	Host       string // 127.0.0.1
	Port       int    // IMAP, with STARTTLS
	TLSPort    int    // IMAP over implicit TLS
	CAFile     string // PEM of the test CA that signed the server's certificate
	ConfigFile string // dovecot.conf
	LogFile    string // dovecot.log: the server's log and its stdout/stderr
	MailRoot   string // maildirs, one directory per user under it

	// MailUID and MailGID own the mail files: Dovecot will not touch mail
	// as root, so when we are root mail belongs to "nobody".
	MailUID, MailGID int

	opts Options
	ids  identities
	cmd  *exec.Cmd
	done chan struct{} // closed when the master process has exited
	err  error         // its exit status, valid after done

	stopOnce sync.Once
	stopErr  error
}

// Binary is the dovecot binary that Start runs: $MAILWAVE_DOVECOT_BIN, else
// dovecot on PATH, else /usr/sbin/dovecot (root's PATH has /usr/sbin, a
// user's often does not).
func Binary() string {
	return findBinary(BinEnv, "dovecot", "/usr/sbin/dovecot")
}

// DoveadmBinary is the doveadm binary, found like Binary.
func DoveadmBinary() string {
	return findBinary(DoveadmEnv, "doveadm", "/usr/bin/doveadm")
}

func findBinary(env, name, fallback string) string {
	if p := os.Getenv(env); p != "" {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return fallback
}

// Available reports whether a dovecot binary can be run here.
func Available() error {
	p := Binary()
	fi, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("dovecot not installed (%s): %w; apt-get install dovecot-imapd, or set %s", p, err, BinEnv)
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("dovecot at %s is not an executable file", p)
	}
	return nil
}

// Available reports whether this server is still running and greets new
// connections with "* OK".
func (s *Server) Available() error {
	select {
	case <-s.done:
		return fmt.Errorf("dovecot has exited (%v); log tail:\n%s", s.err, s.LogTail())
	default:
	}
	return greeted(s.Addr(), time.Second)
}

// Addr is host:port of the plain (STARTTLS) listener.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// TLSAddr is host:port of the implicit-TLS listener.
func (s *Server) TLSAddr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.TLSPort)) }

// TLSConfig trusts only this server's certificate. ServerName is Host;
// "localhost" is in the certificate too.
func (s *Server) TLSConfig() (*tls.Config, error) {
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", s.CAFile)
	}
	return &tls.Config{RootCAs: pool, ServerName: s.Host, MinVersion: tls.VersionTLS12}, nil
}

// MailDir is the root of user's mail: with Maildir, folder "A/B" is the
// maildir MailDir/A/B and INBOX is MailDir/INBOX.
func (s *Server) MailDir(user string) string { return filepath.Join(s.MailRoot, user) }

// Options returns the options the server was started with.
func (s *Server) Options() Options { return s.opts }

// Start writes a configuration into dir (created if need be) and starts
// Dovecot on free loopback ports, returning once it greets clients.
func Start(dir string, o Options) (*Server, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if err := validate(o); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	// These characters would need quoting or be expanded (%) in Dovecot's
	// configuration, and ':' separates mail_location's parts.
	if strings.ContainsAny(dir, " \t\n\"'%:\\#") {
		return nil, fmt.Errorf("dovecot: directory %q has characters Dovecot's configuration cannot take", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ids, err := processIdentities()
	if err != nil {
		return nil, err
	}
	if ids.root {
		// Mail processes run as "nobody" and must reach dir/mail.
		if err := os.Chmod(dir, 0o755); err != nil {
			return nil, err
		}
		if err := ensureTraversable(filepath.Dir(dir)); err != nil {
			return nil, err
		}
	}
	s := &Server{
		Dir:        dir,
		Host:       "127.0.0.1",
		CAFile:     filepath.Join(dir, "ca.pem"), // written by pki.NewCAIn
		ConfigFile: filepath.Join(dir, "dovecot.conf"),
		LogFile:    filepath.Join(dir, "dovecot.log"),
		MailRoot:   filepath.Join(dir, "mail"),
		MailUID:    ids.mailUID,
		MailGID:    ids.mailGID,
		opts:       o,
	}
	if s.opts.Storage == "" {
		s.opts.Storage = SDBox
	}
	s.ids = ids
	if err := s.prepare(ids); err != nil {
		return nil, err
	}
	// A port found free can be taken by someone else before Dovecot binds
	// it (another server started in parallel, say): try again with others.
	for attempt := 1; ; attempt++ {
		err := s.startOnce(ids)
		if err == nil {
			return s, nil
		}
		if attempt >= 4 || !strings.Contains(err.Error(), "in use") {
			return nil, err
		}
	}
}

func validate(o Options) error {
	bad := func(what, v string, chars string) error {
		if v == "" {
			return fmt.Errorf("dovecot: empty %s", what)
		}
		if strings.ContainsAny(v, chars) {
			return fmt.Errorf("dovecot: %s %q may not contain any of %q", what, v, chars)
		}
		return nil
	}
	// ':' separates passwd-file fields; '*' is the master-user separator;
	// '/' and '%' would end up in paths and variable expansion.
	const nameChars = ":*/% \t\r\n\\\""
	const passChars = ":\r\n"
	seen := map[string]bool{}
	for _, u := range o.Users {
		if err := bad("user name", u.Name, nameChars); err != nil {
			return err
		}
		if err := bad("password of "+u.Name, u.Password, passChars); err != nil {
			return err
		}
		if seen[u.Name] {
			return fmt.Errorf("dovecot: user %q given twice", u.Name)
		}
		seen[u.Name] = true
	}
	if (o.MasterUser == "") != (o.MasterPassword == "") {
		return errors.New("dovecot: MasterUser and MasterPassword go together")
	}
	if o.MasterUser != "" {
		if err := bad("master user", o.MasterUser, nameChars); err != nil {
			return err
		}
		if err := bad("master password", o.MasterPassword, passChars); err != nil {
			return err
		}
	}
	for u, tok := range o.OAuth2Tokens {
		if !seen[u] {
			return fmt.Errorf("dovecot: OAuth2 token for unknown user %q", u)
		}
		if err := bad("token of "+u, tok, passChars); err != nil {
			return err
		}
	}
	if o.OAuth2TokenInfo != "" && (!strings.HasPrefix(o.OAuth2TokenInfo, "http://") && !strings.HasPrefix(o.OAuth2TokenInfo, "https://") ||
		strings.ContainsAny(o.OAuth2TokenInfo, "?\r\n")) {
		return fmt.Errorf("dovecot: OAuth2TokenInfo %q: want an http(s) URL without a query", o.OAuth2TokenInfo)
	}
	switch o.Storage {
	case "", SDBox, Maildir:
	default:
		return fmt.Errorf("dovecot: unknown storage %q", o.Storage)
	}
	if strings.ContainsAny(o.IMAPCapability, "\r\n\"#") {
		return fmt.Errorf("dovecot: IMAPCapability %q may not contain a line break, '\"' or '#'", o.IMAPCapability)
	}
	for name, attr := range o.SpecialUse {
		if name == "" || strings.ContainsAny(name, "\"\\\r\n") || !strings.HasPrefix(attr, `\`) {
			return fmt.Errorf("dovecot: bad special use %q = %q", name, attr)
		}
	}
	return nil
}

// identities says which users Dovecot's processes run as.
type identities struct {
	root                       bool
	internalUser, loginUser    string
	internalGroup              string // "" leaves Dovecot's default
	mailUID, mailGID           int
	firstValidUID, firstValidG int
}

func processIdentities() (identities, error) {
	if os.Geteuid() != 0 {
		// Unprivileged: everything runs as us, Dovecot's "rootless" mode.
		u, err := user.Current()
		if err != nil {
			return identities{}, err
		}
		uid, gid := os.Getuid(), os.Getgid()
		g, err := user.LookupGroupId(strconv.Itoa(gid))
		if err != nil {
			return identities{}, err
		}
		return identities{
			// Our own group too: we cannot chown sockets to "dovecot".
			internalUser: u.Username, loginUser: u.Username, internalGroup: g.Name,
			mailUID: uid, mailGID: gid,
			firstValidUID: min(uid, 1), firstValidG: min(gid, 1),
		}, nil
	}
	// As root: login processes refuse to run as root ("This process must
	// not be run as root") and mail processes refuse root too ("Mail access
	// not allowed for root"), whatever first_valid_uid says. So logins run
	// as dovenull (Debian's login user) or nobody, and mail as nobody.
	nobody, err := user.Lookup("nobody")
	if err != nil {
		return identities{}, fmt.Errorf("dovecot: as root we need a 'nobody' user to own mail: %w", err)
	}
	uid, err1 := strconv.Atoi(nobody.Uid)
	gid, err2 := strconv.Atoi(nobody.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return identities{}, err
	}
	login := "nobody"
	if _, err := user.Lookup("dovenull"); err == nil {
		login = "dovenull"
	}
	return identities{
		root:         true,
		internalUser: "root", loginUser: login,
		mailUID: uid, mailGID: gid,
		firstValidUID: 1, firstValidG: 1,
	}, nil
}

// ensureTraversable makes sure "nobody" can walk down to dir. Directories
// under the system temporary directory that are ours and closed (t.TempDir
// makes its parent 0700) get o+x, which lets others pass but not list.
// Anything else we leave alone and report.
func ensureTraversable(dir string) error {
	tmp, err := filepath.Abs(os.TempDir())
	if err != nil {
		return err
	}
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			rel, err := filepath.Rel(tmp, d)
			if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
				return fmt.Errorf("dovecot: mail processes run as nobody and cannot pass through %s (mode %v); use a directory under %s", d, fi.Mode().Perm(), tmp)
			}
			if err := os.Chmod(d, fi.Mode().Perm()|0o011); err != nil {
				return err
			}
		}
		if p := filepath.Dir(d); p == d {
			return nil
		}
	}
}

// prepare writes everything but the configuration (which depends on the
// ports) into the directory.
func (s *Server) prepare(ids identities) error {
	for _, d := range []string{"run", "state"} {
		if err := os.MkdirAll(filepath.Join(s.Dir, d), 0o755); err != nil {
			return err
		}
	}
	for _, d := range []string{s.MailRoot, filepath.Join(s.Dir, "home")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		if err := os.Chown(d, ids.mailUID, ids.mailGID); err != nil {
			return err
		}
	}
	// A test CA (its certificate in CAFile) and the server's certificate
	// for localhost and 127.0.0.1, signed by it (serverCert, serverKey).
	ca, err := pki.NewCAIn(s.Dir, "mailwave test Dovecot CA")
	if err != nil {
		return err
	}
	if _, err := ca.Issue(serverCertName, true); err != nil {
		return err
	}
	home := filepath.Join(s.Dir, "home")
	var users, masters, tokens strings.Builder
	for _, u := range s.opts.Users {
		// name:password:uid:gid:gecos:home:shell:extra — uid and gid empty
		// so that mail_uid/mail_gid apply.
		extra := ""
		if u.QuotaBytes > 0 {
			// A userdb field in the eighth, the extra fields.
			extra = fmt.Sprintf(":userdb_quota_rule=*:storage=%dB", u.QuotaBytes)
		}
		fmt.Fprintf(&users, "%s:{PLAIN}%s:::%s::%s\n", u.Name, u.Password, filepath.Join(home, u.Name), extra)
	}
	if s.opts.MasterUser != "" {
		fmt.Fprintf(&masters, "%s:{PLAIN}%s::::::\n", s.opts.MasterUser, s.opts.MasterPassword)
	}
	for u, tok := range s.opts.OAuth2Tokens {
		fmt.Fprintf(&tokens, "%s:{PLAIN}%s::::::\n", u, tok)
	}
	// An app-only token names no user: the name compared with the
	// token's (username_format, both sides) is a constant, so a token the
	// check accepts opens any user's mailbox.
	oauth2 := fmt.Sprintf("tokeninfo_url = %s?access_token=\nusername_attribute = appid\nusername_format = app-only\n", s.opts.OAuth2TokenInfo)
	files := map[string]string{"users": users.String(), "masters": masters.String(), "tokens": tokens.String(), oauth2Conf: oauth2}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(s.Dir, name), []byte(content), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) startOnce(ids identities) error {
	port, tlsPort, err := freePorts()
	if err != nil {
		return err
	}
	return s.startOn(ids, port, tlsPort)
}

// Restart kills the server at once, as a crash or a host's restart does
// (what it was writing is left as it was), and starts it again on the same
// ports with the same mail, so its clients' connections break and new ones
// find it where it was.
func (s *Server) Restart() error {
	_ = s.Stop()
	var err error
	for attempt := 1; attempt <= 20; attempt++ {
		if err = s.startOn(s.ids, s.Port, s.TLSPort); err == nil || !strings.Contains(err.Error(), "in use") {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

func (s *Server) startOn(ids identities, port, tlsPort int) error {
	s.Port, s.TLSPort = port, tlsPort
	if err := os.WriteFile(s.ConfigFile, []byte(s.config(ids)), 0o644); err != nil {
		return err
	}
	logf, err := os.OpenFile(s.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own copy
	offset, _ := logf.Seek(0, io.SeekEnd)

	cmd := exec.Command(Binary(), "-F", "-c", s.ConfigFile)
	cmd.Dir = s.Dir
	// Errors before Dovecot opens log_path (bad configuration, say) go to
	// stderr: into the same log, appending, so one file tells all.
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true, // Stop kills the whole group
		// Should the test binary die without Stop, take Dovecot with it;
		// its children leave when the master goes.
		Pdeathsig: syscall.SIGKILL,
	}
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("dovecot: start %s: %w", Binary(), err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	s.stopOnce = sync.Once{}
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()

	deadline := started.Add(15 * time.Second)
	for {
		select {
		case <-s.done:
			tail := tailFrom(s.LogFile, offset)
			s.killGroup(syscall.SIGKILL)
			if strings.Contains(tail, "Address already in use") {
				return fmt.Errorf("dovecot: port in use: %s", tail)
			}
			return fmt.Errorf("dovecot exited during start-up (%v); log:\n%s", s.err, tail)
		default:
		}
		if greeted(s.Addr(), 500*time.Millisecond) == nil {
			return nil
		}
		if time.Now().After(deadline) {
			_ = s.Stop()
			return fmt.Errorf("dovecot: no greeting on %s after %v; log:\n%s", s.Addr(), time.Since(started).Round(time.Millisecond), tailFrom(s.LogFile, offset))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// freePorts asks the kernel for two free loopback ports.
func freePorts() (int, int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports[0], ports[1], nil
}

// greeted connects to addr and expects an untagged OK greeting.
func greeted(addr string, timeout time.Duration) error {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "* OK") {
		return fmt.Errorf("dovecot: unexpected greeting %q", line)
	}
	return nil
}

// Stop ends the server and all its processes and waits for the master.
// It may be called more than once.
func (s *Server) Stop() error {
	if s.cmd == nil {
		return nil
	}
	s.stopOnce.Do(func() {
		select {
		case <-s.done:
			// Already gone by itself: say so, unless it was a clean exit.
			s.killGroup(syscall.SIGKILL)
			if s.err != nil {
				s.stopErr = fmt.Errorf("dovecot had exited: %w", s.err)
			}
			return
		default:
		}
		// Straight to SIGKILL for the whole group: an orderly SIGTERM takes
		// the master a second or more, and the data is thrown away anyway
		// (with mail_fsync = never it is all in the files already).
		s.killGroup(syscall.SIGKILL)
		<-s.done
	})
	return s.stopErr
}

func (s *Server) killGroup(sig syscall.Signal) {
	if s.cmd != nil && s.cmd.Process != nil {
		// The group id is the master's pid (Setpgid). ESRCH once all gone.
		_ = syscall.Kill(-s.cmd.Process.Pid, sig)
	}
}

// LogTail returns the last few kilobytes of the server's log.
func (s *Server) LogTail() string {
	fi, err := os.Stat(s.LogFile)
	if err != nil {
		return ""
	}
	return tailFrom(s.LogFile, max(0, fi.Size()-4096))
}

func tailFrom(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	// Start-up errors are short; cap what we return all the same.
	offset = max(offset, fi.Size()-8192)
	b, _ := io.ReadAll(io.NewSectionReader(f, offset, fi.Size()-offset))
	return strings.TrimSpace(string(b))
}

// Doveadm runs doveadm against this server's configuration, e.g.
// Doveadm(ctx, "mailbox", "status", "-u", "alice", "messages", "*").
func (s *Server) Doveadm(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, DoveadmBinary(), append([]string{"-c", s.ConfigFile}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("doveadm %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Pid is the master process's id, which is also the id of the process
// group that all the server's processes are in.
func (s *Server) Pid() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}
