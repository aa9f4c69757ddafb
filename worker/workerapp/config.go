package workerapp

import (
	"errors"
	"fmt"
	"os"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/spf13/pflag"

	"mailwave/contract"
	"mailwave/identity"
	"mailwave/worker/config"
)

// Config is everything the worker needs besides the Temporal connection.
type Config struct {
	TaskQueue string

	// ConfigFile, when set, names the file of real connectors per
	// organisation (IMAP, SMTP, routers); it replaces Notifier, Estate and
	// their settings.
	ConfigFile string

	Notifier     string // "outbox"
	OutboxDir    string
	TemplatesDir string
	From         string

	Estate string // "sim": the simulated estate is both copier and router
	Sim    config.Sim

	// RouteOnly makes this the worker of a routing host (the mail server
	// whose transport map a cutover edits): it serves only the cutover, on
	// TaskQueue, for the organisations whose router.task_queue names it.
	RouteOnly bool
	// CutoverQueue, for a worker configured by flags, is the task queue of
	// the routing host that cuts the simulated estate over (router
	// task_queue of a configuration file).
	CutoverQueue string

	// WavesDir is the roster store: a wave's roster is <WavesDir>/<wave>.csv.
	WavesDir string
	// KeySecretFile, or $MAILWAVE_KEY_SECRET, is the deployment's mailbox key
	// secret. The worker does not need it; given, it is checked against the
	// fingerprint the deployment recorded, so a worker configured for
	// another deployment refuses to start.
	KeySecretFile string

	// Warn logs a start-up warning; nil writes it to standard error.
	Warn func(msg string)
	// Logger gets what the worker reports as it runs (each organisation's
	// copy rate); nil is none.
	Logger *zap.Logger
	// Metrics receives mailwave's own metrics (contract/metrics): the
	// handler of the worker's registry, which its Temporal client shares
	// (connect.Options.Metrics). Nil is none.
	Metrics client.MetricsHandler

	// BuildID, when set, makes this worker one build of the Worker
	// Deployment DeploymentName: each workflow run stays pinned to the
	// build that started it (its whole life, fourteen days of notices and
	// the copy), so a change to the workflows needs no GetVersion once
	// every worker is versioned (workflows/VERSIONING.md). Empty: an
	// unversioned worker, as before.
	DeploymentName string
	BuildID        string
	// SetCurrent makes this build the deployment's current version once
	// its pollers are seen: new runs go to it, running ones stay on theirs.
	SetCurrent bool

	MaxConcurrentActivities      int
	MaxConcurrentLocalActivities int
	MaxConcurrentWorkflowTasks   int
	ShutdownTimeout              time.Duration
}

