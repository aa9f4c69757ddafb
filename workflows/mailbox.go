package workflows

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"mailwave/activities"
	"mailwave/contract"
	"mailwave/contract/searchattr"
)

// MailboxMigration is one mailbox's whole migration:
//
//	wait until T-14 -> preflight -> notice -> wait until T-1 -> reminder
//	  -> wait until T -> copy (bulk, then delta) -> cutover -> success notice
//
// A step that fails after its retries ends the mailbox in "needs support",
// naming the step and the reason; a preflight that finds it cannot go ends
// it "deferred", nobody told but its admin; an operator's reschedule
// (before its T-1, see reschedule.go) ends it "deferred" too, its user
// told the new date if the T-14 notice had gone out, and keeps it in the
// estate for its new night; the workflow itself completes normally.
func MailboxMigration(ctx workflow.Context, in contract.MailboxInput) (contract.MailboxResult, error) {
	if err := in.Validate(); err != nil {
		return contract.MailboxResult{}, temporal.NewNonRetryableApplicationError(err.Error(), contract.ErrTypeInvalidInput, nil)
	}
	m := newMailbox(ctx, in)
	if err := m.setup(ctx); err != nil {
		return contract.MailboxResult{}, err
	}
	res := m.run(ctx)
	// A reschedule's answer waits for the run's end (whether the move was
	// kept); the run does not end before it is given. No command.
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return res, err
	}
	return res, nil
}

// Change IDs for workflow.GetVersion: each names a change to the commands a
// mailbox issues, so runs begun before it replay as they ran. VERSIONING.md
// lists them with their dates, their histories and when each may go.
const (
	// changeAdminFailureNotice: a mailbox that needs support sends its
	// organisation's admin a failure notice. Its old branch is retired.
	changeAdminFailureNotice = "admin-failure-notice"
	// changeCutoverQueue: the cutover runs on the task queue of the
	// organisation's routing host where it has one (asked of a local
	// activity), as a regular activity that waits for that host's worker.
	changeCutoverQueue = "cutover-router-queue"
	// changeOperatorVisibility: a mailbox publishes its organisation, a
	// pause the moment it arrives, and how it ended (error type; a summary
	// in its memo for reports) as search attributes and memo.
	changeOperatorVisibility = "operator-visibility"
	// changePreflight: a mailbox is checked (the Preflight activity)
	// before its T-14 notice; one that cannot go is deferred, its admin
	// told, and no notice sent.
	changePreflight = "preflight-before-notice"
)

type mailbox struct {
	in        contract.MailboxInput
	state     contract.MailboxState
	startedAt time.Time
	published contract.Stage // the stage last upserted as a search attribute
	// visible: this run publishes what changeOperatorVisibility adds;
	// pausedShown is the MailwavePaused value last upserted.
	visible     bool
	pausedShown bool
	ended       bool      // the end is published: a later hold is not shown
	copyStarted time.Time // when the first copy pass began
	// checkpoint is where the last copy pass ended; the next pass starts there.
	checkpoint contract.Checkpoint
	// cancel ends the migration's waiting when a reschedule is accepted;
	// ending: the migration has returned, and nothing may move it now.
	cancel workflow.CancelFunc
	ending bool
	// pre is a pre-staged mailbox's passes before T (prestage.go), from its
	// T-14 notice on; nil otherwise.
	pre *prestager
}

// deferred is a preflight's "cannot go": its reason (one of
// contract.DeferReasons).
type deferred struct{ reason string }

func (e *deferred) Error() string { return "deferred: " + e.reason }

// stepError is a step's failure after its retries.
type stepError struct {
	step contract.Step
	err  error
}

