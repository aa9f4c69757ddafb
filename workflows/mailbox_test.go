package workflows

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"github.com/stretchr/testify/suite"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"mailwave/activities"
	"mailwave/contract"
	"mailwave/contract/searchattr"
)

type MailboxSuite struct {
	suite.Suite
	testsuite.WorkflowTestSuite
	env *testsuite.TestWorkflowEnvironment

	mu    sync.Mutex
	calls []call // every activity call, with the virtual time it ran at
}

type call struct {
	name string
	at   time.Time
}

func TestMailboxSuite(t *testing.T) { suite.Run(t, new(MailboxSuite)) }

func (s *MailboxSuite) SetupTest() {
	s.env = s.NewTestWorkflowEnvironment()
	// A mailbox that would wait for ever fails in the mock clock's time.
	s.env.SetWorkflowRunTimeout(90 * 24 * time.Hour)
	s.env.RegisterWorkflow(MailboxMigration)
	activities.New(nil, nil, nil).Register(s.env)
	s.env.RegisterActivityWithOptions(func(context.Context, activities.ReportDoneInput) error {
		return errors.New("a mailbox's report must be mocked")
	}, activity.RegisterOptions{Name: contract.ActivityReportDone})
	s.env.RegisterActivityWithOptions(func(context.Context, activities.ReserveNightInput) error {
		return errors.New("a rescheduled mailbox's reservation must be mocked")
	}, activity.RegisterOptions{Name: contract.ActivityReserveNight})
	s.calls = nil
}

func (s *MailboxSuite) AfterTest(_, _ string) { s.env.AssertExpectations(s.T()) }

func (s *MailboxSuite) record(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, call{name: name, at: s.env.Now()})
}

func (s *MailboxSuite) callsOf(name string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []time.Time
	for _, c := range s.calls {
		if c.name == name {
			out = append(out, c.at)
		}
	}
	return out
}

func (s *MailboxSuite) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.calls))
	for i, c := range s.calls {
		out[i] = c.name
	}
	return out
}

// expectNotices lets every notice succeed and records its kind and time.
func (s *MailboxSuite) expectNotices() {
	s.env.OnActivity(contract.ActivitySendNotice, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SendNoticeInput) (activities.SendNoticeResult, error) {
			s.record("notice:" + string(in.Kind))
			return activities.SendNoticeResult{MessageID: contract.NoticeMessageID(in.Mailbox.Key, in.Kind), Attempt: 1}, nil
		})
}

func (s *MailboxSuite) expectCopies() {
	s.env.OnActivity(contract.ActivityCopyMailbox, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.CopyInput) (activities.CopyResult, error) {
			s.record("copy:" + string(in.Pass))
			return activities.CopyResult{Stats: contract.CopyStats{Items: 10, Bytes: 1000}, Attempt: 1}, nil
		})
}

func (s *MailboxSuite) expectCutover() {
	s.env.OnActivity(contract.ActivityCutover, mock.Anything, mock.Anything).Return(
		func(_ context.Context, _ activities.CutoverInput) (activities.CutoverResult, error) {
			s.record("cutover")
			return activities.CutoverResult{Attempt: 1}, nil
		}).Once()
}

func (s *MailboxSuite) input(migrateIn time.Duration) contract.MailboxInput {
	return contract.MailboxInput{
		Mailbox:   contract.MailboxRef{Key: "k1", Address: "a.user@trust.nhs.example"},
		WaveID:    "wave-1",
		MigrateAt: s.env.Now().Add(migrateIn),
	}
}

func (s *MailboxSuite) result() contract.MailboxResult {
	s.Require().True(s.env.IsWorkflowCompleted())
	s.Require().NoError(s.env.GetWorkflowError())
	var res contract.MailboxResult
	s.Require().NoError(s.env.GetWorkflowResult(&res))
	return res
}

func (s *MailboxSuite) query() contract.MailboxState {
	v, err := s.env.QueryWorkflow(contract.QueryState)
	s.Require().NoError(err)
	var st contract.MailboxState
	s.Require().NoError(v.Get(&st))
	return st
}

