// Package contract is what mailwave's workflows, activities, worker and
// starter agree on, in one place: the task queue; the names of the
// workflows, activities, signals, queries and search attributes; workflow
// IDs; error types; limits and defaults; and the types that cross Temporal
// (workflow inputs, results, signal and query payloads, and the values the
// activities' inputs carry). It imports nothing of mailwave's, so every
// other package may import it.
package contract

// TaskQueue is the one task queue mailwave's workers poll.
const TaskQueue = "mailwave"

// Workflow type names.
const (
	MailboxWorkflowName = "MailboxMigration"
)

// Signals and queries of MailboxMigration.
const (
	SignalPause  = "pause"
	SignalResume = "resume"
	QueryState   = "state"
	// UpdateReschedule moves the mailbox to another night
	// (RescheduleRequest, RescheduleResult), or is refused with the
	// reason.
	UpdateReschedule = "reschedule"
)

// WaveWorkflowName is the Wave workflow's type.
const WaveWorkflowName = "Wave"

// Signals between a wave and its mailboxes, and the wave's operator signals
// and query. A wave's pause and resume use SignalPause and SignalResume.
const (
	SignalSlotGrant   = "slot-grant"   // wave -> mailbox: you may copy now
	SignalMailboxDone = "mailbox-done" // mailbox -> wave: finished, slot free
	SignalSetCap      = "set-cap"
	SignalCancel      = "cancel"
	SignalRetryFailed = "retry-failed"
	QueryProgress     = "progress"
)

// Activity names. Workflows call activities by these names, and the worker
// registers them under them ((*activities.Activities).Register and
// (*activities.WaveActivities).Register).
const (
	ActivitySendNotice  = "SendNotice"
	ActivityCopyMailbox = "CopyMailbox"
	ActivityCutover     = "Cutover"
	// ActivityCutoverQueue names the task queue a mailbox's cutover runs
	// on: its organisation's routing host's, or "" where any worker may.
	ActivityCutoverQueue = "CutoverQueue"
	// The wave's: they start, read and cancel mailbox workflows.
	ActivityStartMailboxes  = "StartMailboxes"
	ActivityReadMailboxKeys = "ReadMailboxKeys"
	ActivityCancelMailboxes = "CancelMailboxes"
	// A mailbox's report to its wave is a signal sent from a local activity
	// through the worker's client: a signal sent by workflow code costs two
	// events and one more workflow task, to wait for its delivery before the
	// mailbox may complete.
	ActivityReportDone = "ReportMailboxDone"
	// ReconcileMailboxes settles mailboxes whose workflow ended without
	// reporting to the wave (terminated by an operator, say).
	ActivityReconcileMailboxes = "ReconcileMailboxes"
	// The programme's: a night's mailboxes chosen from the estate, and
	// their outcomes written back to it.
	ActivityChooseNight = "ChooseNight"
	ActivityRecordNight = "RecordNight"
	// WaveEnded says whether a wave has ended, and its result.
	ActivityWaveEnded = "WaveEnded"
	// ActivityReserveNight keeps a rescheduled mailbox for its new night
	// in the estate.
	ActivityReserveNight = "ReserveNight"
)
