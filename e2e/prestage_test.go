package e2e_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
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

// mailboxState queries a mailbox's state.
func mailboxState(t *testing.T, e *waveEnv, key string) contract.MailboxState {
	t.Helper()
	v, err := e.c.QueryWorkflow(context.Background(), contract.MailboxWorkflowID(key), "", contract.QueryState)
	require.NoError(t, err)
	var st contract.MailboxState
	require.NoError(t, v.Get(&st))
	return st
}
