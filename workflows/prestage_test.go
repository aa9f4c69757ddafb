package workflows

import (
	"context"
	"errors"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"mailwave/activities"
	"mailwave/contract"
)

// prestaged is an input with pre-staging at 0.5 MB/s and full efficiency,
// its bulk pass ending a day before T, an incremental pass a day.
func (s *MailboxSuite) prestaged(migrateIn time.Duration) contract.MailboxInput {
	in := s.input(migrateIn)
	in.Prestage = &contract.Prestage{MailboxRate: 0.5e6, Efficiency: 1, StartDelay: time.Hour, Margin: 24 * time.Hour,
		IncrementalEvery: 24 * time.Hour, Cap: 10}
	return in
}

// expectPreflight lets the preflight pass, measuring the source at bytes.
func (s *MailboxSuite) expectPreflight(bytes int64) {
	s.env.OnActivity(contract.ActivityPreflight, mock.Anything, mock.Anything).Return(
		activities.PreflightResult{Checked: true, Figures: contract.Preflight{SourceBytes: bytes, SourceMessages: 1000}, Attempt: 1}, nil)
}

// chainedCopies lets every copy pass succeed at once, each ending one UID
// further than where it began, and records where each began.
func (s *MailboxSuite) chainedCopies(from *[]uint32) {
	s.env.OnActivity(contract.ActivityCopyMailbox, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.CopyInput) (activities.CopyResult, error) {
			s.record("copy:" + string(in.Pass))
			last := in.From.Folders["INBOX"].LastUID
			s.mu.Lock()
			*from = append(*from, last)
			s.mu.Unlock()
			return activities.CopyResult{Stats: contract.CopyStats{Items: 1, Bytes: 100}, Attempt: 1,
				Checkpoint: contract.Checkpoint{Folders: map[string]contract.FolderCheckpoint{"INBOX": {UIDValidity: 1, LastUID: last + 1}}}}, nil
		})
}

func (s *MailboxSuite) registerSignalWave() {
	s.env.RegisterActivityWithOptions(func(context.Context, activities.SignalWaveInput) error {
		return errors.New("a mailbox's signal to its wave must be mocked")
	}, activity.RegisterOptions{Name: contract.ActivitySignalWave})
}

// TestPrestagedCopyRunsBeforeTAndOnlyTheDeltaAtT: a 90 GB mailbox (50 h at
// 0.5 MB/s) has its bulk pass at T-74h, so it ends a day before T;
// incremental passes follow a day apart while a day is left; at T only the
// final delta, from where the last pass ended, then the cutover.
func (s *MailboxSuite) TestPrestagedCopyRunsBeforeTAndOnlyTheDeltaAtT() {
	s.expectNotices()
	s.expectPreflight(90e9)
	var from []uint32
	s.chainedCopies(&from)
	s.expectCutover()
	in := s.prestaged(20 * 24 * time.Hour)
	s.env.ExecuteWorkflow(MailboxMigration, in)

	res := s.result()
	s.Equal(contract.OutcomeMigrated, res.Outcome)
	s.Equal([]string{"notice:t14", "copy:bulk", "copy:incremental", "copy:incremental", "notice:t1", "copy:delta",
		"cutover", "notice:success"}, s.names())
	T := in.MigrateAt
	s.WithinDuration(T.Add(-74*time.Hour), s.callsOf("copy:bulk")[0], time.Second, "the bulk pass ends a day before T")
	incr := s.callsOf("copy:incremental")
	s.WithinDuration(T.Add(-50*time.Hour), incr[0], time.Second)
	s.WithinDuration(T.Add(-26*time.Hour), incr[1], time.Second)
	s.WithinDuration(T, s.callsOf("copy:delta")[0], time.Second)
	s.Equal([]uint32{0, 1, 2, 3}, from, "each pass goes on from where the one before ended")
	s.Equal(int64(4), res.Copied.Items)
	st := s.query().Prestage
	s.Require().NotNil(st)
	s.True(st.BulkDone)
	s.Equal(3, st.Passes)
	s.False(st.Late)
}

