package smtpnotify

import (
	"bufio"
	"fmt"
	"io"
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

// ledgerPath is the ledger record for a mailbox and kind. The key becomes
// part of a file name, so it must pass notices.ValidKey.
func (n *Notifier) ledgerPath(key string, kind contract.NoticeKind) (string, error) {
	if err := notices.ValidKey(key); err != nil {
		return "", activities.Permanent(contract.ErrTypeNoticeNotSent, "smtpnotify: %v", err)
	}
	if !slices.Contains(contract.AllNoticeKinds, kind) {
		return "", activities.Permanent(contract.ErrTypeNoticeNotSent, "smtpnotify: mailbox %s: unknown notice kind %q", key, kind)
	}
	return filepath.Join(n.ledgerDir, key+"-"+string(kind)+ledgerSuffix), nil
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
