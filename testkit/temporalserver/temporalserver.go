// Package temporalserver runs the Temporal server itself, the production
// shape on one machine: built from go.temporal.io/server at the version the
// pinned dev server embeds (`make temporal-server`), on PostgreSQL, its
// schema set up by Temporal's own SQL tool, its frontend on mTLS, mailwave's
// roles enforced by its authorizer (an access token per call, signed by a
// key made here), the default namespace and mailwave's search attributes
// registered. Tests and benchmarks kill and restart it.
package temporalserver

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/protobuf/types/known/durationpb"

	"mailwave/internal/accesstoken"
	"mailwave/internal/atomicfile"
	"mailwave/internal/connect"
	"mailwave/internal/control"
	"mailwave/testkit/kitfs"
	"mailwave/testkit/pki"
	"mailwave/testkit/postgres"
)

// Version is the server version: the one the pinned CLI's dev server
// embeds.
const Version = "v1.29.1"

// BinEnv overrides the directory holding the server and sql binaries.
const BinEnv = "MAILWAVE_TEMPORAL_SERVER_BIN"

// SystemCN is the common name of the certificate the server's own system
// worker presents to the frontend: the system's, with every right.
const SystemCN = "temporal-system"

// TestsSubject is who Connect's token names: the test kit, as operator and
// worker.
const TestsSubject = "mailwave-tests"

// Options say where and how.
type Options struct {
	BinDir string // holds server and sql (default: $MAILWAVE_TEMPORAL_SERVER_BIN or bin/temporal-server)
	Dir    string // config, certificates and log
	PG     *postgres.Server
	Shards int // history shards (default 4)
	// User and Password are Temporal's own database role (default: the
	// server's superuser, trusted); the password goes to the server's
	// configuration file (mode 0600) and to the SQL tool's environment.
	User, Password string
}

// Server is a running Temporal server.
type Server struct {
	// Frontend is the frontend's host:port (mTLS).
	Frontend string
	// CA signed every certificate; Client is a client certificate mailwave's
	// processes present (mTLS).
	CA     *pki.CA
	Client pki.Pair
	// SigningKey signs the access tokens the server's authorizer accepts
	// (its public key in PublicKeyFile); Revocations is the revocation list
	// it reads.
	SigningKey    ed25519.PrivateKey
	PublicKeyFile string
	Revocations   string
	o             Options
	mu            sync.Mutex
	tokens        map[string][]accesstoken.Role // TokenFile's subjects
	log           string
	cmd           *exec.Cmd
	done          chan struct{}
}

// Connect are the connection options of a mailwave client of this server
// with the test kit's token (TestsSubject, operator and worker); the
// codec's key ring is the caller's.
func (s *Server) Connect() connect.Options {
	o, err := s.ConnectAs(TestsSubject, accesstoken.Operator, accesstoken.Worker)
	if err != nil {
		panic(err) // the key is in memory and the directory ours: cannot happen but for a full disk
	}
	return o
}

// ConnectAs are the connection options of a client presenting a token for
// subject with roles (valid a day), written to a file of its own.
func (s *Server) ConnectAs(subject string, roles ...accesstoken.Role) (connect.Options, error) {
	f, err := s.TokenFile(subject, roles...)
	if err != nil {
		return connect.Options{}, err
	}
	o := s.connectNoToken()
	o.APIKeyFile = f
	return o, nil
}

// connectNoToken are the options with the client certificate but no token.
func (s *Server) connectNoToken() connect.Options {
	return connect.Options{Address: s.Frontend, TLSCA: s.CA.CertFile, TLSCert: s.Client.CertFile,
		TLSKey: s.Client.KeyFile, TLSServerName: "localhost", DialTimeout: 30 * time.Second}
}

// ConnectNoToken are the connection options of a client with the client
// certificate and no access token: the authorizer refuses its every call.
func (s *Server) ConnectNoToken() connect.Options { return s.connectNoToken() }