func (e *stepError) Error() string { return string(e.step) + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

func newMailbox(ctx workflow.Context, in contract.MailboxInput) *mailbox {
	notice, reminder := in.Leads()
	now := workflow.Now(ctx)
	return &mailbox{
		in:        in,
		startedAt: now,
		state: contract.MailboxState{
			Key:        in.Mailbox.Key,
			WaveID:     in.WaveID,
			Stage:      contract.StageScheduled,
			StageSince: now,
			MigrateAt:  in.MigrateAt,
			NoticeAt:   in.MigrateAt.Add(-notice),
			ReminderAt: in.MigrateAt.Add(-reminder),
			Attempts:   map[contract.Step]int32{},
		},
	}
}

// setup registers the query and the pause/resume signals, and publishes the
// first stage unless whoever started the workflow already set it.
func (m *mailbox) setup(ctx workflow.Context) error {
	m.visible = workflow.GetVersion(ctx, changeOperatorVisibility, workflow.DefaultVersion, 1) == 1
	if err := workflow.SetQueryHandler(ctx, contract.QueryState, func() (contract.MailboxState, error) {
		return m.state, nil
	}); err != nil {
		return err
	}
	// An operator's pause and the wave's hold are kept apart: each lifts
	// only its own.
	hold := func(byWave, on bool) {
		if byWave {
			m.state.HeldByWave = on
		} else {
			m.state.Paused = on
		}
		if on {
			m.interruptPrestage()
		}
		m.showPaused(ctx)
	}
	if err := m.setupReschedule(ctx); err != nil {
		return err
	}
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(workflow.GetSignalChannel(ctx, contract.SignalPause), func(c workflow.ReceiveChannel, _ bool) {
		var req contract.PauseRequest
		c.Receive(ctx, &req)
		hold(req.ByWave, true)
		// An operator's reason is free text that may name people: it is
		// kept in the (encrypted) history, and logged at debug only.
		workflow.GetLogger(ctx).Info("mailbox paused", "mailbox", m.state.Key, "byWave", req.ByWave)
		workflow.GetLogger(ctx).Debug("mailbox pause reason", "mailbox", m.state.Key, "reason", req.Reason)
	})
	sel.AddReceive(workflow.GetSignalChannel(ctx, contract.SignalResume), func(c workflow.ReceiveChannel, _ bool) {
		var req contract.ResumeRequest
		c.Receive(ctx, &req)
		hold(req.ByWave, false)
		workflow.GetLogger(ctx).Info("mailbox resumed", "mailbox", m.state.Key, "byWave", req.ByWave)
	})
	sel.AddReceive(workflow.GetSignalChannel(ctx, contract.SignalSlotGrant), func(c workflow.ReceiveChannel, _ bool) {
		var g contract.SlotGrant
		c.Receive(ctx, &g)
		if g.WaveID != m.in.WaveID || g.Index != m.in.WaveIndex {
			workflow.GetLogger(ctx).Warn("slot grant for another mailbox ignored", "mailbox", m.state.Key,
				"wave", g.WaveID, "index", g.Index)
			return
		}
		m.state.Granted = true
	})
	sel.AddReceive(workflow.GetSignalChannel(ctx, contract.SignalPrestageGrant), func(c workflow.ReceiveChannel, _ bool) {
		var g contract.PrestageSlot
		c.Receive(ctx, &g)
		m.onPrestageGrant(ctx, g)
	})
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			sel.Select(ctx)
		}
	})
	m.details(ctx)
	attrs := workflow.GetTypedSearchAttributes(ctx)
	var updates []temporal.SearchAttributeUpdate
	if v, ok := attrs.GetKeyword(searchattr.Stage); ok {
		m.published = contract.Stage(v)
	} else {
		m.published = m.state.Stage
		updates = append(updates,
			searchattr.Stage.ValueSet(string(m.state.Stage)),
			searchattr.StageSince.ValueSet(m.state.StageSince))
		if m.in.WaveID != "" {
			updates = append(updates, searchattr.Wave.ValueSet(m.in.WaveID))
		}
	}
	// What a run before a reset showed (a pause) is what the next change
	// is judged against.
	m.pausedShown, _ = attrs.GetBool(searchattr.Paused)
	if _, ok := attrs.GetKeyword(searchattr.Org); m.visible && !ok && m.in.Mailbox.Org != "" {
		updates = append(updates, searchattr.Org.ValueSet(m.in.Mailbox.Org))
	}
	if len(updates) == 0 {
		return nil
	}
	return workflow.UpsertTypedSearchAttributes(ctx, updates...)
}

