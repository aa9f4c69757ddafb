package smtpnotify

import (
	"context"
	"time"

	"mailwave/contract"
)

// SetRecordFor shortens how long an accepted notice is tried to be
// recorded, for a test; the returned function puts it back.
func SetRecordFor(d time.Duration) (restore func()) {
	old := recordFor
	recordFor = d
	return func() { recordFor = old }
}

// SetClaimFor shortens how long a claim to send lasts, for a test.
func SetClaimFor(d time.Duration) (restore func()) {
	old := claimFor
	claimFor = d
	return func() { claimFor = old }
}

// ClaimOnly takes n's claim on a notice and sends nothing, as a worker
// killed in mid-send leaves it; it returns the recorded Message-ID, if any.
func ClaimOnly(ctx context.Context, n *Notifier, key string, kind contract.NoticeKind) (string, error) {
	return n.ledger.Claim(ctx, key, kind, n.owner, claimFor)
}

// RecordOnly records a notice in n's ledger, as after the relay accepted it.
func RecordOnly(ctx context.Context, n *Notifier, key string, kind contract.NoticeKind, id string) error {
	return n.ledger.Record(ctx, key, kind, id, time.Now())
}