// TestPrestageTooLargeForItsLeadStartsAtOnce: a mailbox whose bulk pass
// cannot end a day before T even from an hour after its notice starts
// then, flagged late; what it has not read by T is read at T.
func (s *MailboxSuite) TestPrestageTooLargeForItsLeadStartsAtOnce() {
	s.expectNotices()
	s.expectPreflight(600e9) // 333 h at 0.5 MB/s; 311 h between
	var from []uint32
	s.chainedCopies(&from)
	s.expectCutover()
	in := s.prestaged(20 * 24 * time.Hour)
	in.Prestage.IncrementalEvery = 0
	s.env.ExecuteWorkflow(MailboxMigration, in)

	s.Equal(contract.OutcomeMigrated, s.result().Outcome)
	notice := s.callsOf("notice:t14")[0]
	s.WithinDuration(notice.Add(time.Hour), s.callsOf("copy:bulk")[0], time.Second)
	s.True(s.query().Prestage.Late)
	s.Equal([]string{"notice:t14", "copy:bulk", "notice:t1", "copy:delta", "cutover", "notice:success"}, s.names())
}

// TestPrestageInAWaveWaitsForItsPool: in a wave, a pass asks the wave for
// a place in its pre-stage pool and copies only once granted; it gives the
// place back when it ends, and asks again each hour while it waits. A grant
// for another mailbox, or for a pass not asked for, starts nothing.
func (s *MailboxSuite) TestPrestageInAWaveWaitsForItsPool() {
	s.registerSignalWave()
	s.expectNotices()
	s.expectPreflight(9e9) // 5 h: bulk at T-29h, no incremental
	var from []uint32
	s.chainedCopies(&from)
	s.expectCutover()
	var sent []contract.PrestageSlot
	var signals []string
	s.env.OnActivity(contract.ActivitySignalWave, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SignalWaveInput) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.Equal(contract.WaveWorkflowID("wave-1"), in.WaveWorkflowID)
			sent, signals = append(sent, in.Slot.PrestageSlot), append(signals, in.Signal)
			return nil
		})
	s.env.OnActivity(contract.ActivityReportDone, mock.Anything, mock.Anything).Return(nil)
	in := s.prestaged(20 * 24 * time.Hour)
	in.WaveWorkflowID, in.WaveIndex = contract.WaveWorkflowID("wave-1"), 7
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(contract.SignalSlotGrant, contract.SlotGrant{WaveID: "wave-1", Index: 7})
	}, in.MigrateAt.Sub(s.env.Now())+time.Minute)
	in.Prestage.IncrementalEvery = 0
	bulkAt := in.MigrateAt.Add(-29*time.Hour - 2*time.Second)
	grant := func(g contract.PrestageSlot) func() {
		return func() { s.env.SignalWorkflow(contract.SignalPrestageGrant, g) }
	}
	s.env.RegisterDelayedCallback(grant(contract.PrestageSlot{WaveID: "wave-1", Index: 8, Pass: 1}), bulkAt.Sub(s.env.Now())+time.Hour)
	s.env.RegisterDelayedCallback(grant(contract.PrestageSlot{WaveID: "wave-1", Index: 7, Pass: 2}), bulkAt.Sub(s.env.Now())+90*time.Minute)
	s.env.RegisterDelayedCallback(func() {
		s.Empty(s.callsOf("copy:bulk"), "no copy before its grant")
		st := s.query().Prestage
		s.True(st.Queued, "waiting for the pool")
		s.env.SignalWorkflow(contract.SignalPrestageGrant, contract.PrestageSlot{WaveID: "wave-1", Index: 7, Pass: 1})
	}, bulkAt.Sub(s.env.Now())+150*time.Minute)
	s.env.ExecuteWorkflow(MailboxMigration, in)

	s.Equal(contract.OutcomeMigrated, s.result().Outcome)
	s.WithinDuration(bulkAt.Add(150*time.Minute), s.callsOf("copy:bulk")[0], 5*time.Second, "copied once granted")
	// Asked for again each hour while waiting (a request the wave
	// dropped is not lost for good).
	s.Equal([]string{contract.SignalPrestageRequest, contract.SignalPrestageRequest, contract.SignalPrestageRelease,
		contract.SignalPrestageRequest, contract.SignalPrestageRelease}, signals)
	s.Equal(contract.PrestageSlot{Index: 7, Key: "k1", Pass: 1}, sent[0])
	s.Equal(sent[0], sent[1])
	s.Equal(2, sent[2].Pass, "the grant of a pass not asked for is given back")
	s.Equal(sent[0], sent[3])
	s.Equal(1, sent[4].Pass, "the pass's place is given back when it ends")
	s.Equal([]string{"notice:t14", "copy:bulk", "notice:t1", "copy:delta", "cutover", "notice:success"}, s.names())
}

