// Package workerapp is the mailwave worker: its configuration (a file, or
// the flags made into one), the one builder of the activities' ports,
// registration, and a run that stops cleanly.
package workerapp

import (
	"context"
	"fmt"
	"os"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"mailwave/activities"
	"mailwave/contract"
	"mailwave/identity"
	"mailwave/roster/rosterstore"
	"mailwave/workflows"
)

// BuildActivities makes the mailbox's activities over the ports the
// configuration names.
func BuildActivities(c Config) (*activities.Activities, error) {
	o, err := c.ports()
	if err != nil {
		return nil, err
	}
	return activities.New(o, o, o), nil
}

func (c Config) ports() (*orgs, error) {
	f, err := c.File()
	if err != nil {
		return nil, err
	}
	routeQueue := ""
	if c.RouteOnly {
		if c.TaskQueue == contract.TaskQueue {
			return nil, fmt.Errorf("--route-only: --task-queue must name the routing host's task queue, not the fleet's %q", contract.TaskQueue)
		}
		routeQueue = c.TaskQueue
	}
	o, err := buildPorts(f, routeQueue, c.Logger)
	if err != nil {
		return nil, c.flagError(err)
	}
	return o, nil
}

// Run polls the task queue until ctx ends, then stops, giving running
// activities ShutdownTimeout to finish.
func Run(ctx context.Context, c Config, tc client.Client) error {
	o, err := c.ports()
	if err != nil {
		return err
	}
	for _, w := range o.warnings {
		c.warn("INSECURE SETTING: " + w)
	}
	acts := activities.New(o, o, o).WithMetrics(c.Metrics)
	defer sampleRates(ctx, c.Metrics, o.rates(), RateSampleEvery)()
	opts := worker.Options{
		MaxConcurrentActivityExecutionSize:      c.MaxConcurrentActivities,
		MaxConcurrentLocalActivityExecutionSize: c.MaxConcurrentLocalActivities,
		MaxConcurrentWorkflowTaskExecutionSize:  c.MaxConcurrentWorkflowTasks,
		WorkerStopTimeout:                       c.ShutdownTimeout,
	}
	if c.RouteOnly {
		// A routing host's worker: the cutover and nothing else, no
		// workflows and no roster store.
		opts.DisableWorkflowWorker = true
		w := worker.New(tc, c.TaskQueue, opts)
		acts.RegisterCutover(w)
		return runWorker(ctx, w, c.TaskQueue)
	}
	rosters, err := rosterstore.Open(ctx, c.WavesDir)
	if err != nil {
		return err
	}
	defer rosters.Close()
	if c.KeySecretFile != "" || os.Getenv(identity.SecretEnv) != "" {
		secret, err := identity.LoadSecret(c.KeySecretFile)
		if err != nil {
			return err
		}
		keyer, err := identity.NewKeyer(secret)
		if err != nil {
			return err
		}
		if err := rosters.CheckFingerprint(ctx, keyer.Fingerprint()); err != nil {
			return err
		}
	}
	w := worker.New(tc, c.TaskQueue, opts)
	workflows.Register(w)
	acts.Register(w)
	activities.NewWave(tc, rosters).Register(w)
	return runWorker(ctx, w, c.TaskQueue)
}

// runWorker polls until ctx ends, then stops the worker.
func runWorker(ctx context.Context, w worker.Worker, queue string) error {
	if err := w.Start(); err != nil {
		return fmt.Errorf("starting the worker on task queue %q: %w", queue, err)
	}
	<-ctx.Done()
	w.Stop()
	return nil
}
