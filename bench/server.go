package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"mailwave/internal/testenv"
)

// server is a dev server with its log file.
type server struct {
	*testsuite.DevServer
	log *os.File
}

// startServer starts a fresh dev server on a free port, its database and log
// in the layout, with mailwave's pragmas and search attributes. Its client
// (Client()) logs warnings to the server's log.
func startServer(ctx context.Context, bin string, d layout) (*server, error) {
	logFile, err := os.Create(d.serverLog)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath: bin,
		DBFilename:   d.serverDB,
		LogLevel:     "error",
		ExtraArgs:    testenv.DevServerArgs(),
		ClientOptions: &client.Options{
			Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelWarn}))),
		},
		Stdout: logFile,
		Stderr: logFile,
	})
	if err != nil {
		_ = logFile.Close()
		return nil, err
	}
	return &server{DevServer: srv, log: logFile}, nil
}

// stop closes the client, stops the server and closes its log.
func (s *server) stop() {
	s.Client().Close()
	if err := s.Stop(); err != nil {
		logf("stopping the dev server: %v", err)
	}
	_ = s.log.Close()
}
