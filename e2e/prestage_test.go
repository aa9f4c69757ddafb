package e2e_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"go.temporal.io/sdk/client"

	"mailwave/contract"
	"mailwave/identity"
	"mailwave/mail/sim"
	"mailwave/testkit"
	"mailwave/worker/config"
	"mailwave/worker/workerapp"
)

// TestAPrestagedWaveOnDevServer runs a pre-staging wave of 60 simulated
// mailboxes on a real dev server, its pre-stage pool capped at 15: every
// mailbox's bulk pass runs before T and within the pool (never more than 15
// at once), incremental passes follow, mail arrives after the bulk pass
// (the estate delivers it), and at T only the final delta and the cutover
// run. The verifier finds nothing lost or there twice.
func TestAPrestagedWaveOnDevServer(t *testing.T) {
	const n, pool = 60, 15
	e := newWaveEnv(t, n, 23)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	at := time.Now().Add(40 * time.Second)
	in := e.launch(ctx, contract.WaveInput{
		WaveID: "it-prestage", MigrateAt: at, NoticeLead: 35 * time.Second, ReminderLead: 3 * time.Second,
		Cap: 10, StartRate: 500,
		// A pass is planned to take about nothing at this rate (it takes
		// a few seconds, signals and all, on a loaded machine): each bulk
		// pass is planned for 25 s before T, an incremental pass 3 s after
		// it while 3 s are left.
		Prestage: &contract.Prestage{MailboxRate: 1 << 40, Efficiency: 1, Margin: 25 * time.Second,
			IncrementalEvery: 3 * time.Second, Cap: pool},
	})

	// The pool, sampled until T.
	var mu sync.Mutex
	most, queued := 0, 0
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for time.Now().Before(at) {
			p := e.progress(ctx, in.WaveID)
			mu.Lock()
			most, queued = max(most, p.Prestaging), max(queued, p.PrestageQueued)
			mu.Unlock()
			assert.Equal(t, pool, p.PrestageCap)
			time.Sleep(100 * time.Millisecond)
		}
	}()

	// Before T: every mailbox's bulk pass done, none cut over.
	mbx, err := e.keyer.Key(e.estate.Roster[0].Address)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		v, err := e.c.QueryWorkflow(ctx, contract.MailboxWorkflowID(mbx), "", contract.QueryState)
		var st contract.MailboxState
		return err == nil && v.Get(&st) == nil && st.Prestage != nil && st.Prestage.BulkDone
	}, time.Until(at), 200*time.Millisecond, "the bulk pass ran before T")
	require.True(t, time.Now().Before(at))

	var res contract.WaveResult
	require.NoError(t, e.c.GetWorkflow(ctx, contract.WaveWorkflowID(in.WaveID), "").Get(ctx, &res))
	<-sampled
	assert.Equal(t, n, res.Migrated, "%+v", res)
	assert.Zero(t, res.NeedsSupport)
	mu.Lock()
	assert.LessOrEqual(t, most, pool, "never more than the pool's cap at once")
	assert.Positive(t, most)
	mu.Unlock()

	st := mailboxState(t, e, mbx)
	require.NotNil(t, st.Prestage)
	assert.True(t, st.Prestage.BulkDone)
	assert.GreaterOrEqual(t, st.Prestage.Passes, 2, "a bulk pass and an incremental one")
	assert.False(t, st.Prestage.LastPassEnded.After(at), "every pre-stage pass ended before T")

	rep := e.verify(ctx)
	assert.Equal(t, n, rep.Totals.CutOver)
	assert.Zero(t, rep.Totals.Lost)
	assert.Zero(t, rep.Totals.Duplicated)

	if *recordDir != "" {
		recordRun(t, e.c, contract.WaveWorkflowID(in.WaveID), "", filepath.Join(*recordDir, "wave_prestaged.json"))
		recordRun(t, e.c, contract.MailboxWorkflowID(mbx), "", filepath.Join(*recordDir, "mailbox_prestaged.json"))
	}
}

