package notices

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"mailwave/contract"
)

// Suffixes of the per-notice files: the outbox's messages and the SMTP
// notifier's sent ledger, each <key>-<kind><suffix> in its directory.
const (
	OutboxSuffix = ".eml"
	LedgerSuffix = ".sent"
	// ClaimSuffix marks the SMTP notifier's claim to send a notice
	// (owner and expiry), kept only while it is being sent.
	ClaimSuffix = ".claim"
)

// RemoveFiles deletes a mailbox's notice files of every kind (the outbox's
// messages or the ledger's records, by suffix) from dir, and returns how
// many there were. A file already gone is not an error.
func RemoveFiles(dir, key, suffix string) (int, error) {
	if err := ValidKey(key); err != nil {
		return 0, err
	}
	n := 0
	for _, kind := range contract.AllNoticeKinds {
		err := os.Remove(filepath.Join(dir, key+"-"+string(kind)+suffix))
		switch {
		case err == nil:
			n++
		case !errors.Is(err, os.ErrNotExist):
			return n, fmt.Errorf("removing mailbox %s's %s notice: %w", key, kind, err)
		}
	}
	return n, nil
}