// TestPrestageInATenantPoolAsksThePool: a wave pre-staging into the
// tenant's pool (Prestage.Pool) has its passes ask the pool, not the wave:
// with its wave, index, T and budget, and the cap to start the pool with.
func (s *MailboxSuite) TestPrestageInATenantPoolAsksThePool() {
	s.registerSignalWave()
	s.expectNotices()
	s.expectPreflight(9e9)
	var from []uint32
	s.chainedCopies(&from)
	s.expectCutover()
	var sent []activities.SignalWaveInput
	s.env.OnActivity(contract.ActivitySignalWave, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SignalWaveInput) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			sent = append(sent, in)
			if in.Signal == contract.SignalPrestageRequest {
				s.env.SignalWorkflow(contract.SignalPrestageGrant, contract.PrestageSlot{WaveID: "wave-1", Index: 7, Pass: in.Slot.Pass})
			}
			return nil
		})
	s.env.OnActivity(contract.ActivityReportDone, mock.Anything, mock.Anything).Return(nil)
	in := s.prestaged(20 * 24 * time.Hour)
	in.WaveID, in.WaveWorkflowID, in.WaveIndex = "wave-1", contract.WaveWorkflowID("wave-1"), 7
	in.Prestage.IncrementalEvery, in.Prestage.Pool = 0, "tenant-a"
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(contract.SignalSlotGrant, contract.SlotGrant{WaveID: "wave-1", Index: 7})
	}, in.MigrateAt.Sub(s.env.Now())+time.Minute)
	s.env.ExecuteWorkflow(MailboxMigration, in)

	s.Equal(contract.OutcomeMigrated, s.result().Outcome)
	s.Require().Len(sent, 2)
	s.Equal(contract.SignalPrestageRequest, sent[0].Signal)
	s.Equal(contract.SignalPrestageRelease, sent[1].Signal)
	for _, x := range sent {
		s.Equal("tenant-a", x.Pool)
		s.Equal(10, x.PoolCap, "the cap a pool is started with")
		s.True(in.MigrateAt.Equal(x.Slot.Due), "its T orders it in the pool")
		x.Slot.Due = time.Time{}
		s.Equal(contract.PoolSlot{PrestageSlot: contract.PrestageSlot{WaveID: "wave-1", Index: 7, Key: "k1", Pass: 1},
			Budget: 15 * time.Hour}, x.Slot, "a 5 h pass's budget: three times its length")
	}
	s.Equal([]string{"notice:t14", "copy:bulk", "notice:t1", "copy:delta", "cutover", "notice:success"}, s.names())
}

// TestPrestagePausedMidPassRunsAgainOnceResumed: an operator's pause
// stops a pass running before T, and once resumed the pass runs again. (The
// test environment answers a cancel at once, without the activity's
// details, so here the pass runs again from the start; on a server the
// SDK hands the workflow the checkpoint the cancelled copy returns, in
// its CanceledError: that is left to a dev-server test still to come.)
func (s *MailboxSuite) TestPrestagePausedMidPassRunsAgainOnceResumed() {
	s.expectNotices()
	s.expectPreflight(9e9)
	s.expectCutover()
	in := s.prestaged(20 * 24 * time.Hour)
	in.Prestage.IncrementalEvery = 0
	var from []uint32
	first := true
	s.env.OnActivity(contract.ActivityCopyMailbox, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.CopyInput) (activities.CopyResult, error) {
			s.record("copy:" + string(in.Pass))
			s.mu.Lock()
			from = append(from, in.From.Folders["INBOX"].LastUID)
			interrupt := first
			first = false
			s.mu.Unlock()
			if interrupt {
				// Half-way, its mailbox is paused: the environment answers
				// the workflow's cancel at once.
				s.env.SignalWorkflow(contract.SignalPause, contract.PauseRequest{Reason: "user on leave"})
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
				return activities.CopyResult{}, temporal.NewCanceledError()
			}
			last := in.From.Folders["INBOX"].LastUID
			return activities.CopyResult{Stats: contract.CopyStats{Items: 60, Bytes: 6000}, Attempt: 1,
				Checkpoint: contract.Checkpoint{Folders: map[string]contract.FolderCheckpoint{"INBOX": {UIDValidity: 1, LastUID: last + 60}}}}, nil
		})
	bulkAt := in.MigrateAt.Add(-29*time.Hour - 2*time.Second)
	s.env.RegisterDelayedCallback(func() {
		st := s.query()
		s.True(st.Paused)
		s.Equal(1, st.Prestage.Interrupted)
		s.False(st.Prestage.BulkDone)
		s.Empty(s.callsOf("notice:t1"))
		s.env.SignalWorkflow(contract.SignalResume, contract.ResumeRequest{})
	}, bulkAt.Sub(s.env.Now())+3*time.Hour)
	s.env.ExecuteWorkflow(MailboxMigration, in)

	res := s.result()
	s.Equal(contract.OutcomeMigrated, res.Outcome)
	s.Equal([]uint32{0, 0, 60}, from, "the pass again once resumed; the delta from its end")
	bulks := s.callsOf("copy:bulk")
	s.Require().Len(bulks, 2)
	s.WithinDuration(bulkAt.Add(3*time.Hour), bulks[1], 5*time.Second, "not before it was resumed")
	s.Equal([]string{"notice:t14", "copy:bulk", "copy:bulk", "notice:t1", "copy:delta", "cutover", "notice:success"}, s.names())
}

