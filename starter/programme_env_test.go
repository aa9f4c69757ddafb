package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/mail/sim"
	"mailwave/testkit"
	"mailwave/worker/config"
	"mailwave/worker/workerapp"
)

// programmeEnv is what the programme's dev-server tests share: a
// simulated estate, a dev server, a worker over the roster store (which
// holds the estate), and the estate imported through the starter, every
// organisation a pilot.
type programmeEnv struct {
	t                  *testing.T
	dir, waves, outbox string
	srv                *testkit.DevServer
	sim                *sim.Estate // the estate's own view (profiles), not the worker's
	roster             []sim.RosterEntry
}

// newProgrammeEnv generates the estate, starts the server and the worker
// (the simulation as simCfg says, at its directory) and imports it.
func newProgrammeEnv(t *testing.T, gen sim.GenerateOptions, simCfg config.Sim) *programmeEnv {
	t.Helper()
	dir := t.TempDir()
	e := &programmeEnv{t: t, dir: dir, waves: filepath.Join(dir, "waves"), outbox: filepath.Join(dir, "outbox")}
	simCfg.Dir = filepath.Join(dir, "sim")
	_, err := sim.Generate(simCfg.Dir, gen)
	require.NoError(t, err)
	e.srv = testkit.NewDevServer(t, "")
	testkit.StartWorker(t, e.srv.Client(), workerapp.Config{
		TaskQueue: contract.TaskQueue, Notifier: "outbox", OutboxDir: e.outbox,
		Estate: "sim", Sim: simCfg, WavesDir: e.waves,
		MaxConcurrentActivities: 40, MaxConcurrentLocalActivities: 40, MaxConcurrentWorkflowTasks: 20,
	})
	e.sim, err = sim.Open(simCfg.Dir, sim.Options{Instant: true})
	require.NoError(t, err)
	e.roster, err = e.sim.Roster()
	require.NoError(t, err)
	var all strings.Builder
	all.WriteString("address,org,display_name\n")
	for _, r := range e.roster {
		fmt.Fprintf(&all, "%s,%s,%s\n", r.Address, r.Org, r.DisplayName)
	}
	e.must("programme", "import", writeCSV(t, "all.csv", all.String()), "--waves-dir", e.waves)
	return e
}

// run runs the starter against the env's server: its output, its errors
// and its exit code.
func (e *programmeEnv) run(args ...string) (string, string, int) {
	e.t.Helper()
	return runStarterSplit(e.t, append(args, "--temporal-address", e.srv.FrontendHostPort())...)
}

// must runs the starter and fails the test unless it succeeds.
func (e *programmeEnv) must(args ...string) string {
	e.t.Helper()
	out, errOut, code := e.run(args...)
	require.Zero(e.t, code, "starter %s: %s%s", strings.Join(args, " "), out, errOut)
	return out
}

// readyAll makes organisations ready as if their pilots had passed.
func (e *programmeEnv) readyAll(orgs ...string) {
	e.t.Helper()
	for _, org := range orgs {
		e.must("org", "ready", org, "--force", "--reason", "the e2e test's pilot is taken as passed", "--waves-dir", e.waves)
	}
}
