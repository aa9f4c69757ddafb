// Package graphcopy is a copier from an IMAP source into Exchange Online
// through Microsoft Graph: every folder of a mailbox (INBOX and the
// special-use folders into their well-known places), each message created
// from its MIME as a non-draft item with its dates, read state, flag and
// categories, large attachments through upload sessions.
//
// Exactly once: each item carries its source's identity (the folder's
// UIDVALIDITY and the message's UID, in an extended property of
// mailwave's own). An attempt lists what the folder holds by identity
// before it copies, so a retried batch, a worker killed mid-copy and a
// re-run create nothing twice; a message with large attachments carries a
// partial mark until its last attachment is in, and a partial one found
// later is removed and made again. After each folder the verification
// lists it again: a source message missing fails it, an identity held
// twice (an answer lost, the request applied) has its extra copies removed
// (they are the copy's own: the user's mail carries no such identity).
//
// Graph's documented limits are kept by mail/graph's budgets; the adaptive
// rate finds the tenant's own on top. It imports nothing of Temporal.
package graphcopy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"mailwave/contract"
	"mailwave/internal/prefix"
	"mailwave/mail/adapt"
	"mailwave/mail/graph"
	"mailwave/mail/imapcopy"
	"mailwave/mail/port"
)

// Options configure a Copier.
type Options struct {
	Source *imapcopy.Reader
	Graph  *graph.Client
	// FolderMap moves source folders elsewhere on the target, by source
	// name, to a path ("Archive/Old").
	FolderMap map[string]string
	// BadItemLimit: more bad items than this fail the copy (default 0).
	BadItemLimit int
	// Rate, shared by the worker's copies of the organisation, learns the
	// tenant's undocumented limit from its refusals; nil is none.
	Rate *adapt.Rate
	// Batch is how many messages are read from the source at once
	// (default 16, and at most batchBytes of them).
	Batch int
	// Ready is how many messages of a folder are made ready at once to
	// be created (default 16). The mailbox's budget lets at most Graph's 4
	// go at once; the others wait in it, so that a smaller message can use
	// the room a larger one cannot (graph.Budget).
	Ready int
	// MaxMessageBytes: a larger message is a bad item, not read at all
	// (default 150 MB, the most Exchange Online takes).
	MaxMessageBytes int64
}

// batchBytes bounds the message bytes a copy holds at once.
const batchBytes = 32 << 20

// Copier copies mailboxes into Graph. Safe for concurrent use.
type Copier struct{ o Options }

var _ port.Copier = (*Copier)(nil)

// New checks the options.
func New(o Options) (*Copier, error) {
	if o.Source == nil || o.Graph == nil {
		return nil, errors.New("graphcopy: a source reader and a Graph client are required")
	}
	if o.BadItemLimit < 0 || o.Batch < 0 || o.Ready < 0 {
		return nil, errors.New("graphcopy: the bad-item limit, the batch and the ready messages must not be negative")
	}
	if o.Batch == 0 {
		o.Batch = 16
	}
	if o.Ready == 0 {
		o.Ready = 16
	}
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = graph.MaxAttachmentBytes
	}
	return &Copier{o: o}, nil
}

// partial marks the identity of an item whose large attachments are not
// all in yet.
const partial = "~partial"

func identity(uidValidity, uid uint32) string {
	return strconv.FormatUint(uint64(uidValidity), 10) + "." + strconv.FormatUint(uint64(uid), 10)
}

// job is one pass over one mailbox.
type job struct {
	c        *Copier
	req      port.CopyRequest
	src      *imapcopy.Mailbox
	tgt      *graph.Mailbox
	pmu      sync.Mutex // held while Progress runs: reports go one at a time, in order
	mu       sync.Mutex
	cp       contract.Checkpoint
	stats    contract.CopyStats
	reported time.Time
}

