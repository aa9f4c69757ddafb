package contract

import "time"

// Memo fields. A workflow's memo travels through the payload codec like
// its inputs (encrypted at rest), and comes back with every listed
// execution, so a report over thousands of mailboxes is a list, not
// thousands of history reads or queries.
const (
	// MemoSummary holds a finished mailbox's MailboxSummary.
	MemoSummary = "summary"
	// MemoProgress holds a wave's WaveProgress as it last published it, so
	// that `wave status` answers from the server when the workers are too
	// busy to answer a query.
	MemoProgress = "progress"
)

// MetricMailboxesFinished counts mailboxes finished, tagged by outcome
// (emitted by the workflow, so counted once, not on replay).
const MetricMailboxesFinished = "mailwave_mailboxes_finished"

// MailboxSummary is what a finished mailbox publishes in its memo for
// reports: no address, no name, no folder names.
type MailboxSummary struct {
	Key        string
	Org        string `json:",omitempty"` // the configured organisation
	WaveID     string `json:",omitempty"`
	Outcome    Outcome
	FailedStep Step   `json:",omitempty"`
	ErrorType  string `json:",omitempty"`
	// SourceItems are the messages the copy saw at the source (copied,
	// already there, and bad); TargetItems those on the target.
	SourceItems int64
	TargetItems int64
	Bytes       int64 // copied by this migration
	BadItems    int64
	// Duplicates are the extra copies the copy made and removed before its
	// folders verified (see CopyStats.Duplicates).
	Duplicates  int64        `json:",omitempty"`
	Consistency Consistency  `json:",omitempty"`
	NoticesSent []NoticeKind `json:",omitempty"`
	StartedAt   time.Time
	// CopyStartedAt is when the first copy pass began (zero if it never
	// did): a migration's own duration runs from it to FinishedAt, not from
	// the start, two weeks of notices earlier.
	CopyStartedAt time.Time `json:",omitempty"`
	FinishedAt    time.Time
	// Preflight is what the check before the notice found (the source's
	// size, the messages over the target's limit), when it ran.
	Preflight *Preflight `json:",omitempty"`
}

// Consistency grades a mailbox's copy, like Exchange's Data Consistency
// Score, from the copy's own verification and its bad items.
type Consistency string

const (
	// ConsistencyPerfect: migrated, every message copied and verified.
	ConsistencyPerfect Consistency = "perfect"
	// ConsistencyGood: migrated, a few bad items (at most GoodBadItems and
	// at most 1 % of the messages), each listed.
	ConsistencyGood Consistency = "good"
	// ConsistencyInvestigate: migrated with more bad items than that, or
	// stopped after a verified copy (a notice or the cutover failed).
	ConsistencyInvestigate Consistency = "investigate"
	// ConsistencyPoor: the copy itself failed, or its verification found
	// the target short, or holding a message more often than the source
	// with extra copies it could not remove.
	ConsistencyPoor Consistency = "poor"
)

// GoodBadItems is the most bad items a "good" mailbox may have.
const GoodBadItems = 10

// Grade is the consistency of a finished mailbox; "" for one cancelled,
// deferred or stopped before its copy.
func Grade(r MailboxResult) Consistency {
	s := r.Copied
	items := s.Items + s.Skipped + s.BadItems
	switch {
	case r.Outcome == OutcomeCancelled || r.Outcome == OutcomeDeferred:
		return ""
	case r.ErrorType == ErrTypeVerifyMismatch || r.FailedStep == StepCopyBulk || r.FailedStep == StepCopyDelta:
		return ConsistencyPoor
	case r.Outcome == OutcomeNeedsSupport && (r.FailedStep == StepNoticeT14 || r.FailedStep == StepNoticeT1):
		return "" // never copied
	case r.Outcome == OutcomeNeedsSupport:
		return ConsistencyInvestigate
	case s.BadItems == 0:
		return ConsistencyPerfect
	case s.BadItems <= GoodBadItems && s.BadItems*100 <= items:
		return ConsistencyGood
	default:
		return ConsistencyInvestigate
	}
}

// Summary is the result as a mailbox publishes it; copyStarted is when its
// first copy pass began, if one did.
func (r MailboxResult) Summary(org, wave string, notices []NoticeKind, copyStarted time.Time) MailboxSummary {
	return MailboxSummary{
		Key: r.Key, Org: org, WaveID: wave, Outcome: r.Outcome, FailedStep: r.FailedStep, ErrorType: r.ErrorType,
		SourceItems: r.Copied.Items + r.Copied.Skipped + r.Copied.BadItems, TargetItems: r.Copied.Items + r.Copied.Skipped,
		Bytes: r.Copied.Bytes, BadItems: r.Copied.BadItems, Duplicates: r.Copied.Duplicates, Consistency: Grade(r), NoticesSent: notices,
		StartedAt: r.StartedAt, CopyStartedAt: copyStarted, FinishedAt: r.FinishedAt, Preflight: r.Preflight,
	}
}
