// Command bench measures a wave against the baseline, on one fresh Temporal
// dev server with the worker as a separate process:
//
//  1. the wave: N simulated mailboxes migrated by `starter wave launch` with
//     a concurrency cap of C, then the estate verified;
//  2. the baseline: N Baseline workflows (five no-op activities each) started
//     directly, at most C in flight.
//
// It prints one `name=value` figure a line on stdout; progress and
// diagnostics go to stderr. It exits non-zero when the run fails or the
// verifier finds mail lost, duplicated or not cut over. Run it from the
// module root after `make build`:
//
//	go run ./bench -n 1000 -concurrency 100
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"mailwave/bench/baseline"
	"mailwave/identity"
	"mailwave/mail/sim"
	"mailwave/testkit"
)

// benchSecret is the mailbox key secret the starter and the worker share.
const benchSecret = "mailwave-bench-secret-not-for-production"

// progressEvery is how often progress goes to stderr while waiting.
const progressEvery = 5 * time.Second

// options are the command's flags.
type options struct {
	n, concurrency int
	startRate      float64
	seed           int64
	keep           bool
	temporalBin    string
	workerBin      string
	starterBin     string
	timeout        time.Duration
	skipBaseline   bool
	skipWave       bool
	workers        int      // > 0: the fleet benchmark, on that many worker processes
	shapes         []string // the fleet benchmark's server shapes, in order
	workerMemLimit string   // GOMEMLIMIT of the fleet's workers, or ""
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.IntVar(&o.n, "n", 1000, "mailboxes in the wave, and Baseline workflows")
	fs.IntVar(&o.concurrency, "concurrency", 100, "the wave's concurrency cap, and the baseline's workflows in flight")
	fs.Float64Var(&o.startRate, "start-rate", 1000, "the wave's mailbox starts per second (a production safety, not what is measured)")
	fs.Int64Var(&o.seed, "seed", 42, "seed of the simulated estate")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (server database, estate, logs)")
	fs.StringVar(&o.temporalBin, "temporal", "", "Temporal CLI binary (default: $"+testkit.BinEnv+" or bin/temporal at the module root)")
	fs.StringVar(&o.workerBin, "worker", "./bin/worker", "worker binary")
	fs.StringVar(&o.starterBin, "starter", "./bin/starter", "starter binary")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Minute, "give up after this long")
	fs.BoolVar(&o.skipBaseline, "skip-baseline", false, "measure the wave only")
	fs.BoolVar(&o.skipWave, "skip-wave", false, "measure the baseline only")
	fs.IntVar(&o.workers, "fleet", 0, "the fleet benchmark instead: the wave on this many worker processes, on the dev server and then on the Temporal server on PostgreSQL with mTLS")
	fs.StringVar(&o.workerMemLimit, "worker-memory-limit", "", "the fleet's workers' soft memory limit (GOMEMLIMIT, e.g. 200MiB), as a deployment sets it below its containers' memory")
	shapes := fs.String("shapes", "dev,postgres", "the fleet benchmark's servers, in order: dev (SQLite), postgres (the Temporal server on PostgreSQL with mTLS), or both")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	seen := map[string]bool{}
	for _, s := range strings.Split(*shapes, ",") {
		if s != "dev" && s != "postgres" {
			return o, fmt.Errorf("-shapes: %q is not a server shape (dev or postgres)", s)
		}
		if seen[s] {
			return o, fmt.Errorf("-shapes: %q named twice", s)
		}
		seen[s] = true
		o.shapes = append(o.shapes, s)
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	case o.n <= 0:
		return o, fmt.Errorf("-n must be positive, not %d", o.n)
	case o.concurrency <= 0:
		return o, fmt.Errorf("-concurrency must be positive, not %d", o.concurrency)
	case o.skipWave && o.skipBaseline:
		return o, errors.New("-skip-wave and -skip-baseline leave nothing to measure")
	}
	if o.temporalBin == "" {
		bin, err := testkit.TemporalBinary()
		if err != nil {
			return o, err
		}
		o.temporalBin = bin
	}
	// The binaries run with the temporary directory's paths, from any
	// working directory: make their own paths absolute.
	for _, p := range []*string{&o.temporalBin, &o.workerBin, &o.starterBin} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return o, err
		}
		*p = abs
	}
	return o, nil
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == serveBaselineFlag {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := serveBaseline(ctx, os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "bench baseline worker:", err)
			os.Exit(1)
		}
		return
	}
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if o.workers > 0 {
		shapes, err := runFleet(ctx, o)
		stop()
		printFleetFigures(os.Stdout, o, shapes)
		for _, s := range shapes {
			if err == nil && s.wave != nil {
				err = results{wave: s.wave}.check(o.n)
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	res, err := run(ctx, o)
	stop()
	printFigures(os.Stdout, o, res)
	if err == nil {
		err = res.check(o.n)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// results are the figures measured; a part is nil when it was skipped or
// did not finish.
type results struct {
	wave         *waveFigures
	baseline     *baselineFigures
	workerPeakMB float64 // 0 when unknown
}

// check fails a wave that lost or duplicated mail or left a mailbox behind.
func (r results) check(n int) error {
	w := r.wave
	if w == nil {
		return nil
	}
	if w.lost != 0 || w.duplicated != 0 || w.cutOver != n {
		return fmt.Errorf("verification failed: %d items lost, %d duplicated, %d of %d mailboxes cut over", w.lost, w.duplicated, w.cutOver, n)
	}
	return nil
}

// printFigures writes the figures measured, one `name=value` a line, in a
// fixed order.
func printFigures(w io.Writer, o options, r results) {
	line := func(name string, format string, v any) { fmt.Fprintf(w, "%s="+format+"\n", name, v) }
	line("n", "%d", o.n)
	line("concurrency", "%d", o.concurrency)
	if r.wave != nil {
		line("wave_mailboxes_per_s", "%.2f", r.wave.rate(o.n))
	}
	if r.baseline != nil {
		line("baseline_workflows_per_s", "%.2f", r.baseline.rate(o.n))
	}
	if r.wave != nil && r.baseline != nil {
		line("ratio", "%.3f", r.wave.rate(o.n)/r.baseline.rate(o.n))
	}
	if r.wave != nil {
		line("max_events_per_wave_run", "%d", r.wave.maxEvents)
		line("wave_runs", "%d", r.wave.runs)
	}
	if r.workerPeakMB > 0 {
		line("worker_peak_rss_mb", "%.1f", r.workerPeakMB)
	}
	if r.wave != nil {
		line("lost", "%d", r.wave.lost)
		line("duplicated", "%d", r.wave.duplicated)
		line("cut_over", "%d", r.wave.cutOver)
		line("wave_seconds", "%.2f", r.wave.elapsed.Seconds())
	}
	if r.baseline != nil {
		line("baseline_seconds", "%.2f", r.baseline.elapsed.Seconds())
	}
}

// run sets up the server, the estate and the worker in a temporary
// directory, measures, and tears everything down again.
func run(ctx context.Context, o options) (res results, err error) {
	ctx, cancelTimeout := context.WithTimeout(ctx, o.timeout)
	defer cancelTimeout()
	// The worker dying early cancels the run with the reason.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer func() {
		if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(err, cause) {
			err = fmt.Errorf("%w (%w)", err, cause)
		}
	}()

	dir, err := os.MkdirTemp("", "mailwave-bench-")
	if err != nil {
		return res, err
	}
	defer func() {
		if o.keep {
			logf("kept %s", dir)
			return
		}
		if err := os.RemoveAll(dir); err != nil {
			logf("removing %s: %v", dir, err)
		}
	}()
	d := layoutOf(dir)

	logf("starting the Temporal dev server (log: %s)", filepath.Join(dir, "temporal.log"))
	srv, err := testkit.StartDevServer(ctx, testkit.DevServerConfig{Bin: o.temporalBin, Dir: dir})
	if err != nil {
		return res, err
	}
	defer func() {
		if err := srv.Stop(); err != nil {
			logf("stopping the dev server: %v", err)
		}
	}()
	logf("dev server on %s", srv.FrontendHostPort())

	if _, err := sim.Generate(d.estate, sim.GenerateOptions{Seed: o.seed, Mailboxes: o.n}); err != nil {
		return res, err
	}

	if !o.skipWave {
		logf("starting the worker %s (log: %s)", o.workerBin, d.workerLog)
		w, err := startWorker(mailwaveWorkerArgs(o.workerBin, srv.FrontendHostPort(), d), d.workerLog, cancel)
		if err != nil {
			return res, err
		}
		res.wave, err = runWave(ctx, o, srv.Client(), []string{"--temporal-address", srv.FrontendHostPort()}, d)
		var rssErr error
		if res.workerPeakMB, rssErr = w.peakRSSMB(); rssErr != nil {
			logf("worker peak RSS: %v", rssErr)
		}
		w.stop()
		if err != nil {
			return res, fmt.Errorf("wave: %w", err)
		}
	}
	if !o.skipBaseline {
		// The baseline's worker is this binary (-serve-baseline), with the
		// same limits as the mailwave worker.
		self, err := os.Executable()
		if err != nil {
			return res, err
		}
		logf("starting the baseline worker (log: %s)", d.baselineLog)
		w, err := startWorker(baselineWorkerArgs(self, srv.FrontendHostPort()), d.baselineLog, cancel)
		if err != nil {
			return res, err
		}
		// The clock starts once the worker polls, as the wave's worker
		// does long before its first mailbox is due.
		if err := waitForPollers(ctx, srv.Client(), baseline.TaskQueue); err != nil {
			w.stop()
			return res, fmt.Errorf("baseline: %w", err)
		}
		res.baseline, err = runBaseline(ctx, srv.Client(), o.n, o.concurrency)
		w.stop()
		if err != nil {
			return res, fmt.Errorf("baseline: %w", err)
		}
	}
	return res, nil
}

// layout is where everything goes in the temporary directory.
type layout struct {
	root, estate, outbox, waves string
	workerLog, baselineLog      string
}

func layoutOf(dir string) layout {
	return layout{
		root:        dir,
		estate:      filepath.Join(dir, "estate"),
		outbox:      filepath.Join(dir, "outbox"),
		waves:       filepath.Join(dir, "waves"),
		workerLog:   filepath.Join(dir, "worker.log"),
		baselineLog: filepath.Join(dir, "baseline-worker.log"),
	}
}

// childEnv is the environment of the worker and the starter: ours plus the
// shared key secret.
func childEnv() []string {
	return append(append(os.Environ(), identity.SecretEnv+"="+benchSecret), testkit.TestKeysEnv()...)
}

// logf writes a diagnostic line to stderr.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// waitReporting runs wait, calling report every progressEvery until it
// returns.
func waitReporting(ctx context.Context, wait func(context.Context) error, report func(context.Context)) error {
	done := make(chan error, 1)
	go func() { done <- wait(ctx) }()
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-tick.C:
			report(ctx)
		}
	}
}