// showPaused publishes at once whether the mailbox is held (MailwavePaused),
// so a pause shows within a workflow task, not at the next step.
func (m *mailbox) showPaused(ctx workflow.Context) {
	held := m.state.Paused || m.state.HeldByWave
	m.details(ctx)
	if !m.visible || m.ended || held == m.pausedShown {
		return
	}
	m.pausedShown = held
	if err := workflow.UpsertTypedSearchAttributes(ctx, searchattr.Paused.ValueSet(held)); err != nil {
		workflow.GetLogger(ctx).Warn("pause not published", "mailbox", m.state.Key, "error", err)
	}
}

func (m *mailbox) run(ctx workflow.Context) contract.MailboxResult {
	// The migration runs under a context of its own that an accepted
	// reschedule cancels: no command, so the runs recorded before the
	// reschedule existed replay as they ran (VERSIONING.md).
	mctx, cancel := workflow.WithCancel(ctx)
	m.cancel = cancel
	if m.state.Rescheduled != nil {
		cancel() // accepted before the migration began
	}
	err := m.migrate(mctx)
	if m.pre != nil && m.pre.running {
		// Ended before T (deferred, moved, cancelled, a notice failed):
		// its pass before T stops, and the wave's pool has its place back.
		_ = m.stopPrestage(ctx)
	}
	m.ending = true
	res := contract.MailboxResult{Key: m.state.Key, Copied: m.state.Copied, StartedAt: m.startedAt}
	var se *stepError
	var df *deferred
	switch {
	case err == nil:
		res.Outcome = contract.OutcomeMigrated
		m.enter(ctx, contract.StageMigrated)
	case m.state.Rescheduled != nil:
		// Moved by an operator: its waiting was cancelled for it, so this
		// comes before a cancellation. The estate keeps it for its new
		// night first; only then is it deferred here (and its user told).
		r := m.state.Rescheduled
		res.FailedStep = contract.StepReschedule
		if notKept := m.keepForNight(ctx, *r); notKept != "" {
			r.NotKept, r.Corrected = notKept, false
			res.Outcome = contract.OutcomeNeedsSupport
			res.ErrorType = contract.ErrTypeRescheduleNotKept
			res.Reason = rescheduledReason(*r) + ", but the estate could not keep it for that night: " + notKept
			m.enter(ctx, contract.StageNeedsSupport)
		} else {
			res.Outcome = contract.OutcomeDeferred
			res.ErrorType, res.Reason = contract.ErrTypeRescheduled, rescheduledReason(*r)
			m.enter(ctx, contract.StageDeferred)
		}
		m.state.LastError = res.Reason
	case temporal.IsCanceledError(err):
		res.Outcome = contract.OutcomeCancelled
		m.enter(ctx, contract.StageCancelled)
	case errors.As(err, &df):
		res.Outcome = contract.OutcomeDeferred
		res.FailedStep = contract.StepPreflight
		res.ErrorType, res.Reason = df.reason, contract.DeferReason(df.reason)
		m.state.LastError = res.Reason
		m.enter(ctx, contract.StageDeferred)
	case errors.As(err, &se):
		res.Outcome = contract.OutcomeNeedsSupport
		res.FailedStep = se.step
		res.ErrorType, res.Reason = describe(se.err)
		m.state.LastError = res.Reason
		m.enter(ctx, contract.StageNeedsSupport)
	default:
		res.Outcome = contract.OutcomeNeedsSupport
		res.ErrorType, res.Reason = describe(err)
		m.state.LastError = res.Reason
		m.enter(ctx, contract.StageNeedsSupport)
	}
	res.FinishedAt = workflow.Now(ctx)
	res.Preflight = m.state.Preflight
	res.Prestage = m.state.Prestage
	m.state.Result = &res
	m.publish(ctx)
	m.publishEnd(ctx, res)
	if r := m.state.Rescheduled; r != nil && res.ErrorType == contract.ErrTypeRescheduled {
		// Its user is told the new date (if told the old one), nobody
		// else: the operator asked.
		m.correct(ctx, *r)
	} else if res.Outcome == contract.OutcomeNeedsSupport || res.Outcome == contract.OutcomeDeferred {
		m.tellAdmin(ctx, res)
	}
	m.report(ctx, res)
	workflow.GetLogger(ctx).Info("mailbox finished", "mailbox", res.Key, "outcome", string(res.Outcome),
		"step", string(res.FailedStep), "errorType", res.ErrorType)
	return res
}

