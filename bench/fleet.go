package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"mailwave/mail/sim"
	"mailwave/testkit"
	"mailwave/testkit/fleet"
	"mailwave/testkit/proc"
)

// fleetWorkerArgs are the limits of every worker of a fleet benchmark: the
// same as the single worker's, per worker.
func fleetWorkerArgs() []string {
	return []string{
		"--max-activities", strconv.Itoa(workerMaxActivities),
		"--max-local-activities", strconv.Itoa(workerMaxLocalActivities),
		"--max-workflow-tasks", strconv.Itoa(workerMaxWorkflowTasks),
	}
}

// shapeFigures are one server shape's figures.
type shapeFigures struct {
	name   string // dev or postgres
	wave   *waveFigures
	peakMB float64 // the largest worker's peak RSS
}

// runFleet measures, in one run, a wave of N on o.workers worker processes
// against the dev server (SQLite) and then against the Temporal server on
// PostgreSQL with mTLS (the production shape), each on a fresh estate.
func runFleet(ctx context.Context, o options) ([]shapeFigures, error) {
	dir, err := os.MkdirTemp("", "mailwave-bench-fleet-")
	if err != nil {
		return nil, err
	}
	// PostgreSQL runs as the postgres user when started by root.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	defer func() {
		if o.keep {
			logf("kept %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	}()
	var out []shapeFigures
	for _, shape := range o.shapes {
		logf("fleet on the %s server: %d workers, %d mailboxes", shape, o.workers, o.n)
		f, err := runShape(ctx, o, shape, filepath.Join(dir, shape))
		if err != nil {
			return out, fmt.Errorf("%s server: %w", shape, err)
		}
		out = append(out, f)
	}
	return out, nil
}

func runShape(ctx context.Context, o options, shape, dir string) (shapeFigures, error) {
	fig := shapeFigures{name: shape}
	d := layoutOf(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fig, err
	}
	if _, err := sim.Generate(d.estate, sim.GenerateOptions{Seed: o.seed, Mailboxes: o.n}); err != nil {
		return fig, err
	}
	var env []string // the workers' own, on top of childEnv
	if o.workerMemLimit != "" {
		env = append(env, "GOMEMLIMIT="+o.workerMemLimit)
	}
	var workers []*proc.Proc
	defer func() {
		for _, w := range workers {
			w.Stop(workerStopTimeout)
		}
	}()
	var run func() (*waveFigures, error)
	switch shape {
	case "dev":
		srv, err := testkit.StartDevServer(ctx, testkit.DevServerConfig{Bin: o.temporalBin, Dir: dir})
		if err != nil {
			return fig, err
		}
		defer func() { _ = srv.Stop() }()
		for i := range o.workers {
			name := fmt.Sprintf("worker-%d", i+1)
			w, err := proc.Start(proc.Options{Name: name, Argv: mailwaveWorkerArgs(o.workerBin, srv.FrontendHostPort(), d),
				Dir: filepath.Join(dir, name), Env: append(childEnv(), env...)})
			if err != nil {
				return fig, err
			}
			workers = append(workers, w)
		}
		run = func() (*waveFigures, error) {
			return runWave(ctx, o, srv.Client(), []string{"--temporal-address", srv.FrontendHostPort()}, d)
		}
	case "postgres":
		fl, err := fleet.Start(ctx, fleet.Options{Dir: dir, WorkerBin: o.workerBin, Env: env, Config: func(string) string {
			return fmt.Sprintf(`organisations:
  - name: simulated
    default: true
    catch_all: true
    sim: {dir: %q, instant: true}
    notifier: {kind: outbox, from: "Migration <migration@nhs.example>", outbox: {dir: %q}}
    router: {kind: sim, sim: {dir: %q}}
`, d.estate, d.outbox, d.estate)
		}})
		if err != nil {
			return fig, err
		}
		defer fl.Stop()
		for i := range o.workers {
			w, err := fl.StartWorker(fmt.Sprintf("worker-%d", i+1), fleetWorkerArgs()...)
			if err != nil {
				return fig, err
			}
			workers = append(workers, w)
		}
		d.waves = fl.DSN
		run = func() (*waveFigures, error) { return runWave(ctx, o, fl.Client, fl.ConnectArgs(), d) }
	}
	// Give the workers a moment to poll, as a deployment's are long before
	// a wave's T.
	time.Sleep(3 * time.Second)
	for _, w := range workers {
		if !w.Running() {
			return fig, fmt.Errorf("%s exited at start; its log ends:\n%s", w.Name, w.LogTail(10))
		}
	}
	wf, err := run()
	if err != nil {
		return fig, err
	}
	fig.wave = wf
	for _, w := range workers {
		mb, err := w.PeakRSSMB()
		if err != nil {
			logf("%s peak RSS: %v", w.Name, err)
			continue
		}
		fig.peakMB = max(fig.peakMB, mb)
	}
	return fig, nil
}

// printFleetFigures writes the fleet benchmark's figures.
func printFleetFigures(w io.Writer, o options, shapes []shapeFigures) {
	line := func(name string, format string, v any) { fmt.Fprintf(w, "%s="+format+"\n", name, v) }
	line("n", "%d", o.n)
	line("workers", "%d", o.workers)
	line("concurrency", "%d", o.concurrency)
	rates := map[string]float64{}
	for _, s := range shapes {
		if s.wave == nil {
			continue
		}
		rates[s.name] = s.wave.rate(o.n)
		line("fleet_"+s.name+"_mailboxes_per_s", "%.2f", rates[s.name])
		line("fleet_"+s.name+"_wave_seconds", "%.1f", s.wave.elapsed.Seconds())
		line("fleet_"+s.name+"_worker_peak_rss_mb", "%.1f", s.peakMB)
		line("fleet_"+s.name+"_max_events_per_wave_run", "%d", s.wave.maxEvents)
		line("fleet_"+s.name+"_lost", "%d", s.wave.lost)
		line("fleet_"+s.name+"_duplicated", "%d", s.wave.duplicated)
		line("fleet_"+s.name+"_cut_over", "%d", s.wave.cutOver)
	}
	if rates["dev"] > 0 && rates["postgres"] > 0 {
		line("ratio_postgres_over_dev", "%.3f", rates["postgres"]/rates["dev"])
	}
}
