package contract

import (
	"fmt"
	"time"
)

// NoticeKind is one of the three user notices.
type NoticeKind string

const (
	NoticeT14     NoticeKind = "t14"     // two weeks ahead
	NoticeT1      NoticeKind = "t1"      // the day before
	NoticeSuccess NoticeKind = "success" // after cutover
)

// NoticeRescheduled is a user notice: the mailbox was moved to another
// night after its T-14 notice went out, and this one gives the new date
// (its MigrateAt). It has a Message-ID of its own per new date
// (RescheduledMessageID).
const NoticeRescheduled NoticeKind = "rescheduled"

// NoticeFailure is not a user notice: it goes to the organisation's admin
// contact when a mailbox ends in "needs support", and says why.
const NoticeFailure NoticeKind = "failure"

// NoticeOrgHeld is not a user notice either: it goes to the organisation's
// admin contact when its migration is held for too many mailboxes needing
// support on a night, and says why.
const NoticeOrgHeld NoticeKind = "org_held"

// ToAdmin reports whether a notice of this kind goes to the organisation's
// admin contact, not to a user.
func (k NoticeKind) ToAdmin() bool { return k == NoticeFailure || k == NoticeOrgHeld }

// NoticeKinds lists the user notices in the order a mailbox receives them.
var NoticeKinds = []NoticeKind{NoticeT14, NoticeT1, NoticeSuccess}

// AllNoticeKinds is NoticeKinds, the correction of a rescheduled mailbox
// and the admin's notices.
var AllNoticeKinds = []NoticeKind{NoticeT14, NoticeT1, NoticeSuccess, NoticeFailure, NoticeOrgHeld, NoticeRescheduled}

// Failure says why a mailbox needs support; it is carried by a failure
// notice only.
type Failure struct {
	Step      string
	ErrorType string
	Reason    string
}

// MessageIDDomain is the right-hand side of every notice's Message-ID.
const MessageIDDomain = "notices.mailwave.invalid"

// NoticeMessageID is the deterministic Message-ID of a notice: the same
// mailbox and kind always give the same ID, so a retried send is recognisable
// (the outbox overwrites, SMTP skips). It carries the opaque key, never the
// address.
func NoticeMessageID(key string, kind NoticeKind) string {
	return fmt.Sprintf("<%s.%s@%s>", kind, key, MessageIDDomain)
}

// AdvanceNoticeMessageID is the Message-ID of a T-14 or T-1 notice for
// the migration at `at`: one per key, kind and date, so that a mailbox whose
// night changed (moved by an operator, deferred and chosen again) is told
// its new date in its own notice, while a retried send is still
// recognised. Runs started before it use NoticeMessageID
// (MailboxInput.DatedNotices).
func AdvanceNoticeMessageID(key string, kind NoticeKind, at time.Time) string {
	return fmt.Sprintf("<%s.%s.%d@%s>", kind, key, at.Unix(), MessageIDDomain)
}

// RescheduledMessageID is the Message-ID of the notice correcting a
// mailbox's date to `to`: one per key and new date, so a retried send is
// recognised, and a later move of the same mailbox to another date is a
// new message (the outbox and the SMTP ledgers keep one notice per key and
// kind, and send again when its Message-ID differs from the one kept).
func RescheduledMessageID(key string, to time.Time) string {
	return fmt.Sprintf("<%s.%s.%d@%s>", NoticeRescheduled, key, to.Unix(), MessageIDDomain)
}

// NoticeClaimHeld is a notice ledger's answer when another worker holds the
// claim to send a notice: it sends nothing until that claim is recorded,
// released or has expired, so two workers never send one notice at once.
type NoticeClaimHeld struct {
	Owner string    // the worker holding the claim (host, process), never personal
	Until time.Time // when the claim expires if its owner neither records nor releases it
}

func (e *NoticeClaimHeld) Error() string {
	return fmt.Sprintf("being sent by %s (its claim expires %s)", e.Owner, e.Until.UTC().Format(time.RFC3339))
}
