package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"mailwave/activities"
	"mailwave/contract"
)

// A mailbox moved to another night by an operator (the reschedule update,
// `starter mailbox reschedule`). The validator refuses, with the reason, a
// move the mailbox cannot take; an accepted one is kept in the state and
// cancels the migration's waiting, and run ends the mailbox deferred
// (ErrTypeRescheduled): its wave counts it so, its user is told the new
// date if its T-14 notice had gone out, and the estate keeps it for the
// night of its new date, whose wave starts it again.
//
// Versioning: registering the handler and running the migration under a
// cancellable context issue no command, so every recorded history replays
// as it ran; the commands a reschedule adds (the corrected notice, the
// reservation) come only after an accepted update, which no run begun
// before it could have had. See VERSIONING.md.

// rescheduleAt is the time format of the validator's reasons.
const rescheduleAt = "2006-01-02 15:04 MST"

// setupReschedule registers the reschedule update and its validator.
func (m *mailbox) setupReschedule(ctx workflow.Context) error {
	return workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateReschedule,
		func(ctx workflow.Context, req contract.RescheduleRequest) (contract.RescheduleResult, error) {
			return m.accept(ctx, req), nil
		},
		workflow.UpdateHandlerOptions{Validator: m.validateReschedule})
}

// validateReschedule says why the mailbox cannot be moved to req.To, if it
// cannot. It reads the state and the workflow's clock only.
func (m *mailbox) validateReschedule(ctx workflow.Context, req contract.RescheduleRequest) error {
	now := workflow.Now(ctx)
	st := m.state
	notice, reminder := m.in.Leads()
	at := func(t time.Time) string { return t.UTC().Format(rescheduleAt) }
	switch {
	case st.Result != nil || m.ending:
		return refuse(contract.ErrTypeRescheduleEnded, "mailbox %s has ended (%s): only a mailbox waiting for its night can be moved", st.Key, st.Stage)
	case st.Rescheduled != nil:
		return refuse(contract.ErrTypeRescheduleBeingMoved, "mailbox %s is being moved to %s already", st.Key, at(st.Rescheduled.To))
	case !m.copyStarted.IsZero():
		return refuse(contract.ErrTypeRescheduleCopyStarted, "mailbox %s cannot be moved: its copy has started (at %s)", st.Key, at(m.copyStarted))
	case !now.Before(st.ReminderAt):
		return refuse(contract.ErrTypeRescheduleInsideT1, "mailbox %s cannot be moved inside its T-1 window: it began at %s (its T %s less the reminder lead %s)",
			st.Key, at(st.ReminderAt), at(st.MigrateAt), reminder)
	case st.Stage == contract.StagePreflight || st.Stage == contract.StageNoticeT14:
		return refuse(contract.ErrTypeRescheduleBusy, "mailbox %s is busy sending its notice; try again in a minute", st.Key)
	case req.To.IsZero() || !req.To.After(now):
		return refuse(contract.ErrTypeRescheduleNotAfterNow, "mailbox %s cannot be moved to %s: not after now (%s)", st.Key, at(req.To), at(now))
	case req.To.Equal(st.MigrateAt):
		return refuse(contract.ErrTypeRescheduleSameTime, "mailbox %s moves at %s already", st.Key, at(st.MigrateAt))
	case req.To.Before(now.Add(notice)):
		return refuse(contract.ErrTypeRescheduleTooSoon, "mailbox %s cannot be moved to %s: closer than the notice lead %s from now (%s); the earliest is %s",
			st.Key, at(req.To), notice, at(now), at(now.Add(notice)))
	}
	return nil
}

// refuse is a validator's refusal: its words, and its type for a starter
// counting refusals by reason.
func refuse(errType, format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), errType, nil)
}

// accept records an accepted reschedule, ends the migration's waiting,
// and answers once the run has ended: whether the estate kept the mailbox
// for its new night, and so whether its user is told the new date.
func (m *mailbox) accept(ctx workflow.Context, req contract.RescheduleRequest) contract.RescheduleResult {
	r := contract.Rescheduled{
		From: m.state.MigrateAt, To: req.To, By: req.By, Reason: req.Reason,
		At: workflow.Now(ctx), Corrected: m.noticeSent(contract.NoticeT14),
	}
	m.state.Rescheduled = &r
	m.details(ctx)
	// The reason and who asked are free text that may name people: kept
	// in the (encrypted) history, and logged at debug only.
	workflow.GetLogger(ctx).Info("mailbox rescheduled", "mailbox", m.state.Key, "from", r.From, "to", r.To, "corrected", r.Corrected)
	workflow.GetLogger(ctx).Debug("mailbox reschedule reason", "mailbox", m.state.Key, "by", r.By, "reason", r.Reason)
	if m.cancel != nil {
		m.cancel()
	}
	_ = workflow.Await(ctx, func() bool { return m.state.Result != nil })
	got := m.state.Rescheduled
	return contract.RescheduleResult{From: got.From, To: got.To, Corrected: got.Corrected, NotKept: got.NotKept}
}

// rescheduledReason is a rescheduled mailbox's reason in its result: no
// operator's words (they may name people), only the dates.
func rescheduledReason(r contract.Rescheduled) string {
	return fmt.Sprintf("moved by an operator from %s to %s", r.From.UTC().Format(rescheduleAt), r.To.UTC().Format(rescheduleAt))
}

// keepForNight asks the estate to keep the mailbox for its new night, on
// a disconnected context (the migration's was cancelled), and says why it
// could not ("" when it did): a mailbox not in the estate (started from a
// wave file by hand), a leaver, the night of that date chosen already.
func (m *mailbox) keepForNight(ctx workflow.Context, r contract.Rescheduled) string {
	done, _ := workflow.NewDisconnectedContext(ctx)
	actx := workflow.WithActivityOptions(done, workflow.ActivityOptions{
		StartToCloseTimeout:    time.Minute,
		ScheduleToCloseTimeout: 10 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
		},
		Summary: "keep the mailbox for its new night",
	})
	err := workflow.ExecuteActivity(actx, contract.ActivityReserveNight, activities.ReserveNightInput{
		Key: m.state.Key, At: r.To,
	}).Get(done, nil)
	if err == nil {
		return ""
	}
	workflow.GetLogger(ctx).Warn("the mailbox was not kept for its new night", "mailbox", m.state.Key, "error", err)
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Error()
	}
	return "the estate did not answer"
}

// correct sends the corrected notice to its user, if its T-14 notice went
// out, once the estate keeps the mailbox for its new night; best effort (a
// notice that cannot be sent is logged).
func (m *mailbox) correct(ctx workflow.Context, r contract.Rescheduled) {
	if !r.Corrected {
		return
	}
	done, _ := workflow.NewDisconnectedContext(ctx)
	var res activities.SendNoticeResult
	err := workflow.ExecuteLocalActivity(shortStepOptions(done), contract.ActivitySendNotice, activities.SendNoticeInput{
		Mailbox: m.in.Mailbox, Kind: contract.NoticeRescheduled, MigrateAt: r.To,
	}).Get(done, &res)
	if err != nil {
		workflow.GetLogger(ctx).Warn("the corrected notice was not sent", "mailbox", m.state.Key, "error", err)
		return
	}
	m.state.NoticesSent = append(m.state.NoticesSent, contract.NoticeRescheduled)
	m.details(ctx)
}
