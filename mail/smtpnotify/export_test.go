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
// killed in mid-send leaves it.
func ClaimOnly(ctx context.Context, n *Notifier, key string, kind contract.NoticeKind) error {
	_, err := n.ledger.Claim(ctx, key, kind, n.owner, claimFor)
	return err
}