// Copy runs one pass from req.Checkpoint.
func (c *Copier) Copy(ctx context.Context, req port.CopyRequest) (contract.CopyStats, error) {
	src, err := c.o.Source.Open(ctx, req.Mailbox)
	if err != nil {
		return contract.CopyStats{}, err
	}
	defer src.Close()
	j := &job{c: c, req: req, src: src, tgt: c.o.Graph.Mailbox(req.Mailbox), cp: req.Checkpoint.Clone()}
	if j.cp.Folders == nil {
		j.cp.Folders = map[string]contract.FolderCheckpoint{}
	}
	folders, err := src.Folders()
	if err != nil {
		return j.stats, err
	}
	slices.SortFunc(folders, func(a, b imapcopy.SourceFolder) int { return strings.Compare(a.Name, b.Name) })
	// A folder is verified while the next is copied: the verification
	// uploads nothing, and the mailbox's upload budget, left unused while
	// it ran, would be time lost for good.
	var verifying chan error
	verified := func() error {
		if verifying == nil {
			return nil
		}
		err := <-verifying
		verifying = nil
		return err
	}
	for _, f := range folders {
		check, err := j.folder(ctx, f)
		err = errors.Join(err, verified())
		if err != nil {
			j.report(true)
			return j.stats, err
		}
		ch := make(chan error, 1)
		go func() { ch <- check(ctx) }()
		verifying = ch
	}
	if err := verified(); err != nil {
		j.report(true)
		return j.stats, err
	}
	j.report(true)
	var bad []contract.BadItem
	for _, f := range folders {
		for _, uid := range j.cp.Folders[f.Name].Bad {
			bad = append(bad, contract.BadItem{Folder: f.Name, UID: uid})
		}
	}
	if len(bad) > c.o.BadItemLimit {
		return j.stats, port.Permanent(contract.ErrTypeBadItems, "mailbox %s: %d bad items (limit %d)", req.Mailbox.Key, len(bad), c.o.BadItemLimit)
	}
	return j.stats, nil
}

// report hands the checkpoint to the activity, at most every 250 ms
// unless forced.
func (j *job) report(force bool) {
	if j.req.Progress == nil {
		return
	}
	j.pmu.Lock()
	defer j.pmu.Unlock()
	j.mu.Lock()
	if !force && time.Since(j.reported) < 250*time.Millisecond {
		j.mu.Unlock()
		return
	}
	j.reported = time.Now()
	cp, st := j.cp.Clone(), j.stats
	j.mu.Unlock()
	j.req.Progress(cp, st)
}

// target is where a source folder goes: its well-known folder, its mapped
// path, or its own path under the root.
func (j *job) target(ctx context.Context, f imapcopy.SourceFolder) (string, error) {
	if to, ok := j.c.o.FolderMap[f.Name]; ok {
		return j.tgt.Folder(ctx, "", strings.Split(to, "/"))
	}
	if wk := graph.WellKnown(f.Name, f.SpecialUse); wk != "" {
		return j.tgt.Folder(ctx, wk, nil)
	}
	return j.tgt.Folder(ctx, "", f.Path)
}

