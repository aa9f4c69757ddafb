// Package workflows holds mailwave's deterministic orchestration. This file is
// the contract shared by the worker and the starter: task queue, workflow,
// signal and query names, search attributes, workflow IDs, and the input and
// result types.
package workflows

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"

	"mailwave/activities"
)

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
)

// Search attributes. Only opaque values go here: never an address or a name.
var (
	SearchAttrWave       = temporal.NewSearchAttributeKeyKeyword("MailwaveWave")
	SearchAttrStage      = temporal.NewSearchAttributeKeyKeyword("MailwaveStage")
	SearchAttrStageSince = temporal.NewSearchAttributeKeyTime("MailwaveStageSince")
)

// SearchAttributeFlags returns the `--search-attribute NAME=TYPE` values the
// dev server needs, in a stable order.
func SearchAttributeFlags() []string {
	defs := map[string]string{
		SearchAttrWave.GetName():       "Keyword",
		SearchAttrStage.GetName():      "Keyword",
		SearchAttrStageSince.GetName(): "Datetime",
	}
	out := make([]string, 0, len(defs))
	for name, typ := range defs {
		out = append(out, name+"="+typ)
	}
	sort.Strings(out)
	return out
}

const mailboxIDPrefix = "mailbox-"

// MailboxWorkflowID is the workflow ID of a mailbox's migration. It is made
// of the opaque key alone, so one mailbox has one migration at a time.
func MailboxWorkflowID(key string) string { return mailboxIDPrefix + key }

// MailboxKeyOf is the mailbox key in a MailboxWorkflowID.
func MailboxKeyOf(workflowID string) string { return strings.TrimPrefix(workflowID, mailboxIDPrefix) }

// Default lead times of the notices.
const (
	DefaultNoticeLead   = 14 * 24 * time.Hour
	DefaultReminderLead = 24 * time.Hour
)

// Stage is where a mailbox is in its migration. It is the value of the
// MailwaveStage search attribute.
type Stage string

const (
	StageScheduled     Stage = "scheduled"      // waiting for T-14
	StageNoticeT14     Stage = "notice_t14"     // sending the T-14 notice
	StageWaitingT1     Stage = "waiting_t1"     // notice sent, waiting for T-1
	StageNoticeT1      Stage = "notice_t1"      // sending the reminder
	StageWaitingStart  Stage = "waiting_start"  // reminder sent, waiting for T
	StageWaitingSlot   Stage = "waiting_slot"   // at T, waiting for a copy slot from the wave
	StageCopying       Stage = "copying"        // bulk then delta copy
	StageCutover       Stage = "cutover"        // changing the routing
	StageNoticeSuccess Stage = "notice_success" // telling the user it is done
	StagePaused        Stage = "paused"         // held by an operator at a step boundary
	StageMigrated      Stage = "migrated"
	StageNeedsSupport  Stage = "needs_support"
	StageCancelled     Stage = "cancelled"
)

// Step names the activity a mailbox failed in.
type Step string

const (
	StepNoticeT14     Step = "notice_t14"
	StepNoticeT1      Step = "notice_t1"
	StepCopyBulk      Step = "copy_bulk"
	StepCopyDelta     Step = "copy_delta"
	StepCutover       Step = "cutover"
	StepNoticeSuccess Step = "notice_success"
)

// Outcome is how a mailbox's migration ended.
type Outcome string

const (
	OutcomeMigrated     Outcome = "migrated"
	OutcomeNeedsSupport Outcome = "needs_support"
	OutcomeCancelled    Outcome = "cancelled"
)

// MailboxInput starts one mailbox's migration.
type MailboxInput struct {
	Mailbox activities.MailboxRef
	WaveID  string `json:",omitempty"`
	// MigrateAt is T, the mailbox's migration time.
	MigrateAt time.Time
	// NoticeLead and ReminderLead are how long before T the notice and the
	// reminder go out; zero means the defaults (14 days, 1 day).
	NoticeLead   time.Duration `json:",omitempty"`
	ReminderLead time.Duration `json:",omitempty"`
	// WaveWorkflowID, when set, makes the mailbox wait at T for a slot from
	// that wave and report to it when done; WaveIndex is its row in the
	// wave's mailbox file.
	WaveWorkflowID string `json:",omitempty"`
	WaveIndex      int    `json:",omitempty"`
}

// Validate names the first problem with the input, if any.
func (in MailboxInput) Validate() error {
	switch {
	case in.Mailbox.Key == "":
		return fmt.Errorf("mailbox key is empty")
	case in.Mailbox.Address == "":
		return fmt.Errorf("mailbox %s has no address", in.Mailbox.Key)
	case in.MigrateAt.IsZero():
		return fmt.Errorf("mailbox %s has no migration time", in.Mailbox.Key)
	case in.NoticeLead < 0 || in.ReminderLead < 0:
		return fmt.Errorf("mailbox %s has a negative lead time", in.Mailbox.Key)
	}
	notice, reminder := in.Leads()
	if reminder > notice {
		return fmt.Errorf("mailbox %s: reminder lead %s is longer than notice lead %s", in.Mailbox.Key, reminder, notice)
	}
	return nil
}