// TestPrestageOfUnknownSizeStartsAtItsEarliest: a mailbox whose preflight
// read no size is not planned as empty (at the last moment): its bulk pass
// starts at its earliest. Incremental passes go from the end of the pass
// before.
func (s *MailboxSuite) TestPrestageOfUnknownSizeStartsAtItsEarliest() {
	s.expectNotices()
	s.env.OnActivity(contract.ActivityPreflight, mock.Anything, mock.Anything).Return(activities.PreflightResult{Checked: false, Attempt: 1}, nil)
	var from []uint32
	s.chainedCopies(&from)
	s.expectCutover()
	in := s.prestaged(20 * 24 * time.Hour)
	in.Prestage.IncrementalEvery = 4 * 24 * time.Hour
	s.env.ExecuteWorkflow(MailboxMigration, in)

	s.Equal(contract.OutcomeMigrated, s.result().Outcome)
	notice := s.callsOf("notice:t14")[0]
	s.WithinDuration(notice.Add(time.Hour), s.callsOf("copy:bulk")[0], time.Second)
	st := s.query().Prestage
	s.True(st.SizeUnknown)
	s.True(st.Late)
	// From an hour after the notice, every 4 days while 4 days are left:
	// 4 d 1 h, 8 d 1 h after it (12 d 1 h would leave less than 4 before T).
	incr := s.callsOf("copy:incremental")
	s.Require().Len(incr, 2)
	s.WithinDuration(notice.Add(97*time.Hour), incr[0], time.Second)
	s.WithinDuration(notice.Add(193*time.Hour), incr[1], time.Second)
}

// TestPrestageSpreadByWaveIndex: with a spread, a wave's bulk passes begin
// one after another by index over the spread before T-Margin, each no
// later than it needs alone: evenly, or, with the plan's shape, where its
// share of the wave falls in it (here the first half at the spread's
// beginning, the second three quarters into it: a gap where another
// night's passes take the lanes).
func (s *MailboxSuite) TestPrestageSpreadByWaveIndex() {
	gap := []float64{0, 0, 0.75, 0.75}
	for _, c := range []struct {
		index int
		shape []float64
		want  time.Duration // before T
	}{
		{0, nil, 72 * time.Hour}, // T-24h-48h: earlier than the 29 h it needs alone
		{5, nil, 48 * time.Hour}, // half-way
		{9, nil, 29 * time.Hour}, // its place (T-28.8h) is later than it needs alone
		{0, gap, 72 * time.Hour}, // the shape's 0: T-24h-48h
		{4, gap, 72 * time.Hour}, // still in the first half
		{5, gap, 36 * time.Hour}, // 3/4 of the 48 h: T-24h-12h, not half-way
		{9, gap, 36 * time.Hour},
	} {
		s.SetupTest()
		s.expectNotices()
		s.expectPreflight(9e9) // 5 h: alone at T-29h
		var from []uint32
		s.chainedCopies(&from)
		s.expectCutover()
		in := s.prestaged(20 * 24 * time.Hour)
		in.Prestage.IncrementalEvery, in.Prestage.Spread, in.Prestage.Shape = 0, 48*time.Hour, c.shape
		in.WaveIndex, in.WaveSize = c.index, 10
		s.env.ExecuteWorkflow(MailboxMigration, in)
		s.Equal(contract.OutcomeMigrated, s.result().Outcome)
		s.WithinDuration(in.MigrateAt.Add(-c.want), s.callsOf("copy:bulk")[0], 5*time.Second, "index %d, shape %v", c.index, c.shape)
	}
}