// folder copies one folder above its checkpoint and verifies it.
// folder copies one folder, and says how to verify it.
func (j *job) folder(ctx context.Context, f imapcopy.SourceFolder) (verify func(context.Context) error, err error) {
	uv, msgs, err := j.src.Select(f.Name)
	if err != nil {
		return nil, err
	}
	fc := j.cp.Folders[f.Name]
	if fc.UIDValidity != uv {
		fc = contract.FolderCheckpoint{UIDValidity: uv}
	}
	folderID, err := j.target(ctx, f)
	if err != nil {
		return nil, err
	}
	present, err := j.tgt.Sources(ctx, folderID)
	if err != nil {
		return nil, err
	}
	// Partial items (an attempt ended before their last attachment) are
	// removed: the message is made again whole.
	if err := j.removePartials(ctx, present, uv, msgs); err != nil {
		return nil, err
	}
	var todo []imapcopy.SourceMessage
	var over []imapcopy.SourceMessage
	for _, m := range msgs {
		switch {
		case m.UID <= fc.LastUID || slices.Contains(fc.Bad, m.UID):
		case m.Size > j.c.o.MaxMessageBytes:
			over = append(over, m)
		default:
			todo = append(todo, m)
		}
	}
	j.setFolder(f.Name, fc)
	for _, m := range over {
		j.bad(f, m, fmt.Sprintf("%d bytes is over the target's %d-byte limit", m.Size, j.c.o.MaxMessageBytes))
	}
	// The messages are read in batches (up to Batch messages and
	// batchBytes) and made ready up to Ready at a time as they are read,
	// with no pause between batches: a budget left unused while a batch's
	// last message waits is time lost for good. They are created in the
	// order the budget admits them; the checkpoint moves over the settled
	// prefix.
	uids := make([]uint32, len(todo))
	for i, m := range todo {
		uids[i] = m.UID
	}
	tr := prefix.New(uids)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(j.c.o.Ready)
	bodies := semaphore.NewWeighted(batchBytes) // what the ready messages hold, together
	for len(todo) > 0 && gctx.Err() == nil {
		n, size := 1, todo[0].Size
		for n < len(todo) && n < j.c.o.Batch && size+todo[n].Size <= batchBytes {
			size += todo[n].Size
			n++
		}
		err := j.src.Fetch(todo[:n], func(m imapcopy.SourceMessage, body []byte) error {
			held := min(int64(len(body)), batchBytes)
			if err := bodies.Acquire(gctx, held); err != nil {
				return err
			}
			g.Go(func() error {
				defer bodies.Release(held)
				if err := j.message(gctx, f, folderID, uv, m, body, present); err != nil {
					return err
				}
				if last, moved := tr.Settle(m.UID); moved {
					j.settle(f.Name, last)
				}
				return nil
			})
			return nil
		})
		if err != nil {
			// A message's own error first: the fetch's is then most
			// often only the cancellation that error caused.
			if gerr := g.Wait(); gerr != nil {
				return nil, gerr
			}
			return nil, err
		}
		todo = todo[n:]
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	j.report(true)
	return func(ctx context.Context) error { return j.verify(ctx, f, folderID, uv, msgs) }, nil
}

func (j *job) setFolder(name string, fc contract.FolderCheckpoint) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.cp.Folders[name] = fc
}

// settle moves the folder's checkpoint over the settled prefix.
func (j *job) settle(name string, last uint32) {
	j.mu.Lock()
	fc := j.cp.Folders[name]
	fc.LastUID = max(fc.LastUID, last)
	j.cp.Folders[name] = fc
	j.mu.Unlock()
	j.report(false)
}

// message creates one message, unless the folder holds it already.
func (j *job) message(ctx context.Context, f imapcopy.SourceFolder, folderID string, uv uint32, m imapcopy.SourceMessage, body []byte, present map[string][]string) error {
	id := identity(uv, m.UID)
	if len(present[id]) > 0 {
		j.mu.Lock()
		j.stats.Skipped++
		j.mu.Unlock()
		return nil
	}
	conv, err := graph.FromMIME(body, m.Flags)
	if errors.Is(err, graph.ErrTooLarge) {
		j.bad(f, m, err.Error())
		return nil
	}
	if err != nil {
		j.bad(f, m, "the message cannot be read: "+err.Error())
		return nil
	}
	if r := j.c.o.Rate; r != nil {
		if err := r.Wait(ctx, len(body)); err != nil {
			return err
		}
	}
	it := graph.Item{Source: id, JSON: conv.JSON, Read: slices.Contains(m.Flags, `\Seen`), Sent: conv.Sent, Received: m.Date}
	if len(conv.Large) > 0 {
		it.Source = id + partial
	}
	gid, err := j.tgt.Create(ctx, folderID, it)
	var se *graph.StatusError
	if errors.As(err, &se) && (se.Status == http.StatusRequestEntityTooLarge || se.Status == http.StatusBadRequest) {
		j.bad(f, m, fmt.Sprintf("the target refused it: %d %s", se.Status, se.Code))
		return nil
	}
	if err != nil {
		return err
	}
	if len(conv.Large) > 0 {
		for _, a := range conv.Large {
			if err := j.tgt.Attach(ctx, gid, a); err != nil {
				return err
			}
		}
		if err := j.tgt.SetSource(ctx, gid, id); err != nil {
			return err
		}
	}
	if r := j.c.o.Rate; r != nil {
		r.Accepted(len(body))
	}
	j.mu.Lock()
	j.stats.Items++
	j.stats.Bytes += m.Size
	j.mu.Unlock()
	return nil
}

