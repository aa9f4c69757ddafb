package imapcopy

import (
	"context"

	"github.com/emersion/go-imap/v2"

	"mailwave/contract"
	"mailwave/mail/port"
)

// Preflight checks a mailbox before its T-14 notice (port.Preflighter):
// the source's login and size, the messages over the copier's size limit
// (MaxMessageBytes), the target as CheckTarget proves it, and the target's
// room where it offers the QUOTA extension. A target that refuses the
// mailbox's login is taken for one without the mailbox: an IMAP server
// answers a user it does not have as it answers a wrong password (so as
// not to say who exists), and the target's credentials are the
// organisation's (a master user, an application's token), so a wrong one
// would defer every mailbox of the organisation alike, which its admin
// would see at once.
func (c *Copier) Preflight(ctx context.Context, m contract.MailboxRef) (_ contract.Preflight, err error) {
	// A server announcing more than the copier takes fails the mailbox as
	// that, not as the refusal the step would otherwise be read as.
	ctx, trips := withTripwire(ctx)
	defer func() { err = tooLargeFailure(trips, m.Key, err) }()
	p, err := c.measure(ctx, m, c.o.MaxMessageBytes)
	if err != nil {
		return p, port.SourceRefused(err)
	}
	if err := c.CheckTarget(ctx, m); err != nil {
		return p, port.TargetRefused(err, contract.ErrTypeTargetMissing)
	}
	if p.TargetRoom, p.RoomKnown, err = c.targetRoom(ctx, m); err != nil {
		return p, port.TargetRefused(err, contract.ErrTypeTargetMissing)
	}
	return p, port.NoRoom(m, p)
}

var _ port.Preflighter = (*Copier)(nil)

// Measure reads a mailbox's size at the source, over the folders a copy
// reads, and counts its messages over limit (none counted for a limit of
// 0): for a copier whose target is not IMAP (graphcopy's preflight).
func (r *Reader) Measure(ctx context.Context, m contract.MailboxRef, limit int64) (contract.Preflight, error) {
	ctx, trips := withTripwire(ctx)
	p, err := r.c.measure(ctx, m, limit)
	return p, tooLargeFailure(trips, m.Key, err)
}

// measure logs in to the source and reads, folder by folder, its messages
// and their size from the server's index: STATUS (MESSAGES SIZE) where the
// server offers STATUS=SIZE (RFC 8438, or IMAP4rev2), and only for a
// folder larger in all than limit, a search for the messages over it;
// otherwise every message's RFC822.SIZE. No message is opened.
func (c *Copier) measure(ctx context.Context, m contract.MailboxRef, limit int64) (contract.Preflight, error) {
	p := contract.Preflight{OversizeLimit: limit}
	src, err := c.dial(ctx, Source, m)
	if err != nil {
		return p, err
	}
	defer src.close()
	folders, _, _, err := list(src)
	if err != nil {
		return p, c.classify(err, Source, "list", m.Key)
	}
	statusSize := src.c.Caps().Has(imap.CapStatusSize)
	for _, f := range folders {
		if err := ctx.Err(); err != nil {
			return p, err
		}
		if statusSize {
			st, err := src.c.Status(f.Mailbox, &imap.StatusOptions{NumMessages: true, Size: true}).Wait()
			if err != nil {
				return p, c.classify(err, Source, "status", m.Key)
			}
			if st.NumMessages != nil && st.Size != nil {
				p.SourceMessages += int64(*st.NumMessages)
				p.SourceBytes += *st.Size
				if limit <= 0 || *st.Size <= limit {
					continue // no message of it can be over the limit
				}
				if _, err := src.selectFolder(f.Mailbox); err != nil {
					return p, c.classify(err, Source, "select", m.Key)
				}
				found, err := src.c.UIDSearch(&imap.SearchCriteria{Larger: limit}, nil).Wait()
				if err != nil {
					return p, c.classify(err, Source, "search", m.Key)
				}
				p.Oversize += int64(len(found.AllUIDs()))
				continue
			}
			// A server that left either out: read the sizes instead.
		}
		sel, err := src.selectFolder(f.Mailbox)
		if err != nil {
			return p, c.classify(err, Source, "select", m.Key)
		}
		if sel.NumMessages == 0 {
			continue
		}
		msgs, err := fetchMeta(src, imap.SeqSetNum(), false)
		if err != nil {
			return p, c.classify(err, Source, "fetch", m.Key)
		}
		for _, msg := range msgs {
			p.SourceMessages++
			p.SourceBytes += msg.size
			if limit > 0 && msg.size > limit {
				p.Oversize++
			}
		}
	}
	return p, nil
}

// targetRoom reads what the target's quota leaves for the mailbox: the
// STORAGE resource (in units of 1,024 bytes, RFC 9208) of INBOX's quota
// roots, the least of them. A target without QUOTA, or with no storage
// limit, gives known false: an unknown room is no reason to stop.
func (c *Copier) targetRoom(ctx context.Context, m contract.MailboxRef) (room int64, known bool, err error) {
	tgt, err := c.dial(ctx, Target, m)
	if err != nil {
		return 0, false, err
	}
	defer tgt.close()
	if !tgt.c.Caps().Has(imap.CapQuota) {
		return 0, false, nil
	}
	roots, err := tgt.c.GetQuotaRoot("INBOX").Wait()
	if err != nil {
		return 0, false, c.classify(err, Target, "getquotaroot", m.Key)
	}
	for _, q := range roots {
		r, ok := q.Resources[imap.QuotaResourceStorage]
		if !ok || r.Limit <= 0 {
			continue
		}
		left := max(r.Limit-r.Usage, 0) * 1024
		if !known || left < room {
			room, known = left, true
		}
	}
	return room, known, nil
}