// Token issues a token for subject with roles, valid for valid.
func (s *Server) Token(subject string, valid time.Duration, roles ...accesstoken.Role) (string, error) {
	now := time.Now()
	return accesstoken.Issue(s.SigningKey, accesstoken.Claims{Subject: subject, Roles: roles, Namespace: "default", IssuedAt: now, Expires: now.Add(valid)})
}

// TokenFile writes a token for subject with roles, valid a day, to
// Dir/access/<subject>.token (mode 0600), replacing any before it.
func (s *Server) TokenFile(subject string, roles ...accesstoken.Role) (string, error) {
	tok, err := s.Token(subject, accesstoken.MaxValidity, roles...)
	if err != nil {
		return "", err
	}
	path := filepath.Join(s.o.Dir, "access", subject+".token")
	if err := atomicfile.Write(path, 0o600, func(w io.Writer) error {
		_, err := io.WriteString(w, tok+"\n")
		return err
	}); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tokens == nil {
		s.tokens = map[string][]accesstoken.Role{}
	}
	s.tokens[subject] = roles
	return path, nil
}

// RenewTokens issues every token TokenFile wrote again, valid another day,
// in the same files: the clients reading them (--api-key-file) take the
// new ones up within a second. A shape left running calls it more than
// once a day.
func (s *Server) RenewTokens() error {
	s.mu.Lock()
	subjects := make(map[string][]accesstoken.Role, len(s.tokens))
	for k, v := range s.tokens {
		subjects[k] = v
	}
	s.mu.Unlock()
	for sub, roles := range subjects {
		if _, err := s.TokenFile(sub, roles...); err != nil {
			return err
		}
	}
	return nil
}

// BinDir finds the directory holding the server and its SQL tool:
// $MAILWAVE_TEMPORAL_SERVER_BIN, else bin/temporal-server at the module root.
func BinDir() (string, error) {
	p, err := kitfs.Binary(BinEnv, "bin/temporal-server/server", "temporal-server")
	if err != nil {
		return "", err
	}
	if os.Getenv(BinEnv) != "" {
		return p, nil
	}
	return filepath.Dir(p), nil
}

// Start sets up the databases (once), writes the configuration and starts
// the server, then registers the default namespace and the search
// attributes.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.BinDir == "" {
		d, err := BinDir()
		if err != nil {
			return nil, err
		}
		o.BinDir = d
	}
	if o.Shards == 0 {
		o.Shards = 4
	}
	if o.User == "" {
		o.User = o.PG.User
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, "config"), 0o755); err != nil {
		return nil, err
	}
	ca, err := pki.NewCAIn(o.Dir, "mailwave test Temporal CA")
	if err != nil {
		return nil, err
	}
	srvCert, err := ca.Issue("temporal-frontend", true)
	if err != nil {
		return nil, err
	}
	client, err := ca.Issue("mailwave-client", false)
	if err != nil {
		return nil, err
	}
	system, err := ca.Issue(SystemCN, false)
	if err != nil {
		return nil, err
	}
	s := &Server{CA: ca, Client: client, o: o, log: filepath.Join(o.Dir, "temporal-server.log")}
	if err := s.accessKey(); err != nil {
		return nil, err
	}
	if err := s.setupSchema(ctx); err != nil {
		return nil, err
	}
	ports, err := freePorts(9)
	if err != nil {
		return nil, err
	}
	s.Frontend = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	if err := s.writeConfig(ports, srvCert, system); err != nil {
		return nil, err
	}
	if err := s.Restart(ctx); err != nil {
		return nil, err
	}
	if err := s.register(ctx); err != nil {
		s.Kill()
		return nil, err
	}
	return s, nil
}

// sqlTool runs Temporal's SQL tool against a database.
func (s *Server) sqlTool(ctx context.Context, db string, args ...string) error {
	base := []string{"--plugin", "postgres12", "--ep", "127.0.0.1", "--port", strconv.Itoa(s.o.PG.Port),
		"--user", s.o.User, "--db", db}
	cmd := exec.CommandContext(ctx, filepath.Join(s.o.BinDir, "sql"), append(base, args...)...)
	cmd.Env = append(os.Environ(), "SQL_PASSWORD="+s.o.Password)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("temporal sql tool %s on %s: %v\n%s", args[0], db, err, out)
	}
	return nil
}

