// Package postgres starts a private PostgreSQL server (Debian's postgresql
// package) for tests and the production shape on one machine: its own data
// directory, a free port on loopback, trust authentication for local
// connections only. It can be stopped, killed and started again on the same
// data, to test recovery.
package postgres

import (
	"context"
	"fmt"
	"net"
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
	User string // the superuser, trusted on loopback
	bin  string
	run  string // the OS user the server runs as ("" for the current one)
	log  string
	cmd  *exec.Cmd
	done chan struct{}
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

// Start initialises a data directory in dir (if it has none yet) and
// starts the server on a free loopback port. Run as root, the server runs
// as the postgres user, which PostgreSQL requires.
func Start(ctx context.Context, dir string) (*Server, error) {
	bin, err := Bin()
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: filepath.Join(dir, "pgdata"), User: "mailwave", bin: bin, log: filepath.Join(dir, "postgres.log")}
	if os.Geteuid() == 0 {
		s.run = "postgres"
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
	s, err := Start(ctx, dir)
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

// command runs a PostgreSQL program as the server's OS user.
func (s *Server) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	prog := filepath.Join(s.bin, name)
	if s.run != "" {
		return exec.CommandContext(ctx, "runuser", append([]string{"-u", s.run, "--", prog}, args...)...)
	}
	return exec.CommandContext(ctx, prog, args...)
}

func (s *Server) initdb(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(s.Dir, "PG_VERSION")); err == nil {
		return nil
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return err
	}
	if s.run != "" {
		u, err := user.Lookup(s.run)
		if err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, p := range []string{s.Dir, filepath.Dir(s.Dir)} {
			if err := os.Chown(p, uid, gid); err != nil {
				return fmt.Errorf("postgres: %w", err)
			}
		}
	}
	out, err := s.command(ctx, "initdb", "-D", s.Dir, "-U", s.User, "--auth=trust", "--encoding=UTF8", "--locale=C").CombinedOutput()
	if err != nil {
		return fmt.Errorf("postgres: initdb: %v\n%s", err, out)
	}
	return nil
}

// Restart starts the server again on its data and port (after Stop or Kill).
func (s *Server) Restart(ctx context.Context) error {
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := s.command(context.Background(), "postgres", "-D", s.Dir, "-p", strconv.Itoa(s.Port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "max_connections=300",
		"-c", "fsync=on", "-c", "synchronous_commit=on")
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

// DSN is a connection string for database db.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", s.User, s.Addr(), db)
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
