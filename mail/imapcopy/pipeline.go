package imapcopy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"mailwave/internal/prefix"
	"mailwave/mail/adapt"
)

// pipeChunks copies the planned messages over the lane, in chunks of
// Window messages or batchBytes, whichever is less, and through a rate no
// more than its next Batch (always at least one message): a worker sending
// more sends bigger batches at the same pace (see package adapt).
func (j *job) pipeChunks(ctx context.Context, l *lane, f folder, tr *prefix.Tracker[imap.UID], todo []meta) error {
	if len(todo) == 0 {
		return nil
	}
	chunks := make(chan []meta)
	go func() {
		defer close(chunks)
		for len(todo) > 0 {
			limit := min(batchBytes, j.c.o.MaxBytesInFlight)
			if r := j.c.o.Rate; r != nil {
				limit = min(limit, r.Batch())
			}
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

// batch is one chunk's messages sent to the target: the answers still to
// come (one for a MULTIAPPEND, else one per message), or (without the
// appender) the answers to one synchronous APPEND per message.
type batch struct {
	items   []item
	held    int64 // memory taken for the chunk, given back once answered
	answers []<-chan error
	errs    []error
	sentAt  time.Time // when it first went on the wire, by the worker's rate's clock
}

// lanePipe runs a lane: chunks are fetched and sent to the target while
// the answers to earlier ones are collected behind, so the source, the
// target and the copier work at once.
func (j *job) lanePipe(ctx context.Context, l *lane, f folder, tr *prefix.Tracker[imap.UID], chunks <-chan []meta) error {
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
func (j *job) collect(ctx context.Context, l *lane, f folder, tr *prefix.Tracker[imap.UID], sent <-chan *batch) error {
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
		if first == nil {
			errs, err := j.answered(ctx, l, f, b)
			if err != nil {
				first = err
			}
			for i, it := range b.items {
				if err == nil {
					settle(it, errs[i])
				}
			}
		} else {
			// A lane that failed only drains; the retry goes on from the
			// checkpoint.
			j.refusedAlready(b)
		}
		j.c.mem.Release(b.held)
	}
	return first
}

// refusedAlready tells the worker's rate of a refusal among the answers a
// batch has already had, once its lane has failed on an earlier batch. A
// target that drops the connection when it refuses a batch takes with it
// the answer of the batch before, still being stored: that batch fails
// first, and its refusal, read but never looked at, would never slow the
// copy, attempt after attempt. Nothing waits here: an answer not yet
// there is not looked for (the connection has failed, or the lane's
// retry settles the batch).
func (j *job) refusedAlready(b *batch) {
	r := j.c.o.Rate
	if r == nil {
		return
	}
	for _, ch := range b.answers {
		select {
		case err := <-ch:
			if _, ok := j.c.throttledAnswer(err); ok {
				r.Refused(b.sentAt)
				return
			}
		default:
		}
	}
}

// throttleWait is what a throttled batch waits when the target named no
// delay, before it is sent again in the copy (as adapt.GiveUp allows; past
// that the attempt ends with a ThrottledError and the activity's retry
// waits).
const throttleWait = time.Second

// answered waits for a batch's answers, one error per message. Through
// the appender, a batch the target refused for throttling is sent again
// after the delay it asked for, and the worker's rate learns of each
// refusal and of what was taken; a MULTIAPPEND refused for one bad message
// is sent again a message at a time to find it, after a re-send too.
// Without the appender, send has already waited out throttling, in the
// fetcher's goroutine, which alone uses the lane's go-imap connection.
func (j *job) answered(ctx context.Context, l *lane, f folder, b *batch) ([]error, error) {
	errs := j.awaitSplit(ctx, l, f, b)
	if b.answers == nil {
		return errs, nil
	}
	pending := make([]int, len(errs)) // the items whose answers are new
	for i := range pending {
		pending[i] = i
	}
	for round := 0; ; round++ {
		var again []int
		var wait time.Duration
		var took int
		for _, i := range pending {
			if errs[i] == nil {
				took += len(b.items[i].body)
			}
			if d, ok := j.c.throttledAnswer(errs[i]); ok {
				again, wait = append(again, i), max(wait, d)
			}
		}
		if r := j.c.o.Rate; r != nil {
			if took > 0 {
				r.Accepted(took)
			}
			if len(again) > 0 {
				r.Refused(b.sentAt)
			}
		}
		if len(again) == 0 {
			return errs, nil
		}
		if adapt.GiveUp(round, wait) {
			return nil, j.c.classify(errs[again[0]], Target, "append", j.key)
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, err
		}
		resend := &batch{items: make([]item, len(again)), sentAt: b.sentAt}
		for k, i := range again {
			resend.items[k] = b.items[i]
		}
		if err := j.send(ctx, l, f, resend); err != nil {
			return nil, err
		}
		for k, err := range j.awaitSplit(ctx, l, f, resend) {
			errs[again[k]] = err
		}
		pending = again
	}
}

// awaitSplit awaits a batch's answers; a MULTIAPPEND refused for one bad
// message (it is all or nothing) is sent again a message at a time to
// find it. Only the collector calls it, and only it uses the lane's go-imap
// connection while the appender carries the batches.
func (j *job) awaitSplit(ctx context.Context, l *lane, f folder, b *batch) []error {
	errs := b.await(ctx)
	if len(b.answers) == 1 && len(b.items) > 1 {
		if _, refusedOne := refused(errs[0]); refusedOne {
			for i, it := range b.items {
				errs[i] = j.appendOne(ctx, l, f, it)
			}
		}
	}
	return errs
}

// await collects a batch's answers, one error per message; a context
// ended first is every message's answer.
func (b *batch) await(ctx context.Context) []error {
	if b.answers == nil {
		return b.errs
	}
	errs := make([]error, len(b.items))
	for i, ch := range b.answers {
		var err error
		select {
		case err = <-ch:
		case <-ctx.Done():
			err = ctx.Err()
		}
		if len(b.answers) == 1 {
			for k := range errs {
				errs[k] = err
			}
			break
		}
		errs[i] = err
	}
	return errs
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
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
	var ie *imap.Error
	if errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeNo {
		// It closes the connection just after handing back a refusal of the
		// message (for its size or form, or throttling), so the connection
		// is replaced whether or not it is gone yet.
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
func (j *job) fetchChunk(ctx context.Context, l *lane, f folder, tr *prefix.Tracker[imap.UID], chunk []meta, sent chan<- *batch) error {
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
				m, known := byUID[uid]
				if !known {
					// Not a message asked for, or its UID not (yet) given:
					// go-imap discards the body unread. (It hands a UID
					// FETCH's answer over only once it has seen the UID.)
					continue
				}
				// The body may be no larger than the source listed for the
				// message, which is within MaxMessageBytes (or it would be
				// a bad item already): the memory taken for the chunk
				// covers no more, and a server that sends more is broken or
				// hostile.
				var err error
				if body, err = readLiteral(it.Literal, m.size); err != nil {
					release()
					var tl *literalTooLarge
					if !errors.As(err, &tl) {
						return c.classify(err, Source, "fetch", j.key)
					}
					// Reading on, even only to discard, is at the server's
					// pace for as long as it likes: drop the connection.
					dropConn(l.src.c, it.Literal)
					// Recorded in the checkpoint the activity heartbeats, so
					// the retry copies the rest without it.
					j.badItem(f, tr, m, fmt.Sprintf("the source sent %d bytes for it, over the %d bytes it listed", tl.size, tl.limit))
					return fmt.Errorf("source fetch for mailbox %s folder %s UID %d: a message body of %d bytes, over the %d bytes listed for it: refused as a bad item; retrying without it",
						j.key, label(f.src), m.uid, tl.size, tl.limit)
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

// literalTooLarge refuses a literal larger than the reader was allowed.
type literalTooLarge struct {
	uid         imap.UID // the message's, where it is known
	size, limit int64
}

func (e *literalTooLarge) Error() string {
	return fmt.Sprintf("a literal of %d bytes, over the limit of %d", e.size, e.limit)
}

// dropConn closes a connection while a literal of it is being read.
// go-imap's reader waits until the literal is read to its end or fails, and
// Close waits for that reader; so the connection is closed from aside, and
// the literal read (into a small buffer, thrown away) until it fails.
func dropConn(cl *imapclient.Client, lit io.Reader) {
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		_ = cl.Close()
	}()
	buf := make([]byte, 4<<10)
	for {
		if _, err := lit.Read(buf); err != nil {
			break
		}
	}
	<-closed
}

// readLiteral reads a literal whole, refusing one that announces more than
// limit bytes before any of it is read or memory is taken for it: a server
// cannot make the copier buffer more than it asked for.
func readLiteral(lit imap.LiteralReader, limit int64) ([]byte, error) {
	n := lit.Size()
	if n < 0 || n > limit {
		return nil, &literalTooLarge{size: n, limit: limit}
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(lit, b); err != nil {
		return nil, err
	}
	return b, nil
}

// send puts a batch on the wire, at the pace of the worker's rate.
func (j *job) send(ctx context.Context, l *lane, f folder, b *batch) error {
	if r := j.c.o.Rate; r != nil {
		var n int
		for _, it := range b.items {
			n += len(it.body)
		}
		if err := r.Wait(ctx, n); err != nil {
			return err
		}
		if b.sentAt.IsZero() {
			b.sentAt = r.Now()
		}
	}
	if l.app != nil {
		answers, err := l.app.send(f.tgt, b.items)
		if err != nil {
			return j.c.classify(err, Target, "append", j.key)
		}
		b.answers = answers
		return nil
	}
	// Without the appender, one message at a time: a synchronising literal
	// costs a round trip each way, and a refused one costs the connection.
	for _, it := range b.items {
		err, werr := j.appendWaitingOut(ctx, l, f, it)
		if werr != nil {
			return werr
		}
		b.errs = append(b.errs, err)
	}
	return nil
}

// appendWaitingOut appends one message through go-imap, waiting out the
// target's throttling (as adapt.GiveUp allows) and telling the
// worker's rate. It returns the message's answer, or an error that ends
// the lane (its context ended).
func (j *job) appendWaitingOut(ctx context.Context, l *lane, f folder, it item) (answer, err error) {
	r := j.c.o.Rate
	var sentAt time.Time // the first send's: see adapt.Rate.Refused
	if r != nil {
		sentAt = r.Now()
	}
	for round := 0; ; round++ {
		answer = j.appendOne(ctx, l, f, it)
		wait, throttled := j.c.throttledAnswer(answer)
		if r != nil && answer == nil {
			r.Accepted(len(it.body))
		}
		if !throttled {
			return answer, nil
		}
		if r != nil {
			r.Refused(sentAt)
		}
		if adapt.GiveUp(round, wait) {
			return answer, nil
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, err
		}
		if r != nil {
			if err := r.Wait(ctx, len(it.body)); err != nil {
				return nil, err
			}
		}
	}
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