// SchemaDir is where the server module's SQL schema is: in the Go module
// cache, put there by `make temporal-server`.
func SchemaDir() (string, error) {
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMODCACHE: %w", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "go.temporal.io", "server@"+Version, "schema", "postgresql", "v12")
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("no Temporal schema at %s: run `make temporal-server`", dir)
	}
	return dir, nil
}

func (s *Server) setupSchema(ctx context.Context) error {
	schema, err := SchemaDir()
	if err != nil {
		return err
	}
	for db, sub := range map[string]string{"temporal": "temporal", "temporal_visibility": "visibility"} {
		if err := s.sqlTool(ctx, db, "create-database"); err != nil && !strings.Contains(err.Error(), "already exists") {
			return err
		}
		if err := s.sqlTool(ctx, db, "setup-schema", "-v", "0.0"); err != nil {
			return err
		}
		if err := s.sqlTool(ctx, db, "update-schema", "-d", filepath.Join(schema, sub, "versioned")); err != nil {
			return err
		}
	}
	return nil
}

var configTemplate = template.Must(template.New("config").Parse(`log:
  stdout: true
  level: warn
persistence:
  defaultStore: postgres-default
  visibilityStore: postgres-visibility
  numHistoryShards: {{.Shards}}
  datastores:
    postgres-default:
      sql: &sql
        pluginName: postgres12
        databaseName: temporal
        connectAddr: "{{.PG}}"
        connectProtocol: tcp
        user: "{{.User}}"
        password: "{{.Password}}"
        maxConns: 40
        maxIdleConns: 40
        maxConnLifetime: 1h
    postgres-visibility:
      sql:
        <<: *sql
        databaseName: temporal_visibility
        maxConns: 10
        maxIdleConns: 10
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: "127.0.0.1"
  tls:
    frontend:
      server:
        certFile: "{{.ServerCert}}"
        keyFile: "{{.ServerKey}}"
        requireClientAuth: true
        clientCaFiles: ["{{.CA}}"]
      client:
        serverName: localhost
        rootCaFiles: ["{{.CA}}"]
    systemWorker:
      certFile: "{{.SystemCert}}"
      keyFile: "{{.SystemKey}}"
      client:
        serverName: localhost
        rootCaFiles: ["{{.CA}}"]
services:
  frontend:
    rpc: {grpcPort: {{index .Ports 0}}, membershipPort: {{index .Ports 1}}, bindOnIP: 127.0.0.1, httpPort: {{index .Ports 2}}}
  history:
    rpc: {grpcPort: {{index .Ports 3}}, membershipPort: {{index .Ports 4}}, bindOnIP: 127.0.0.1}
  matching:
    rpc: {grpcPort: {{index .Ports 5}}, membershipPort: {{index .Ports 6}}, bindOnIP: 127.0.0.1}
  worker:
    rpc: {grpcPort: {{index .Ports 7}}, membershipPort: {{index .Ports 8}}, bindOnIP: 127.0.0.1}
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: "127.0.0.1:{{index .Ports 0}}"
dcRedirectionPolicy:
  policy: noop
dynamicConfigClient:
  filepath: "{{.DynamicConfig}}"
  pollInterval: 10s
`))

// accessKey makes the signing key of access tokens in Dir/access, or takes
// the one a former start made.
func (s *Server) accessKey() error {
	dir := filepath.Join(s.o.Dir, "access")
	keyPath := filepath.Join(dir, accesstoken.KeyFile)
	s.PublicKeyFile, s.Revocations = filepath.Join(dir, accesstoken.PublicKeyFile), filepath.Join(dir, "revoked")
	if _, err := os.Stat(keyPath); err == nil {
		if s.SigningKey, err = accesstoken.LoadSigningKey(keyPath); err != nil {
			return err
		}
		return accesstoken.EnsureRevocations(s.Revocations)
	}
	k, err := accesstoken.NewKey()
	if err != nil {
		return err
	}
	if _, _, err := accesstoken.WriteKeyPair(dir, k); err != nil {
		return err
	}
	s.SigningKey = k
	return nil
}