// Leads returns the notice and reminder lead times with defaults applied.
func (in MailboxInput) Leads() (notice, reminder time.Duration) {
	notice, reminder = in.NoticeLead, in.ReminderLead
	if notice == 0 {
		notice = DefaultNoticeLead
	}
	if reminder == 0 {
		reminder = DefaultReminderLead
	}
	return notice, reminder
}

// MailboxResult is how a mailbox's migration ended. A failure after retries
// is an OutcomeNeedsSupport result naming the step and the reason, never a
// failed workflow, so a wave can count it.
type MailboxResult struct {
	Key        string
	Outcome    Outcome
	FailedStep Step   `json:",omitempty"`
	ErrorType  string `json:",omitempty"`
	Reason     string `json:",omitempty"`
	Copied     activities.CopyStats
	StartedAt  time.Time
	FinishedAt time.Time
}

// MailboxState is what the state query returns.
type MailboxState struct {
	Key        string
	WaveID     string `json:",omitempty"`
	Stage      Stage
	StageSince time.Time
	Paused     bool // by an operator
	HeldByWave bool // by the mailbox's wave
	Granted    bool // the wave granted a copy slot
	MigrateAt  time.Time
	NoticeAt   time.Time
	ReminderAt time.Time
	// NoticesSent lists the notices that went out, in order.
	NoticesSent []activities.NoticeKind `json:",omitempty"`
	// Attempts counts, per step that has finished, the attempts it took.
	Attempts  map[Step]int32 `json:",omitempty"`
	LastError string         `json:",omitempty"`
	Copied    activities.CopyStats
	Result    *MailboxResult `json:",omitempty"`
}

// ---- The wave ----

// WaveWorkflowName is the Wave workflow's type.
const WaveWorkflowName = "Wave"

// WaveWorkflowID is the workflow ID of a wave.
func WaveWorkflowID(waveID string) string { return "wave-" + waveID }

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

// Activities the wave calls by name: they start, read and cancel mailbox
// workflows, so they live outside the activities package (which never
// imports the workflows' contract).
const (
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
)

// ErrTypeBadWaveFile fails the wave's activities, for good, on a mailbox
// file that does not match the wave (missing, short, corrupt).
const ErrTypeBadWaveFile = "BadWaveFile"

// Wave defaults.
const (
	DefaultCap             = 100
	DefaultErrorBudget     = 0.02
	DefaultErrorMinSample  = 50
	DefaultStartRate       = 100.0 // mailbox workflows started per second
	DefaultPageSize        = 500
	DefaultMaxEventsPerRun = 8000
	// A run may receive 10,000 signals; a wave gets about two per mailbox.
	DefaultMaxSignalsPerRun = 5000
	// The wave asks the server, this often, whether the mailboxes holding
	// a slot still run.
	DefaultReconcileEvery = 10 * time.Minute
)

// WaveInput starts a wave. The mailboxes are by reference: MailboxFile is
// the wave's mailbox file (CSV with header key,address,org,display_name,
// written by the starter where the workers can read it); row i (from 0) is
// the mailbox with wave index i.
type WaveInput struct {
	WaveID       string
	MailboxFile  string
	Total        int
	MigrateAt    time.Time
	NoticeLead   time.Duration `json:",omitempty"`
	ReminderLead time.Duration `json:",omitempty"`
	Cap          int           `json:",omitempty"`
	// ErrorBudget is the share of finished mailboxes that may need support
	// before the wave pauses itself, once ErrorMinSample have finished.
	ErrorBudget     float64 `json:",omitempty"`
	ErrorMinSample  int     `json:",omitempty"`
	StartRate       float64 `json:",omitempty"`
	PageSize        int     `json:",omitempty"`
	MaxEventsPerRun int     `json:",omitempty"`
	// MaxSignalsPerRun continues the wave as new after it has handled that
	// many signals in one run.
	MaxSignalsPerRun int `json:",omitempty"`
	// ReconcileEvery is how often the slot holders are checked on.
	ReconcileEvery time.Duration `json:",omitempty"`
	// State is carried over continue-as-new; nil on the first run.
	State *WaveState `json:",omitempty"`
}