// TestTwoWavesShareTheTenantsPool: two pre-staging waves of 12 mailboxes
// each, their notices at the same time and their nights ten seconds apart,
// pre-stage into one tenant's pool of 3 (started by the first pass that
// asks it): never more than 3 passes run at once across both waves, every
// mailbox is pre-staged before its T and migrated, and nothing is lost or
// there twice. The pool is then cancelled, so its history ends.
func TestTwoWavesShareTheTenantsPool(t *testing.T) {
	const n, pool = 24, 3
	e := newWaveEnv(t, n, 29)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	all := e.estate.Mailboxes(t, e.keyer)
	now := time.Now()
	prestage := func() *contract.Prestage {
		return &contract.Prestage{MailboxRate: 1 << 40, Efficiency: 1, Margin: 20 * time.Second, Cap: pool, Pool: "it-tenant"}
	}
	late := e.launchOf(ctx, contract.WaveInput{WaveID: "it-pool-late", MigrateAt: now.Add(50 * time.Second),
		NoticeLead: 45 * time.Second, ReminderLead: 3 * time.Second, Cap: 10, StartRate: 500, Prestage: prestage()}, all[:n/2])
	early := e.launchOf(ctx, contract.WaveInput{WaveID: "it-pool-early", MigrateAt: now.Add(40 * time.Second),
		NoticeLead: 35 * time.Second, ReminderLead: 3 * time.Second, Cap: 10, StartRate: 500, Prestage: prestage()}, all[n/2:])

	poolID := contract.PrestagePoolWorkflowID("it-tenant")
	var mu sync.Mutex
	most := 0 // mailboxes copying a pass before T at once, by their own state
	waves := map[string]bool{}
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for time.Now().Before(late.MigrateAt) {
			copying := 0
			for _, m := range all {
				v, err := e.c.QueryWorkflow(ctx, contract.MailboxWorkflowID(m.Key), "", contract.QueryState)
				var st contract.MailboxState
				if err == nil && v.Get(&st) == nil && st.Prestage != nil && st.Prestage.Pass > 0 && !st.Prestage.Queued {
					copying++
				}
			}
			v, err := e.c.QueryWorkflow(ctx, poolID, "", contract.QueryPrestagePool)
			var st contract.PrestagePoolStatus
			mu.Lock()
			most = max(most, copying)
			if err == nil && v.Get(&st) == nil {
				for w := range st.Waves {
					waves[w] = true
				}
				assert.Equal(t, pool, st.Cap)
			}
			mu.Unlock()
		}
	}()
	for _, in := range []contract.WaveInput{early, late} {
		var res contract.WaveResult
		require.NoError(t, e.c.GetWorkflow(ctx, contract.WaveWorkflowID(in.WaveID), "").Get(ctx, &res))
		assert.Equal(t, n/2, res.Migrated, "%+v", res)
		assert.Zero(t, res.NeedsSupport)
		assert.Equal(t, "it-tenant", e.progress(ctx, in.WaveID).PrestagePool)
	}
	<-sampled
	mu.Lock()
	assert.LessOrEqual(t, most, pool, "never more than the tenant's cap at once, across both waves")
	assert.Positive(t, most)
	assert.True(t, waves["it-pool-early"] && waves["it-pool-late"], "both waves' passes in the one pool: %v", waves)
	mu.Unlock()
	for _, m := range all {
		st := mailboxState(t, e, m.Key)
		require.NotNil(t, st.Prestage)
		assert.True(t, st.Prestage.BulkDone, "every mailbox pre-staged before its T")
	}
	v, err := e.c.QueryWorkflow(ctx, poolID, "", contract.QueryPrestagePool)
	require.NoError(t, err)
	var st contract.PrestagePoolStatus
	require.NoError(t, v.Get(&st))
	assert.Zero(t, st.Active+st.Queued, "every place given back")
	assert.GreaterOrEqual(t, st.Granted, int64(n), "a place a mailbox at least")
	assert.Zero(t, st.Expired)

	rep := e.verify(ctx)
	assert.Equal(t, n, rep.Totals.CutOver)
	assert.Zero(t, rep.Totals.Lost)
	assert.Zero(t, rep.Totals.Duplicated)

	require.NoError(t, e.c.CancelWorkflow(ctx, poolID, ""))
	err = e.c.GetWorkflow(ctx, poolID, "").Get(ctx, nil)
	require.Error(t, err, "a cancelled pool ends cancelled")
	if *recordDir != "" {
		recordRun(t, e.c, poolID, "", filepath.Join(*recordDir, "prestage_pool.json"))
		recordRun(t, e.c, contract.MailboxWorkflowID(all[0].Key), "", filepath.Join(*recordDir, "mailbox_prestaged_in_pool.json"))
	}
}

// mailboxState queries a mailbox's state.
func mailboxState(t *testing.T, e *waveEnv, key string) contract.MailboxState {
	t.Helper()
	v, err := e.c.QueryWorkflow(context.Background(), contract.MailboxWorkflowID(key), "", contract.QueryState)
	require.NoError(t, err)
	var st contract.MailboxState
	require.NoError(t, v.Get(&st))
	return st
}