func (m *mailbox) migrate(ctx workflow.Context) error {
	if err := m.waitUntil(ctx, contract.StageScheduled, m.state.NoticeAt); err != nil {
		return err
	}
	if err := m.preflight(ctx); err != nil {
		return err
	}
	if err := m.notify(ctx, contract.NoticeT14, contract.StageNoticeT14, contract.StepNoticeT14); err != nil {
		return err
	}
	if m.in.Prestage != nil {
		m.startPrestage(ctx)
	}
	if err := m.waitUntil(ctx, contract.StageWaitingT1, m.state.ReminderAt); err != nil {
		return err
	}
	if err := m.notify(ctx, contract.NoticeT1, contract.StageNoticeT1, contract.StepNoticeT1); err != nil {
		return err
	}
	if err := m.waitUntil(ctx, contract.StageWaitingStart, m.in.MigrateAt); err != nil {
		return err
	}
	if err := m.stopPrestage(ctx); err != nil {
		return err
	}
	if err := m.awaitSlot(ctx); err != nil {
		return err
	}
	if p := m.state.Prestage; p == nil || !p.BulkDone {
		// Copied at T, or its bulk pass did not end before T: it goes on
		// from where it got to.
		if err := m.copy(ctx, contract.PassBulk, contract.StepCopyBulk); err != nil {
			return err
		}
	}
	if err := m.copy(ctx, contract.PassDelta, contract.StepCopyDelta); err != nil {
		return err
	}
	if err := m.hold(ctx); err != nil {
		return err
	}
	if !m.noticeSent(contract.NoticeT14) {
		return &stepError{step: contract.StepCutover, err: temporal.NewNonRetryableApplicationError(
			"the T-14 notice was never sent, so the mailbox may not be cut over", contract.ErrTypeNoticeNotSent, nil)}
	}
	// From here on the mailbox moves: a cancel must not leave it half cut
	// over, so cutover and the success notice run to their end.
	done, _ := workflow.NewDisconnectedContext(ctx)
	m.enter(done, contract.StageCutover)
	cut, err := m.cutover(done)
	if err != nil {
		return &stepError{step: contract.StepCutover, err: err}
	}
	m.state.Attempts[contract.StepCutover] = cut.Attempt
	return m.sendNotice(done, contract.NoticeSuccess, contract.StageNoticeSuccess, contract.StepNoticeSuccess)
}

// cutover points the mailbox's mail at the target: on its organisation's
// routing host, through that host's task queue, where it has one (the
// transport map lives there); otherwise on this worker, as a local
// activity. A routing host whose worker is down holds the cutover until it
// is back: the activity has no schedule-to-start limit, and the mailbox
// shows the cutover stage meanwhile.
func (m *mailbox) cutover(ctx workflow.Context) (activities.CutoverResult, error) {
	in := activities.CutoverInput{Mailbox: m.in.Mailbox}
	var cut activities.CutoverResult
	if workflow.GetVersion(ctx, changeCutoverQueue, workflow.DefaultVersion, 1) == 1 {
		var queue string
		if err := workflow.ExecuteLocalActivity(shortStepOptions(ctx), contract.ActivityCutoverQueue, in).Get(ctx, &queue); err != nil {
			return cut, err
		}
		if queue != "" {
			m.publish(ctx)
			actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
				TaskQueue:           queue,
				StartToCloseTimeout: time.Minute,
				RetryPolicy: &temporal.RetryPolicy{
					InitialInterval:    time.Second,
					BackoffCoefficient: 2,
					MaximumInterval:    5 * time.Minute,
				},
				Summary: "cutover on the routing host",
			})
			err := workflow.ExecuteActivity(actx, contract.ActivityCutover, in).Get(ctx, &cut)
			return cut, err
		}
	}
	err := workflow.ExecuteLocalActivity(shortStepOptions(ctx), contract.ActivityCutover, in).Get(ctx, &cut)
	return cut, err
}

