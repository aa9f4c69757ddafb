package imapcopy

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"golang.org/x/sync/errgroup"

	"mailwave/activities"
	"mailwave/contract"
)

// progressEvery spaces the checkpoints handed to the activity, which
// heartbeats them (and the SDK throttles heartbeats further).
const progressEvery = 250 * time.Millisecond

// batchBytes bounds the message bytes of one chunk (one MULTIAPPEND).
const batchBytes = 8 << 20

// meta is what the copy knows of a message before fetching its body.
type meta struct {
	uid   imap.UID
	size  int64
	date  time.Time
	flags []imap.Flag
	msgID string
}

// key identifies a message on both servers for the duplicate check:
// Message-ID and size, or size and INTERNALDATE for a message without a
// Message-ID.
func (m meta) key() string {
	if m.msgID != "" {
		return fmt.Sprintf("id\x00%s\x00%d", m.msgID, m.size)
	}
	return m.sizeDate()
}

// sizeDate is what the verification compares: size and INTERNALDATE, both
// kept by the copy and both in the servers' indexes, so checking a folder
// does not open its messages.
func (m meta) sizeDate() string { return fmt.Sprintf("sd\x00%d\x00%d", m.size, m.date.Unix()) }

// job is one copy pass of one mailbox.
type job struct {
	// ctx is the whole copy's: connections made for it last until it ends.
	ctx   context.Context
	c     *Copier
	req   activities.CopyRequest
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
func (c *Copier) Copy(ctx context.Context, req activities.CopyRequest) (contract.CopyStats, error) {
	j := &job{ctx: ctx, c: c, req: req, key: req.Mailbox.Key, cp: req.Checkpoint.Clone(), lanes: make([]*lane, c.o.Lanes)}
	defer j.closeLanes()
	first, err := j.openLane(ctx, 0)
	if err != nil {
		return j.stats, err
	}
	folders, err := c.planFolders(first.src, first.tgt, j.key)
	if err != nil {
		if _, ok := activities.IsPermanent(err); ok {
			return j.stats, err
		}
		return j.stats, c.classify(err, Target, "folder setup", j.key)
	}
	if err := j.copyFolders(ctx, folders); err != nil {
		// What was done before the failure is handed on, so the retry
		// does not look for it again.
		j.report(true)
		return j.snapshotStats(), err
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
		return j.snapshotStats(), activities.Permanent(contract.ErrTypeBadItems,
			"mailbox %s: %d bad items (limit %d): %s", j.key, len(bad), c.o.BadItemLimit, describeBad(bad, j.stats.Bad))
	}
	return j.snapshotStats(), nil
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
	tr := newTracker(order)
	j.mu.Lock()
	if j.cp.Folders == nil {
		j.cp.Folders = map[string]contract.FolderCheckpoint{}
	}
	j.cp.Folders[f.src] = fc
	j.stats.Skipped += int64(len(skipped))
	j.mu.Unlock()
	for _, m := range skipped {
		j.done(f, tr, m.uid)
	}
	for _, m := range bad {
		j.badItem(f, tr, m, fmt.Sprintf("%d bytes is over the %d-byte limit", m.size, c.o.MaxMessageBytes))
	}

	if err := j.pipeChunks(ctx, first, f, tr, todo); err != nil {
		return err
	}

	// Every message up to the snapshot is on the target now: the target's
	// next UID bounds where a later pass looks for duplicates. The folder
	// is selected again for it: a selected folder's view does not show
	// what the batch appender's connection added.
	tsel, err = first.tgt.selectFolder(f.tgt)
	if err != nil {
		return c.classify(err, Target, "select", j.key)
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
	return j.verify(first, tsel, f, srcMeta, fc)
}

// pipeChunks copies the planned messages over the lane, in chunks of
// Window messages or batchBytes, whichever is less (and at least one).
func (j *job) pipeChunks(ctx context.Context, l *lane, f folder, tr *tracker, todo []meta) error {
	if len(todo) == 0 {
		return nil
	}
	chunks := make(chan []meta)
	go func() {
		defer close(chunks)
		limit := min(batchBytes, j.c.o.MaxBytesInFlight)
		for len(todo) > 0 {
			n, size := 1, todo[0].size
			for n < len(todo) && n < j.c.o.Window && size+todo[n].size <= limit {
				size += todo[n].size
				n++
			}
			select {
			case chunks <- todo[:n]:
			case <-ctx.Done():
				return
			}
			todo = todo[n:]
		}
	}()
	err := j.lanePipe(ctx, l, f, tr, chunks)
	for range chunks {
		// Drain, so the producer ends.
	}
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// batch is one chunk's messages sent to the target: one MULTIAPPEND not
// yet answered, or (without the extension) the answers to one APPEND per
// message.
type batch struct {
	items []item
	held  int64 // memory taken for the chunk, given back once answered
	multi <-chan error
	errs  []error
}

// lanePipe runs a lane: chunks are fetched and sent to the target while
// the answers to earlier ones are collected behind, so the source, the
// target and the copier work at once.
func (j *job) lanePipe(ctx context.Context, l *lane, f folder, tr *tracker, chunks <-chan []meta) error {
	sent := make(chan *batch, 2)
	collected := make(chan error, 1)
	go func() { collected <- j.collect(ctx, l, f, tr, sent) }()
	var err error
	for chunk := range chunks {
		if err = j.fetchChunk(ctx, l, f, tr, chunk, sent); err != nil {
			break
		}
	}
	close(sent)
	if cerr := <-collected; err == nil {
		err = cerr
	}
	return err
}

// collect reads the target's answers in order, settles each message, and
// gives its memory back.
func (j *job) collect(ctx context.Context, l *lane, f folder, tr *tracker, sent <-chan *batch) error {
	var first error
	settle := func(it item, err error) {
		switch ie, refusedOne := refused(err); {
		case err == nil:
			j.mu.Lock()
			j.stats.Items++
			j.stats.Bytes += it.m.size
			j.mu.Unlock()
			j.done(f, tr, it.m.uid)
		case refusedOne:
			j.badItem(f, tr, it.m, "the target refused it: "+safeText(ie))
		case first == nil:
			first = j.c.classify(err, Target, "append", j.key)
		}
	}
	for b := range sent {
		switch {
		case first != nil:
			// A lane that failed only drains; the retry goes on from the
			// checkpoint.
		case b.multi != nil:
			err := <-b.multi
			if _, refusedOne := refused(err); refusedOne && len(b.items) > 1 {
				// MULTIAPPEND is all or nothing: find the message the
				// target refuses by sending them one at a time.
				for _, it := range b.items {
					settle(it, j.appendOne(ctx, l, f, it))
				}
				break
			}
			for _, it := range b.items {
				settle(it, err)
			}
		default:
			for i, it := range b.items {
				settle(it, b.errs[i])
			}
		}
		j.c.mem.Release(b.held)
	}
	return first
}

// appendOne appends one message through go-imap and waits for the answer.
// go-imap drops the connection after the server refuses a synchronising
// literal, so after a refusal the lane's target connection is made again.
func (j *job) appendOne(ctx context.Context, l *lane, f folder, it item) error {
	cmd := l.tgt.c.Append(f.tgt, int64(len(it.body)), &imap.AppendOptions{Flags: appendFlags(it.m.flags), Time: it.m.date})
	_, werr := cmd.Write(it.body)
	cerr := cmd.Close()
	_, err := cmd.Wait()
	if err == nil {
		return errors.Join(werr, cerr)
	}
	if _, refusedOne := refused(err); refusedOne {
		// It closes the connection just after handing back the answer, so
		// the connection is replaced whether or not it is gone yet.
		cn, derr := j.c.dial(j.ctx, Target, j.req.Mailbox)
		if derr != nil {
			return derr
		}
		l.tgt.close()
		l.tgt = cn
	}
	return err
}

// fetchChunk fetches a chunk's bodies and sends them to the target as one
// batch. The memory for the whole chunk is taken before the fetch, in one
// go: lanes taking it a message at a time could each hold part of what
// the other waits for.
func (j *job) fetchChunk(ctx context.Context, l *lane, f folder, tr *tracker, chunk []meta, sent chan<- *batch) error {
	c := j.c
	if l.src.selected != f.src {
		if _, err := l.src.selectFolder(f.src); err != nil {
			return c.classify(err, Source, "select", j.key)
		}
	}
	byUID := make(map[imap.UID]meta, len(chunk))
	uids := make([]imap.UID, len(chunk))
	for i, m := range chunk {
		byUID[m.uid], uids[i] = m, m.uid
	}
	b := &batch{}
	for _, m := range chunk {
		b.held += m.size
	}
	b.held = min(b.held, c.o.MaxBytesInFlight)
	if err := c.mem.Acquire(ctx, b.held); err != nil {
		return err
	}
	release := func() { c.mem.Release(b.held) }
	fetch := l.src.c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{
		UID:         true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	})
	defer fetch.Close()
	seen := 0
	for msg := fetch.Next(); msg != nil; msg = fetch.Next() {
		var uid imap.UID
		var body []byte
		for it := msg.Next(); it != nil; it = msg.Next() {
			switch it := it.(type) {
			case imapclient.FetchItemDataUID:
				uid = it.UID
			case imapclient.FetchItemDataBodySection:
				if it.Literal == nil {
					continue
				}
				body = make([]byte, it.Literal.Size())
				if _, err := io.ReadFull(it.Literal, body); err != nil {
					release()
					return c.classify(err, Source, "fetch", j.key)
				}
			}
		}
		m, ok := byUID[uid]
		switch {
		case !ok:
			// An answer for a message we did not ask for (a server's
			// unsolicited FETCH): nothing to copy.
		case body == nil:
			seen++
			j.badItem(f, tr, m, "the source returned no body")
		default:
			seen++
			b.items = append(b.items, item{m: m, body: body})
		}
	}
	if err := fetch.Close(); err != nil {
		release()
		return c.classify(err, Source, "fetch", j.key)
	}
	if seen < len(uids) {
		// Expunged at the source since the list was read. The retry reads
		// the folder's list afresh, which no longer has them.
		release()
		return fmt.Errorf("source fetch for mailbox %s: folder changed while copying (%d of %d messages returned); retrying", j.key, seen, len(uids))
	}
	if len(b.items) == 0 {
		release()
		return nil
	}
	if err := j.send(ctx, l, f, b); err != nil {
		release()
		return err
	}
	sent <- b
	return nil
}

// send puts a batch on the wire, within the worker's rate limit.
func (j *job) send(ctx context.Context, l *lane, f folder, b *batch) error {
	if lim := j.c.o.Limiter; lim != nil {
		var n int
		for _, it := range b.items {
			n += len(it.body)
		}
		for n > 0 {
			step := min(n, lim.Burst())
			if err := lim.WaitN(ctx, step); err != nil {
				return err
			}
			n -= step
		}
	}
	if l.app != nil {
		ch, err := l.app.send(f.tgt, b.items)
		if err != nil {
			return j.c.classify(err, Target, "append", j.key)
		}
		b.multi = ch
		return nil
	}
	// Without batches, one message at a time: a synchronising literal costs
	// a round trip each way, and a refused one costs the connection.
	for _, it := range b.items {
		b.errs = append(b.errs, j.appendOne(ctx, l, f, it))
	}
	return nil
}

// appendFlags are the flags an APPEND may set: \Recent is the server's.
func appendFlags(flags []imap.Flag) []imap.Flag {
	out := make([]imap.Flag, 0, len(flags))
	for _, f := range flags {
		if !strings.EqualFold(string(f), `\Recent`) {
			out = append(out, f)
		}
	}
	return out
}

// done records a message as settled and moves the folder's checkpoint
// over every settled message in UID order.
func (j *job) done(f folder, tr *tracker, uid imap.UID) {
	last, moved := tr.settle(uid)
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
func (j *job) badItem(f folder, tr *tracker, m meta, reason string) {
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

// verify checks that the target folder holds every source message up to
// the checkpoint but the bad items, by identity and size.
func (j *job) verify(first *lane, sel *imap.SelectData, f folder, srcMeta []meta, fc contract.FolderCheckpoint) error {
	var tm []meta
	var err error
	if sel.NumMessages > 0 {
		if tm, err = fetchMeta(first.tgt, imap.SeqSetNum(), false); err != nil {
			return j.c.classify(err, Target, "fetch", j.key)
		}
	}
	have := multiset{}
	var tgtBytes int64
	for _, m := range tm {
		have.add(m.sizeDate())
		tgtBytes += m.size
	}
	var want, missing int
	var wantBytes, missingBytes int64
	for _, m := range srcMeta {
		if uint32(m.uid) > fc.LastUID || slices.Contains(fc.Bad, uint32(m.uid)) {
			continue
		}
		want++
		wantBytes += m.size
		if !have.take(m.sizeDate()) {
			missing++
			missingBytes += m.size
		}
	}
	if missing > 0 {
		return activities.Permanent(contract.ErrTypeVerifyMismatch,
			"mailbox %s folder %s: %d of %d source messages (%d of %d bytes) are not on the target (target has %d messages, %d bytes)",
			j.key, label(f.src), missing, want, missingBytes, wantBytes, len(tm), tgtBytes)
	}
	return nil
}

// fetchMeta reads the metadata of a set of messages (all of them for an
// empty set), in UID order: UID, size, INTERNALDATE and flags, which the
// server has in its index, and the Message-ID only if asked.
func fetchMeta(cn *conn, set imap.NumSet, withIDs bool) ([]meta, error) {
	if s, ok := set.(imap.SeqSet); ok && len(s) == 0 {
		set = imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}
	}
	opts := &imap.FetchOptions{UID: true, RFC822Size: true, InternalDate: true, Flags: true}
	if withIDs {
		opts.BodySection = []*imap.FetchItemBodySection{messageIDSection}
	}
	bufs, err := cn.c.Fetch(set, opts).Collect()
	if err != nil {
		return nil, err
	}
	out := make([]meta, 0, len(bufs))
	for _, b := range bufs {
		m := meta{uid: b.UID, size: b.RFC822Size, date: b.InternalDate, flags: b.Flags}
		for _, sec := range b.BodySection {
			m.msgID = messageID(sec.Bytes)
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b meta) int { return cmp.Compare(a.uid, b.uid) })
	return out, nil
}

var messageIDSection = &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Message-ID"}, Peek: true}

// addMessageIDs fills in the Message-IDs of the messages above lastUID.
func addMessageIDs(cn *conn, ms []meta, lastUID uint32) error {
	i, _ := slices.BinarySearchFunc(ms, imap.UID(lastUID+1), func(m meta, u imap.UID) int { return cmp.Compare(m.uid, u) })
	if i == len(ms) {
		return nil
	}
	set := imap.UIDSet{imap.UIDRange{Start: ms[i].uid, Stop: ms[len(ms)-1].uid}}
	bufs, err := cn.c.Fetch(set, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{messageIDSection}}).Collect()
	if err != nil {
		return err
	}
	ids := make(map[imap.UID]string, len(bufs))
	for _, b := range bufs {
		for _, sec := range b.BodySection {
			ids[b.UID] = messageID(sec.Bytes)
		}
	}
	for k := i; k < len(ms); k++ {
		ms[k].msgID = ids[ms[k].uid]
	}
	return nil
}

// messageID reads the Message-ID out of a header block.
func messageID(header []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(header))
	var id string
	inID := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case inID && (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")):
			id += strings.TrimSpace(line)
		case len(line) > 11 && strings.EqualFold(line[:11], "message-id:"):
			id, inID = strings.TrimSpace(line[11:]), true
		default:
			inID = false
		}
	}
	return id
}

// multiset counts message keys.
type multiset map[string]int

func (s multiset) add(k string) { s[k]++ }

func (s multiset) take(k string) bool {
	if s[k] == 0 {
		return false
	}
	s[k]--
	return true
}

// tracker knows which of a folder's planned UIDs are settled and how far
// the settled prefix reaches: the checkpoint may only move over a prefix,
// since lanes finish out of order.
type tracker struct {
	mu    sync.Mutex
	uids  []imap.UID
	index map[imap.UID]int
	done  []bool
	next  int
}

func newTracker(uids []imap.UID) *tracker {
	t := &tracker{uids: uids, index: make(map[imap.UID]int, len(uids)), done: make([]bool, len(uids))}
	for i, u := range uids {
		t.index[u] = i
	}
	return t
}

// settle marks uid done and returns the last UID of the settled prefix if
// the prefix grew.
func (t *tracker) settle(uid imap.UID) (imap.UID, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i, ok := t.index[uid]
	if !ok {
		return 0, false
	}
	t.done[i] = true
	start := t.next
	for t.next < len(t.done) && t.done[t.next] {
		t.next++
	}
	if t.next == start {
		return 0, false
	}
	return t.uids[t.next-1], true
}