// TestAPrestagedPassPausedMidwayGoesOnFromItsCheckpoint: on a real server,
// a mailbox paused while its pre-stage bulk pass copies (about 30 s at the
// estate's rate) stops the pass; the copy hands the workflow the
// checkpoint it reached, and once resumed the pass goes on from there: it
// copies only what was left, and nothing is lost or there twice. (A copy
// hears of a cancel in its heartbeat's answer, which the SDK sends at most
// every 16 s for a 20 s heartbeat timeout: the pass lasts 30 s, so the
// pause reaches it mid-way.)
func TestAPrestagedPassPausedMidwayGoesOnFromItsCheckpoint(t *testing.T) {
	dir := t.TempDir()
	estateDir := filepath.Join(dir, "estate")
	_, err := sim.Generate(estateDir, sim.GenerateOptions{Seed: 31, Mailboxes: 3})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	keyer, err := identity.NewKeyer([]byte("prestage-pause-secret"))
	require.NoError(t, err)
	est, pick, size := largestOf(t, ctx, estateDir, keyer)

	srv := testkit.NewDevServer(t, "")
	c := srv.Client()
	testkit.StartWorker(t, c, workerapp.Config{
		TaskQueue: contract.TaskQueue, Notifier: "outbox", OutboxDir: filepath.Join(dir, "outbox"),
		Estate: "sim",
		// Real time: the mailbox's copy takes about 30 s.
		Sim:                     config.Sim{Dir: estateDir, TimeScale: 1, BytesPerSecond: size / 30},
		MaxConcurrentActivities: 10, MaxConcurrentLocalActivities: 10, MaxConcurrentWorkflowTasks: 10,
		ShutdownTimeout: 5 * time.Second,
	})
	key, err := keyer.Key(pick.Address)
	require.NoError(t, err)
	at := time.Now().Add(100 * time.Second)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.MailboxWorkflowID(key), TaskQueue: contract.TaskQueue},
		contract.MailboxWorkflowName, contract.MailboxInput{
			Mailbox:   contract.MailboxRef{Key: key, Address: pick.Address, Org: pick.Org, DisplayName: pick.DisplayName},
			MigrateAt: at, NoticeLead: 95 * time.Second, ReminderLead: 2 * time.Second,
			// Planned at the pace the estate gives: the bulk pass 35 s
			// after the notice, ending 30 s before T.
			Prestage: &contract.Prestage{MailboxRate: float64(size) / 30, Efficiency: 1, Margin: 30 * time.Second, Cap: 1},
		})
	require.NoError(t, err)

	state := func() contract.MailboxState {
		v, err := c.QueryWorkflow(ctx, run.GetID(), "", contract.QueryState)
		require.NoError(t, err)
		var st contract.MailboxState
		require.NoError(t, v.Get(&st))
		return st
	}
	// Pause it a few seconds into its bulk pass.
	require.Eventually(t, func() bool {
		st := state()
		return st.Prestage != nil && st.Prestage.Pass > 0 && !st.Prestage.Queued
	}, 70*time.Second, 100*time.Millisecond, "the bulk pass began")
	time.Sleep(5 * time.Second)
	require.NoError(t, c.SignalWorkflow(ctx, run.GetID(), "", contract.SignalPause, contract.PauseRequest{Reason: "test"}))
	require.Eventually(t, func() bool { return state().Prestage.Interrupted == 1 }, 30*time.Second, 100*time.Millisecond,
		"the pass stopped")
	paused := state()
	assert.False(t, paused.Prestage.BulkDone)
	assert.Positive(t, paused.Copied.Bytes, "what the stopped pass copied is counted")
	assert.Less(t, paused.Copied.Bytes, size, "and it was not all")
	time.Sleep(2 * time.Second)
	require.NoError(t, c.SignalWorkflow(ctx, run.GetID(), "", contract.SignalResume, nil))

	var res contract.MailboxResult
	require.NoError(t, run.Get(ctx, &res))
	assert.Equal(t, contract.OutcomeMigrated, res.Outcome, "%+v", res)
	st := state()
	assert.True(t, st.Prestage.BulkDone)
	assert.Equal(t, 1, st.Prestage.Interrupted)
	// Gone on from the checkpoint: the bulk passes together read the
	// mailbox once (plus what arrived after the bulk pass, for the delta).
	assert.Zero(t, res.Copied.Skipped, "nothing read twice: the resumed pass began at the checkpoint")
	rep, err := est.Verify(ctx, []string{pick.Address})
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Totals.CutOver, rep.Summary())
	assert.Zero(t, rep.Totals.Lost, rep.Summary())
	assert.Zero(t, rep.Totals.Duplicated, rep.Summary())
}

// largestOf opens the simulated estate in dir and picks its largest
// mailbox, by what its preflight reads.
func largestOf(t *testing.T, ctx context.Context, dir string, keyer *identity.Keyer) (*sim.Estate, sim.RosterEntry, int64) {
	t.Helper()
	est, err := sim.Open(dir, sim.Options{})
	require.NoError(t, err)
	roster, err := est.Roster()
	require.NoError(t, err)
	var pick sim.RosterEntry
	var size int64
	for _, r := range roster {
		k, err := keyer.Key(r.Address)
		require.NoError(t, err)
		p, err := est.Preflight(ctx, contract.MailboxRef{Key: k, Address: r.Address})
		require.NoError(t, err)
		if p.SourceBytes > size {
			pick, size = r, p.SourceBytes
		}
	}
	require.Positive(t, size)
	return est, pick, size
}
