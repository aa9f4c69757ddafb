package contract

// Error types: the Type of the application errors mailwave's workflows and
// activities fail with. They are matched by type, never by text.

// Error types of permanent failures: a mailbox that meets one of these ends in
// "needs support" at once, without retries.
const (
	ErrTypeMailboxNotFound = "MailboxNotFound"
	ErrTypeBadCredentials  = "BadCredentials"
	ErrTypeOverQuota       = "OverQuota"
	ErrTypeNoticeNotSent   = "NoticeNotSent"
	ErrTypeBadItems        = "BadItems"
	ErrTypeInvalidMailbox  = "InvalidMailbox"
	ErrTypeVerifyMismatch  = "VerifyMismatch"
	// ErrTypeServerAnswerTooLarge: a mail server announced more data than
	// the copier takes (a literal over its bound, a message body over the
	// largest message it accepts): broken or hostile, and retrying would
	// only let it try again.
	ErrTypeServerAnswerTooLarge = "ServerAnswerTooLarge"
)

// Error types of a preflight that finds a mailbox cannot go: the check
// before its T-14 notice. The mailbox is told nothing, its organisation's
// admin is told the reason, and it ends deferred (back to the pool for a
// later night), not needing support. The ports' own types beneath them
// (BadCredentials, MailboxNotFound, OverQuota) say which side refused and
// how; these say what stops the mailbox, in words an admin can act on
// (DeferReason).
const (
	// ErrTypeSourceLogin: the source refused the mailbox's login (a bad
	// credential, or no such mailbox there), so its size cannot be read.
	ErrTypeSourceLogin = "SourceLogin"
	// ErrTypeTargetMissing: the target has no such mailbox (an IMAP target
	// refusing the login with the organisation's credentials says the same).
	ErrTypeTargetMissing = "TargetMissing"
	// ErrTypeTargetNotWritable: the target's mailbox can be found but not
	// written (a refused test message, a permission missing).
	ErrTypeTargetNotWritable = "TargetNotWritable"
	// ErrTypeTargetNoRoom: the target's quota leaves less room than the
	// source's size and a margin (PreflightRoomMargin), or it is full.
	ErrTypeTargetNoRoom = "TargetNoRoom"
)

// DeferReasons lists the preflight's error types, in the order a preflight
// checks them.
var DeferReasons = []string{ErrTypeSourceLogin, ErrTypeTargetMissing, ErrTypeTargetNotWritable, ErrTypeTargetNoRoom}

// IsDeferReason reports whether an error type is a preflight's "cannot go".
func IsDeferReason(errType string) bool {
	for _, r := range DeferReasons {
		if r == errType {
			return true
		}
	}
	return false
}

// DeferReason is the reason told to the admin and kept in the result for a
// preflight's error type: fixed words, never a server's text (which may
// name a folder or an address).
func DeferReason(errType string) string {
	switch errType {
	case ErrTypeSourceLogin:
		return "deferred before its notice: the source refused the mailbox's login (a wrong credential, or no such mailbox at the source)"
	case ErrTypeTargetMissing:
		return "deferred before its notice: the mailbox was not found at the target (not provisioned there, or the target refused its login)"
	case ErrTypeTargetNotWritable:
		return "deferred before its notice: the mailbox at the target could not be written (a test message was refused)"
	case ErrTypeTargetNoRoom:
		return "deferred before its notice: the target mailbox has no room for it (its quota leaves less than the source's size and a margin)"
	}
	return "deferred before its notice: " + errType
}

// ErrTypeRescheduled is the error type of a mailbox an operator moved to
// another night (the reschedule update): it ends deferred, counted so by
// its wave (not in its error budget), and the estate keeps it for its new
// night.
const ErrTypeRescheduled = "Rescheduled"

// Error types of a refused reschedule: why the mailbox cannot be moved to
// the night asked for (the update's validator; the words name the times).
const (
	ErrTypeRescheduleEnded       = "MailboxEnded"         // it has ended, or is ending
	ErrTypeRescheduleBeingMoved  = "BeingMoved"           // a reschedule was accepted already
	ErrTypeRescheduleCopyStarted = "CopyStarted"          // its copy has started
	ErrTypeRescheduleInsideT1    = "InsideT1Window"       // at or after its T-1 reminder's time
	ErrTypeRescheduleBusy        = "BusySendingNotice"    // its preflight or T-14 notice is being sent
	ErrTypeRescheduleNotAfterNow = "NotAfterNow"          // the new time is not in the future
	ErrTypeRescheduleSameTime    = "SameTime"             // the new time is its T
	ErrTypeRescheduleTooSoon     = "CloserThanNoticeLead" // the new time is closer than the notice lead
)

// ErrTypeRescheduleNotKept: a reschedule was accepted, but the estate could
// not keep the mailbox for its new night (not a programme's mailbox, or the
// night of that date chosen already): it needs support, and its user is not
// told a date nobody will keep.
const ErrTypeRescheduleNotKept = "RescheduleNotKept"

// Error types of retryable failures.
const (
	ErrTypeThrottled = "Throttled"
	ErrTypeTransient = "Transient"
)

// ErrTypeInvalidInput fails a workflow started with input it cannot use.
const ErrTypeInvalidInput = "InvalidInput"

// ErrTypeBadWaveFile fails the wave's activities, for good, on a mailbox
// file that does not match the wave (missing, short, corrupt).
const ErrTypeBadWaveFile = "BadWaveFile"

// ErrTypeWaveGone fails, for good, a mailbox's report to a wave that no
// longer runs.
const ErrTypeWaveGone = "WaveGone"

// ErrTypeOrgHeld is the reason on the notice telling an organisation's admin
// that its migration was held: too many of its mailboxes needed support on a
// night.
const ErrTypeOrgHeld = "OrgHeld"
