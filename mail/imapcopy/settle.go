package imapcopy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"

	"mailwave/contract"
	"mailwave/internal/prefix"
)

// done records a message as settled and moves the folder's checkpoint
// over every settled message in UID order.
func (j *job) done(f folder, tr *prefix.Tracker[imap.UID], uid imap.UID) {
	last, moved := tr.Settle(uid)
	if !moved {
		return
	}
	j.mu.Lock()
	fc := j.cp.Folders[f.src]
	fc.LastUID = max(fc.LastUID, uint32(last))
	j.cp.Folders[f.src] = fc
	j.mu.Unlock()
	j.report(false)
}

// badItem records a message that will not be copied, with where and why.
func (j *job) badItem(f folder, tr *prefix.Tracker[imap.UID], m meta, reason string) {
	j.mu.Lock()
	fc := j.cp.Folders[f.src]
	if !slices.Contains(fc.Bad, uint32(m.uid)) {
		fc.Bad = append(fc.Bad, uint32(m.uid))
		j.cp.Folders[f.src] = fc
		j.stats.BadItems++
		if len(j.stats.Bad) < contract.MaxBadListed {
			j.stats.Bad = append(j.stats.Bad, contract.BadItem{Folder: shown(f.src), UID: uint32(m.uid), Size: m.size, Reason: reason})
		}
	}
	j.mu.Unlock()
	if tr != nil {
		j.done(f, tr, m.uid)
	}
}

// describeBad names the first bad items, with the reasons this attempt
// found where it has them.
func describeBad(bad, reasons []contract.BadItem) string {
	parts := make([]string, 0, min(len(bad), 6))
	for i, b := range bad {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more", len(bad)-5))
			break
		}
		s := fmt.Sprintf("folder %s UID %d", label(b.Folder), b.UID)
		for _, r := range reasons {
			if r.Folder == b.Folder && r.UID == b.UID {
				s += " (" + r.Reason + ")"
			}
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}