func (s *MailboxSuite) TestNoticesAtLeadTimesAndCopyAtT() {
	s.expectNotices()
	s.expectCopies()
	s.expectCutover()
	in := s.input(20 * 24 * time.Hour)
	s.env.ExecuteWorkflow(MailboxMigration, in)

	res := s.result()
	s.Equal(contract.OutcomeMigrated, res.Outcome)
	s.Equal(int64(20), res.Copied.Items)
	s.Equal([]string{"notice:t14", "notice:t1", "copy:bulk", "copy:delta", "cutover", "notice:success"}, s.names())
	s.WithinDuration(in.MigrateAt.Add(-14*24*time.Hour), s.callsOf("notice:t14")[0], time.Second)
	s.WithinDuration(in.MigrateAt.Add(-24*time.Hour), s.callsOf("notice:t1")[0], time.Second)
	s.WithinDuration(in.MigrateAt, s.callsOf("copy:bulk")[0], time.Second)
	s.False(s.callsOf("cutover")[0].Before(in.MigrateAt), "cutover ran before T")
}

func (s *MailboxSuite) TestCustomLeadTimes() {
	s.expectNotices()
	s.expectCopies()
	s.expectCutover()
	in := s.input(time.Hour)
	in.NoticeLead, in.ReminderLead = 30*time.Minute, 5*time.Minute
	s.env.ExecuteWorkflow(MailboxMigration, in)

	s.Equal(contract.OutcomeMigrated, s.result().Outcome)
	s.WithinDuration(in.MigrateAt.Add(-30*time.Minute), s.callsOf("notice:t14")[0], time.Second)
	s.WithinDuration(in.MigrateAt.Add(-5*time.Minute), s.callsOf("notice:t1")[0], time.Second)
}

func (s *MailboxSuite) TestTransientCopyErrorThenSuccess() {
	s.expectNotices()
	s.env.OnActivity(contract.ActivityCopyMailbox, mock.Anything, mock.Anything).Return(
		activities.CopyResult{}, temporal.NewApplicationError("connection reset", contract.ErrTypeTransient)).Once()
	s.expectCopies()
	s.expectCutover()
	s.env.ExecuteWorkflow(MailboxMigration, s.input(20*24*time.Hour))

	res := s.result()
	s.Equal(contract.OutcomeMigrated, res.Outcome)
	s.Len(s.callsOf("copy:bulk"), 1, "the successful retry of the bulk pass")
	s.Len(s.callsOf("cutover"), 1)
}

func (s *MailboxSuite) TestPermanentErrorNeedsSupportNamingTheStep() {
	s.expectNotices()
	s.env.OnActivity(contract.ActivityCopyMailbox, mock.Anything, mock.Anything).Return(activities.CopyResult{},
		temporal.NewNonRetryableApplicationError("mailbox k1 not found at source", contract.ErrTypeMailboxNotFound, nil)).Once()
	s.env.ExecuteWorkflow(MailboxMigration, s.input(20*24*time.Hour))

	res := s.result()
	s.Equal(contract.OutcomeNeedsSupport, res.Outcome)
	s.Equal(contract.StepCopyBulk, res.FailedStep)
	s.Equal(contract.ErrTypeMailboxNotFound, res.ErrorType)
	s.Contains(res.Reason, "not found")
	s.Empty(s.callsOf("cutover"))
	s.Empty(s.callsOf("notice:success"))
	s.Len(s.callsOf("notice:failure"), 1, "the organisation's admin is told once")
	st := s.query()
	s.Equal(contract.StageNeedsSupport, st.Stage)
	s.Contains(st.LastError, "not found")
}

func (s *MailboxSuite) TestFailureNoticeCarriesTheReasonAndItsFailureChangesNothing() {
	var failure *contract.Failure
	s.env.OnActivity(contract.ActivitySendNotice, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SendNoticeInput) (activities.SendNoticeResult, error) {
			if in.Kind == contract.NoticeFailure {
				failure = in.Failure
				return activities.SendNoticeResult{}, temporal.NewNonRetryableApplicationError("no admin contact", contract.ErrTypeNoticeNotSent, nil)
			}
			return activities.SendNoticeResult{Attempt: 1}, nil
		})
	s.env.OnActivity(contract.ActivityCopyMailbox, mock.Anything, mock.Anything).Return(activities.CopyResult{},
		temporal.NewNonRetryableApplicationError("2 bad items", contract.ErrTypeBadItems, nil)).Once()
	s.env.ExecuteWorkflow(MailboxMigration, s.input(20*24*time.Hour))

	res := s.result()
	s.Equal(contract.OutcomeNeedsSupport, res.Outcome)
	s.Equal(contract.ErrTypeBadItems, res.ErrorType, "the failed notice does not replace the mailbox's own error")
	s.Require().NotNil(failure)
	s.Equal(contract.Failure{Step: string(contract.StepCopyBulk), ErrorType: contract.ErrTypeBadItems, Reason: res.Reason}, *failure)
}

