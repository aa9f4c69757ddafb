package e2e_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"mailwave/contract"
	"mailwave/identity"
	"mailwave/mail/sim"
	"mailwave/roster/wavefile"
	"mailwave/testkit"
	"mailwave/worker/config"
	"mailwave/worker/workerapp"
)

// waveEnv is a dev server, a worker and a simulated estate for wave tests.
type waveEnv struct {
	t      *testing.T
	c      client.Client
	dir    string
	estate *testkit.Estate
	keyer  *identity.Keyer
}

func newWaveEnv(t *testing.T, mailboxes int, seed int64) *waveEnv {
	t.Helper()
	dir := t.TempDir()
	est := testkit.NewEstate(t, seed, mailboxes)
	keyer, err := identity.NewKeyer([]byte("wave-integration-secret"))
	require.NoError(t, err)

	srv := testkit.NewDevServer(t, "")
	testkit.StartWorker(t, srv.Client(), workerapp.Config{
		TaskQueue: contract.TaskQueue, Notifier: "outbox", OutboxDir: filepath.Join(dir, "outbox"),
		Estate: "sim",
		Sim: config.Sim{Dir: est.Dir, TimeScale: 1e6, BytesPerSecond: 1 << 30,
			TransientRate: 0.01, ThrottleRate: 0.01, ThrottleRetryAfter: 200 * time.Millisecond},
		WavesDir:                filepath.Join(dir, "waves"),
		MaxConcurrentActivities: 100, MaxConcurrentLocalActivities: 100, MaxConcurrentWorkflowTasks: 50,
		ShutdownTimeout: 5 * time.Second,
	})
	return &waveEnv{t: t, c: srv.Client(), dir: dir, estate: est, keyer: keyer}
}

// launch writes the wave's mailbox file and starts the wave.
func (e *waveEnv) launch(ctx context.Context, in contract.WaveInput) contract.WaveInput {
	return e.launchOf(ctx, in, e.estate.Mailboxes(e.t, e.keyer))
}

// launchOf launches a wave of these mailboxes (of the estate), indexed
// from 0 in the wave.
func (e *waveEnv) launchOf(ctx context.Context, in contract.WaveInput, mailboxes []wavefile.Mailbox) contract.WaveInput {
	mailboxes = slices.Clone(mailboxes)
	for i := range mailboxes {
		mailboxes[i].Index = i
	}
	in.Total = len(mailboxes)
	require.NoError(e.t, wavefile.NewStore(filepath.Join(e.dir, "waves")).Write(ctx, in.WaveID, mailboxes))
	_, err := e.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: contract.WaveWorkflowID(in.WaveID), TaskQueue: contract.TaskQueue,
	}, contract.WaveWorkflowName, in)
	require.NoError(e.t, err)
	return in
}

func (e *waveEnv) progress(ctx context.Context, wave string) contract.WaveProgress {
	v, err := e.c.QueryWorkflow(ctx, contract.WaveWorkflowID(wave), "", contract.QueryProgress)
	require.NoError(e.t, err)
	var p contract.WaveProgress
	require.NoError(e.t, v.Get(&p))
	return p
}

func (e *waveEnv) signal(ctx context.Context, wave, name string, arg any) {
	require.NoError(e.t, e.c.SignalWorkflow(ctx, contract.WaveWorkflowID(wave), "", name, arg))
}

// runs lists the wave's runs with their history length, oldest first.
func (e *waveEnv) runs(ctx context.Context, wave string) []*workflowservice.ListWorkflowExecutionsResponse {
	var out []*workflowservice.ListWorkflowExecutionsResponse
	resp, err := e.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Query: fmt.Sprintf("WorkflowId = '%s'", contract.WaveWorkflowID(wave)), PageSize: 1000,
	})
	require.NoError(e.t, err)
	return append(out, resp)
}

func (e *waveEnv) verify(ctx context.Context) sim.Report { return e.estate.VerifyAll(e.t, ctx) }

