// Package workflows holds mailwave's deterministic orchestration. This file is
// the contract shared by the worker and the starter: task queue, workflow,
// signal and query names, search attributes, workflow IDs, and the input and
// result types.
package workflows

import (
	"fmt"
	"sort"
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

// MailboxWorkflowID is the workflow ID of a mailbox's migration. It is made
// of the opaque key alone, so one mailbox has one migration at a time.
func MailboxWorkflowID(key string) string { return "mailbox-" + key }

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
	Paused     bool
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
