package imapcopy

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"golang.org/x/sync/errgroup"

	"mailwave/contract"
	"mailwave/internal/prefix"
	"mailwave/mail/port"
)

// progressEvery spaces the checkpoints handed to the activity, which
// heartbeats them (and the SDK throttles heartbeats further).
const progressEvery = 250 * time.Millisecond

// batchBytes bounds the message bytes of one chunk (one MULTIAPPEND).
const batchBytes = 8 << 20

// job is one copy pass of one mailbox.
type job struct {
	// ctx is the whole copy's: connections made for it last until it ends.
	ctx   context.Context
	c     *Copier
	req   port.CopyRequest
	key   string
	lanes []*lane

	pmu      sync.Mutex // held while Progress runs
	mu       sync.Mutex
	cp       contract.Checkpoint
	stats    contract.CopyStats
	reported time.Time
}

// lane is one pair of connections, and the target's batch appender when
// the target can take batches.
type lane struct {
	src, tgt *conn
	app      *appender
}

// Copy runs one pass over a mailbox from req.Checkpoint.
func (c *Copier) Copy(ctx context.Context, req port.CopyRequest) (_ contract.CopyStats, err error) {
	ctx, trips := withTripwire(ctx)
	defer func() { err = tooLargeFailure(trips, req.Mailbox.Key, err) }()
	j := &job{ctx: ctx, c: c, req: req, key: req.Mailbox.Key, cp: req.Checkpoint.Clone(), lanes: make([]*lane, c.o.Lanes)}
	defer j.closeLanes()
	first, err := j.openLane(ctx, 0)
	if err != nil {
		return j.stats, err
	}
	folders, err := c.planFolders(first.src, first.tgt, j.key)
	if err != nil {
		if _, ok := port.IsPermanent(err); ok {
			return j.stats, err
		}
		return j.stats, c.classify(err, Target, "folder setup", j.key)
	}
	if err := j.copyFolders(ctx, folders); err != nil {
		// What was done before the failure is handed on, so the retry
		// does not look for it again; and that it failed, so the retry
		// looks again at the end for what this attempt's lost appends
		// added late.
		j.mu.Lock()
		j.cp.Interrupted = true
		j.mu.Unlock()
		j.report(true)
		return j.snapshotStats(), err
	}
	if j.req.Checkpoint.Interrupted {
		if err := j.verifyAgain(folders); err != nil {
			j.report(true)
			return j.snapshotStats(), err
		}
		j.mu.Lock()
		j.cp.Interrupted = false
		j.mu.Unlock()
	}
	j.report(true)
	// Bad items are counted from the checkpoint, over every attempt, in
	// the folders the source still has.
	var bad []contract.BadItem
	for _, f := range folders {
		for _, uid := range j.cp.Folders[f.src].Bad {
			bad = append(bad, contract.BadItem{Folder: f.src, UID: uid})
		}
	}
	if len(bad) > c.o.BadItemLimit {
		return j.snapshotStats(), port.Permanent(contract.ErrTypeBadItems,
			"mailbox %s: %d bad items (limit %d): %s", j.key, len(bad), c.o.BadItemLimit, describeBad(bad, j.stats.Bad))
	}
	return j.snapshotStats(), nil
}

// verifyAgain checks every folder the checkpoint covers once more, after
// the attempt's own checks: an attempt that failed before this one may
// have left appends that the target applied only after this attempt had
// checked their folder (on another lane, say).
func (j *job) verifyAgain(folders []folder) error {
	j.mu.Lock()
	l := j.lanes[0]
	j.mu.Unlock()
	for _, f := range folders {
		j.mu.Lock()
		fc, ok := j.cp.Folders[f.src]
		j.mu.Unlock()
		if !ok {
			continue
		}
		sel, err := l.src.selectFolder(f.src)
		if err != nil {
			return j.c.classify(err, Source, "select", j.key)
		}
		if sel.UIDValidity != fc.UIDValidity {
			continue // copied afresh by the next pass
		}
		var srcMeta []meta
		if sel.NumMessages > 0 {
			if srcMeta, err = fetchMeta(l.src, imap.SeqSetNum(), false); err != nil {
				return j.c.classify(err, Source, "fetch", j.key)
			}
		}
		if _, err := j.verify(l, f, srcMeta, fc); err != nil {
			return err
		}
	}
	return nil
}

