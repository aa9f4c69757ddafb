// Package cliutil is what the worker and the starter share on the command
// line: the Temporal connection, flags read from the environment, logging.
package cliutil

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"
	"go.uber.org/zap/zapcore"
)

// EnvPrefix prefixes every flag's environment variable: --temporal-address
// is also MAILWAVE_TEMPORAL_ADDRESS.
const EnvPrefix = "MAILWAVE_"

// EnvName is the environment variable of a flag.
func EnvName(flag string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// BindEnv sets every flag not given on the command line from its
// environment variable, if that is set. A bad value names the variable.
func BindEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		if v, ok := os.LookupEnv(EnvName(f.Name)); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", EnvName(f.Name), v, e)
			}
		}
	})
	return err
}

// TemporalOptions says where the Temporal server is.
type TemporalOptions struct {
	Address     string
	Namespace   string
	DialTimeout time.Duration
}

// AddFlags adds the connection flags.
func (o *TemporalOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Address, "temporal-address", client.DefaultHostPort, "Temporal frontend host:port")
	fs.StringVar(&o.Namespace, "namespace", client.DefaultNamespace, "Temporal namespace")
	fs.DurationVar(&o.DialTimeout, "dial-timeout", 10*time.Second, "how long to wait for the Temporal server")
}

// Dial connects to Temporal and checks the server answers, so an unreachable
// server is one clear error rather than a hang.
func (o *TemporalOptions) Dial(ctx context.Context, logger tlog.Logger) (client.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, o.DialTimeout)
	defer cancel()
	c, err := client.DialContext(ctx, client.Options{HostPort: o.Address, Namespace: o.Namespace, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("cannot reach the Temporal server at %s (namespace %q): %w", o.Address, o.Namespace, err)
	}
	return c, nil
}

// LogOptions choose the log level and format.
type LogOptions struct {
	Level  string
	Format string
}

// AddFlags adds the logging flags.
func (o *LogOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Level, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.Format, "log-format", "console", "console or json")
}

// Build returns a zap logger and the same logger for the Temporal SDK,
// handed over through slog.
func (o *LogOptions) Build() (*zap.Logger, tlog.Logger, error) {
	level, err := zapcore.ParseLevel(o.Level)
	if err != nil {
		return nil, nil, fmt.Errorf("--log-level: %w", err)
	}
	var cfg zap.Config
	switch o.Format {
	case "json":
		cfg = zap.NewProductionConfig()
	case "console":
		cfg = zap.NewDevelopmentConfig()
		cfg.Development = false
		cfg.DisableStacktrace = true
	default:
		return nil, nil, fmt.Errorf("--log-format %q: want console or json", o.Format)
	}
	cfg.Level = zap.NewAtomicLevelAt(level)
	z, err := cfg.Build()
	if err != nil {
		return nil, nil, err
	}
	return z, tlog.NewStructuredLogger(slog.New(zapslog.NewHandler(z.Core()))), nil
}

// EachWorkflow calls fn for every workflow execution the visibility query
// matches, page by page.
func EachWorkflow(ctx context.Context, c client.Client, query string, fn func(*workflowpb.WorkflowExecutionInfo)) error {
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, PageSize: 1000, NextPageToken: token})
		if err != nil {
			return fmt.Errorf("listing %q: %w", query, err)
		}
		for _, ex := range resp.GetExecutions() {
			fn(ex)
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return nil
		}
	}
}

// StatusName is a workflow status as an operator reads it: "completed".
func StatusName(s enumspb.WorkflowExecutionStatus) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "WORKFLOW_EXECUTION_STATUS_"))
}
