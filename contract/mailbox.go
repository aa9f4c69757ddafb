package contract

import (
	"fmt"
	"time"
)

// ActivityPreflight checks, before a mailbox's T-14 notice, that it can
// go (activities.Preflight); with ActivitySendNotice and the others in
// contract.go.
const ActivityPreflight = "Preflight"

// MailboxRef names one mailbox. Key is the opaque keyed hash used in workflow
// IDs, search attributes and info logs; Address and DisplayName are personal
// data and only ever reach the ports.
type MailboxRef struct {
	Key         string
	Address     string
	Org         string `json:",omitempty"`
	DisplayName string `json:",omitempty"`
}

// Stage is where a mailbox is in its migration. It is the value of the
// MailwaveStage search attribute.
type Stage string

const (
	StageScheduled     Stage = "scheduled"      // waiting for T-14
	StagePreflight     Stage = "preflight"      // at T-14, checking it can go, before the notice
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
	StageDeferred      Stage = "deferred" // its preflight found it cannot go: back to the pool
)

// Stages lists every stage, in the order a mailbox goes through them (the
// preflight's two, which came later, at the end).
var Stages = []Stage{
	StageScheduled, StageNoticeT14, StageWaitingT1, StageNoticeT1, StageWaitingStart, StageWaitingSlot,
	StageCopying, StageCutover, StageNoticeSuccess, StagePaused, StageMigrated, StageNeedsSupport, StageCancelled,
	StagePreflight, StageDeferred,
}

// Step names the activity a mailbox failed in.
type Step string

const (
	StepPreflight     Step = "preflight"
	StepNoticeT14     Step = "notice_t14"
	StepNoticeT1      Step = "notice_t1"
	StepCopyBulk      Step = "copy_bulk"
	StepCopyDelta     Step = "copy_delta"
	StepCutover       Step = "cutover"
	StepNoticeSuccess Step = "notice_success"
	// StepReschedule: an operator moved the mailbox to another night
	// before it had begun waiting (ErrTypeRescheduled); otherwise the
	// step it was in names where it was moved from.
	StepReschedule Step = "reschedule"
)

// Outcome is how a mailbox's migration ended.
type Outcome string

const (
	OutcomeMigrated     Outcome = "migrated"
	OutcomeNeedsSupport Outcome = "needs_support"
	OutcomeCancelled    Outcome = "cancelled"
	// OutcomeDeferred: the preflight found the mailbox cannot go (ErrorType
	// is one of DeferReasons); nobody was told, its admin was, and it goes
	// back to the pool. It is not a failure of the migration: a wave counts
	// it apart, and not against its error budget.
	OutcomeDeferred Outcome = "deferred"
)

// PreflightRoomMargin is the room a target must have beyond the source's
// size: a tenth more (the target stores a message a little larger, and
// mail goes on arriving until the cutover).
const PreflightRoomMargin = 0.10

// Preflight is what the check before the T-14 notice found. A figure not
// read is zero; RoomKnown says whether the target's room was.
type Preflight struct {
	// SourceBytes and SourceMessages are the source mailbox's size, over
	// the folders a copy would read.
	SourceBytes    int64
	SourceMessages int64
	// Oversize counts the source's messages over the target's size limit
	// (OversizeLimit): each will be a bad item.
	Oversize      int64 `json:",omitempty"`
	OversizeLimit int64 `json:",omitempty"`
	// TargetRoom is what the target's quota leaves, when RoomKnown.
	RoomKnown  bool  `json:",omitempty"`
	TargetRoom int64 `json:",omitempty"`
}

// NoRoom reports whether the target's known room is short of the source's
// size and the margin.
func (p Preflight) NoRoom() bool {
	need := p.SourceBytes + int64(float64(p.SourceBytes)*PreflightRoomMargin)
	return p.RoomKnown && p.TargetRoom < need
}

// MailboxInput starts one mailbox's migration.
type MailboxInput struct {
	Mailbox MailboxRef
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
	// DatedNotices: the T-14 and T-1 notices' Message-IDs carry T
	// (AdvanceNoticeMessageID), so a mailbox told one date and moved to
	// another is told again. Set on every run started since 2026-12-07;
	// the runs before keep the IDs they began with.
	DatedNotices bool `json:",omitempty"`
	// Prestage, set by a pre-staging wave, runs the bulk pass (and the
	// incremental ones) before T; nil copies at T. WaveSize is the wave's
	// mailboxes, for Prestage.Spread.
	Prestage *Prestage `json:",omitempty"`
	WaveSize int       `json:",omitempty"`
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
	Copied     CopyStats
	StartedAt  time.Time
	FinishedAt time.Time
	// Preflight is what the check before the notice found, when it ran.
	Preflight *Preflight `json:",omitempty"`
	// Prestage is a pre-staged mailbox's passes before T, as they ended.
	Prestage *PrestageState `json:",omitempty"`
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
	NoticesSent []NoticeKind `json:",omitempty"`
	// Attempts counts, per step that has finished, the attempts it took.
	Attempts  map[Step]int32 `json:",omitempty"`
	LastError string         `json:",omitempty"`
	Copied    CopyStats
	// Preflight is what the check before the notice found, once it ran.
	Preflight *Preflight `json:",omitempty"`
	// Prestage is a pre-staged mailbox's passes before T.
	Prestage *PrestageState `json:",omitempty"`
	// Rescheduled is an operator's move of the mailbox to another night,
	// once accepted.
	Rescheduled *Rescheduled   `json:",omitempty"`
	Result      *MailboxResult `json:",omitempty"`
}

// RescheduleRequest is the reschedule update's payload: move the mailbox
// to the night at To. Reason is free text that may name people: it is
// kept in the (encrypted) history, and logged at debug only.
type RescheduleRequest struct {
	To     time.Time
	Reason string `json:",omitempty"`
	By     string `json:",omitempty"`
}

// RescheduleResult is an accepted reschedule: the mailbox leaves the night
// at From for the night at To; Corrected says whether a corrected notice
// goes to its user (its T-14 notice had gone out).
type RescheduleResult struct {
	From, To  time.Time
	Corrected bool
	// NotKept says why the estate could not keep the mailbox for its new
	// night ("" when it did): then its user is not told the new date, and
	// it needs support (its admin told).
	NotKept string `json:",omitempty"`
}

// Rescheduled is an accepted reschedule as the mailbox's state keeps it.
type Rescheduled struct {
	From, To  time.Time
	By        string `json:",omitempty"`
	Reason    string `json:",omitempty"`
	At        time.Time
	Corrected bool
	// NotKept: why the estate could not keep it for its new night.
	NotKept string `json:",omitempty"`
}

// PauseRequest is the payload of the pause signal. ByWave marks a hold by
// the mailbox's wave, kept apart from an operator's pause of the mailbox.
type PauseRequest struct {
	Reason string `json:",omitempty"`
	ByWave bool   `json:",omitempty"`
}

// ResumeRequest is the payload of the resume signal.
type ResumeRequest struct {
	ByWave bool `json:",omitempty"`
}
