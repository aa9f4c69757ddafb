package imapcopy

import (
	"bufio"
	"bytes"
	"context"
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
)

// progressEvery spaces the checkpoints handed to the activity, which
// heartbeats them (and the SDK throttles heartbeats further).
const progressEvery = 250 * time.Millisecond

// meta is what the copy knows of a message before fetching its body.
type meta struct {
	uid   imap.UID
	size  int64
	date  time.Time
	flags []imap.Flag
	msgID string
}

// key identifies a message on both servers: Message-ID and size, or size
// and INTERNALDATE for a message without a Message-ID.
func (m meta) key() string {
	if m.msgID != "" {
		return fmt.Sprintf("id\x00%s\x00%d", m.msgID, m.size)
	}
	return fmt.Sprintf("sd\x00%d\x00%d", m.size, m.date.Unix())
}

// job is one copy pass of one mailbox.
type job struct {
	c     *Copier
	req   activities.CopyRequest
	key   string
	lanes []*lane

	mu       sync.Mutex
	cp       activities.Checkpoint
	stats    activities.CopyStats
	reported time.Time
}

// lane is one pair of connections.
type lane struct{ src, tgt *conn }

// Copy runs one pass over a mailbox from req.Checkpoint.
func (c *Copier) Copy(ctx context.Context, req activities.CopyRequest) (activities.CopyStats, error) {
	j := &job{c: c, req: req, key: req.Mailbox.Key, cp: req.Checkpoint.Clone(), lanes: make([]*lane, c.o.Lanes)}
	defer j.closeLanes()
	first, err := j.openLane(ctx, 0)
	if err != nil {
		return j.stats, err
	}
	folders, err := c.planFolders(first.src, first.tgt)
	if err != nil {
		return j.stats, c.classify(err, Target, "folder setup", j.key)
	}
	for _, f := range folders {
		if err := j.copyFolder(ctx, f); err != nil {
			return j.snapshotStats(), err
		}
	}
	j.report(true)
	bad := 0
	for _, fc := range j.cp.Folders {
		bad += len(fc.Bad)
	}
	if bad > c.o.BadItemLimit {
		return j.snapshotStats(), activities.Permanent(activities.ErrTypeBadItems,
			"mailbox %s: %d bad items (limit %d): %s", j.key, bad, c.o.BadItemLimit, describeBad(j.stats.Bad))
	}
	return j.snapshotStats(), nil
}

// openLane connects lane i, which only its own goroutine uses.
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
		wg.Add(2)
		go func() { defer wg.Done(); l.src.close() }()
		go func() { defer wg.Done(); l.tgt.close() }()
	}
	wg.Wait()
}

func (j *job) snapshotStats() activities.CopyStats {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.stats
}

