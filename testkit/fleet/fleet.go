// Package fleet brings up mailwave's production shape on one machine:
// PostgreSQL (Debian's) authenticating every connection by password
// (SCRAM-SHA-256, no trust), the Temporal server itself on it as its own
// role with its frontend on mTLS, the roster store and notice ledger in a
// mailwave database on the same PostgreSQL as mailwave's own role (set up
// by `starter store setup`'s code: rights on its own tables only), a fleet
// of worker processes each in its own private directory, and a routing
// host's worker. The fleet test, the benchmark and `make production` use
// it.
package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.temporal.io/sdk/client"

	"mailwave/codec"
	"mailwave/internal/accesstoken"
	"mailwave/internal/connect"
	"mailwave/internal/pgschema"
	"mailwave/roster/storesetup"
	"mailwave/testkit"
	"mailwave/testkit/postgres"
	"mailwave/testkit/proc"
	"mailwave/testkit/temporalserver"
)

// Options say what to bring up.
type Options struct {
	// Dir holds everything. PostgreSQL runs as the postgres user when
	// started by root, so Dir and its parents must be traversable by others
	// (not a t.TempDir()).
	Dir       string
	WorkerBin string // the worker binary (proc.Build or bin/worker)
	// Config is the configuration file every worker shares, given the
	// roster store's URL (also the notice ledger's).
	Config func(dsn string) string
	// Env is added to every worker's environment (secrets). Keys, the
	// payload codec's key ring of the fleet's client, defaults to the test
	// kit's, which the workers then get too; with another ring, Env must
	// give it to them (MAILWAVE_CODEC_KEY_FILE).
	Env  []string
	Keys *codec.KeyRing
}

// Fleet is the production shape, running.
type Fleet struct {
	PG     *postgres.Server
	Server *temporalserver.Server
	Client client.Client // encrypting with the test key ring
	// DSN is the roster store and notice ledger, as mailwave's own role:
	// its password in a password file the URL names (passfile=).
	DSN string

	o       Options
	config  string
	Workers []*proc.Proc
	Router  *proc.Proc
}

// Start starts PostgreSQL with the mailwave database and the Temporal
// server on it. Workers are started with StartWorker and StartRouter; each
// presents a worker's token in its own name, the fleet's Client an
// operator's (OperatorSubject).
func Start(ctx context.Context, o Options) (*Fleet, error) {
	pgDir := filepath.Join(o.Dir, "postgres")
	if err := os.MkdirAll(pgDir, 0o755); err != nil {
		return nil, err
	}
	pg, err := postgres.StartWith(ctx, pgDir, postgres.Options{User: "postgres", Password: true})
	if err != nil {
		return nil, err
	}
	f := &Fleet{PG: pg, o: o}
	temporalPW, err := f.roles(ctx)
	if err != nil {
		f.Stop()
		return nil, err
	}
	if f.Server, err = temporalserver.Start(ctx, temporalserver.Options{Dir: filepath.Join(o.Dir, "temporal"), PG: pg,
		User: "temporal", Password: temporalPW}); err != nil {
		f.Stop()
		return nil, err
	}
	co, err := f.Server.ConnectAs(OperatorSubject, accesstoken.Operator)
	if err != nil {
		f.Stop()
		return nil, err
	}
	co.Keys = o.Keys
	if co.Keys == nil {
		co.Keys = testkit.TestKeyRing()
		f.o.Env = append(testkit.TestKeysEnv(), o.Env...)
	}
	if f.Client, err = co.Dial(ctx, nil); err != nil {
		f.Stop()
		return nil, err
	}
	f.config = o.Config(f.DSN)
	return f, nil
}