func (s *MailboxSuite) TestDeltaStartsWhereTheBulkPassEnded() {
	s.expectNotices()
	s.expectCutover()
	bulkEnd := contract.Checkpoint{Folders: map[string]contract.FolderCheckpoint{"INBOX": {UIDValidity: 7, LastUID: 42}}}
	var deltaFrom contract.Checkpoint
	s.env.OnActivity(contract.ActivityCopyMailbox, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.CopyInput) (activities.CopyResult, error) {
			if in.Pass == contract.PassBulk {
				s.Empty(in.From.Folders)
				return activities.CopyResult{Attempt: 1, Checkpoint: bulkEnd}, nil
			}
			deltaFrom = in.From
			return activities.CopyResult{Attempt: 1, Checkpoint: bulkEnd}, nil
		}).Twice()
	s.env.ExecuteWorkflow(MailboxMigration, s.input(20*24*time.Hour))

	s.Equal(contract.OutcomeMigrated, s.result().Outcome)
	s.Equal(bulkEnd, deltaFrom)
}

func (s *MailboxSuite) TestPauseHoldsBeforeNextStepAndResumeReleases() {
	s.expectNotices()
	s.expectCopies()
	s.expectCutover()
	in := s.input(20 * 24 * time.Hour)
	reminderAt := in.MigrateAt.Add(-24 * time.Hour)
	start := s.env.Now()
	var heldStage contract.Stage
	var heldCalls int
	// Pause after the T-14 notice, look while paused past T-1, resume later.
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(contract.SignalPause, contract.PauseRequest{Reason: "test"})
	}, reminderAt.Add(-time.Hour).Sub(start))
	s.env.RegisterDelayedCallback(func() {
		heldStage = s.query().Stage
		heldCalls = len(s.names())
	}, reminderAt.Add(5*time.Hour).Sub(start))
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(contract.SignalResume, nil)
	}, reminderAt.Add(6*time.Hour).Sub(start))
	s.env.ExecuteWorkflow(MailboxMigration, in)

	s.Equal(contract.OutcomeMigrated, s.result().Outcome)
	s.Equal(contract.StagePaused, heldStage)
	s.Equal(1, heldCalls, "only the T-14 notice went out while paused")
	s.WithinDuration(reminderAt.Add(6*time.Hour), s.callsOf("notice:t1")[0], time.Second, "the reminder went out on resume")
}

func (s *MailboxSuite) TestCutoverNeverRunsWithoutTheNotice() {
	s.env.OnActivity(contract.ActivitySendNotice, mock.Anything, mock.Anything).Return(activities.SendNoticeResult{},
		temporal.NewNonRetryableApplicationError("relay refused the recipient", "Rejected", nil)).Once()
	s.env.ExecuteWorkflow(MailboxMigration, s.input(20*24*time.Hour))

	res := s.result()
	s.Equal(contract.OutcomeNeedsSupport, res.Outcome)
	s.Equal(contract.StepNoticeT14, res.FailedStep)
	s.Empty(s.callsOf("copy:bulk"))
	s.Empty(s.callsOf("cutover"))
}

// An organisation whose routing lives on its mail server's host cuts over
// there: a regular activity on that host's task queue. Others cut over on
// the worker that runs the mailbox, as a local activity.
func (s *MailboxSuite) TestCutoverRunsOnTheRoutingHostsQueue() {
	for _, queue := range []string{"mta-1", ""} {
		s.Run("queue "+queue, func() {
			s.SetupTest()
			s.expectNotices()
			s.expectCopies()
			s.env.OnActivity(contract.ActivityCutoverQueue, mock.Anything, mock.Anything).Return(queue, nil).Once()
			var info activity.Info
			s.env.OnActivity(contract.ActivityCutover, mock.Anything, mock.Anything).Return(
				func(ctx context.Context, _ activities.CutoverInput) (activities.CutoverResult, error) {
					info = activity.GetInfo(ctx)
					return activities.CutoverResult{Attempt: 1}, nil
				}).Once()
			s.env.ExecuteWorkflow(MailboxMigration, s.input(20*24*time.Hour))

			s.Equal(contract.OutcomeMigrated, s.result().Outcome)
			if queue != "" {
				s.Equal(queue, info.TaskQueue)
				s.False(info.IsLocalActivity)
			} else {
				s.True(info.IsLocalActivity)
			}
			s.env.AssertExpectations(s.T())
		})
	}
}