// TestWaveOnDevServer runs a wave of 1,000 mailboxes with 50 at a time on a
// real dev server, pauses and resumes it in the middle, and checks through
// the verifier that nothing was lost or copied twice, and that no run of the
// wave came near the history limit.
func TestWaveOnDevServer(t *testing.T) {
	const n, capacity = 1000, 50
	e := newWaveEnv(t, n, 11)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	in := e.launch(ctx, contract.WaveInput{
		WaveID: "it-1000", MigrateAt: time.Now().Add(8 * time.Second),
		NoticeLead: 4 * time.Second, ReminderLead: 2 * time.Second, Cap: capacity, StartRate: 500,
	})

	// Pause once a quarter has migrated.
	require.Eventually(t, func() bool { return e.progress(ctx, in.WaveID).Migrated >= n/4 }, 10*time.Minute, time.Second)
	e.signal(ctx, in.WaveID, contract.SignalPause, contract.PauseRequest{Reason: "integration test"})
	// The mailboxes mid-step finish the step and hold, however long that
	// takes on a loaded machine; then nothing finishes while the wave is
	// paused: the count of migrated stops for 3 s, where a running wave
	// migrates several mailboxes a second.
	held := e.progress(ctx, in.WaveID)
	stopped := time.Now().Add(time.Minute)
	for {
		time.Sleep(3 * time.Second)
		still := e.progress(ctx, in.WaveID)
		if still.Migrated == held.Migrated {
			break
		}
		require.True(t, time.Now().Before(stopped), "nothing finishes while the wave is paused: still migrating (%d, then %d) a minute after the pause",
			held.Migrated, still.Migrated)
		held = still
	}
	// And it stays stopped: a wave still running, finishing mailboxes in
	// bursts, would not hold still for ten seconds more.
	time.Sleep(10 * time.Second)
	later := e.progress(ctx, in.WaveID)
	assert.Equal(t, held.Migrated, later.Migrated, "nothing finishes while the wave is paused")
	held = later
	assert.True(t, held.Paused)
	assert.LessOrEqual(t, held.Active, capacity)
	assert.Less(t, held.Migrated, n)
	e.signal(ctx, in.WaveID, contract.SignalResume, nil)

	var res contract.WaveResult
	require.NoError(t, e.c.GetWorkflow(ctx, contract.WaveWorkflowID(in.WaveID), "").Get(ctx, &res))
	assert.Equal(t, n, res.Migrated, "%+v", res)
	assert.Zero(t, res.NeedsSupport)
	assert.Zero(t, res.Refused)

	rep := e.verify(ctx)
	assert.Equal(t, n, rep.Totals.CutOver)
	assert.Zero(t, rep.Totals.Lost)
	assert.Zero(t, rep.Totals.Duplicated)

	longest, runs := 0, 0
	for _, page := range e.runs(ctx, in.WaveID) {
		for _, ex := range page.GetExecutions() {
			runs++
			longest = max(longest, int(ex.GetHistoryLength()))
		}
	}
	t.Logf("wave of %d: %d runs, longest %d events, %s", n, runs, longest, res.Duration)
	assert.Equal(t, res.Runs, runs)
	assert.Less(t, longest, 10240, "every run stays under the history warning")
}

// TestWaveContinuesAsNewOnDevServer forces continue-as-new on a small wave
// while operator signals arrive, and records its histories for the replay
// tests (-record-histories).
func TestWaveContinuesAsNewOnDevServer(t *testing.T) {
	const n = 120
	e := newWaveEnv(t, n, 12)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	in := e.launch(ctx, contract.WaveInput{
		WaveID: "it-can", MigrateAt: time.Now().Add(5 * time.Second),
		NoticeLead: 3 * time.Second, ReminderLead: 2 * time.Second, Cap: 10, PageSize: 40, MaxEventsPerRun: 150,
	})
	require.Eventually(t, func() bool { return e.progress(ctx, in.WaveID).Migrated >= 20 }, 5*time.Minute, 200*time.Millisecond)
	e.signal(ctx, in.WaveID, contract.SignalPause, contract.PauseRequest{Reason: "around continue-as-new"})
	e.signal(ctx, in.WaveID, contract.SignalSetCap, contract.SetCapRequest{Cap: 4})
	time.Sleep(2 * time.Second)
	e.signal(ctx, in.WaveID, contract.SignalResume, nil)

	var res contract.WaveResult
	require.NoError(t, e.c.GetWorkflow(ctx, contract.WaveWorkflowID(in.WaveID), "").Get(ctx, &res))
	assert.Equal(t, n, res.Migrated)
	assert.Greater(t, res.Runs, 2, "continue-as-new happened")
	rep := e.verify(ctx)
	assert.Equal(t, n, rep.Totals.CutOver)
	assert.Zero(t, rep.Totals.Lost)
	assert.Zero(t, rep.Totals.Duplicated)

	if *recordDir != "" {
		var first, last string
		for _, page := range e.runs(ctx, in.WaveID) {
			for _, ex := range page.GetExecutions() {
				if last == "" {
					last = ex.GetExecution().GetRunId() // newest first
				}
				first = ex.GetExecution().GetRunId()
			}
		}
		recordRun(t, e.c, contract.WaveWorkflowID(in.WaveID), first, filepath.Join(*recordDir, "wave_first_run_continued.json"))
		recordRun(t, e.c, contract.WaveWorkflowID(in.WaveID), last, filepath.Join(*recordDir, "wave_last_run_completed.json"))
		mbx, err := e.keyer.Key(e.estate.Roster[0].Address)
		require.NoError(t, err)
		recordRun(t, e.c, contract.MailboxWorkflowID(mbx), "", filepath.Join(*recordDir, "mailbox_in_wave.json"))
	}
}
