package imapcopy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"mailwave/contract"
)

// Reader reads mailboxes at an IMAP source for a copier whose target is
// not IMAP (Exchange Online through Graph): the same login, folder list,
// message lists from the server's index and bounded body reads as the IMAP
// copier's own.
type Reader struct {
	c        *Copier
	warnings []string
}

// NewReader checks the source endpoint as New does.
func NewReader(source Endpoint, creds CredentialsFunc) (*Reader, error) {
	w, err := checkEndpoint(Source, &source)
	if err != nil {
		return nil, err
	}
	if creds == nil {
		return nil, errors.New("imapcopy: no credentials source")
	}
	return &Reader{c: &Copier{o: Options{Source: source, Credentials: creds, ThrottleDelay: 30 * time.Second}}, warnings: w}, nil
}

// Warnings are what NewReader allowed but is unsafe.
func (r *Reader) Warnings() []string { return slices.Clone(r.warnings) }

// SourceFolder is a folder of the mailbox: its name at the source, its path
// (the name split at the server's delimiter) and its special use (\Sent,
// \Drafts, \Trash, \Junk, \Archive), if any.
type SourceFolder struct {
	Name       string
	Path       []string
	SpecialUse string
}

// SourceMessage is a message as the source's index lists it.
type SourceMessage struct {
	UID   uint32
	Size  int64
	Date  time.Time
	Flags []string
}

// Mailbox is one mailbox's source, logged in.
type Mailbox struct {
	r     *Reader
	cn    *conn
	key   string
	trips *tripwire
}

// Open logs in to the mailbox's source; the connection ends with ctx.
func (r *Reader) Open(ctx context.Context, m contract.MailboxRef) (*Mailbox, error) {
	ctx, trips := withTripwire(ctx)
	cn, err := r.c.dial(ctx, Source, m)
	if err != nil {
		return nil, tooLargeFailure(trips, m.Key, err)
	}
	return &Mailbox{r: r, cn: cn, key: m.Key, trips: trips}, nil
}

// Close logs out.
func (s *Mailbox) Close() { s.cn.close() }

// Folders lists the mailbox's own selectable folders (not other users' or
// shared namespaces, not virtual ones).
func (s *Mailbox) Folders() ([]SourceFolder, error) {
	l, delim, _, err := list(s.cn)
	if err != nil {
		return nil, tooLargeFailure(s.trips, s.key, s.r.c.classify(err, Source, "list", s.key))
	}
	out := make([]SourceFolder, 0, len(l))
	for _, f := range l {
		out = append(out, SourceFolder{Name: f.Mailbox, Path: strings.Split(f.Mailbox, string(delim)), SpecialUse: string(specialOf(f))})
	}
	return out, nil
}

// Select opens a folder and lists its messages in UID order.
func (s *Mailbox) Select(name string) (uidValidity uint32, msgs []SourceMessage, err error) {
	sel, err := s.cn.selectFolder(name)
	if err != nil {
		return 0, nil, tooLargeFailure(s.trips, s.key, s.r.c.classify(err, Source, "select", s.key))
	}
	if sel.NumMessages == 0 {
		return sel.UIDValidity, nil, nil
	}
	ms, err := fetchMeta(s.cn, imap.SeqSetNum(), false)
	if err != nil {
		return 0, nil, tooLargeFailure(s.trips, s.key, s.r.c.classify(err, Source, "fetch", s.key))
	}
	msgs = make([]SourceMessage, len(ms))
	for i, m := range ms {
		flags := make([]string, 0, len(m.flags))
		for _, f := range m.flags {
			if !strings.EqualFold(string(f), `\Recent`) {
				flags = append(flags, string(f))
			}
		}
		msgs[i] = SourceMessage{UID: uint32(m.uid), Size: m.size, Date: m.date, Flags: flags}
	}
	return sel.UIDValidity, msgs, nil
}

// Fetch reads the bodies of msgs (of the folder selected last), calling
// each in turn. A body larger than its listed size is refused before it
// is read (the connection dropped); a message expunged meanwhile is
// missing from the calls.
func (s *Mailbox) Fetch(msgs []SourceMessage, each func(m SourceMessage, body []byte) error) error {
	byUID := make(map[imap.UID]SourceMessage, len(msgs))
	sizes := make(map[imap.UID]int64, len(msgs))
	for _, m := range msgs {
		byUID[imap.UID(m.UID)], sizes[imap.UID(m.UID)] = m, m.Size
	}
	var fromEach error // the caller's own, passed on as it is
	err := eachBody(s.cn, sizes, func(uid imap.UID, lit imap.LiteralReader) error {
		body := make([]byte, lit.Size())
		if _, err := io.ReadFull(lit, body); err != nil {
			return err
		}
		fromEach = each(byUID[uid], body)
		return fromEach
	})
	var tl *literalTooLarge
	switch {
	case fromEach != nil:
		return fromEach
	case errors.As(err, &tl):
		return fmt.Errorf("source fetch for mailbox %s UID %d: a body of %d bytes, over the %d bytes listed: refused", s.key, tl.uid, tl.size, tl.limit)
	case err != nil:
		return tooLargeFailure(s.trips, s.key, s.r.c.classify(err, Source, "fetch", s.key))
	}
	return nil
}

// FolderLabel is a folder's name as errors and reports show it: quoted, or
// a description in place of a name that holds an address.
func FolderLabel(name string) string { return label(name) }

// FolderShown is a folder's name as a bad item lists it.
func FolderShown(name string) string { return shown(name) }

// CheckTarget proves the mailbox's target: a login, INBOX read, and a tiny
// message appended and expunged again by its UID (a target without UIDPLUS
// is only read: nothing is written that could not be taken back alone).
func (c *Copier) CheckTarget(ctx context.Context, m contract.MailboxRef) (err error) {
	ctx, trips := withTripwire(ctx)
	defer func() { err = tooLargeFailure(trips, m.Key, err) }()
	tgt, err := c.dial(ctx, Target, m)
	if err != nil {
		return err
	}
	defer tgt.close()
	if _, err := tgt.selectFolder("INBOX"); err != nil {
		return c.classify(err, Target, "select", m.Key)
	}
	if !tgt.c.Caps().Has(imap.CapUIDPlus) {
		return nil
	}
	msg := []byte("From: mailwave <noreply@invalid>\r\nSubject: mailwave target check\r\n\r\nA check by the migration; removed at once.\r\n")
	cmd := tgt.c.Append("INBOX", int64(len(msg)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen, imap.FlagDeleted}})
	_, werr := cmd.Write(msg)
	cerr := cmd.Close()
	data, err := cmd.Wait()
	if err = errors.Join(err, werr, cerr); err != nil {
		return c.classify(err, Target, "append", m.Key)
	}
	if data.UID == 0 {
		return fmt.Errorf("target for mailbox %s: the test message's UID was not given back; remove \"mailwave target check\" by hand", m.Key)
	}
	if err := tgt.removeUIDs("INBOX", data.UIDValidity, []imap.UID{data.UID}); err != nil {
		return c.classify(err, Target, "remove the test message", m.Key)
	}
	return nil
}