func (s *MailboxSuite) TestCancelBeforeCutoverStopsCleanly() {
	s.expectNotices()
	in := s.input(20 * 24 * time.Hour)
	s.env.RegisterDelayedCallback(s.env.CancelWorkflow, 10*24*time.Hour)
	s.env.ExecuteWorkflow(MailboxMigration, in)

	res := s.result()
	s.Equal(contract.OutcomeCancelled, res.Outcome)
	s.Equal([]string{"notice:t14"}, s.names())
}

func (s *MailboxSuite) TestSearchAttributesFollowTheStage() {
	s.expectNotices()
	s.expectCopies()
	s.expectCutover()
	var stages []string
	s.env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		sa, isSA := args.Get(0).(temporal.SearchAttributes)
		s.Require().True(isSA, "upsert of %T", args.Get(0))
		v, ok := sa.GetKeyword(searchattr.Stage)
		if !ok {
			return // the organisation, a pause, an error type
		}
		_, ok = sa.GetTime(searchattr.StageSince)
		s.True(ok, "every upsert of the stage carries the time it began")
		stages = append(stages, v)
	}).Return(nil)
	s.env.OnUpsertMemo(mock.Anything).Return(nil)
	s.env.ExecuteWorkflow(MailboxMigration, s.input(20*24*time.Hour))
	s.Equal(contract.OutcomeMigrated, s.result().Outcome)
	s.Equal([]string{"scheduled", "waiting_t1", "waiting_start", "copying", "migrated"}, stages,
		"published where the mailbox blocks, not before each short local step")
}

// upserts records every search attribute upsert and memo upsert, as the
// mock clock's times they happened at.
type upserts struct {
	attrs []temporal.SearchAttributes
	at    []time.Time
	memos []map[string]any
}

func (s *MailboxSuite) recordUpserts() *upserts {
	u := &upserts{}
	s.env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		u.attrs = append(u.attrs, args.Get(0).(temporal.SearchAttributes))
		u.at = append(u.at, s.env.Now())
	}).Return(nil)
	s.env.OnUpsertMemo(mock.Anything).Run(func(args mock.Arguments) {
		u.memos = append(u.memos, args.Get(0).(map[string]any))
	}).Return(nil)
	return u
}

// paused lists the MailwavePaused values upserted, with when.
func (u *upserts) paused() (values []bool, at []time.Time) {
	for i, sa := range u.attrs {
		if v, ok := sa.GetBool(searchattr.Paused); ok {
			values, at = append(values, v), append(at, u.at[i])
		}
	}
	return values, at
}

// TestAPauseShowsAtOnce: a pause sent long before the next step shows in
// MailwavePaused at the moment it arrives (not at the step), and the
// resume clears it; the organisation is published at the start.
func (s *MailboxSuite) TestAPauseShowsAtOnce() {
	s.expectNotices()
	s.expectCopies()
	s.expectCutover()
	u := s.recordUpserts()
	in := s.input(20 * 24 * time.Hour)
	in.Mailbox.Org = "trust-a"
	start := s.env.Now()
	pauseAt, resumeAt := 3*24*time.Hour, 4*24*time.Hour
	var details string
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(contract.SignalPause, contract.PauseRequest{Reason: "asked by the trust"})
	}, pauseAt)
	s.env.RegisterDelayedCallback(func() {
		v, err := s.env.QueryWorkflow("__temporal_workflow_metadata")
		s.Require().NoError(err)
		var md sdkpb.WorkflowMetadata
		s.Require().NoError(v.Get(&md))
		details = md.GetCurrentDetails()
	}, pauseAt+time.Hour)
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(contract.SignalResume, nil)
	}, resumeAt)
	s.env.ExecuteWorkflow(MailboxMigration, in)
	s.Equal(contract.OutcomeMigrated, s.result().Outcome)

	values, at := u.paused()
	s.Equal([]bool{true, false}, values)
	s.Require().Len(at, 2)
	s.Equal(start.Add(pauseAt), at[0], "the pause shows when it arrives, in the scheduled stage")
	s.Equal(start.Add(resumeAt), at[1])
	org, ok := u.attrs[0].GetKeyword(searchattr.Org)
	s.True(ok && org == "trust-a", "the organisation is published first: %v", u.attrs[0])
	s.Contains(details, "scheduled since")
	s.Contains(details, "paused by an operator")
	s.NotContains(details, "asked by the trust", "the operator's free text stays out of the details")
}

