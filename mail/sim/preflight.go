package sim

import (
	"context"

	"mailwave/contract"
	"mailwave/mail/port"
)

// Preflight checks a mailbox before its notice as a real copier would
// (port.Preflighter): the source's login and size (its profile: the bulk
// content; the delta arrives later), the target's mailbox and room. A
// mailbox the estate does not have is outside the simulation and not
// checked (port.ErrNoPreflight): its copy is refused, as before there was
// a preflight, which tests lean on for a mailbox needing support. The
// others meet the refusal their draw gives them (Faults: SourceLoginRate,
// TargetMissingRate, TargetNotWritableRate, TargetNoRoomRate), the same on
// every attempt. The simulated target has no size limit and, but for a
// mailbox drawn to have no room, says nothing of its quota.
func (e *Estate) Preflight(ctx context.Context, m contract.MailboxRef) (contract.Preflight, error) {
	if err := ctx.Err(); err != nil {
		return contract.Preflight{}, err
	}
	if !validKey(m.Key) {
		return contract.Preflight{}, port.Permanent(contract.ErrTypeInvalidMailbox, "invalid mailbox key (%d bytes)", len(m.Key))
	}
	i, ok := e.lookupAddress(m.Address)
	if !ok {
		return contract.Preflight{}, port.ErrNoPreflight
	}
	reason := e.preflightFault(i)
	if reason == contract.ErrTypeSourceLogin {
		return contract.Preflight{}, port.SourceRefused(
			port.Permanent(contract.ErrTypeBadCredentials, "source refused the login of mailbox %s", m.Key))
	}
	pr := e.profile(i)
	p := contract.Preflight{SourceBytes: pr.Bytes, SourceMessages: pr.Messages}
	switch reason {
	case contract.ErrTypeTargetMissing:
		return p, port.TargetRefused(
			port.Permanent(contract.ErrTypeMailboxNotFound, "mailbox %s not found at the target", m.Key), contract.ErrTypeTargetMissing)
	case contract.ErrTypeTargetNotWritable:
		return p, port.Permanent(contract.ErrTypeTargetNotWritable, "the target refused the test message of mailbox %s", m.Key)
	case contract.ErrTypeTargetNoRoom:
		p.RoomKnown, p.TargetRoom = true, pr.Bytes/2
	}
	return p, port.NoRoom(m, p)
}

// PreflightFault is the reason the preflight refuses the mailbox at
// address, or "" if it lets it go (or does not check it: an address the
// estate does not have): for tests that want one mailbox of each kind.
func (e *Estate) PreflightFault(address string) string {
	i, ok := e.lookupAddress(address)
	if !ok {
		return ""
	}
	return e.preflightFault(i)
}

// preflightFault draws the mailbox's preflight refusal, if any.
func (e *Estate) preflightFault(index int) string {
	f := e.opts.Faults
	u := unit(hash(uint64(e.manifest.Seed), uint64(index), saltPreflight))
	for _, r := range []struct {
		rate   float64
		reason string
	}{
		{f.SourceLoginRate, contract.ErrTypeSourceLogin},
		{f.TargetMissingRate, contract.ErrTypeTargetMissing},
		{f.TargetNotWritableRate, contract.ErrTypeTargetNotWritable},
		{f.TargetNoRoomRate, contract.ErrTypeTargetNoRoom},
	} {
		if u < r.rate {
			return r.reason
		}
		u -= r.rate
	}
	return ""
}
