// Package workerapp is the mailwave worker: configuration, the backends
// behind the activities' ports, registration, and a run that stops cleanly.
package workerapp

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"mailwave/activities"
	"mailwave/internal/baseline"
	"mailwave/internal/fanout"
	"mailwave/internal/wavefile"
	"mailwave/mail/notices"
	"mailwave/mail/outbox"
	"mailwave/mail/sim"
	"mailwave/workflows"
)

// Config is everything the worker needs besides the Temporal connection.
type Config struct {
	TaskQueue string

	// ConfigFile, when set, names the file of real connectors per
	// organisation (IMAP, SMTP, routers); it replaces Notifier and Estate.
	ConfigFile string

	Notifier     string // "outbox"
	OutboxDir    string
	TemplatesDir string
	From         string

	Estate string // "sim": the simulated estate is both copier and router
	Sim    SimConfig

	// RegisterBaseline also registers the benchmark's baseline workflow.
	RegisterBaseline bool

	MaxConcurrentActivities      int
	MaxConcurrentLocalActivities int
	MaxConcurrentWorkflowTasks   int
	ShutdownTimeout              time.Duration
}

// SimConfig tunes the simulated estate.
type SimConfig struct {
	Dir                string
	TimeScale          float64
	BytesPerSecond     int64
	Instant            bool
	TransientRate      float64
	ThrottleRate       float64
	ThrottleRetryAfter time.Duration
	NotFoundRate       float64
}

// AddFlags adds the worker's flags with their defaults.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.TaskQueue, "task-queue", workflows.TaskQueue, "task queue to poll")
	fs.StringVar(&c.ConfigFile, "config", "", "YAML file of real connectors per organisation (IMAP source and target, SMTP notices, cutover router); replaces --notifier and --estate")
	fs.StringVar(&c.Notifier, "notifier", "outbox", "notice backend: outbox (one .eml file per notice)")
	fs.StringVar(&c.OutboxDir, "outbox-dir", "data/outbox", "outbox notifier: directory of .eml files")
	fs.StringVar(&c.TemplatesDir, "templates-dir", "", "directory of notice templates overriding the embedded ones")
	fs.StringVar(&c.From, "from", "", "sender of the notices (default: the outbox's own)")
	fs.StringVar(&c.Estate, "estate", "sim", "copier and router backend: sim (the simulated estate)")
	fs.StringVar(&c.Sim.Dir, "sim-dir", "data/estate", "sim: estate directory (made by `starter estate generate`)")
	fs.Float64Var(&c.Sim.TimeScale, "sim-time-scale", 3600, "sim: simulated seconds per real second")
	fs.Int64Var(&c.Sim.BytesPerSecond, "sim-rate", 1<<30, "sim: the target's rate limit, simulated bytes per second for this worker")
	fs.BoolVar(&c.Sim.Instant, "sim-instant", false, "sim: copies take no time (benchmarks)")
	fs.Float64Var(&c.Sim.TransientRate, "sim-transient-rate", 0, "sim: chance of a transient error per copy batch or cutover")
	fs.Float64Var(&c.Sim.ThrottleRate, "sim-throttle-rate", 0, "sim: chance of a throttling answer per copy batch or cutover")
	fs.DurationVar(&c.Sim.ThrottleRetryAfter, "sim-throttle-retry-after", 5*time.Second, "sim: the retry-after of a throttling answer")
	fs.Float64Var(&c.Sim.NotFoundRate, "sim-not-found-rate", 0, "sim: share of mailboxes missing at the source")
	fs.BoolVar(&c.RegisterBaseline, "register-baseline", false, "also run the benchmark's baseline workflow (make bench)")
	fs.IntVar(&c.MaxConcurrentActivities, "max-activities", 200, "activities run at once by this worker")
	fs.IntVar(&c.MaxConcurrentLocalActivities, "max-local-activities", 200, "local activities run at once by this worker")
	fs.IntVar(&c.MaxConcurrentWorkflowTasks, "max-workflow-tasks", 100, "workflow tasks run at once by this worker")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long running activities get to finish on shutdown")
}

// BuildActivities opens the configured backends.
func BuildActivities(c Config) (*activities.Activities, error) {
	if c.ConfigFile != "" {
		o, err := openOrgs(c.ConfigFile)
		if err != nil {
			return nil, fmt.Errorf("--config: %w", err)
		}
		return activities.New(o, o, o), nil
	}
	var notifier activities.Notifier
	switch c.Notifier {
	case "outbox":
		tpl, err := notices.Load(c.TemplatesDir)
		if err != nil {
			return nil, fmt.Errorf("--templates-dir: %w", err)
		}
		ob, err := outbox.New(outbox.Options{Dir: c.OutboxDir, From: c.From, Templates: tpl})
		if err != nil {
			return nil, fmt.Errorf("--outbox-dir: %w", err)
		}
		notifier = ob
	default:
		return nil, fmt.Errorf("--notifier %q: the notifiers are: outbox", c.Notifier)
	}
	switch c.Estate {
	case "sim":
		est, err := sim.Open(c.Sim.Dir, sim.Options{
			TimeScale:      c.Sim.TimeScale,
			BytesPerSecond: c.Sim.BytesPerSecond,
			Instant:        c.Sim.Instant,
			Faults: sim.Faults{
				TransientRate:      c.Sim.TransientRate,
				ThrottleRate:       c.Sim.ThrottleRate,
				ThrottleRetryAfter: c.Sim.ThrottleRetryAfter,
				NotFoundRate:       c.Sim.NotFoundRate,
			},
		})
		if err != nil {
			return nil, fmt.Errorf("--sim-dir: %w", err)
		}
		return activities.New(notifier, est, est), nil
	default:
		return nil, fmt.Errorf("--estate %q: the estates are: sim", c.Estate)
	}
}

// RegisterWorkflows puts mailwave's workflows on a worker or a replayer.
func RegisterWorkflows(r worker.WorkflowRegistry) {
	r.RegisterWorkflowWithOptions(workflows.MailboxMigration, workflow.RegisterOptions{Name: workflows.MailboxWorkflowName})
	r.RegisterWorkflowWithOptions(workflows.Wave, workflow.RegisterOptions{Name: workflows.WaveWorkflowName})
}

// Run polls the task queue until ctx ends, then stops, giving running
// activities ShutdownTimeout to finish.
func Run(ctx context.Context, c Config, tc client.Client) error {
	acts, err := BuildActivities(c)
	if err != nil {
		return err
	}
	w := worker.New(tc, c.TaskQueue, worker.Options{
		MaxConcurrentActivityExecutionSize:      c.MaxConcurrentActivities,
		MaxConcurrentLocalActivityExecutionSize: c.MaxConcurrentLocalActivities,
		MaxConcurrentWorkflowTaskExecutionSize:  c.MaxConcurrentWorkflowTasks,
		WorkerStopTimeout:                       c.ShutdownTimeout,
	})
	RegisterWorkflows(w)
	w.RegisterActivity(acts)
	fanout.New(tc, wavefile.NewReader()).Register(w)
	if c.RegisterBaseline {
		baseline.Register(w)
	}
	if err := w.Start(); err != nil {
		return fmt.Errorf("starting the worker on task queue %q: %w", c.TaskQueue, err)
	}
	<-ctx.Done()
	w.Stop()
	return nil
}