// removePartials removes the folder's partial items (and forgets them in
// present): only those of its own messages, since another source folder
// may be copied into the same target folder, and its partial items may be
// in the making.
func (j *job) removePartials(ctx context.Context, present map[string][]string, uv uint32, msgs []imapcopy.SourceMessage) error {
	for _, m := range msgs {
		id := identity(uv, m.UID) + partial
		for _, gid := range present[id] {
			if err := j.tgt.Delete(ctx, gid); err != nil {
				return err
			}
		}
		delete(present, id)
	}
	return nil
}

// bad records a message that will not be copied, and why: in the
// checkpoint at once (the checkpoint's LastUID moves over it with its
// batch), so a retry neither tries it again nor counts it twice.
func (j *job) bad(f imapcopy.SourceFolder, m imapcopy.SourceMessage, why string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	fc := j.cp.Folders[f.Name]
	if slices.Contains(fc.Bad, m.UID) {
		return
	}
	fc.Bad = append(fc.Bad, m.UID)
	j.cp.Folders[f.Name] = fc
	j.stats.BadItems++
	if len(j.stats.Bad) < contract.MaxBadListed {
		j.stats.Bad = append(j.stats.Bad, contract.BadItem{Folder: imapcopy.FolderShown(f.Name), UID: m.UID, Size: m.Size, Reason: why})
	}
}

// verify lists the folder again: every source message up to the
// checkpoint (but the bad ones) must be there once. Extra copies of one
// are the copy's own and are removed; a missing one fails the folder.
func (j *job) verify(ctx context.Context, f imapcopy.SourceFolder, folderID string, uv uint32, msgs []imapcopy.SourceMessage) error {
	present, err := j.tgt.Sources(ctx, folderID)
	if err != nil {
		return err
	}
	j.mu.Lock()
	fc := j.cp.Folders[f.Name]
	j.mu.Unlock()
	missing, want := 0, 0
	for _, m := range msgs {
		if m.UID > fc.LastUID || slices.Contains(fc.Bad, m.UID) {
			continue
		}
		want++
		ids := present[identity(uv, m.UID)]
		if len(ids) == 0 {
			missing++
			continue
		}
		for _, extra := range ids[1:] {
			if err := j.tgt.Delete(ctx, extra); err != nil {
				return err
			}
			j.mu.Lock()
			j.stats.Duplicates++
			j.mu.Unlock()
		}
	}
	if err := j.removePartials(ctx, present, uv, msgs); err != nil {
		return err
	}
	if missing > 0 {
		return port.Permanent(contract.ErrTypeVerifyMismatch, "mailbox %s folder %s: %d of %d source messages are not on the target",
			j.req.Mailbox.Key, imapcopy.FolderLabel(f.Name), missing, want)
	}
	return nil
}

// CheckTarget proves the mailbox's target: its Inbox read, and a tiny
// message created in Deleted Items and removed again.
func (c *Copier) CheckTarget(ctx context.Context, m contract.MailboxRef) error {
	tgt := c.o.Graph.Mailbox(m)
	if _, err := tgt.Folder(ctx, "inbox", nil); err != nil {
		return fmt.Errorf("reading the inbox: %w", err)
	}
	bin, err := tgt.Folder(ctx, "deleteditems", nil)
	if err != nil {
		return fmt.Errorf("reading deleted items: %w", err)
	}
	id, err := tgt.Create(ctx, bin, graph.Item{Source: "mailwave-target-check",
		JSON: map[string]any{"subject": "mailwave target check", "body": map[string]string{"contentType": "text", "content": "A check by the migration; removed at once."}}})
	if err != nil {
		return fmt.Errorf("writing a test message: %w", err)
	}
	if err := tgt.Delete(ctx, id); err != nil {
		return fmt.Errorf("removing the test message: %w", err)
	}
	return nil
}

var _ port.TargetChecker = (*Copier)(nil)
