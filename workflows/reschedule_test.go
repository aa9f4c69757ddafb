package workflows

import (
	"context"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"mailwave/activities"
	"mailwave/contract"
)

// rescheduled is what an update to the mailbox came back with.
type rescheduled struct {
	accepted bool
	result   contract.RescheduleResult
	err      error // the validator's refusal, or the handler's error
}

// reschedule sends the reschedule update after d (on the workflow's clock)
// and keeps its answer in got.
func (s *MailboxSuite) reschedule(d time.Duration, req func() contract.RescheduleRequest, got *rescheduled) {
	s.env.RegisterDelayedCallback(func() {
		s.env.UpdateWorkflow(contract.UpdateReschedule, "", &testsuite.TestUpdateCallback{
			OnAccept: func() { got.accepted = true },
			OnReject: func(err error) { got.err = err },
			OnComplete: func(v any, err error) {
				if err != nil {
					got.err = err
					return
				}
				if r, ok := v.(contract.RescheduleResult); ok {
					got.result = r
				}
			},
		}, req())
	}, d)
}

// expectReserve lets the reservation succeed and keeps what was asked.
func (s *MailboxSuite) expectReserve(got *activities.ReserveNightInput) {
	s.env.OnActivity(contract.ActivityReserveNight, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ReserveNightInput) error {
			*got = in
			s.record("reserve")
			return nil
		}).Once()
}

// expectNoticesAt is expectNotices keeping each notice's MigrateAt.
func (s *MailboxSuite) expectNoticesAt(at map[contract.NoticeKind]time.Time) {
	s.env.OnActivity(contract.ActivitySendNotice, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SendNoticeInput) (activities.SendNoticeResult, error) {
			s.record("notice:" + string(in.Kind))
			s.mu.Lock()
			at[in.Kind] = in.MigrateAt
			s.mu.Unlock()
			return activities.SendNoticeResult{Attempt: 1}, nil
		})
}

// TestRescheduleBeforeTheNotice: moved before its T-14, the mailbox is
// told nothing (its user never heard of the first date), ends deferred
// (Rescheduled) in its wave, and is kept in the estate for its new night.
func (s *MailboxSuite) TestRescheduleBeforeTheNotice() {
	var reserved activities.ReserveNightInput
	s.expectReserve(&reserved)
	var done contract.MailboxDone
	s.expectReport(&done)
	in := s.waveInput(20 * 24 * time.Hour)
	in.MigrateAt = in.MigrateAt.UTC() // as it comes back from a payload
	to := in.MigrateAt.Add(7 * 24 * time.Hour)
	var got, again rescheduled
	s.reschedule(2*24*time.Hour, func() contract.RescheduleRequest {
		return contract.RescheduleRequest{To: to, Reason: "on leave that week (asked by J. Smith)", By: "ops-1"}
	}, &got)
	// A second at the same moment: the first has it.
	s.reschedule(2*24*time.Hour, func() contract.RescheduleRequest { return contract.RescheduleRequest{To: to.Add(time.Hour)} }, &again)
	s.env.ExecuteWorkflow(MailboxMigration, in)

	res := s.result()
	s.True(got.accepted)
	s.NoError(got.err)
	s.Equal(contract.RescheduleResult{From: in.MigrateAt, To: to, Corrected: false}, got.result)
	s.Equal(contract.OutcomeDeferred, res.Outcome)
	s.Equal(contract.ErrTypeRescheduled, res.ErrorType)
	s.Equal(contract.StepReschedule, res.FailedStep)
	s.NotContains(res.Reason, "J. Smith", "the operator's words stay out of the result")
	s.Equal(activities.ReserveNightInput{Key: "k1", At: to}, reserved)
	s.Equal(contract.MailboxDone{Index: 7, Key: "k1", Outcome: contract.OutcomeDeferred, Step: contract.StepReschedule, ErrorType: contract.ErrTypeRescheduled}, done)
	s.Equal([]string{"reserve", "report"}, s.names(), "no notice at all (the first date was never told), kept for its night, then its wave told")
	s.WithinDuration(in.MigrateAt.Add(-18*24*time.Hour), s.callsOf("report")[0], time.Minute, "at once, not at its old T-14")
	st := s.query()
	s.Require().NotNil(st.Rescheduled)
	s.Equal("ops-1", st.Rescheduled.By)
	s.Equal("on leave that week (asked by J. Smith)", st.Rescheduled.Reason, "kept in the state")
	s.Equal(contract.StageDeferred, st.Stage)
	s.False(again.accepted)
	s.ErrorContains(again.err, "is being moved to")
}