// preflight checks, at T-14 and before anyone is told, that the mailbox
// can go: its source logged into and measured, its target found, written
// and with room. One that cannot is deferred (its reason's type from the
// activity); what was read is kept in the state and the result either
// way. It runs also for a mailbox started after its T-14 (a late addition,
// a compressed timeline): its notice has not gone out either, and the
// check is what decides whether it does. A mailbox held at the boundary
// is checked once it is let go, so the check is fresh for the notice.
// Runs begun before the change go straight to the notice.
func (m *mailbox) preflight(ctx workflow.Context) error {
	if workflow.GetVersion(ctx, changePreflight, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	if err := m.hold(ctx); err != nil {
		return err
	}
	// The stage is in the state query and the details, not published: a
	// preflight takes seconds, and a wave's mailboxes reach it together (an
	// upsert each is an event and a visibility write); one that retries
	// shows its attempts under Pending Activities.
	m.enter(ctx, contract.StagePreflight)
	var res activities.PreflightResult
	err := workflow.ExecuteActivity(preflightOptions(ctx), contract.ActivityPreflight, activities.PreflightInput{
		Mailbox: m.in.Mailbox,
	}).Get(ctx, &res)
	var app *temporal.ApplicationError
	switch {
	case err == nil:
		m.state.Attempts[contract.StepPreflight] = res.Attempt
		if res.Checked {
			figures := res.Figures
			m.state.Preflight = &figures
		}
		m.details(ctx)
		return nil
	case errors.As(err, &app) && contract.IsDeferReason(app.Type()):
		var figures contract.Preflight
		if app.Details(&figures) == nil {
			m.state.Preflight = &figures
		}
		return &deferred{reason: app.Type()}
	}
	return &stepError{step: contract.StepPreflight, err: err}
}

// waitUntil sleeps until t, showing stage meanwhile; a time already passed
// costs nothing.
func (m *mailbox) waitUntil(ctx workflow.Context, stage contract.Stage, t time.Time) error {
	d := t.Sub(workflow.Now(ctx))
	if d <= 0 {
		return nil
	}
	m.enter(ctx, stage)
	m.publish(ctx)
	return workflow.NewTimerWithOptions(ctx, d, workflow.TimerOptions{Summary: "until " + string(stage) + " ends"}).Get(ctx, nil)
}

// hold keeps a mailbox paused by an operator or held by its wave at the
// step boundary until it is resumed.
func (m *mailbox) hold(ctx workflow.Context) error {
	held := func() bool { return m.state.Paused || m.state.HeldByWave }
	if !held() {
		return ctx.Err()
	}
	m.enter(ctx, contract.StagePaused)
	m.publish(ctx)
	if err := workflow.Await(ctx, func() bool { return !held() }); err != nil {
		return err
	}
	return ctx.Err()
}

// awaitSlot waits, in a wave, for the wave to grant a copy slot.
func (m *mailbox) awaitSlot(ctx workflow.Context) error {
	if m.in.WaveWorkflowID == "" || m.state.Granted {
		return ctx.Err()
	}
	m.enter(ctx, contract.StageWaitingSlot)
	m.publish(ctx)
	return workflow.Await(ctx, func() bool { return m.state.Granted })
}

// report tells the mailbox's wave how it ended, freeing its slot. It runs
// on a disconnected context so a cancelled mailbox still reports, as a local
// activity that signals the wave: at least once, and the wave counts a
// mailbox's end once.
func (m *mailbox) report(ctx workflow.Context, res contract.MailboxResult) {
	if m.in.WaveWorkflowID == "" {
		return
	}
	done, _ := workflow.NewDisconnectedContext(ctx)
	lctx := waveSignalOptions(done)
	err := workflow.ExecuteLocalActivity(lctx, contract.ActivityReportDone, activities.ReportDoneInput{
		WaveWorkflowID: m.in.WaveWorkflowID,
		Done: contract.MailboxDone{
			Index: m.in.WaveIndex, Key: res.Key, Outcome: res.Outcome, Granted: m.state.Granted,
			Step: res.FailedStep, ErrorType: res.ErrorType, Copied: res.Copied,
		},
	}).Get(done, nil)
	if err != nil {
		workflow.GetLogger(ctx).Warn("wave not told of the mailbox's end", "mailbox", res.Key, "wave", m.in.WaveID, "error", err)
	}
}

// waveSignalOptions are for a mailbox's signals to its wave (its report,
// its pre-stage requests and releases): local activities, retried for up
// to an hour.
func waveSignalOptions(ctx workflow.Context) workflow.Context {
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
		},
	})
}