// AddFlags adds the worker's flags with their defaults.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.TaskQueue, "task-queue", contract.TaskQueue, "task queue to poll")
	fs.StringVar(&c.ConfigFile, "config", "", "YAML file of real connectors per organisation (IMAP source and target, SMTP notices, cutover router); replaces --notifier and --estate")
	fs.StringVar(&c.Notifier, "notifier", "outbox", "notice backend: outbox (one .eml file per notice)")
	fs.StringVar(&c.OutboxDir, "outbox-dir", "data/outbox", "outbox notifier: directory of .eml files")
	fs.StringVar(&c.TemplatesDir, "templates-dir", "", "directory of notice templates overriding the embedded ones")
	fs.StringVar(&c.From, "from", "", "sender of the notices (default: the outbox's own)")
	fs.StringVar(&c.Estate, "estate", "sim", "copier and router backend: sim (the simulated estate)")
	fs.StringVar(&c.Sim.Dir, "sim-dir", "data/estate", "sim: estate directory (made by `starter estate generate`)")
	fs.Float64Var(&c.Sim.TimeScale, "sim-time-scale", 3600, "sim: simulated seconds per real second")
	fs.Int64Var(&c.Sim.BytesPerSecond, "sim-rate", 1<<30, "sim: the most this worker sends, simulated bytes per second (the ceiling of its adaptive rate under a tenant limit)")
	fs.Int64Var(&c.Sim.TenantBytesPerSecond, "sim-tenant-rate", 0, "sim: the target tenant's limit, simulated bytes per second shared by every worker of the estate (0: none)")
	fs.Int64Var(&c.Sim.MailboxBytesPerSecond, "sim-mailbox-rate", 0, "sim: the target's per-mailbox budget, simulated bytes per second, kept by each copy (Exchange Online: 500000; 0: none)")
	fs.BoolVar(&c.Sim.Instant, "sim-instant", false, "sim: copies take no time (benchmarks)")
	fs.Float64Var(&c.Sim.TransientRate, "sim-transient-rate", 0, "sim: chance of a transient error per copy batch or cutover")
	fs.Float64Var(&c.Sim.ThrottleRate, "sim-throttle-rate", 0, "sim: chance of a throttling answer per copy batch or cutover")
	fs.DurationVar(&c.Sim.ThrottleRetryAfter, "sim-throttle-retry-after", 5*time.Second, "sim: the retry-after of a throttling answer")
	fs.Float64Var(&c.Sim.NotFoundRate, "sim-not-found-rate", 0, "sim: share of mailboxes missing at the source")
	fs.BoolVar(&c.RouteOnly, "route-only", false, "be a routing host's worker: serve only the cutover, on --task-queue, for the organisations whose router task_queue names it")
	fs.StringVar(&c.CutoverQueue, "cutover-queue", "", "without --config: cutovers run on this routing host's task queue (a worker started there with --route-only)")
	fs.StringVar(&c.WavesDir, "waves-dir", "data/waves", "the roster store, where `starter wave launch --waves-dir` wrote each wave's roster: a directory, or a postgres:// URL shared by a fleet")
	fs.StringVar(&c.KeySecretFile, "key-secret-file", "", "the deployment's mailbox key secret (or $"+identity.SecretEnv+"), checked against the deployment's fingerprint")
	fs.StringVar(&c.DeploymentName, "deployment", "mailwave", "with --build-id: the Worker Deployment this worker is a build of")
	fs.StringVar(&c.BuildID, "build-id", "", "this worker's build in the Worker Deployment: runs stay pinned to the build that started them (empty: unversioned)")
	fs.BoolVar(&c.SetCurrent, "set-current", false, "with --build-id: make this build the deployment's current version once it polls (new runs go to it)")
	fs.IntVar(&c.MaxConcurrentActivities, "max-activities", 200, "activities run at once by this worker")
	fs.IntVar(&c.MaxConcurrentLocalActivities, "max-local-activities", 200, "local activities run at once by this worker")
	fs.IntVar(&c.MaxConcurrentWorkflowTasks, "max-workflow-tasks", 100, "workflow tasks run at once by this worker")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long running activities get to finish on shutdown")
}

// flagsSource names the configuration made from the flags in errors.
const flagsSource = "the worker's flags"

// File is the worker's configuration: the file --config names, or, without
// it, the flags made into one: a default organisation whose copier and
// router are the simulated estate and whose notices go to the outbox.
func (c Config) File() (*config.File, error) {
	if c.ConfigFile != "" {
		f, err := config.Load(c.ConfigFile)
		if err != nil {
			return nil, fmt.Errorf("--config: %w", err)
		}
		return f, nil
	}
	if c.Notifier != "outbox" {
		return nil, fmt.Errorf("--notifier %q: the notifiers are: outbox (or use --config)", c.Notifier)
	}
	if c.Estate != "sim" {
		return nil, fmt.Errorf("--estate %q: the estates are: sim (or use --config)", c.Estate)
	}
	if c.CutoverQueue != "" {
		if msg := config.TaskQueueProblem(c.CutoverQueue); msg != "" {
			return nil, fmt.Errorf("--cutover-queue: %s", msg)
		}
	}
	estate := c.Sim
	return &config.File{
		Path: flagsSource,
		Orgs: []config.Org{{
			Name:     "default",
			Default:  true,
			CatchAll: true,
			Copier:   config.Copier{Kind: config.CopierSim, Sim: estate},
			Notifier: config.Notifier{
				Kind: "outbox", From: c.From, TemplatesDir: c.TemplatesDir,
				Outbox: config.Outbox{Dir: c.OutboxDir},
			},
			Router: config.Router{Kind: "sim", Sim: estate, TaskQueue: c.CutoverQueue},
		}},
	}, nil
}

// flagError names, for a worker configured by flags, the flag behind a part
// that failed to build; with --config, the file's errors name their keys.
func (c Config) flagError(err error) error {
	if c.ConfigFile != "" {
		return fmt.Errorf("--config: %w", err)
	}
	var pe *partError
	if !errors.As(err, &pe) {
		return err
	}
	flag := map[string]string{"templates": "--templates-dir", "notifier": "--outbox-dir", "sim": "--sim-dir"}[pe.part]
	if flag == "" {
		return err
	}
	return fmt.Errorf("%s: %w", flag, pe.err)
}

// warn logs a start-up warning through Warn, else on standard error.
func (c Config) warn(msg string) {
	if c.Warn != nil {
		c.Warn(msg)
		return
	}
	fmt.Fprintln(os.Stderr, "worker: warning:", msg)
}
