package sim

import (
	"context"
	"fmt"

	"mailwave/contract"
	"mailwave/mail/port"
)

// Copy copies one pass of a mailbox from the source to the target, folder by
// folder in UID order, from req.Checkpoint. Messages already on the target
// are skipped, never written again. Each batch is durable before
// req.Progress hears of it. A completed bulk pass makes the mailbox's delta
// arrive at the source, unless it has been cut over.
func (e *Estate) Copy(ctx context.Context, req port.CopyRequest) (contract.CopyStats, error) {
	var stats contract.CopyStats
	index, err := e.lookup(req.Mailbox)
	if err != nil {
		return stats, err
	}
	p := e.profile(index)
	cp := req.Checkpoint.Clone()
	for fi, f := range p.Folders {
		var last uint32
		if c, ok := cp.Folders[f.Name]; ok && c.UIDValidity == f.UIDValidity {
			last = c.LastUID
		}
		for {
			if err := ctx.Err(); err != nil {
				return stats, err
			}
			b, err := e.copyBatch(ctx, req.Mailbox.Key, &p, fi, last)
			if err != nil {
				return stats, err
			}
			if b.last == last {
				break // folder done
			}
			last = b.last
			stats = stats.Add(b.stats)
			cp.Folders[f.Name] = contract.FolderCheckpoint{UIDValidity: f.UIDValidity, LastUID: last}
			if req.Progress != nil {
				req.Progress(cp.Clone(), stats)
			}
		}
	}
	if req.Pass == contract.PassBulk {
		if err := e.deliverDelta(ctx, req.Mailbox.Key, index); err != nil {
			return stats, err
		}
	}
	return stats, nil
}

// batch is the outcome of one step of a copy: the last UID it covered and
// what it did.
type batch struct {
	last  uint32
	stats contract.CopyStats
}

// copyBatch copies the next batch of folder fi after UID last, under the
// mailbox's lock. A run of UIDs already on the target is skipped in one step
// without a write; otherwise the batch is throttled, may fail, and is
// written. b.last == last means the folder is done.
func (e *Estate) copyBatch(ctx context.Context, key string, p *Profile, fi int, last uint32) (batch, error) {
	unlock, err := e.locks.lock(ctx, key)
	if err != nil {
		return batch{}, err
	}
	defer unlock()
	st, err := e.load(key, p.Index)
	if err != nil {
		return batch{}, err
	}
	f := p.Folders[fi]
	n := p.sourceCount(fi, st.DeltaArrived)
	if last >= n {
		// The folder is done: it is verified as an IMAP folder is, seeing
		// what is missing and what was written twice.
		return batch{last: last}, verifyFolder(key, fi, st.folder(f, false), n)
	}
	first := last + 1
	t := st.folder(f, true)
	if end, ok := t.UIDs.runEnd(first); ok {
		end = min(end, n)
		return batch{last: end, stats: contract.CopyStats{Skipped: int64(end - last)}}, nil
	}

	// Plan: up to the batch limits, the UIDs the target lacks, as runs.
	var (
		b     = batch{last: last}
		runs  []uidRange
		total int64 // bytes of the whole batch, for the limit
	)
	for uid := first; uid <= n && int(uid-first) < e.opts.BatchMessages; uid++ {
		size := p.messageSize(fi, uid)
		if uid > first && total+size > e.opts.BatchBytes {
			break
		}
		total += size
		b.last = uid
		if t.UIDs.has(uid) {
			b.stats.Skipped++
			continue
		}
		b.stats.Items++
		b.stats.Bytes += size
		if k := len(runs) - 1; k >= 0 && runs[k][1]+1 == uid {
			runs[k][1] = uid
		} else {
			runs = append(runs, uidRange{uid, uid})
		}
	}

	if err := e.send(ctx, key, b.stats.Bytes); err != nil {
		return batch{}, err
	}
	if err := e.injectFault(st, fmt.Sprintf("copy:%d:%d", fi, first)); err != nil {
		if serr := e.save(st); serr != nil {
			return batch{}, serr
		}
		return batch{}, err
	}
	for _, r := range runs {
		t.write(r[0], r[1])
	}
	if err := e.save(st); err != nil {
		return batch{}, err
	}
	return b, nil
}

// deliverDelta makes the mailbox's delta messages arrive at the source once
// the bulk pass is done, unless mail no longer goes there.
func (e *Estate) deliverDelta(ctx context.Context, key string, index int) error {
	unlock, err := e.locks.lock(ctx, key)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := e.load(key, index)
	if err != nil {
		return err
	}
	if st.DeltaArrived || st.route() == port.RouteTarget {
		return nil
	}
	st.DeltaArrived = true
	return e.save(st)
}

// verifyFolder checks that a copied target folder holds each of the source's
// first n messages exactly once.
func verifyFolder(key string, fi int, t *store, n uint32) error {
	var have, twice int64
	if t != nil {
		have, twice = t.UIDs.countUpTo(n), t.Duplicates
	}
	if have == int64(n) && twice == 0 {
		return nil
	}
	return port.Permanent(contract.ErrTypeVerifyMismatch,
		"mailbox %s folder #%d: %d of %d source messages are not on the target, %d were written to it twice",
		key, fi+1, int64(n)-have, n, twice)
}
