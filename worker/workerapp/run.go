// Package workerapp is the mailwave worker: its configuration (a file, or
// the flags made into one), the one builder of the activities' ports,
// registration, and a run that stops cleanly.
package workerapp

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.uber.org/zap"

	"mailwave/activities"
	"mailwave/contract"
	"mailwave/identity"
	"mailwave/mail/port"
	"mailwave/roster/estate"
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
	if c.BuildID != "" {
		if err := checkDeployment(c.DeploymentName, c.BuildID); err != nil {
			return err
		}
		opts.DeploymentOptions = worker.DeploymentOptions{
			UseVersioning:             true,
			Version:                   worker.WorkerDeploymentVersion{DeploymentName: c.DeploymentName, BuildID: c.BuildID},
			DefaultVersioningBehavior: workflow.VersioningBehaviorPinned,
		}
	}
	w := worker.New(tc, c.TaskQueue, opts)
	workflows.Register(w)
	acts.Register(w)
	activities.NewWave(tc, rosters).Register(w)
	if c.WavesDir != "" {
		// The programme's nights need the estate, in the roster store; a
		// worker without one (single mailboxes only) serves none of them.
		est, err := estate.Open(ctx, c.WavesDir)
		if err != nil {
			return err
		}
		defer est.Close()
		activities.NewProgramme(tc, est, rosters, o).Register(w)
	}
	if c.BuildID != "" && c.SetCurrent {
		go c.becomeCurrent(ctx, tc)
	}
	return runWorker(ctx, w, c.TaskQueue)
}

// checkDeployment refuses a deployment name or build ID the server would
// refuse later, or that would not read well in its UI.
func checkDeployment(name, build string) error {
	for _, f := range []struct{ flag, v string }{{"--deployment", name}, {"--build-id", build}} {
		if len(f.v) == 0 || len(f.v) > 100 || strings.ContainsFunc(f.v, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
		}) {
			return fmt.Errorf("%s %q: 1-100 letters, digits, '-', '_' or '.'", f.flag, f.v)
		}
	}
	return nil
}

// becomeCurrent makes this build the deployment's current version. The
// server knows a version only once its workers poll, so it tries again
// every half second for up to two minutes.
func (c Config) becomeCurrent(ctx context.Context, tc client.Client) {
	h := tc.WorkerDeploymentClient().GetHandle(c.DeploymentName)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		_, err := h.SetCurrentVersion(ctx, client.WorkerDeploymentSetCurrentVersionOptions{BuildID: c.BuildID})
		if err == nil {
			if c.Logger != nil {
				c.Logger.Info("this build is the deployment's current version: new runs start on it",
					zap.String("deployment", c.DeploymentName), zap.String("build_id", c.BuildID))
			}
			return
		}
		select {
		case <-ctx.Done():
			c.warn(fmt.Sprintf("build %s could not be made the current version of deployment %s: %v", c.BuildID, c.DeploymentName, err))
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
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

// CheckTarget proves an organisation's target for one mailbox before a
// wave, with the worker's own configuration and secrets: one read and one
// tiny write, removed again. The mailbox is named by key in errors.
func CheckTarget(ctx context.Context, c Config, m contract.MailboxRef) error {
	o, err := c.ports()
	if err != nil {
		return err
	}
	p, err := o.of(m)
	if err != nil {
		return err
	}
	check, ok := p.copier.(port.TargetChecker)
	if !ok {
		return fmt.Errorf("organisation %s: its copier has no target to check (the simulated estate)", m.Org)
	}
	return check.CheckTarget(ctx, m)
}
