package contract

import "slices"

// CopyPass is the bulk pass ahead of cutover or the short delta at cutover.
type CopyPass string

const (
	PassBulk  CopyPass = "bulk"
	PassDelta CopyPass = "delta"
)

// FolderCheckpoint is how far a folder has been copied.
type FolderCheckpoint struct {
	UIDValidity uint32
	LastUID     uint32
	// TargetUIDValidity and TargetUIDNext say where on the target folder
	// messages not yet covered by LastUID may lie: a resumed copy looks for
	// duplicates from TargetUIDNext on, not through the whole folder.
	TargetUIDValidity uint32 `json:",omitempty"`
	TargetUIDNext     uint32 `json:",omitempty"`
	// TargetSinceUID is LastUID when TargetUIDNext was read: the source
	// messages after it up to LastUID have their copies at or above
	// TargetUIDNext.
	TargetSinceUID uint32 `json:",omitempty"`
	// TargetBaseUID is the target folder's next UID when the copy first
	// saw it (with TargetUIDValidity): what lies below it was there before
	// the copy and is never a duplicate, nor ever touched; a source message
	// the folder holds more often than the source does, at or above it, is
	// a copy this copy made twice. 0 in a checkpoint from before it was
	// kept: the next attempt takes the target's next UID then.
	TargetBaseUID uint32 `json:",omitempty"`
	// Bad lists the UIDs (at or below LastUID) reported as bad items, so a
	// resumed copy neither retries them nor counts them again.
	Bad []uint32 `json:",omitempty"`
}

// Checkpoint is a copy's resumable position, heartbeated by the activity and
// handed back on a retry. Folder names are the source's names.
type Checkpoint struct {
	Folders map[string]FolderCheckpoint `json:",omitempty"`
	// Interrupted is set by an attempt that ended in a failure, perhaps
	// with appends in flight that the target may still apply: the next
	// attempt checks every folder once more at its end, after its own
	// folders' checks, for copies that landed late (and clears it).
	Interrupted bool `json:",omitempty"`
}

// Clone returns a deep copy, safe to hand to a heartbeat.
func (c Checkpoint) Clone() Checkpoint {
	out := Checkpoint{Folders: make(map[string]FolderCheckpoint, len(c.Folders)), Interrupted: c.Interrupted}
	for k, v := range c.Folders {
		v.Bad = slices.Clone(v.Bad)
		out.Folders[k] = v
	}
	return out
}

// CopyStats counts what a copy did. Skipped counts messages found already on
// the target (a resumed copy); BadItems counts messages that could not be
// copied and were reported, never dropped silently.
type CopyStats struct {
	Items    int64
	Bytes    int64
	Skipped  int64
	BadItems int64
	// Duplicates counts the copies this copy found it had made twice (a
	// connection lost with appends in flight that the server applied
	// after the next attempt had looked) and removed before the folder
	// verified. Duplicates it could not remove fail the verification.
	Duplicates int64 `json:",omitempty"`
	// Bad names the first MaxBadListed bad items, for the operator.
	Bad []BadItem `json:",omitempty"`
}

// BadItem is a message that was not copied: where it is and why.
type BadItem struct {
	Folder string
	UID    uint32
	Size   int64
	Reason string
}

// MaxBadListed bounds CopyStats.Bad, which travels in workflow results.
const MaxBadListed = 50

// Add returns the sum of two stats.
func (s CopyStats) Add(o CopyStats) CopyStats {
	bad := append(slices.Clip(s.Bad), o.Bad...)
	if len(bad) > MaxBadListed {
		bad = bad[:MaxBadListed]
	}
	if len(bad) == 0 {
		bad = nil
	}
	return CopyStats{Items: s.Items + o.Items, Bytes: s.Bytes + o.Bytes, Skipped: s.Skipped + o.Skipped,
		BadItems: s.BadItems + o.BadItems, Duplicates: s.Duplicates + o.Duplicates, Bad: bad}
}
