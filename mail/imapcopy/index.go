package imapcopy

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"mailwave/activities"
	"mailwave/contract"
)

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
	out, err := collectMeta(cn, cn.c.Fetch(set, opts))
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b meta) int { return cmp.Compare(a.uid, b.uid) })
	return out, nil
}

// maxHeaderBytes bounds the header block fetched for a Message-ID: the
// field is one line, and a server that sends more is not believed.
const maxHeaderBytes = 64 << 10

// collectMeta reads a FETCH's answers as they stream in, where go-imap's
// Collect would buffer whatever literal the server sends: a header block
// over maxHeaderBytes is refused, and the connection dropped rather than
// read to its end.
func collectMeta(cn *conn, cmd *imapclient.FetchCommand) ([]meta, error) {
	defer cmd.Close()
	var out []meta
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		var m meta
		for it := msg.Next(); it != nil; it = msg.Next() {
			switch it := it.(type) {
			case imapclient.FetchItemDataUID:
				m.uid = it.UID
			case imapclient.FetchItemDataRFC822Size:
				m.size = it.Size
			case imapclient.FetchItemDataInternalDate:
				m.date = it.Time
			case imapclient.FetchItemDataFlags:
				m.flags = it.Flags
			case imapclient.FetchItemDataBodySection:
				if it.Literal == nil {
					continue
				}
				header, err := readLiteral(it.Literal, maxHeaderBytes)
				var tl *literalTooLarge
				if errors.As(err, &tl) {
					dropConn(cn.c, it.Literal)
					return nil, fmt.Errorf("the %s sent a Message-ID header block of %d bytes, over the %d-byte limit: refused", cn.side, tl.size, tl.limit)
				}
				if err != nil {
					return nil, err
				}
				m.msgID = messageID(header)
			}
		}
		out = append(out, m)
	}
	return out, cmd.Close()
}

var messageIDSection = &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Message-ID"}, Peek: true}

// addMessageIDs fills in the Message-IDs of the messages above lastUID.
func addMessageIDs(cn *conn, ms []meta, lastUID uint32) error {
	i, _ := slices.BinarySearchFunc(ms, imap.UID(lastUID+1), func(m meta, u imap.UID) int { return cmp.Compare(m.uid, u) })
	if i == len(ms) {
		return nil
	}
	set := imap.UIDSet{imap.UIDRange{Start: ms[i].uid, Stop: ms[len(ms)-1].uid}}
	got, err := collectMeta(cn, cn.c.Fetch(set, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{messageIDSection}}))
	if err != nil {
		return err
	}
	ids := make(map[imap.UID]string, len(got))
	for _, m := range got {
		ids[m.uid] = m.msgID
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