// TestTheEndIsPublished: a mailbox that needs support publishes its error
// type, and every finished mailbox its summary in its memo, graded, with
// no address in it.
func (s *MailboxSuite) TestTheEndIsPublished() {
	s.expectNotices()
	s.env.OnActivity(contract.ActivityCopyMailbox, mock.Anything, mock.Anything).Return(activities.CopyResult{},
		temporal.NewNonRetryableApplicationError("mailbox k1 not found at source", contract.ErrTypeMailboxNotFound, nil)).Once()
	u := s.recordUpserts()
	in := s.input(20 * 24 * time.Hour)
	in.Mailbox.Org = "trust-a"
	s.env.ExecuteWorkflow(MailboxMigration, in)
	s.Equal(contract.OutcomeNeedsSupport, s.result().Outcome)

	last := u.attrs[len(u.attrs)-1]
	et, ok := last.GetKeyword(searchattr.ErrorType)
	s.True(ok)
	s.Equal(contract.ErrTypeMailboxNotFound, et)
	s.Require().Len(u.memos, 1)
	sum, ok := u.memos[0][contract.MemoSummary].(contract.MailboxSummary)
	s.Require().True(ok, "%T", u.memos[0][contract.MemoSummary])
	s.Equal("k1", sum.Key)
	s.Equal("trust-a", sum.Org)
	s.Equal("wave-1", sum.WaveID)
	s.Equal(contract.StepCopyBulk, sum.FailedStep)
	s.Equal(contract.ConsistencyPoor, sum.Consistency)
	s.Equal([]contract.NoticeKind{contract.NoticeT14, contract.NoticeT1}, sum.NoticesSent)
	s.NotContains(fmt.Sprintf("%+v", sum), "@")
}

func TestInputValidation(t *testing.T) {
	at := time.Date(2026, 12, 5, 20, 0, 0, 0, time.UTC)
	ok := contract.MailboxInput{Mailbox: contract.MailboxRef{Key: "k", Address: "a@b.example"}, MigrateAt: at}
	require.NoError(t, ok.Validate())
	cases := []struct {
		name string
		mut  func(*contract.MailboxInput)
		want string
	}{
		{"no key", func(in *contract.MailboxInput) { in.Mailbox.Key = "" }, "key is empty"},
		{"no address", func(in *contract.MailboxInput) { in.Mailbox.Address = "" }, "no address"},
		{"no time", func(in *contract.MailboxInput) { in.MigrateAt = time.Time{} }, "no migration time"},
		{"negative lead", func(in *contract.MailboxInput) { in.NoticeLead = -time.Hour }, "negative lead"},
		{"reminder after notice", func(in *contract.MailboxInput) { in.NoticeLead, in.ReminderLead = time.Hour, 2*time.Hour }, "longer than notice lead"},
	}
	for _, tc := range cases {
		in := ok
		tc.mut(&in)
		require.ErrorContains(t, in.Validate(), tc.want, tc.name)
	}
}

// waveInput is a mailbox of wave "wave-1" at index 7.
func (s *MailboxSuite) waveInput(migrateIn time.Duration) contract.MailboxInput {
	in := s.input(migrateIn)
	in.WaveWorkflowID, in.WaveIndex = contract.WaveWorkflowID("wave-1"), 7
	return in
}

// expectReport captures the done report sent to the wave.
func (s *MailboxSuite) expectReport(got *contract.MailboxDone) {
	s.env.OnActivity(contract.ActivityReportDone, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ReportDoneInput) error {
			s.Equal(contract.WaveWorkflowID("wave-1"), in.WaveWorkflowID)
			*got = in.Done
			s.record("report")
			return nil
		}).Once()
}

