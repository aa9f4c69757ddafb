package smtpnotify

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"mailwave/contract"
	"mailwave/internal/atomicfile"
	"mailwave/internal/flock"
	"mailwave/mail/notices"
	"mailwave/mail/port"
)

// Ledger records which notices were sent: Send reads it before it connects
// and writes it once the server has accepted a message; Sent (the cutover's
// proof of the T-14 notice) reads it. Every worker that sends notices must
// see the same ledger: a directory on shared storage (the default, a file
// per notice), or a database (PostgresLedger, pgledger.go) for a fleet.
type Ledger interface {
	// Recorded returns the Message-ID recorded for the notice, or "" if
	// none is.
	Recorded(ctx context.Context, key string, kind contract.NoticeKind) (messageID string, err error)
	// Claim takes, for owner and for lease, the claim to send the notice,
	// unless it is recorded (its Message-ID is returned) or another
	// owner's claim has not expired (a *contract.NoticeClaimHeld error).
	// An owner's own claim is renewed and an expired one taken over.
	Claim(ctx context.Context, key string, kind contract.NoticeKind, owner string, lease time.Duration) (recorded string, err error)
	// Release gives up owner's claim on a notice that was not sent.
	Release(ctx context.Context, key string, kind contract.NoticeKind, owner string) error
	// Record records that the notice went out with that Message-ID, and
	// drops its claim.
	Record(ctx context.Context, key string, kind contract.NoticeKind, messageID string, at time.Time) error
}

// checkRecord refuses a key or kind that cannot name a ledger record.
func checkRecord(key string, kind contract.NoticeKind) error {
	if err := notices.ValidKey(key); err != nil {
		return port.Permanent(contract.ErrTypeNoticeNotSent, "smtpnotify: %v", err)
	}
	if !slices.Contains(contract.AllNoticeKinds, kind) {
		return port.Permanent(contract.ErrTypeNoticeNotSent, "smtpnotify: mailbox %s: unknown notice kind %q", key, kind)
	}
	return nil
}

// dirLedger is a directory holding <key>-<kind>.sent per notice sent and
// <key>-<kind>.claim per notice being sent. Claims are read and written
// under an flock of the directory itself: the workers of one host agree;
// a fleet on many hosts uses the database ledger instead.
type dirLedger struct{ dir string }

// file names a notice's file of the kind the suffix says (notices'
// LedgerSuffix, ClaimSuffix), as notices.RemoveFiles finds them.
func (d dirLedger) file(key string, kind contract.NoticeKind, suffix string) string {
	return filepath.Join(d.dir, key+"-"+string(kind)+suffix)
}

func (d dirLedger) path(key string, kind contract.NoticeKind) string {
	return d.file(key, kind, notices.LedgerSuffix)
}

func (d dirLedger) claimPath(key string, kind contract.NoticeKind) string {
	return d.file(key, kind, notices.ClaimSuffix)
}

// locked runs fn holding the directory's claim lock, waiting for another
// process holding it no longer than ctx allows.
func (d dirLedger) locked(ctx context.Context, fn func() error) error {
	unlock, err := flock.Lock(ctx, d.dir, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("locking the ledger directory: %w", err)
	}
	defer unlock()
	return fn()
}

func (d dirLedger) Claim(ctx context.Context, key string, kind contract.NoticeKind, owner string, lease time.Duration) (string, error) {
	var recorded string
	err := d.locked(ctx, func() error {
		now := time.Now()
		holder, until, err := readClaim(d.claimPath(key, kind))
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return err
		case holder != owner && now.Before(until):
			return &contract.NoticeClaimHeld{Owner: holder, Until: until}
		}
		id, err := readLedger(d.path(key, kind))
		switch {
		case err == nil:
			recorded = id
			return nil
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
		return atomicfile.Write(d.claimPath(key, kind), 0o640, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "%s\n%s\n", owner, now.Add(lease).UTC().Format(time.RFC3339Nano))
			return err
		})
	})
	return recorded, err
}

func (d dirLedger) Release(ctx context.Context, key string, kind contract.NoticeKind, owner string) error {
	return d.locked(ctx, func() error {
		holder, _, err := readClaim(d.claimPath(key, kind))
		if err != nil || holder != owner {
			return nil // none, or not ours
		}
		return os.Remove(d.claimPath(key, kind))
	})
}

// readClaim returns a claim file's owner and expiry.
func readClaim(path string) (owner string, until time.Time, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", time.Time{}, err
	}
	owner, at, ok := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if ok {
		until, err = time.Parse(time.RFC3339Nano, at)
	}
	if !ok || err != nil {
		return "", time.Time{}, fmt.Errorf("%s: not a claim (owner, then expiry)", filepath.Base(path))
	}
	return owner, until, nil
}

func (d dirLedger) Recorded(_ context.Context, key string, kind contract.NoticeKind) (string, error) {
	id, err := readLedger(d.path(key, kind))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return id, err
}

// Record writes the record and drops the claim under the lock, so that a
// Claim sees either the claim or the record, never neither.
func (d dirLedger) Record(ctx context.Context, key string, kind contract.NoticeKind, messageID string, at time.Time) error {
	return d.locked(ctx, func() error {
		if err := writeLedger(d.path(key, kind), messageID, at); err != nil {
			return err
		}
		if err := os.Remove(d.claimPath(key, kind)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	})
}

// readLedger returns the Message-ID of a ledger record; fs.ErrNotExist
// means there is none. The time in the record is for people: Send and Sent
// only need to know what was sent.
func readLedger(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var id string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if name, value, ok := strings.Cut(sc.Text(), ":"); ok && name == ledgerIDField {
			id = strings.TrimSpace(value)
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	if id == "" {
		return "", fmt.Errorf("%s: no %s", filepath.Base(path), ledgerIDField)
	}
	return id, nil
}

// writeLedger writes a record atomically. A leading dot and no .sent suffix
// keep the temporary file out of globs for *.sent.
func writeLedger(path, messageID string, at time.Time) error {
	return atomicfile.Write(path, 0o640, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "%s: %s\n%s: %s\n", ledgerIDField, messageID, ledgerAtField, at.UTC().Format(time.RFC3339))
		return err
	})
}