// report hands the checkpoint to the activity, at most every progressEvery
// unless forced.
func (j *job) report(force bool) {
	if j.req.Progress == nil {
		return
	}
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

// copyFolder copies one folder's messages above its checkpoint and
// verifies the result.
func (j *job) copyFolder(ctx context.Context, f folder) error {
	c, first := j.c, j.lanes[0]
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
		fc = activities.FolderCheckpoint{UIDValidity: sel.UIDValidity}
	}
	var srcMeta []meta
	if sel.NumMessages > 0 {
		if srcMeta, err = fetchMeta(first.src, imap.SeqSetNum(), true); err != nil {
			return c.classify(err, Source, "fetch", j.key)
		}
	}

	tsel, err := first.tgt.selectFolder(f.tgt)
	if err != nil {
		return c.classify(err, Target, "select", j.key)
	}
	scanFrom := imap.UID(1)
	if sourceSame && fc.TargetUIDValidity == tsel.UIDValidity && fc.TargetUIDNext > 0 {
		scanFrom = imap.UID(fc.TargetUIDNext)
	} else {
		fc.TargetUIDValidity = tsel.UIDValidity
		fc.TargetUIDNext = 1
		if tsel.NumMessages == 0 {
			fc.TargetUIDNext = uint32(tsel.UIDNext)
		}
	}
	have := multiset{}
	if tsel.NumMessages > 0 && scanFrom < tsel.UIDNext {
		set := imap.UIDSet{imap.UIDRange{Start: scanFrom, Stop: 0}}
		tm, err := fetchMeta(first.tgt, set, false)
		if err != nil {
			return c.classify(err, Target, "fetch", j.key)
		}
		for _, m := range tm {
			if m.uid >= scanFrom {
				have.add(m.key())
			}
		}
	}

	// The plan: every source message above the checkpoint, in UID order.
	var todo []meta
	var order []imap.UID
	var skipped, bad []meta
	for _, m := range srcMeta {
		if uint32(m.uid) <= fc.LastUID {
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
		j.cp.Folders = map[string]activities.FolderCheckpoint{}
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

	if err := j.runLanes(ctx, f, tr, todo); err != nil {
		return err
	}

	// Every message up to the snapshot is on the target now: the target's
	// next UID bounds where a later pass looks for duplicates.
	st, err := first.tgt.c.Status(f.tgt, &imap.StatusOptions{UIDNext: true, UIDValidity: true}).Wait()
	if err != nil {
		return c.classify(err, Target, "status", j.key)
	}
	j.mu.Lock()
	fc = j.cp.Folders[f.src]
	if n := len(srcMeta); n > 0 {
		fc.LastUID = max(fc.LastUID, uint32(srcMeta[n-1].uid))
	}
	if st.UIDValidity == fc.TargetUIDValidity {
		fc.TargetUIDNext = uint32(st.UIDNext)
	}
	j.cp.Folders[f.src] = fc
	j.mu.Unlock()
	j.report(true)
	return j.verify(f, srcMeta, fc)
}

// runLanes copies the planned messages over the lanes, Window at a time.
func (j *job) runLanes(ctx context.Context, f folder, tr *tracker, todo []meta) error {
	if len(todo) == 0 {
		return nil
	}
	chunks := make(chan []meta)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(chunks)
		for start := 0; start < len(todo); start += j.c.o.Window {
			select {
			case chunks <- todo[start:min(start+j.c.o.Window, len(todo))]:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	lanes := min(j.c.o.Lanes, (len(todo)+j.c.o.Window-1)/j.c.o.Window)
	for i := range lanes {
		g.Go(func() error {
			j.mu.Lock()
			l := j.lanes[i]
			j.mu.Unlock()
			if l == nil {
				// The lane outlives this folder: it is tied to the whole
				// copy's context, not the folder's group.
				var err error
				if l, err = j.openLane(ctx, i); err != nil {
					return err
				}
			}
			for chunk := range chunks {
				if err := j.copyChunk(gctx, l, f, tr, chunk); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// pending is an APPEND sent and not yet answered.
type pending struct {
	cmd *imapclient.AppendCommand
	m   meta
	err error
}

// copyChunk fetches a chunk's bodies and appends each as it arrives; the
// answers are collected behind, so the next message is on its way while
// the target still digests the last.
func (j *job) copyChunk(ctx context.Context, l *lane, f folder, tr *tracker, chunk []meta) error {
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

	answers := make(chan pending, len(chunk))
	collected := make(chan error, 1)
	go func() {
		var first error
		for p := range answers {
			err := p.err
			if err == nil {
				_, err = p.cmd.Wait()
			}
			if err == nil {
				j.mu.Lock()
				j.stats.Items++
				j.stats.Bytes += p.m.size
				j.mu.Unlock()
				j.done(f, tr, p.m.uid)
				continue
			}
			if ie, ok := refused(err); ok {
				j.badItem(f, tr, p.m, "the target refused it: "+safeText(ie))
				continue
			}
			if first == nil {
				first = c.classify(err, Target, "append", j.key)
			}
		}
		collected <- first
	}()

	fetchErr := j.fetchAndAppend(ctx, l, f, tr, byUID, uids, answers)
	close(answers)
	appendErr := <-collected
	if fetchErr != nil {
		return fetchErr
	}
	return appendErr
}

func (j *job) fetchAndAppend(ctx context.Context, l *lane, f folder, tr *tracker, byUID map[imap.UID]meta, uids []imap.UID, answers chan<- pending) error {
	c := j.c
	fetch := l.src.c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{
		UID:         true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	})
	defer fetch.Close()
	seen := 0
	for msg := fetch.Next(); msg != nil; msg = fetch.Next() {
		var uid imap.UID
		var body []byte
		var held int64
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				uid = it.UID
			case imapclient.FetchItemDataBodySection:
				if it.Literal == nil {
					continue
				}
				held = min(it.Literal.Size(), c.o.MaxBytesInFlight)
				if err := c.mem.Acquire(ctx, held); err != nil {
					return err
				}
				body = make([]byte, it.Literal.Size())
				if _, err := io.ReadFull(it.Literal, body); err != nil {
					c.mem.Release(held)
					return c.classify(err, Source, "fetch", j.key)
				}
			}
		}
		m, ok := byUID[uid]
		if !ok {
			// An answer for a message we did not ask for (a server's
			// unsolicited FETCH): nothing to copy.
			if held > 0 {
				c.mem.Release(held)
			}
			continue
		}
		seen++
		if body == nil {
			j.badItem(f, tr, m, "the source returned no body")
			continue
		}
		err := j.appendOne(ctx, l, f, m, body, answers)
		c.mem.Release(held)
		if err != nil {
			return err
		}
	}
	if err := fetch.Close(); err != nil {
		return c.classify(err, Source, "fetch", j.key)
	}
	if seen < len(uids) {
		// Expunged at the source since the list was read. The retry reads
		// the folder's list afresh, which no longer has them.
		return fmt.Errorf("source fetch for mailbox %s: folder changed while copying (%d of %d messages returned); retrying", j.key, seen, len(uids))
	}
	return nil
}

// appendOne sends one APPEND; its answer is read behind by copyChunk.
func (j *job) appendOne(ctx context.Context, l *lane, f folder, m meta, body []byte, answers chan<- pending) error {
	if lim := j.c.o.Limiter; lim != nil {
		for n := len(body); n > 0; {
			step := min(n, lim.Burst())
			if err := lim.WaitN(ctx, step); err != nil {
				return err
			}
			n -= step
		}
	}
	cmd := l.tgt.c.Append(f.tgt, int64(len(body)), &imap.AppendOptions{Flags: appendFlags(m.flags), Time: m.date})
	_, werr := cmd.Write(body)
	cerr := cmd.Close()
	p := pending{cmd: cmd, m: m}
	if werr != nil || cerr != nil {
		// The server may have answered NO instead of inviting the literal:
		// the answer says whether it refused this message or the
		// connection is gone.
		if _, err := cmd.Wait(); err != nil {
			p.err = err
		} else if werr != nil {
			p.err = werr
		} else {
			p.err = cerr
		}
	}
	answers <- p
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
		if len(j.stats.Bad) < activities.MaxBadListed {
			j.stats.Bad = append(j.stats.Bad, activities.BadItem{Folder: f.src, UID: uint32(m.uid), Size: m.size, Reason: reason})
		}
	}
	j.mu.Unlock()
	if tr != nil {
		j.done(f, tr, m.uid)
	}
}

func describeBad(bad []activities.BadItem) string {
	parts := make([]string, 0, min(len(bad), 5))
	for i, b := range bad {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more", len(bad)-5))
			break
		}
		parts = append(parts, fmt.Sprintf("folder %q UID %d (%s)", b.Folder, b.UID, b.Reason))
	}
	return strings.Join(parts, "; ")
}

// verify checks that the target folder holds every source message up to
// the checkpoint but the bad items, by identity and size.
func (j *job) verify(f folder, srcMeta []meta, fc activities.FolderCheckpoint) error {
	first := j.lanes[0]
	sel, err := first.tgt.selectFolder(f.tgt)
	if err != nil {
		return j.c.classify(err, Target, "select", j.key)
	}
	var tm []meta
	if sel.NumMessages > 0 {
		if tm, err = fetchMeta(first.tgt, imap.SeqSetNum(), false); err != nil {
			return j.c.classify(err, Target, "fetch", j.key)
		}
	}
	have := multiset{}
	var tgtBytes int64
	for _, m := range tm {
		have.add(m.key())
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
		if !have.take(m.key()) {
			missing++
			missingBytes += m.size
		}
	}
	if missing > 0 {
		return activities.Permanent(activities.ErrTypeVerifyMismatch,
			"mailbox %s folder %q: %d of %d source messages (%d of %d bytes) are not on the target (target has %d messages, %d bytes)",
			j.key, f.src, missing, want, missingBytes, wantBytes, len(tm), tgtBytes)
	}
	return nil
}

// fetchMeta reads the metadata of a set of messages (all of them for an
// empty set), in UID order.
func fetchMeta(cn *conn, set imap.NumSet, withFlags bool) ([]meta, error) {
	if s, ok := set.(imap.SeqSet); ok && len(s) == 0 {
		set = imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}
	}
	opts := &imap.FetchOptions{
		UID: true, RFC822Size: true, InternalDate: true, Flags: withFlags,
		BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Message-ID"}, Peek: true}},
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
	slices.SortFunc(out, func(a, b meta) int { return int(a.uid) - int(b.uid) })
	return out, nil
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