func (m *mailbox) notify(ctx workflow.Context, kind contract.NoticeKind, stage contract.Stage, step contract.Step) error {
	if err := m.hold(ctx); err != nil {
		return err
	}
	return m.sendNotice(ctx, kind, stage, step)
}

func (m *mailbox) sendNotice(ctx workflow.Context, kind contract.NoticeKind, stage contract.Stage, step contract.Step) error {
	m.enter(ctx, stage)
	var res activities.SendNoticeResult
	err := workflow.ExecuteLocalActivity(shortStepOptions(ctx), contract.ActivitySendNotice, activities.SendNoticeInput{
		Mailbox: m.in.Mailbox, Kind: kind, WaveID: m.in.WaveID, MigrateAt: m.in.MigrateAt, Dated: m.in.DatedNotices,
	}).Get(ctx, &res)
	if err != nil {
		return &stepError{step: step, err: err}
	}
	m.state.Attempts[step] = res.Attempt
	m.state.NoticesSent = append(m.state.NoticesSent, kind)
	return nil
}

func (m *mailbox) copy(ctx workflow.Context, pass contract.CopyPass, step contract.Step) error {
	if err := m.hold(ctx); err != nil {
		return err
	}
	m.enter(ctx, contract.StageCopying)
	m.publish(ctx)
	if m.copyStarted.IsZero() {
		m.copyStarted = workflow.Now(ctx)
	}
	var res activities.CopyResult
	// The delta goes on from where the bulk pass ended, so it reads only
	// what arrived since.
	err := workflow.ExecuteActivity(copyOptions(ctx), contract.ActivityCopyMailbox, activities.CopyInput{
		Mailbox: m.in.Mailbox, Pass: pass, From: m.checkpoint,
	}).Get(ctx, &res)
	if err != nil {
		return &stepError{step: step, err: err}
	}
	m.state.Attempts[step] = res.Attempt
	m.state.Copied = m.state.Copied.Add(res.Stats)
	m.checkpoint = res.Checkpoint
	m.details(ctx)
	return nil
}

// tellAdmin sends the organisation's admin the failure notice of a mailbox
// that needs support. It is best effort: a notifier that cannot send it
// leaves the result as it is, and the operator still sees the mailbox in
// the UI and the wave's report. The branch without it is retired (see
// VERSIONING.md): a run begun before the notice existed no longer replays.
func (m *mailbox) tellAdmin(ctx workflow.Context, res contract.MailboxResult) {
	workflow.GetVersion(ctx, changeAdminFailureNotice, 1, 1)
	done, _ := workflow.NewDisconnectedContext(ctx)
	lctx := workflow.WithLocalActivityOptions(done, workflow.LocalActivityOptions{
		StartToCloseTimeout:    time.Minute,
		ScheduleToCloseTimeout: time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    5 * time.Minute,
		},
	})
	err := workflow.ExecuteLocalActivity(lctx, contract.ActivitySendNotice, activities.SendNoticeInput{
		Mailbox: m.in.Mailbox, Kind: contract.NoticeFailure, WaveID: m.in.WaveID, MigrateAt: m.in.MigrateAt,
		Failure: &contract.Failure{Step: string(res.FailedStep), ErrorType: res.ErrorType, Reason: res.Reason},
	}).Get(done, nil)
	if err != nil {
		workflow.GetLogger(ctx).Warn("admin not told of the failure", "mailbox", res.Key, "error", err)
	}
}

func (m *mailbox) noticeSent(kind contract.NoticeKind) bool {
	for _, k := range m.state.NoticesSent {
		if k == kind {
			return true
		}
	}
	return false
}

// enter moves the mailbox to a stage, as the state query shows it.
func (m *mailbox) enter(ctx workflow.Context, stage contract.Stage) {
	if m.state.Stage == stage {
		return
	}
	m.state.Stage, m.state.StageSince = stage, workflow.Now(ctx)
	m.details(ctx)
}

// publish upserts the stage as search attributes, so the UI can list e.g.
// "copying, began more than two hours ago". It is called where the mailbox
// blocks (a timer, a hold, a slot, a copy) and at the end, not before each
// short local step: every upsert costs an event and a visibility write.
func (m *mailbox) publish(ctx workflow.Context) {
	if m.published == m.state.Stage {
		return
	}
	m.published = m.state.Stage
	if err := workflow.UpsertTypedSearchAttributes(ctx,
		searchattr.Stage.ValueSet(string(m.state.Stage)), searchattr.StageSince.ValueSet(m.state.StageSince)); err != nil {
		workflow.GetLogger(ctx).Warn("stage not published", "mailbox", m.state.Key, "stage", string(m.state.Stage), "error", err)
	}
}

