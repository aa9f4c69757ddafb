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

	"mailwave/activities"
	"mailwave/contract"
	"mailwave/internal/atomicfile"
	"mailwave/mail/notices"
)

// Ledger records which notices were sent: Send reads it before it connects
// and writes it once the server has accepted a message; Sent (the cutover's
// proof of the T-14 notice) reads it. Every worker that sends notices must
// see the same ledger: a directory on shared storage (the default, a file
// per notice), or a database (internal/rosterstore's Ledger) for a fleet.
type Ledger interface {
	// Recorded returns the Message-ID recorded for the notice, or "" if
	// none is.
	Recorded(ctx context.Context, key string, kind contract.NoticeKind) (messageID string, err error)
	// Record records that the notice went out with that Message-ID.
	Record(ctx context.Context, key string, kind contract.NoticeKind, messageID string, at time.Time) error
}

// checkRecord refuses a key or kind that cannot name a ledger record.
func checkRecord(key string, kind contract.NoticeKind) error {
	if err := notices.ValidKey(key); err != nil {
		return activities.Permanent(contract.ErrTypeNoticeNotSent, "smtpnotify: %v", err)
	}
	if !slices.Contains(contract.AllNoticeKinds, kind) {
		return activities.Permanent(contract.ErrTypeNoticeNotSent, "smtpnotify: mailbox %s: unknown notice kind %q", key, kind)
	}
	return nil
}

// dirLedger is a directory holding <key>-<kind>.sent per notice sent.
type dirLedger struct{ dir string }

func (d dirLedger) path(key string, kind contract.NoticeKind) string {
	return filepath.Join(d.dir, key+"-"+string(kind)+ledgerSuffix)
}

func (d dirLedger) Recorded(_ context.Context, key string, kind contract.NoticeKind) (string, error) {
	id, err := readLedger(d.path(key, kind))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return id, err
}

func (d dirLedger) Record(_ context.Context, key string, kind contract.NoticeKind, messageID string, at time.Time) error {
	return writeLedger(d.path(key, kind), messageID, at)
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
