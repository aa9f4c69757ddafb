package graphcopy

import (
	"context"

	"mailwave/contract"
	"mailwave/mail/port"
)

// Preflight checks a mailbox before its T-14 notice (port.Preflighter):
// the source measured by the IMAP copier's own reading (its login, its
// size, the messages over MaxMessageBytes), then the target proved as
// CheckTarget does. A target refusing the application (401, 403: consent
// or permission missing) is a target that cannot be written; a mailbox
// Graph does not know is a missing one. The target's room is not read:
// Exchange Online gives an application no quota figure it can rely on
// (mailboxSettings has none, and the fake does not serve one), so it is
// left unknown, which stops nothing; a full mailbox still refuses the
// check's test message.
func (c *Copier) Preflight(ctx context.Context, m contract.MailboxRef) (contract.Preflight, error) {
	p, err := c.o.Source.Measure(ctx, m, c.o.MaxMessageBytes)
	if err != nil {
		return p, port.SourceRefused(err)
	}
	if err := c.CheckTarget(ctx, m); err != nil {
		return p, port.TargetRefused(err, contract.ErrTypeTargetNotWritable)
	}
	return p, nil
}

var _ port.Preflighter = (*Copier)(nil)