// TestRescheduleAfterTheNotice: moved after its T-14 notice went out, the
// mailbox's user is sent the corrected notice with the new T; no reminder,
// no admin notice; deferred, reserved, its wave told.
func (s *MailboxSuite) TestRescheduleAfterTheNotice() {
	notices := map[contract.NoticeKind]time.Time{}
	s.expectNoticesAt(notices)
	var reserved activities.ReserveNightInput
	s.expectReserve(&reserved)
	var done contract.MailboxDone
	s.expectReport(&done)
	in := s.waveInput(20 * 24 * time.Hour)
	in.MigrateAt = in.MigrateAt.UTC() // as it comes back from a payload
	to := in.MigrateAt.Add(14 * 24 * time.Hour)
	var got rescheduled
	s.reschedule(10*24*time.Hour, func() contract.RescheduleRequest {
		return contract.RescheduleRequest{To: to, Reason: "clinic week", By: "ops-2"}
	}, &got)
	s.env.ExecuteWorkflow(MailboxMigration, in)

	res := s.result()
	s.True(got.accepted)
	s.Equal(contract.RescheduleResult{From: in.MigrateAt, To: to, Corrected: true}, got.result)
	s.Equal(map[contract.NoticeKind]time.Time{contract.NoticeT14: in.MigrateAt, contract.NoticeRescheduled: to}, notices,
		"the T-14 with the old date, the correction with the new; no reminder, no admin notice")
	s.Equal([]string{"notice:t14", "reserve", "notice:rescheduled", "report"}, s.names(), "kept for its new night before its user is told it")
	s.Equal(contract.OutcomeDeferred, res.Outcome)
	s.Equal(contract.ErrTypeRescheduled, res.ErrorType)
	s.Equal(activities.ReserveNightInput{Key: "k1", At: to}, reserved)
	s.Equal(contract.OutcomeDeferred, done.Outcome)
	s.Equal(contract.ErrTypeRescheduled, done.ErrorType)
	st := s.query()
	s.Equal([]contract.NoticeKind{contract.NoticeT14, contract.NoticeRescheduled}, st.NoticesSent)
	s.True(st.Rescheduled.Corrected)
}

// TestARescheduleTheEstateCannotKeep: moved after its T-14 notice, but the
// estate refuses to keep it for that night (the night of that date chosen
// already): its user is not told a date nobody keeps; it needs support,
// its admin told, and the operator's answer says why.
func (s *MailboxSuite) TestARescheduleTheEstateCannotKeep() {
	notices := map[contract.NoticeKind]time.Time{}
	s.expectNoticesAt(notices)
	s.env.OnActivity(contract.ActivityReserveNight, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.ReserveNightInput) error {
			s.record("reserve")
			return temporal.NewNonRetryableApplicationError("the night of 2027-01-18 has been chosen already", "NightChosen", nil)
		})
	var done contract.MailboxDone
	s.expectReport(&done)
	in := s.waveInput(20 * 24 * time.Hour)
	in.MigrateAt = in.MigrateAt.UTC()
	to := in.MigrateAt.Add(14 * 24 * time.Hour)
	var got rescheduled
	s.reschedule(10*24*time.Hour, func() contract.RescheduleRequest { return contract.RescheduleRequest{To: to} }, &got)
	s.env.ExecuteWorkflow(MailboxMigration, in)

	res := s.result()
	s.True(got.accepted)
	s.False(got.result.Corrected)
	s.Contains(got.result.NotKept, "has been chosen already")
	s.Equal(contract.OutcomeNeedsSupport, res.Outcome)
	s.Equal(contract.ErrTypeRescheduleNotKept, res.ErrorType)
	_, corrected := notices[contract.NoticeRescheduled]
	s.False(corrected, "no correction to a date nobody keeps")
	_, admin := notices[contract.NoticeFailure]
	s.True(admin, "its admin told")
	s.Equal(contract.OutcomeNeedsSupport, done.Outcome)
}