func (j *job) openLane(ctx context.Context, i int) (*lane, error) {
	src, err := j.c.dial(ctx, Source, j.req.Mailbox)
	if err != nil {
		return nil, err
	}
	tgt, err := j.c.dial(ctx, Target, j.req.Mailbox)
	if err != nil {
		src.close()
		return nil, err
	}
	l := &lane{src: src, tgt: tgt}
	if l.app, err = j.c.dialAppender(ctx, j.req.Mailbox); err != nil {
		src.close()
		tgt.close()
		return nil, err
	}
	j.mu.Lock()
	j.lanes[i] = l
	j.mu.Unlock()
	return l, nil
}

func (j *job) closeLanes() {
	var wg sync.WaitGroup
	for _, l := range j.lanes {
		if l == nil {
			continue
		}
		wg.Add(3)
		go func() { defer wg.Done(); l.app.close() }()
		go func() { defer wg.Done(); l.src.close() }()
		go func() { defer wg.Done(); l.tgt.close() }()
	}
	wg.Wait()
}

func (j *job) snapshotStats() contract.CopyStats {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.stats
}

// report hands the checkpoint to the activity, at most every progressEvery
// unless forced. Lanes report from their own goroutines; the calls are made
// one at a time and in order, so a checkpoint never goes back.
func (j *job) report(force bool) {
	if j.req.Progress == nil {
		return
	}
	j.pmu.Lock()
	defer j.pmu.Unlock()
	j.mu.Lock()
	if !force && time.Since(j.reported) < progressEvery {
		j.mu.Unlock()
		return
	}
	j.reported = time.Now()
	cp, st := j.cp.Clone(), j.stats
	j.mu.Unlock()
	j.req.Progress(cp, st)
}

