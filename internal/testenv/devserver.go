// Package testenv starts the real Temporal dev server for tests: the pinned
// CLI binary that `make temporal` installs into bin/, with the same SQLite
// pragmas and search attributes as `make dev-server`.
package testenv

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"mailwave/contract"
	"mailwave/internal/workerapp"
)

// BinEnv overrides where the Temporal CLI binary is.
const BinEnv = "MAILWAVE_TEMPORAL_BIN"

// TemporalBinary finds the pinned Temporal CLI: $MAILWAVE_TEMPORAL_BIN, else
// bin/temporal at the module root.
func TemporalBinary() (string, error) {
	if p := os.Getenv(BinEnv); p != "" {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, "bin", "temporal")
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("no Temporal CLI at %s: run `make temporal` (or set %s)", p, BinEnv)
			}
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory; set %s", BinEnv)
		}
		dir = parent
	}
}

// DevServerArgs are the dev server flags mailwave runs with: SQLite in WAL
// mode and the search attributes registered.
func DevServerArgs() []string {
	args := []string{"--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"}
	for _, sa := range contract.SearchAttributeFlags() {
		args = append(args, "--search-attribute", sa)
	}
	return args
}

// StartDevServer starts a dev server on a free port with its SQLite file in
// dbDir (a t.TempDir() when empty) and stops it when the test ends. The
// binary missing is a test failure, never a skip.
func StartDevServer(t testing.TB, dbDir string) *testsuite.DevServer {
	t.Helper()
	bin, err := TemporalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if dbDir == "" {
		dbDir = t.TempDir()
	}
	logFile, err := os.Create(filepath.Join(dbDir, "temporal.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = logFile.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath: bin,
		DBFilename:   filepath.Join(dbDir, "temporal.db"),
		LogLevel:     "error",
		ExtraArgs:    DevServerArgs(),
		ClientOptions: &client.Options{
			Logger: log.NewStructuredLogger(slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelWarn}))),
		},
		Stdout: logFile,
		Stderr: logFile,
	})
	if err != nil {
		t.Fatalf("starting the Temporal dev server (its log: %s): %v", logFile.Name(), err)
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