// publishEnd publishes how the mailbox ended: its error type and no hold
// as search attributes, its summary in its memo for reports, its details,
// and the count of mailboxes finished by outcome as a metric.
func (m *mailbox) publishEnd(ctx workflow.Context, res contract.MailboxResult) {
	m.details(ctx)
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"outcome": string(res.Outcome)}).
		Counter(contract.MetricMailboxesFinished).Inc(1)
	if !m.visible {
		return
	}
	m.ended = true
	var updates []temporal.SearchAttributeUpdate
	if res.ErrorType != "" {
		updates = append(updates, searchattr.ErrorType.ValueSet(res.ErrorType))
	}
	if m.pausedShown {
		m.pausedShown = false
		updates = append(updates, searchattr.Paused.ValueSet(false))
	}
	if len(updates) > 0 {
		if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
			workflow.GetLogger(ctx).Warn("end not published", "mailbox", m.state.Key, "error", err)
		}
	}
	summary := res.Summary(m.in.Mailbox.Org, m.in.WaveID, m.state.NoticesSent, m.copyStarted)
	if err := workflow.UpsertMemo(ctx, map[string]any{contract.MemoSummary: summary}); err != nil {
		workflow.GetLogger(ctx).Warn("summary not published", "mailbox", m.state.Key, "error", err)
	}
}

// details keeps the mailbox's current details (shown in the Temporal UI,
// through the payload codec like everything else) up to date: its stage
// and since when, what it waits for, what it copied, how it ended. No
// address, name, folder or server text: error types only.
func (m *mailbox) details(ctx workflow.Context) {
	st := m.state
	const at = "2006-01-02 15:04 MST"
	var b strings.Builder
	b.WriteString(fmt.Sprintf("%s since %s", strings.ReplaceAll(string(st.Stage), "_", " "), st.StageSince.UTC().Format(at)))
	switch st.Stage {
	case contract.StageScheduled:
		b.WriteString(fmt.Sprintf("; T-14 notice at %s", st.NoticeAt.UTC().Format(at)))
	case contract.StageWaitingT1:
		b.WriteString(fmt.Sprintf("; T-1 reminder at %s", st.ReminderAt.UTC().Format(at)))
	case contract.StageWaitingStart:
		b.WriteString(fmt.Sprintf("; migration at %s", st.MigrateAt.UTC().Format(at)))
	case contract.StageWaitingSlot:
		b.WriteString("; waiting for a copy slot from wave " + st.WaveID)
	case contract.StageCopying:
		b.WriteString("; attempt, progress and last failure of the pass are under Pending Activities")
	}
	if p := st.Preflight; p != nil {
		b.WriteString(fmt.Sprintf("\npreflight: %.2f GB, %d messages at the source", float64(p.SourceBytes)/1e9, p.SourceMessages))
		if p.Oversize > 0 {
			b.WriteString(fmt.Sprintf("; %d over the target's %d-byte limit (bad items)", p.Oversize, p.OversizeLimit))
		}
		if p.RoomKnown {
			b.WriteString(fmt.Sprintf("; %.2f GB of room at the target", float64(p.TargetRoom)/1e9))
		}
	}
	if p := st.Prestage; p != nil {
		b.WriteString(fmt.Sprintf("\npre-stage: bulk pass planned at %s", p.BulkAt.UTC().Format(at)))
		if p.Late {
			b.WriteString(" (too large to end its margin before T: started at once)")
		}
		b.WriteString(fmt.Sprintf("; %d passes done", p.Passes))
		switch {
		case p.Queued:
			b.WriteString(fmt.Sprintf("; pass %d waiting for the wave's pre-stage pool", p.Pass))
		case p.Pass > 0:
			b.WriteString(fmt.Sprintf("; pass %d copying (under Pending Activities)", p.Pass))
		}
		if p.Interrupted > 0 {
			b.WriteString(fmt.Sprintf("; %d paused mid-way", p.Interrupted))
		}
		if p.Failed != "" {
			b.WriteString("; a pass failed (" + p.Failed + "): the copy is left to T")
		}
	}
	if n := len(st.NoticesSent); n > 0 {
		b.WriteString(fmt.Sprintf("\nnotices sent: %s", st.NoticesSent[0]))
		for _, k := range st.NoticesSent[1:] {
			b.WriteString(fmt.Sprintf(", %s", k))
		}
	}
	if st.Copied.Items+st.Copied.Skipped+st.Copied.BadItems > 0 {
		b.WriteString(fmt.Sprintf("\ncopied: %.2f GB, %d messages (%d already there, %d bad items)",
			float64(st.Copied.Bytes)/1e9, st.Copied.Items, st.Copied.Skipped, st.Copied.BadItems))
		if d := st.Copied.Duplicates; d > 0 {
			b.WriteString(fmt.Sprintf("; %d extra copies made by a lost connection found and removed", d))
		}
	}
	if st.Paused {
		b.WriteString("\npaused by an operator: held at the next step until resumed")
	}
	if st.HeldByWave {
		b.WriteString("\nheld by its wave (the wave is paused)")
	}
	if r := st.Rescheduled; r != nil {
		b.WriteString(fmt.Sprintf("\nrescheduled by %s at %s: from %s to %s", cmp.Or(r.By, "an operator"),
			r.At.UTC().Format(at), r.From.UTC().Format(at), r.To.UTC().Format(at)))
		if r.Reason != "" {
			b.WriteString(" (" + r.Reason + ")")
		}
		if r.Corrected {
			b.WriteString("; its user is told the new date")
		}
	}
	if r := st.Result; r != nil {
		b.WriteString(fmt.Sprintf("\noutcome: %s", r.Outcome))
		if r.FailedStep != "" {
			b.WriteString(fmt.Sprintf(" at %s (%s)", r.FailedStep, r.ErrorType))
		}
		if g := contract.Grade(*r); g != "" {
			b.WriteString(fmt.Sprintf("; consistency %s", g))
		}
	}
	workflow.SetCurrentDetails(ctx, b.String())
}