func (s *MailboxSuite) TestInAWaveItCopiesOnlyOnceGrantedAndReports() {
	s.expectNotices()
	s.expectCopies()
	s.expectCutover()
	var done contract.MailboxDone
	s.expectReport(&done)
	in := s.waveInput(20 * 24 * time.Hour)
	grantAt := in.MigrateAt.Add(3 * time.Hour)
	var waiting contract.Stage
	s.env.RegisterDelayedCallback(func() {
		waiting = s.query().Stage
		s.env.SignalWorkflow(contract.SignalSlotGrant, contract.SlotGrant{WaveID: "another-wave", Index: 7})
		s.env.SignalWorkflow(contract.SignalSlotGrant, contract.SlotGrant{WaveID: "wave-1", Index: 8})
	}, grantAt.Add(-time.Hour).Sub(s.env.Now()))
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(contract.SignalSlotGrant, contract.SlotGrant{WaveID: "wave-1", Index: 7})
	}, grantAt.Sub(s.env.Now()))
	s.env.ExecuteWorkflow(MailboxMigration, in)

	s.Equal(contract.OutcomeMigrated, s.result().Outcome)
	s.Equal(contract.StageWaitingSlot, waiting, "at T it waits for its wave")
	s.WithinDuration(grantAt, s.callsOf("copy:bulk")[0], time.Second, "a grant from another wave, or for another mailbox of its wave, is ignored; its own starts the copy")
	s.Equal(contract.MailboxDone{Index: 7, Key: "k1", Outcome: contract.OutcomeMigrated, Granted: true, Copied: contract.CopyStats{Items: 20, Bytes: 2000}}, done)
	names := s.names()
	s.Equal("report", names[len(names)-1], "the wave hears last, after the success notice")
}

func (s *MailboxSuite) TestInAWaveTheWaveHoldIsNotTheOperatorsPause() {
	s.expectNotices()
	s.expectCopies()
	s.expectCutover()
	var done contract.MailboxDone
	s.expectReport(&done)
	in := s.waveInput(time.Hour)
	in.NoticeLead, in.ReminderLead = 30*time.Minute, 10*time.Minute
	start := s.env.Now()
	at := func(d time.Duration) time.Duration { return in.MigrateAt.Add(d).Sub(start) }
	s.env.RegisterDelayedCallback(func() { s.env.SignalWorkflow(contract.SignalSlotGrant, contract.SlotGrant{WaveID: "wave-1", Index: 7}) }, at(0))
	// Held by its wave and paused by an operator, before the copy.
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(contract.SignalPause, contract.PauseRequest{Reason: "wave", ByWave: true})
		s.env.SignalWorkflow(contract.SignalPause, contract.PauseRequest{Reason: "operator"})
	}, at(-time.Minute))
	// The wave resumes: still paused by the operator.
	s.env.RegisterDelayedCallback(func() { s.env.SignalWorkflow(contract.SignalResume, contract.ResumeRequest{ByWave: true}) }, at(time.Hour))
	s.env.RegisterDelayedCallback(func() { s.env.SignalWorkflow(contract.SignalResume, contract.ResumeRequest{}) }, at(2*time.Hour))
	s.env.ExecuteWorkflow(MailboxMigration, in)

	s.Equal(contract.OutcomeMigrated, s.result().Outcome)
	s.WithinDuration(in.MigrateAt.Add(2*time.Hour), s.callsOf("copy:bulk")[0], time.Second, "copy waits for both to let go")
}

func (s *MailboxSuite) TestInAWaveAFailureIsReportedWithoutASlot() {
	s.env.OnActivity(contract.ActivitySendNotice, mock.Anything, mock.Anything).Return(activities.SendNoticeResult{},
		temporal.NewNonRetryableApplicationError("no such recipient", "Rejected", nil)).Once()
	var done contract.MailboxDone
	s.expectReport(&done)
	s.env.ExecuteWorkflow(MailboxMigration, s.waveInput(20*24*time.Hour))

	s.Equal(contract.OutcomeNeedsSupport, s.result().Outcome)
	s.Equal(contract.MailboxDone{Index: 7, Key: "k1", Outcome: contract.OutcomeNeedsSupport, Step: contract.StepNoticeT14, ErrorType: "Rejected"}, done)
}
