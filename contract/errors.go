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
)

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
