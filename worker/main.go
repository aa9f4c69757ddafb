// Command worker runs mailwave's workflows and activities.
//
// Every flag can also be set in the environment: --sim-dir is
// MAILWAVE_SIM_DIR. It stops cleanly on SIGINT or SIGTERM. With
// --metrics-listen it serves the SDK's metrics and mailwave's to
// Prometheus.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"mailwave/internal/cliutil"
	"mailwave/internal/connect"
	"mailwave/worker/registry"
	"mailwave/worker/workerapp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	var (
		temporal connect.Options
		metrics  registry.Options
		cfg      workerapp.Config
		profile  string
		cache    int
	)
	cmd := &cobra.Command{
		Use:           "worker",
		Short:         "Run mailwave's workflows and activities",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			return cliutil.BindEnv(cmd.Flags())
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if profile != "" {
				stop, err := startCPUProfile(profile)
				if err != nil {
					return err
				}
				defer stop()
			}
			z, logger, err := temporal.Log.Build()
			if err != nil {
				return err
			}
			defer func() { _ = z.Sync() }()
			connect.LogStartWarnings(z, temporal.StartWarnings(metrics.Listen))
			reg, err := metrics.Start(func(err error) { z.Warn("metrics", zap.Error(err)) })
			if err != nil {
				return err
			}
			defer func() { _ = reg.Close() }()
			temporal.Metrics, cfg.Metrics = reg.Handler(), reg.Handler()
			c, err := temporal.Dial(cmd.Context(), logger)
			if err != nil {
				return err
			}
			defer c.Close()
			z.Info("worker starting", zap.String("address", temporal.Address), zap.String("namespace", temporal.Namespace),
				zap.String("taskQueue", cfg.TaskQueue), zap.String("notifier", cfg.Notifier), zap.String("estate", cfg.Estate),
				zap.String("metrics", metrics.Listen))
			if temporal.AcceptPlainPayloads {
				z.Warn("--accept-plain-payloads: this worker reads payloads that are not encrypted, so a client without mailwave's key can start and signal workflows; use it only while workflows recorded before encryption still run")
			}
			cfg.Warn = func(msg string) { z.Warn(msg) }
			cfg.Logger = z
			// Waiting mailboxes leave the cache and replay when they wake:
			// the worker's memory does not grow with a wave's size.
			worker.SetStickyWorkflowCacheSize(cache)
			err = workerapp.Run(cmd.Context(), cfg, c)
			z.Info("worker stopped")
			return err
		},
	}
	temporal.AddFlags(cmd.Flags())
	metrics.AddFlags(cmd.Flags())
	cfg.AddFlags(cmd.Flags())
	cmd.Flags().IntVar(&cache, "workflow-cache", 2000, "workflows kept in this worker's cache (the rest replay when they wake)")
	cmd.Flags().StringVar(&profile, "cpu-profile", "", "write a CPU profile (go tool pprof) to this file until the worker stops")
	return cmd
}

// startCPUProfile profiles the process until the returned function is called.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }, nil
}