func (s *Server) writeConfig(ports []int, srvCert, system pki.Pair) error {
	dyn := filepath.Join(s.o.Dir, "config", "dynamicconfig.yaml")
	// The wave's suggested continue-as-new at about 4,096 events, as on
	// the dev server; limits a fleet of workers needs.
	if err := os.WriteFile(dyn, []byte(`limit.maxIDLength:
  - value: 255
frontend.enableUpdateWorkflowExecution:
  - value: true
`), 0o644); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(s.o.Dir, "config", "production.yaml"), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	return configTemplate.Execute(f, map[string]any{
		"Shards": s.o.Shards, "PG": s.o.PG.Addr(), "User": s.o.User, "Password": s.o.Password, "Ports": ports,
		"ServerCert": srvCert.CertFile, "ServerKey": srvCert.KeyFile, "CA": s.CA.CertFile,
		"SystemCert": system.CertFile, "SystemKey": system.KeyFile, "DynamicConfig": dyn,
	})
}

// Restart starts the server process (again, after Kill).
func (s *Server) Restart(ctx context.Context) error {
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(s.o.BinDir, "server"), "--root", s.o.Dir, "--config", "config",
		"--env", "production", "--access-public-key", s.PublicKeyFile, "--access-revocations", s.Revocations,
		"--system-cn", SystemCN, "start")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL} // gone with the test
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return err
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); _ = logf.Close(); close(s.done) }()
	return s.waitServing(ctx)
}

// waitServing waits until the frontend answers over mTLS.
func (s *Server) waitServing(ctx context.Context) error {
	deadline := time.Now().Add(2 * time.Minute)
	o := s.connectNoToken() // the system's information needs no token
	o.Plaintext, o.DialTimeout = true, 5*time.Second
	for {
		c, err := o.Dial(ctx, nil)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("the Temporal server exited at start; its log %s:\n%s", s.log, kitfs.Tail(s.log, 20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the Temporal server did not serve within 2 minutes: %v; its log %s", err, s.log)
		}
	}
}

// register creates the default namespace and mailwave's search attributes,
// as an admin.
func (s *Server) register(ctx context.Context) error {
	o, err := s.ConnectAs("mailwave-setup", accesstoken.Admin)
	if err != nil {
		return err
	}
	o.Plaintext = true
	c, err := o.Dial(ctx, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace: "default", WorkflowExecutionRetentionPeriod: durationpb.New(72 * time.Hour),
	})
	var exists *serviceerror.NamespaceAlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("registering namespace default: %w", err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		_, _, err = control.EnsureSearchAttributes(ctx, c, "default")
		if err == nil {
			actx, cancel := context.WithDeadline(ctx, deadline.Add(time.Minute))
			defer cancel()
			return control.AwaitSearchAttributes(actx, c, "default")
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(time.Second) // the namespace reaches the caches first
	}
}

// LogFile is the server's log (warnings and errors, the authorizer's
// refusals among them).
func (s *Server) LogFile() string { return s.log }

// Kill ends the server at once (SIGKILL), as a crash would.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
}

// Stop shuts the server down (SIGTERM), killing it after 30 seconds.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.Kill()
	}
}

// freePorts finds n free loopback ports below 32768: the server stores its
// membership ports as a PostgreSQL smallint, which the kernel's ephemeral
// ports overflow.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	var ports []int
	for try := 0; len(ports) < n; try++ {
		if try > 1000 {
			return nil, errors.New("no free ports below 32768")
		}
		p := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		ls = append(ls, l)
		ports = append(ports, p)
	}
	return ports, nil
}
