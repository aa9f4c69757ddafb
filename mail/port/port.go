// Package port holds the ports through which mailwave's side effects reach
// the outside world (notices, the copy, the cutover, the wave rosters), the
// types they carry and the errors they return. It imports nothing of
// Temporal: a connector under mail/ depends on it alone, and the activities
// turn its errors into Temporal's (activities.toTemporal).
package port

import (
	"context"
	"errors"
	"time"

	"mailwave/contract"
	"mailwave/roster/wavefile"
)

// Notice is one message to one user.
type Notice struct {
	Mailbox   contract.MailboxRef
	Kind      contract.NoticeKind
	MessageID string
	WaveID    string
	MigrateAt time.Time
	// Failure is set on a NoticeFailure only.
	Failure *contract.Failure `json:",omitempty"`
}

// Notifier sends user notices. Send must be idempotent by Notice.MessageID.
type Notifier interface {
	Send(ctx context.Context, n Notice) (alreadySent bool, err error)
	// Sent reports whether the notice of that kind for that mailbox key went out.
	Sent(ctx context.Context, key string, kind contract.NoticeKind) (bool, error)
}

// CopyRequest asks a copier for one pass over one mailbox, from a checkpoint.
// Progress is called after each durable step with the new checkpoint and the
// stats so far in this attempt; the activity heartbeats them.
type CopyRequest struct {
	Mailbox    contract.MailboxRef
	Pass       contract.CopyPass
	Checkpoint contract.Checkpoint
	Progress   func(contract.Checkpoint, contract.CopyStats)
}

// Copier copies a mailbox's data from source to target. It must be
// resumable from a checkpoint and must not add anything twice.
type Copier interface {
	Copy(ctx context.Context, req CopyRequest) (contract.CopyStats, error)
}

// TargetChecker is a copier that can prove its target for one mailbox
// before a wave: one read and one tiny write, removed again. The error
// says plainly what is wrong (consent or permission missing, the mailbox
// not found, throttled).
type TargetChecker interface {
	CheckTarget(ctx context.Context, m contract.MailboxRef) error
}

// Route is where mail for a mailbox is delivered.
type Route string

const (
	RouteSource Route = "source"
	RouteTarget Route = "target"
)

// Router reads and changes mail routing (the cutover).
type Router interface {
	Route(ctx context.Context, m contract.MailboxRef) (Route, error)
	// Cutover points the mailbox at the target. It must succeed if it already is.
	Cutover(ctx context.Context, m contract.MailboxRef) error
}

// RoutingHosts is a Router whose cutovers may run on another host: the
// mail server's own, where a worker serves only the cutover on that host's
// task queue.
type RoutingHosts interface {
	// CutoverQueue names the task queue of the mailbox's routing host, or
	// "" where any worker may cut it over.
	CutoverQueue(m contract.MailboxRef) (string, error)
}

// Rosters serves the wave rosters by wave ID (roster/wavefile's Store):
// the roster a worker reads is the one its own configuration points to,
// never a path named in a workflow input.
type Rosters interface {
	// Rows returns the mailboxes at indexes from (inclusive) to to.
	Rows(ctx context.Context, waveID string, from, to int) ([]wavefile.Mailbox, error)
	// Get returns the mailboxes at the given indexes, in that order.
	Get(ctx context.Context, waveID string, indexes []int) ([]wavefile.Mailbox, error)
}

// Preflighter checks, before anyone is told, that a mailbox can go: it
// can be logged into at the source and its size read, its target mailbox
// exists and can be written, the target has room for it; and it counts the
// source's messages over the target's size limit. A mailbox that cannot
// go gets a PermanentError of one of contract.DeferReasons (SourceRefused,
// TargetRefused and NoRoom make them), with what was read so far; any
// other error is retried.
type Preflighter interface {
	Preflight(ctx context.Context, m contract.MailboxRef) (contract.Preflight, error)
}

// ErrNoPreflight is a Preflighter's answer for a mailbox whose copier
// has no preflight (one that dispatches to several, say): the mailbox is
// not checked, which stops nothing.
var ErrNoPreflight = errors.New("no preflight for this mailbox's copier")

// SourceRefused is a preflight's reading of an error from the source: a
// refused login or a mailbox not there is ErrTypeSourceLogin; anything
// else is returned as it is.
func SourceRefused(err error) error {
	switch typ, _ := IsPermanent(err); typ {
	case contract.ErrTypeBadCredentials, contract.ErrTypeMailboxNotFound:
		return &PermanentError{Type: contract.ErrTypeSourceLogin, Err: err}
	}
	return err
}

// TargetRefused is a preflight's reading of an error from the target: a
// mailbox not there is ErrTypeTargetMissing, a full one ErrTypeTargetNoRoom,
// a refused login loginRefused (the copier knows what its target means by
// it), any other permanent refusal ErrTypeTargetNotWritable; anything else
// (throttled, transient) is returned as it is.
func TargetRefused(err error, loginRefused string) error {
	typ, ok := IsPermanent(err)
	switch {
	case !ok:
		return err
	case typ == contract.ErrTypeMailboxNotFound:
		typ = contract.ErrTypeTargetMissing
	case typ == contract.ErrTypeOverQuota:
		typ = contract.ErrTypeTargetNoRoom
	case typ == contract.ErrTypeBadCredentials:
		typ = loginRefused
	default:
		typ = contract.ErrTypeTargetNotWritable
	}
	return &PermanentError{Type: typ, Err: err}
}

// NoRoom is ErrTypeTargetNoRoom for a preflight whose target's known room
// is short of the source's size and the margin; nil otherwise (an unknown
// room is no reason to stop).
func NoRoom(m contract.MailboxRef, p contract.Preflight) error {
	if !p.NoRoom() {
		return nil
	}
	return Permanent(contract.ErrTypeTargetNoRoom, "mailbox %s: the target has room for %d bytes, the source holds %d (and a margin of %.0f%%)",
		m.Key, p.TargetRoom, p.SourceBytes, 100*contract.PreflightRoomMargin)
}