// roles makes Temporal's role (it creates its own databases) and sets up
// mailwave's database and role as `starter store setup` does, each with a
// password of its own in a private file; it returns Temporal's.
func (f *Fleet) roles(ctx context.Context) (string, error) {
	pw := func(name string) (string, error) {
		p := filepath.Join(f.o.Dir, name+".password")
		if b, err := os.ReadFile(p); err == nil { // a restart on the same data
			return strings.TrimSpace(string(b)), nil
		}
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		s := hex.EncodeToString(b)
		return s, os.WriteFile(p, []byte(s+"\n"), 0o600)
	}
	temporal, err := pw("temporal")
	if err != nil {
		return "", err
	}
	verifier, err := pgschema.Verifier(temporal)
	if err != nil {
		return "", err
	}
	err = f.PG.Exec(ctx, "postgres", "CREATE ROLE temporal LOGIN CREATEDB PASSWORD '"+verifier+"'")
	if err != nil && !strings.Contains(err.Error(), "already exists") {
		return "", err
	}
	mailwave, err := pw("mailwave")
	if err != nil {
		return "", err
	}
	passfile := filepath.Join(f.o.Dir, "mailwave.pgpass")
	if err := os.WriteFile(passfile, []byte(fmt.Sprintf("127.0.0.1:%d:mailwave:mailwave:%s\n", f.PG.Port, mailwave)), 0o600); err != nil {
		return "", err
	}
	f.DSN = fmt.Sprintf("postgres://mailwave@%s/mailwave?sslmode=disable&passfile=%s", f.PG.Addr(), url.QueryEscape(passfile))
	admin := filepath.Join(f.o.Dir, "postgres-admin-url")
	if err := os.WriteFile(admin, []byte(f.PG.DSN("postgres")+"\n"), 0o600); err != nil {
		return "", err
	}
	if _, err := storesetup.Run(ctx, admin, f.DSN); err != nil {
		return "", fmt.Errorf("setting up mailwave's database: %w", err)
	}
	return temporal, nil
}

// OperatorSubject is who the fleet's client and the starter are: an
// operator. Each worker is a worker by its own name.
const OperatorSubject = "fleet-operator"

// ConnectArgs are the starter's flags to reach the server over mTLS, with
// an operator's token.
func (f *Fleet) ConnectArgs() []string {
	o, err := f.Server.ConnectAs(OperatorSubject, accesstoken.Operator)
	if err != nil {
		panic(err) // the signing key is in memory: only a full disk fails it
	}
	return ConnectArgs(o)
}

// ConnectArgs are the flags of the connection options o.
func ConnectArgs(o connect.Options) []string {
	args := []string{"--temporal-address", o.Address}
	for _, a := range [][2]string{{"--tls-ca", o.TLSCA}, {"--tls-cert", o.TLSCert}, {"--tls-key", o.TLSKey}, {"--tls-server-name", o.TLSServerName}, {"--api-key-file", o.APIKeyFile}} {
		if a[1] != "" {
			args = append(args, a[0], a[1])
		}
	}
	return args
}

// StartWorker starts a worker of the fleet named name in its own directory
// (Dir/name), with the shared configuration and the roster store.
func (f *Fleet) StartWorker(name string, args ...string) (*proc.Proc, error) {
	p, err := f.start(name, args...)
	if err == nil {
		f.Workers = append(f.Workers, p)
	}
	return p, err
}

// StartRouter starts the routing host's worker, serving only the cutovers
// of queue, in its own directory (Dir/name).
func (f *Fleet) StartRouter(name, queue string, args ...string) (*proc.Proc, error) {
	p, err := f.start(name, append([]string{"--route-only", "--task-queue", queue}, args...)...)
	if err == nil {
		f.Router = p
	}
	return p, err
}

func (f *Fleet) start(name string, args ...string) (*proc.Proc, error) {
	dir := f.WorkerDir(name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "mailwave.yaml"), []byte(f.config), 0o600); err != nil {
		return nil, err
	}
	// Each worker presents a worker's token in its own name.
	co, err := f.Server.ConnectAs(name, accesstoken.Worker)
	if err != nil {
		return nil, err
	}
	argv := append([]string{f.o.WorkerBin, "--config", "mailwave.yaml", "--waves-dir", f.DSN, "--identity", name,
		"--log-level", "warn", "--shutdown-timeout", "5s"}, ConnectArgs(co)...)
	return proc.Start(proc.Options{Name: name, Argv: append(argv, args...), Dir: dir, Env: f.o.Env})
}

// WorkerIdentity is the name history records for the worker started as
// name: the verified one the server writes (docs/access.md), its token's
// subject and role.
func WorkerIdentity(name string) string {
	return accesstoken.Claims{Subject: name, Roles: []accesstoken.Role{accesstoken.Worker}}.Identity()
}

// WorkerDir is a worker's private directory.
func (f *Fleet) WorkerDir(name string) string { return filepath.Join(f.o.Dir, name) }

// Stop stops the workers, then the server and PostgreSQL.
func (f *Fleet) Stop() {
	for _, p := range append(f.Workers, f.Router) {
		if p != nil {
			p.Stop(10 * time.Second)
		}
	}
	if f.Client != nil {
		f.Client.Close()
	}
	if f.Server != nil {
		f.Server.Stop()
	}
	if f.PG != nil {
		f.PG.Stop()
	}
}

// String says where everything is.
func (f *Fleet) String() string {
	return fmt.Sprintf("Temporal frontend %s (mTLS), PostgreSQL %s, %d workers", f.Server.Frontend, pgschema.Redact(f.DSN), len(f.Workers))
}
