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
	"mailwave/identity"
	"mailwave/internal/rosterstore"
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
	o, err := buildPorts(f)
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
	acts := activities.New(o, o, o)
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
	w := worker.New(tc, c.TaskQueue, worker.Options{
		MaxConcurrentActivityExecutionSize:      c.MaxConcurrentActivities,
		MaxConcurrentLocalActivityExecutionSize: c.MaxConcurrentLocalActivities,
		MaxConcurrentWorkflowTaskExecutionSize:  c.MaxConcurrentWorkflowTasks,
		WorkerStopTimeout:                       c.ShutdownTimeout,
	})
	workflows.Register(w)
	acts.Register(w)
	activities.NewWave(tc, rosters).Register(w)
	if err := w.Start(); err != nil {
		return fmt.Errorf("starting the worker on task queue %q: %w", c.TaskQueue, err)
	}
	<-ctx.Done()
	w.Stop()
	return nil
}
