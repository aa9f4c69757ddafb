// Package postgres starts a private PostgreSQL server (Debian's postgresql
// package) for tests and the production shape on one machine: its own data
// directory, a free port on loopback, trust authentication for local
// connections only (Start), or password authentication (SCRAM-SHA-256, no
// trust at all), TLS and other addresses than loopback (StartWith). It can
// be stopped, killed and started again on the same data, to test recovery.
package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mailwave/testkit/kitfs"
)

// BinEnv overrides where PostgreSQL's programs (initdb, postgres) are.
const BinEnv = "MAILWAVE_PG_BIN"

// Server is a running (or stopped) private PostgreSQL server.
type Server struct {
	Dir  string // data directory
	Port int
	User string // the superuser, trusted on loopback (or with a password)
	// PassFile holds the superuser's password, a pgpass line, when the
	// server authenticates by password ("" when it trusts loopback).
	PassFile string
	o        Options
	bin      string
	run      string // the OS user the server runs as ("" for the current one)
	log      string
	cmd      *exec.Cmd
	done     chan struct{}
}

// Bin finds PostgreSQL's programs: $MAILWAVE_PG_BIN, else the newest
// /usr/lib/postgresql/*/bin.
func Bin() (string, error) {
	if p := os.Getenv(BinEnv); p != "" {
		return p, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL server: apt-get install -y postgresql (or set %s)", BinEnv)
}

func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// Options say how a server authenticates and where it listens.
type Options struct {
	// User is the superuser's name (default "mailwave").
	User string
	// Password makes every connection authenticate by password
	// (SCRAM-SHA-256 in pg_hba.conf for local and host connections, no
	// trust); the superuser's is made at random and written to PassFile.
	Password bool
	// TLSCert and TLSKey, PEM files, turn TLS on (ssl=on); copied into the
	// data directory, for the server's user.
	TLSCert, TLSKey string
	// Listen are addresses to listen on besides 127.0.0.1, each accepting
	// connections from its own /32 (as on loopback, by trust or password).
	Listen []string
}

// Start initialises a data directory in dir (if it has none yet) and
// starts the server on a free loopback port, trusting local connections.
// Run as root, the server runs as the postgres user, which PostgreSQL
// requires.
func Start(ctx context.Context, dir string) (*Server, error) {
	return StartWith(ctx, dir, Options{})
}

// StartWith is Start with the options o.
func StartWith(ctx context.Context, dir string, o Options) (*Server, error) {
	bin, err := Bin()
	if err != nil {
		return nil, err
	}
	if o.User == "" {
		o.User = "mailwave"
	}
	s := &Server{Dir: filepath.Join(dir, "pgdata"), User: o.User, o: o, bin: bin, log: filepath.Join(dir, "postgres.log")}
	if os.Geteuid() == 0 {
		s.run = "postgres"
	}
	if o.Password {
		s.PassFile = filepath.Join(dir, "superuser.pgpass")
	}
	if err := s.initdb(ctx); err != nil {
		return nil, err
	}
	if s.Port, err = freePort(); err != nil {
		return nil, err
	}
	if err := s.Restart(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// StartT is Start for a test, in a t.TempDir(), stopped when the test ends.
func StartT(t testing.TB) *Server {
	t.Helper()
	return StartWithT(t, Options{})
}

// StartWithT is StartWith for a test, stopped when the test ends.
func StartWithT(t testing.TB, o Options) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Not t.TempDir(): its parent is private to this user, and the server
	// may run as another (postgres, when the tests run as root).
	dir, err := os.MkdirTemp("", "mailwave-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := StartWith(ctx, dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// WithDatabase is StartT with an empty database of that name, and a context
// that ends with the test, or after a minute.
func WithDatabase(t testing.TB, name string) (*Server, context.Context) {
	t.Helper()
	s := StartT(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	if err := s.Exec(ctx, "postgres", "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	return s, ctx
}

// command runs a PostgreSQL program as the server's OS user, with the
// superuser's password file.
func (s *Server) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	prog := filepath.Join(s.bin, name)
	var cmd *exec.Cmd
	if s.run != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", s.run, "--", prog}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, prog, args...)
	}
	if s.PassFile != "" {
		cmd.Env = append(os.Environ(), "PGPASSFILE="+s.PassFile)
	}
	return cmd
}

// chown gives paths to the server's OS user (when it runs as another).
func (s *Server) chown(paths ...string) error {
	if s.run == "" {
		return nil
	}
	u, err := user.Lookup(s.run)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, p := range paths {
		if err := os.Chown(p, uid, gid); err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
	}
	return nil
}

func (s *Server) initdb(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(s.Dir, "PG_VERSION")); err == nil {
		return nil
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return err
	}
	if err := s.chown(s.Dir, filepath.Dir(s.Dir)); err != nil {
		return err
	}
	args := []string{"initdb", "-D", s.Dir, "-U", s.User, "--auth=trust", "--encoding=UTF8", "--locale=C"}
	auth := "trust"
	if s.o.Password {
		pw := make([]byte, 24)
		if _, err := rand.Read(pw); err != nil {
			return err
		}
		password := hex.EncodeToString(pw)
		pwfile := filepath.Join(filepath.Dir(s.Dir), "superuser.password")
		if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o600); err != nil {
			return err
		}
		defer func() { _ = os.Remove(pwfile) }()
		if err := os.WriteFile(s.PassFile, []byte("*:*:*:"+s.User+":"+password+"\n"), 0o600); err != nil {
			return err
		}
		if err := s.chown(pwfile, s.PassFile); err != nil {
			return err
		}
		auth = "scram-sha-256"
		args = append(args[:5], "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "--pwfile="+pwfile, "--encoding=UTF8", "--locale=C")
	}
	out, err := s.command(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("postgres: initdb: %v\n%s", err, out)
	}
	var hba strings.Builder
	for _, a := range s.o.Listen {
		fmt.Fprintf(&hba, "host all all %s/32 %s\n", a, auth)
	}
	if hba.Len() > 0 {
		f, err := os.OpenFile(filepath.Join(s.Dir, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, err = f.WriteString(hba.String())
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	if s.o.TLSCert != "" {
		for src, dst := range map[string]string{s.o.TLSCert: "server.crt", s.o.TLSKey: "server.key"} {
			b, err := os.ReadFile(src)
			if err != nil {
				return err
			}
			p := filepath.Join(s.Dir, dst)
			if err := os.WriteFile(p, b, 0o600); err != nil {
				return err
			}
			if err := s.chown(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// Restart starts the server again on its data and port (after Stop or Kill).
func (s *Server) Restart(ctx context.Context) error {
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := []string{"-D", s.Dir, "-p", strconv.Itoa(s.Port),
		"-c", "listen_addresses=" + strings.Join(append([]string{"127.0.0.1"}, s.o.Listen...), ","),
		"-c", "unix_socket_directories=", "-c", "max_connections=300",
		"-c", "fsync=on", "-c", "synchronous_commit=on"}
	if s.o.TLSCert != "" {
		args = append(args, "-c", "ssl=on", "-c", "ssl_cert_file=server.crt", "-c", "ssl_key_file=server.key")
	}
	cmd := s.command(context.Background(), "postgres", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("postgres: %w", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); _ = logf.Close(); close(s.done) }()
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
		if err == nil {
			_ = c.Close()
			break
		}
		select {
		case <-s.done:
			return fmt.Errorf("postgres exited at start; its log %s:\n%s", s.log, kitfs.Tail(s.log, 15))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres did not listen on %s within a minute; its log %s", s.Addr(), s.log)
		}
	}
	return s.ready(ctx)
}

// ready waits until the server accepts queries (it listens before it has
// finished recovery).
func (s *Server) ready(ctx context.Context) error {
	deadline := time.Now().Add(time.Minute)
	for {
		out, err := s.command(ctx, "pg_isready", "-h", "127.0.0.1", "-p", strconv.Itoa(s.Port), "-U", s.User, "-d", "postgres").CombinedOutput()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready: %s", strings.TrimSpace(string(out)))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// DSN is a connection string for database db, as the superuser (its
// password from PassFile, if the server wants one).
func (s *Server) DSN(db string) string {
	dsn := fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", s.User, s.Addr(), db)
	if s.PassFile != "" {
		dsn += "&passfile=" + url.QueryEscape(s.PassFile)
	}
	return dsn
}

// Stop shuts the server down cleanly (SIGINT: fast shutdown).
func (s *Server) Stop() { s.signal(syscall.SIGINT) }

// Kill ends the server at once (SIGKILL), as a crash would.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

func (s *Server) signal(sig syscall.Signal) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	// The postmaster itself (runuser may keep it out of its own process
	// group), then whatever is left of the group.
	pid := s.postmasterPID()
	if pid > 0 {
		_ = syscall.Kill(pid, sig)
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, sig)
	deadline := time.Now().Add(30 * time.Second)
	for pid > 0 && syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}

// postmasterPID is the server's PID from its lock file, or 0.
func (s *Server) postmasterPID() int {
	b, err := os.ReadFile(filepath.Join(s.Dir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}

// Exec runs SQL through psql as the superuser.
func (s *Server) Exec(ctx context.Context, db, sql string) error {
	out, err := s.command(ctx, "psql", "-h", "127.0.0.1", "-p", strconv.Itoa(s.Port), "-U", s.User, "-d", db,
		"-v", "ON_ERROR_STOP=1", "-c", sql).CombinedOutput()
	if err != nil {
		return fmt.Errorf("psql: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