// TestRescheduleRefused: each move the mailbox cannot take is refused with
// its reason, and the mailbox goes on to be migrated at its own T.
func (s *MailboxSuite) TestRescheduleRefused() {
	s.expectNotices()
	s.env.OnActivity(contract.ActivityPreflight, mock.Anything, mock.Anything).After(time.Hour).
		Return(activities.PreflightResult{Attempt: 1}, nil).Once()
	s.env.OnActivity(contract.ActivityCopyMailbox, mock.Anything, mock.Anything).After(2 * time.Hour).Return(
		func(_ context.Context, in activities.CopyInput) (activities.CopyResult, error) {
			s.record("copy:" + string(in.Pass))
			return activities.CopyResult{Stats: contract.CopyStats{Items: 10, Bytes: 1000}, Attempt: 1}, nil
		}).Twice()
	s.expectCutover()
	in := s.input(20 * 24 * time.Hour)
	start := s.env.Now()
	day := 24 * time.Hour
	cases := []struct {
		at      time.Duration // after the start
		to      func() time.Time
		errType string
		want    string
	}{
		{2 * day, func() time.Time { return s.env.Now().Add(13 * day) }, contract.ErrTypeRescheduleTooSoon, "closer than the notice lead 336h0m0s from now"},
		{2 * day, func() time.Time { return in.MigrateAt }, contract.ErrTypeRescheduleSameTime, "moves at " + in.MigrateAt.UTC().Format(rescheduleAt) + " already"},
		{2 * day, func() time.Time { return s.env.Now().Add(-time.Hour) }, contract.ErrTypeRescheduleNotAfterNow, "not after now"},
		{2 * day, func() time.Time { return time.Time{} }, contract.ErrTypeRescheduleNotAfterNow, "not after now"},
		{6*day + 30*time.Minute, func() time.Time { return in.MigrateAt.Add(14 * day) }, contract.ErrTypeRescheduleBusy, "busy sending its notice; try again in a minute"},
		{19*day + 12*time.Hour, func() time.Time { return in.MigrateAt.Add(14 * day) }, contract.ErrTypeRescheduleInsideT1,
			"cannot be moved inside its T-1 window: it began at " + in.MigrateAt.Add(-day).UTC().Format(rescheduleAt)},
		{20*day + time.Hour, func() time.Time { return in.MigrateAt.Add(14 * day) }, contract.ErrTypeRescheduleCopyStarted, "its copy has started"},
	}
	got := make([]rescheduled, len(cases))
	for i, c := range cases {
		s.reschedule(c.at, func() contract.RescheduleRequest { return contract.RescheduleRequest{To: c.to()} }, &got[i])
	}
	s.env.ExecuteWorkflow(MailboxMigration, in)

	s.Equal(contract.OutcomeMigrated, s.result().Outcome)
	for i, c := range cases {
		s.False(got[i].accepted, "case %d", i)
		s.ErrorContains(got[i].err, c.want, "case %d", i)
		var app *temporal.ApplicationError
		if s.ErrorAs(got[i].err, &app, "case %d", i) {
			s.Equal(c.errType, app.Type(), "case %d", i)
		}
	}
	s.Nil(s.query().Rescheduled)
	s.WithinDuration(start.Add(20*day+2*time.Hour), s.callsOf("copy:bulk")[0], time.Second, "copied at its own T (the pass taking 2 h)")
}