// copyFolders copies Lanes folders at once, each over its own lane: one
// folder's batches from two connections would only queue on the folder's
// lock at the target, while two folders are two locks.
func (j *job) copyFolders(ctx context.Context, folders []folder) error {
	next := make(chan folder)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(next)
		for _, f := range folders {
			select {
			case next <- f:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	for i := range min(j.c.o.Lanes, len(folders)) {
		g.Go(func() error {
			j.mu.Lock()
			l := j.lanes[i]
			j.mu.Unlock()
			for f := range next {
				if l == nil {
					// A lane lasts for the whole copy, not this group.
					var err error
					if l, err = j.openLane(j.ctx, i); err != nil {
						return err
					}
				}
				if err := j.copyFolder(gctx, l, f); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// copyFolder copies one folder's messages above its checkpoint over one
// lane and verifies the result.
func (j *job) copyFolder(ctx context.Context, first *lane, f folder) error {
	c := j.c
	sel, err := first.src.selectFolder(f.src)
	if err != nil {
		return c.classify(err, Source, "select", j.key)
	}
	j.mu.Lock()
	fc, had := j.cp.Folders[f.src]
	j.mu.Unlock()
	sourceSame := had && fc.UIDValidity == sel.UIDValidity
	prior := fc // what the checkpoint knew of the target folder
	if !sourceSame {
		// New folder, or UIDVALIDITY changed: the old UIDs mean nothing, so
		// the folder is read again in full; the duplicate check below keeps
		// what the target already has from being added twice.
		fc = contract.FolderCheckpoint{UIDValidity: sel.UIDValidity}
	}
	var srcMeta []meta
	if sel.NumMessages > 0 {
		if srcMeta, err = fetchMeta(first.src, imap.SeqSetNum(), false); err != nil {
			return c.classify(err, Source, "fetch", j.key)
		}
	}

	tsel, err := first.tgt.selectFolder(f.tgt)
	if err != nil {
		return c.classify(err, Target, "select", j.key)
	}
	scanFrom := imap.UID(1)
	switch {
	case sourceSame && fc.TargetUIDValidity == tsel.UIDValidity && fc.TargetUIDNext > 0:
		scanFrom = imap.UID(fc.TargetUIDNext)
	case sourceSame && fc.TargetUIDValidity != 0:
		// The target folder was made again: what the checkpoint says was
		// copied may be gone, so the folder is copied again in full,
		// against what the target has now.
		fc = contract.FolderCheckpoint{UIDValidity: sel.UIDValidity}
		fallthrough
	default:
		// The whole target folder is looked at, and against it every
		// source message the checkpoint covers; an empty one holds nothing.
		fc.TargetUIDValidity = tsel.UIDValidity
		fc.TargetUIDNext, fc.TargetSinceUID = 1, 0
		if tsel.NumMessages == 0 {
			fc.TargetUIDNext, fc.TargetSinceUID = uint32(tsel.UIDNext), fc.LastUID
		}
	}
	// Where the copy's own work begins on the target: kept while the
	// target folder is the same one (a source whose UIDVALIDITY changed
	// is copied again into the same folder), else the target's next UID
	// now, before anything is appended.
	switch {
	case prior.TargetBaseUID > 0 && prior.TargetUIDValidity == tsel.UIDValidity:
		fc.TargetBaseUID = prior.TargetBaseUID
	default:
		fc.TargetBaseUID = uint32(tsel.UIDNext)
	}
	// Messages on the target at or above TargetUIDNext may be copies from
	// an attempt whose progress was lost: they are matched by Message-ID,
	// which costs reading headers on both sides, so only then. Among them
	// are the copies of source messages the checkpoint has covered since
	// (UIDs after TargetSinceUID up to LastUID): those are taken out first,
	// or a later message with the same identity would match one of them
	// and never be copied.
	have := multiset{}
	if tsel.NumMessages > 0 && scanFrom < tsel.UIDNext {
		set := imap.UIDSet{imap.UIDRange{Start: scanFrom, Stop: 0}}
		tm, err := fetchMeta(first.tgt, set, true)
		if err != nil {
			return c.classify(err, Target, "fetch", j.key)
		}
		for _, m := range tm {
			if m.uid >= scanFrom {
				have.add(m.key())
			}
		}
		if len(have) > 0 {
			if err := addMessageIDs(first.src, srcMeta, fc.TargetSinceUID); err != nil {
				return c.classify(err, Source, "fetch", j.key)
			}
			for _, m := range srcMeta {
				if u := uint32(m.uid); u > fc.TargetSinceUID && u <= fc.LastUID && !slices.Contains(fc.Bad, u) {
					have.take(m.key())
				}
			}
		}
	}

	// The plan: every source message above the checkpoint, in UID order,
	// but those already reported bad.
	var todo []meta
	var order []imap.UID
	var skipped, bad []meta
	for _, m := range srcMeta {
		if uint32(m.uid) <= fc.LastUID || slices.Contains(fc.Bad, uint32(m.uid)) {
			continue
		}
		order = append(order, m.uid)
		switch {
		case have.take(m.key()):
			skipped = append(skipped, m)
		case m.size > c.o.MaxMessageBytes:
			bad = append(bad, m)
		default:
			todo = append(todo, m)
		}
	}
	tr := prefix.New(order)
	j.mu.Lock()
	if j.cp.Folders == nil {
		j.cp.Folders = map[string]contract.FolderCheckpoint{}
	}
	j.cp.Folders[f.src] = fc
	j.stats.Skipped += int64(len(skipped))
	j.mu.Unlock()
	// The base goes to the activity before anything is appended (the SDK
	// may hold the heartbeat back a while; should it be lost, the next
	// attempt takes the target's next UID then, higher: safe, it only
	// counts more as the user's).
	j.report(true)
	for _, m := range skipped {
		j.done(f, tr, m.uid)
	}
	for _, m := range bad {
		j.badItem(f, tr, m, fmt.Sprintf("%d bytes is over the %d-byte limit", m.size, c.o.MaxMessageBytes))
	}

	if err := j.pipeChunks(ctx, first, f, tr, todo); err != nil {
		return err
	}

	// Every message up to the snapshot is on the target now, and perhaps
	// some twice: an earlier attempt's appends, sent on a connection that
	// was lost, may have landed after this attempt looked. The folder is
	// checked (and mended) before its next UID bounds where a later pass
	// looks for duplicates. It is selected again for it: a selected
	// folder's view does not show what the batch appender's connection
	// added.
	j.mu.Lock()
	fc = j.cp.Folders[f.src]
	if n := len(srcMeta); n > 0 {
		fc.LastUID = max(fc.LastUID, uint32(srcMeta[n-1].uid))
	}
	j.mu.Unlock()
	tsel, err = j.verify(first, f, srcMeta, fc)
	if err != nil {
		return err
	}
	j.mu.Lock()
	fc = j.cp.Folders[f.src]
	if n := len(srcMeta); n > 0 {
		fc.LastUID = max(fc.LastUID, uint32(srcMeta[n-1].uid))
	}
	if tsel.UIDValidity == fc.TargetUIDValidity {
		fc.TargetUIDNext, fc.TargetSinceUID = uint32(tsel.UIDNext), fc.LastUID
	}
	j.cp.Folders[f.src] = fc
	j.mu.Unlock()
	j.report(true)
	return nil
}