// shortStepOptions are for the notices and the cutover: short, idempotent
// calls run as local activities, which cost the server far less than
// regular ones.
func shortStepOptions(ctx workflow.Context) workflow.Context {
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout:    time.Minute,
		ScheduleToCloseTimeout: 6 * time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    5 * time.Minute,
		},
	})
}

// preflightOptions are for the preflight: a regular activity, since it
// reaches both servers (a login, a folder list, a test message), may be
// throttled, and shows its attempts and last failure under Pending
// Activities; patient with a server that is down for a while, and ending
// the mailbox in needs support (not deferred: nothing says it cannot go)
// if it never answers.
func preflightOptions(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    10 * time.Minute,
		ScheduleToCloseTimeout: 6 * time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    5 * time.Minute,
		},
		Summary: "preflight before the notice",
	})
}

// copyOptions are for a copy pass: long, heartbeating, resumable, and
// patient with a throttling target (its back-off sets the next retry delay).
func copyOptions(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 12 * time.Hour,
		// The copy heartbeats at least every 5 s (activities.
		// CopyHeartbeatEvery): a copy whose worker died is retried, from
		// its checkpoint, on another within about 20 s.
		HeartbeatTimeout:       20 * time.Second,
		ScheduleToCloseTimeout: 48 * time.Hour,
		// A cancelled copy is over only when the copier has stopped: until
		// then the mailbox keeps its slot, so the cap holds.
		WaitForCancellation: true,
		// The copier's own errors carry their retry delay (activities.
		// copyRetryError: soon after progress, backing off without). The
		// policy times only a retry after a timeout, when a worker died: it
		// must not grow with the attempts an often-throttled copy has made,
		// or a copy whose worker died late waits minutes to resume.
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    2 * time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    5 * time.Second,
		},
	})
}

// describe names an error's type and reason for a needs-support result.
func describe(err error) (errType, reason string) {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Type(), app.Message()
	}
	var timeout *temporal.TimeoutError
	if errors.As(err, &timeout) {
		return "Timeout", timeout.Error()
	}
	return "Error", err.Error()
}
