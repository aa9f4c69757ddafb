// Package testkit holds what the tests and the benchmarks run against: the
// real Temporal dev server (here), Dovecot IMAP servers (dovecot), IMAP
// fixtures (imaptest) and an SMTP relay (smtptest). Production code never
// imports it.
package testkit

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"mailwave/codec"
	"mailwave/contract/searchattr"
	"mailwave/internal/connect"
	"mailwave/testkit/kitfs"
	"mailwave/worker/workerapp"
)

// BinEnv overrides where the Temporal CLI binary is.
const BinEnv = "MAILWAVE_TEMPORAL_BIN"

// TemporalBinary finds the pinned Temporal CLI: $MAILWAVE_TEMPORAL_BIN, else
// bin/temporal at the module root.
func TemporalBinary() (string, error) { return kitfs.Binary(BinEnv, "bin/temporal", "temporal") }

// DevServerArgs are the dev server flags mailwave runs with: SQLite in WAL
// mode and the search attributes registered.
func DevServerArgs() []string {
	args := []string{"--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"}
	for _, sa := range searchattr.Flags() {
		args = append(args, "--search-attribute", sa)
	}
	return args
}

// TestKeysEnv is the environment a child process of a test (worker,
// starter) loads the payload codec's key ring from: codec.TestKeys, the key
// ring of every test and benchmark, and the permission to load a key ring
// that is published. The dev server's client is built with the same ring
// (TestKeyRing). It protects nothing; real key rings come from a private
// file.
func TestKeysEnv() []string {
	return []string{codec.KeysEnv + "=" + codec.TestKeys, codec.AllowTestKeysEnv + "=1"}
}

// TestKeyRing is codec.TestKeys parsed.
func TestKeyRing() *codec.KeyRing {
	r, err := codec.ParseKeys(codec.TestKeys)
	if err != nil {
		panic(err)
	}
	return r
}

// DevServer is a running dev server and its client (Client()), built by
// the one connection builder, internal/connect.
type DevServer struct {
	*testsuite.DevServer
	log *os.File
}

// DevServerConfig says how to start a dev server.
type DevServerConfig struct {
	Bin string // the Temporal CLI (TemporalBinary)
	Dir string // where temporal.db and temporal.log go
	// UIPort, when set, serves the Temporal UI there (otherwise headless);
	// CodecEndpoint points the UI at a codec server.
	UIPort        int
	CodecEndpoint string
}

// StartDevServer starts the dev server on a free port, with mailwave's
// pragmas and search attributes, its database (temporal.db) and log
// (temporal.log) in the config's Dir. Its client encrypts with TestKeyRing,
// and its own warnings go to the log too. It is the one way tests and
// benchmarks start a dev server.
func StartDevServer(ctx context.Context, cfg DevServerConfig) (*DevServer, error) {
	logFile, err := os.Create(filepath.Join(cfg.Dir, "temporal.log"))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	opts, err := connect.Options{Keys: TestKeyRing()}.ClientOptions(
		tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	if err != nil {
		_ = logFile.Close()
		return nil, err
	}
	args := DevServerArgs()
	if cfg.CodecEndpoint != "" {
		args = append(args, "--ui-codec-endpoint", cfg.CodecEndpoint)
	}
	dso := testsuite.DevServerOptions{
		ExistingPath:  cfg.Bin,
		DBFilename:    filepath.Join(cfg.Dir, "temporal.db"),
		LogLevel:      "error",
		ExtraArgs:     args,
		ClientOptions: &opts,
		Stdout:        logFile,
		Stderr:        logFile,
	}
	if cfg.UIPort != 0 {
		dso.EnableUI, dso.UIPort = true, strconv.Itoa(cfg.UIPort)
	}
	srv, err := testsuite.StartDevServer(ctx, dso)
	if err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("starting the Temporal dev server (its log: %s): %w", logFile.Name(), err)
	}
	return &DevServer{DevServer: srv, log: logFile}, nil
}

// Stop closes the client, stops the server and closes its log.
func (s *DevServer) Stop() error {
	s.Client().Close()
	err := s.DevServer.Stop()
	_ = s.log.Close()
	return err
}

// NewDevServer starts a dev server for a test, its files in dbDir (a
// t.TempDir() when empty), and stops it when the test ends. The binary
// missing is a test failure, never a skip.
func NewDevServer(t testing.TB, dbDir string) *DevServer {
	t.Helper()
	return NewDevServerWith(t, DevServerConfig{Dir: dbDir})
}

// NewDevServerWith is NewDevServer with the UI and codec settings of cfg
// (its Bin and Dir default to TemporalBinary and a t.TempDir()).
func NewDevServerWith(t testing.TB, cfg DevServerConfig) *DevServer {
	t.Helper()
	if cfg.Bin == "" {
		bin, err := TemporalBinary()
		if err != nil {
			t.Fatal(err)
		}
		cfg.Bin = bin
	}
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	srv, err := StartDevServer(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	return srv
}

// StartWorker runs a mailwave worker in this process against c until the
// test ends, and fails the test if it stops with an error.
func StartWorker(t testing.TB, c client.Client, cfg workerapp.Config) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- workerapp.Run(ctx, cfg, c) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	})
}