// WithDefaults returns the input with zero settings replaced by defaults.
func (in WaveInput) WithDefaults() WaveInput {
	if in.Cap <= 0 {
		in.Cap = DefaultCap
	}
	if in.ErrorBudget <= 0 {
		in.ErrorBudget = DefaultErrorBudget
	}
	if in.ErrorMinSample <= 0 {
		in.ErrorMinSample = DefaultErrorMinSample
	}
	if in.StartRate <= 0 {
		in.StartRate = DefaultStartRate
	}
	if in.PageSize <= 0 {
		in.PageSize = DefaultPageSize
	}
	if in.MaxEventsPerRun <= 0 {
		in.MaxEventsPerRun = DefaultMaxEventsPerRun
	}
	if in.MaxSignalsPerRun <= 0 {
		in.MaxSignalsPerRun = DefaultMaxSignalsPerRun
	}
	if in.ReconcileEvery <= 0 {
		in.ReconcileEvery = DefaultReconcileEvery
	}
	return in
}

// Validate names the first problem with a wave's input.
func (in WaveInput) Validate() error {
	switch {
	case in.WaveID == "":
		return fmt.Errorf("wave ID is empty")
	case in.MailboxFile == "":
		return fmt.Errorf("wave %s has no mailbox file", in.WaveID)
	case in.Total <= 0:
		return fmt.Errorf("wave %s has no mailboxes", in.WaveID)
	case in.MigrateAt.IsZero():
		return fmt.Errorf("wave %s has no migration time", in.WaveID)
	case in.ErrorBudget < 0 || in.ErrorBudget > 1:
		return fmt.Errorf("wave %s: error budget %v is not a share between 0 and 1", in.WaveID, in.ErrorBudget)
	}
	return nil
}

// MailboxInput for a wave's mailbox additionally carries WaveWorkflowID and
// WaveIndex (see MailboxInput): the mailbox then waits at T for a slot grant
// from that wave and reports to it when done.

// SlotGrant is the payload of SignalSlotGrant.
type SlotGrant struct {
	WaveID string
	Index  int
}

// MailboxDone is the payload of SignalMailboxDone.
type MailboxDone struct {
	Index   int
	Key     string
	Outcome Outcome
	// Granted is true when the mailbox had been granted a slot.
	Granted   bool
	Step      Step   `json:",omitempty"`
	ErrorType string `json:",omitempty"`
	Copied    activities.CopyStats
}

// ReportDoneInput asks for a mailbox's end to be reported to its wave.
type ReportDoneInput struct {
	WaveWorkflowID string
	Done           MailboxDone
}

// SetCapRequest is the payload of SignalSetCap.
type SetCapRequest struct {
	Cap int
}

// Refusal is a mailbox a wave would not start, and why.
type Refusal struct {
	Index  int
	Key    string
	Reason string
}

// StartMailboxesInput asks for the mailboxes of a wave at the given indexes
// (or, when Indexes is empty, From to To-1) to be started. A retry (set
// NotBefore) starts again mailboxes whose last run ended in needs support.
type StartMailboxesInput struct {
	WaveID      string
	MailboxFile string
	From, To    int
	Indexes     []int `json:",omitempty"`
	Retry       bool  `json:",omitempty"`
	// NotBefore, on a retry, is when the retry was asked for: a run of the
	// wave started since then is the retry's own.
	NotBefore    time.Time `json:",omitempty"`
	MigrateAt    time.Time
	NoticeLead   time.Duration
	ReminderLead time.Duration
	StartRate    float64
}

// StartMailboxesResult lists the mailboxes refused; every other one asked
// for is running in this wave.
type StartMailboxesResult struct {
	Started int
	Refused []Refusal `json:",omitempty"`
}

// ReadMailboxKeysInput asks for the keys of rows From to To-1.
type ReadMailboxKeysInput struct {
	MailboxFile string
	From, To    int
}

// ReconcileMailboxesInput asks which of these mailboxes of the wave have
// ended without reporting.
type ReconcileMailboxesInput struct {
	WaveID      string
	MailboxFile string
	Indexes     []int
}

// CancelMailboxesInput asks for the wave's running mailboxes at Indexes to
// be cancelled (cleanly: a mailbox in cutover finishes it).
type CancelMailboxesInput struct {
	WaveID      string
	MailboxFile string
	Indexes     []int
}

// WaveProgress is what the progress query returns.
type WaveProgress struct {
	WaveID       string
	Total        int
	Started      int
	Refused      int
	Waiting      int // started, not yet granted a slot, not finished
	Active       int // holding a slot: copying or cutting over
	Migrated     int
	NeedsSupport int
	Cancelled    int
	Copied       activities.CopyStats
	Cap          int
	Paused       bool
	PauseReason  string `json:",omitempty"`
	Cancelling   bool
	Runs         int // runs so far (continue-as-new)
	StartedAt    time.Time
	Refusals     []Refusal `json:",omitempty"` // the first ones
}

// WaveResult is how a wave ended.
type WaveResult struct {
	WaveID       string
	Total        int
	Migrated     int
	NeedsSupport int
	Cancelled    int
	Refused      int
	Copied       activities.CopyStats
	StartedAt    time.Time
	FinishedAt   time.Time
	Duration     time.Duration
	Runs         int
	Refusals     []Refusal `json:",omitempty"` // the first ones
}
