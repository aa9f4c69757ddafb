// Package activities holds mailwave's side effects. Each activity reaches the
// outside world only through a small interface (a port) defined here; the
// implementations live under mail/ and never import Temporal.
package activities

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// MailboxRef names one mailbox. Key is the opaque keyed hash used in workflow
// IDs, search attributes and info logs; Address and DisplayName are personal
// data and only ever reach the ports.
type MailboxRef struct {
	Key         string
	Address     string
	Org         string `json:",omitempty"`
	DisplayName string `json:",omitempty"`
}

// NoticeKind is one of the three user notices.
type NoticeKind string

const (
	NoticeT14     NoticeKind = "t14"     // two weeks ahead
	NoticeT1      NoticeKind = "t1"      // the day before
	NoticeSuccess NoticeKind = "success" // after cutover
)

// NoticeFailure is not a user notice: it goes to the organisation's admin
// contact when a mailbox ends in "needs support", and says why.
const NoticeFailure NoticeKind = "failure"

// NoticeKinds lists the user notices in the order a mailbox receives them.
var NoticeKinds = []NoticeKind{NoticeT14, NoticeT1, NoticeSuccess}

// AllNoticeKinds is NoticeKinds and the admin's failure notice.
var AllNoticeKinds = []NoticeKind{NoticeT14, NoticeT1, NoticeSuccess, NoticeFailure}

// Failure says why a mailbox needs support; it is carried by a failure
// notice only.
type Failure struct {
	Step      string
	ErrorType string
	Reason    string
}

// MessageIDDomain is the right-hand side of every notice's Message-ID.
const MessageIDDomain = "notices.mailwave.invalid"

// NoticeMessageID is the deterministic Message-ID of a notice: the same
// mailbox and kind always give the same ID, so a retried send is recognisable
// (the outbox overwrites, SMTP skips). It carries the opaque key, never the
// address.
func NoticeMessageID(key string, kind NoticeKind) string {
	return fmt.Sprintf("<%s.%s@%s>", kind, key, MessageIDDomain)
}

// Notice is one message to one user.
type Notice struct {
	Mailbox   MailboxRef
	Kind      NoticeKind
	MessageID string
	WaveID    string
	MigrateAt time.Time
	// Failure is set on a NoticeFailure only.
	Failure *Failure `json:",omitempty"`
}

// Notifier sends user notices. Send must be idempotent by Notice.MessageID.
type Notifier interface {
	Send(ctx context.Context, n Notice) (alreadySent bool, err error)
	// Sent reports whether the notice of that kind for that mailbox key went out.
	Sent(ctx context.Context, key string, kind NoticeKind) (bool, error)
}

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
	// Bad lists the UIDs (at or below LastUID) reported as bad items, so a
	// resumed copy neither retries them nor counts them again.
	Bad []uint32 `json:",omitempty"`
}

// Checkpoint is a copy's resumable position, heartbeated by the activity and
// handed back on a retry. Folder names are the source's names.
type Checkpoint struct {
	Folders map[string]FolderCheckpoint `json:",omitempty"`
}

// Clone returns a deep copy, safe to hand to a heartbeat.
func (c Checkpoint) Clone() Checkpoint {
	out := Checkpoint{Folders: make(map[string]FolderCheckpoint, len(c.Folders))}
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
		BadItems: s.BadItems + o.BadItems, Bad: bad}
}

// CopyRequest asks a copier for one pass over one mailbox, from a checkpoint.
// Progress is called after each durable step with the new checkpoint and the
// stats so far in this attempt; the activity heartbeats them.
type CopyRequest struct {
	Mailbox    MailboxRef
	Pass       CopyPass
	Checkpoint Checkpoint
	Progress   func(Checkpoint, CopyStats)
}

// Copier copies a mailbox's data from source to target. It must be
// resumable from a checkpoint and must not add anything twice.
type Copier interface {
	Copy(ctx context.Context, req CopyRequest) (CopyStats, error)
}

// Route is where mail for a mailbox is delivered.
type Route string

const (
	RouteSource Route = "source"
	RouteTarget Route = "target"
)

// Router reads and changes mail routing (the cutover).
type Router interface {
	Route(ctx context.Context, m MailboxRef) (Route, error)
	// Cutover points the mailbox at the target. It must succeed if it already is.
	Cutover(ctx context.Context, m MailboxRef) error
}
