package imapcopy

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"mailwave/contract"
	"mailwave/mail/port"
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

// maxRepairs bounds the rounds of verifying and removing duplicates in one
// folder: a second round finds none unless appends are still landing.
const maxRepairs = 3

// errFolderRemade: the target folder was deleted and made again while it
// was being copied; the retry copies it again.
var errFolderRemade = errors.New("the target folder was made again (new UIDVALIDITY) while it was copied; retrying")

// verify checks the target folder against the source up to the checkpoint,
// but the bad items: every source message must be there (by size and
// INTERNALDATE), and none more often than the source has it. A message
// held more often, byte for byte (see extraCopies), is a copy this copy
// made twice when the extra copies lie at or above the folder's base UID
// (fc.TargetBaseUID: what was on the target before the copy is the user's,
// never a duplicate, never touched). Where the target can expunge by UID
// (UIDPLUS) the extra copies are removed, newest first, and the folder
// checked again; otherwise, or if they keep coming back, the verification
// fails for good, naming the counts. It returns the folder's state as last
// selected.
func (j *job) verify(first *lane, f folder, srcMeta []meta, fc contract.FolderCheckpoint) (*imap.SelectData, error) {
	var want []meta
	var wantBytes int64
	for _, m := range srcMeta {
		if uint32(m.uid) <= fc.LastUID && !slices.Contains(fc.Bad, uint32(m.uid)) {
			want = append(want, m)
			wantBytes += m.size
		}
	}
	for round := 1; ; round++ {
		sel, err := first.tgt.selectFolder(f.tgt)
		if err != nil {
			return nil, j.c.classify(err, Target, "select", j.key)
		}
		if sel.UIDValidity != fc.TargetUIDValidity {
			return nil, fmt.Errorf("mailbox %s folder %s: %w", j.key, label(f.src), errFolderRemade)
		}
		var tm []meta
		if sel.NumMessages > 0 {
			if tm, err = fetchMeta(first.tgt, imap.SeqSetNum(), false); err != nil {
				return nil, j.c.classify(err, Target, "fetch", j.key)
			}
		}
		missing, missingBytes := missingFrom(want, tm)
		extra, err := j.extraCopies(first, f, want, tm, imap.UID(fc.TargetBaseUID))
		if err != nil {
			return nil, err
		}
		if missing == 0 && len(extra) == 0 {
			return sel, nil
		}
		canRemove := first.tgt.c.Caps().Has(imap.CapUIDPlus)
		if missing == 0 && canRemove && round < maxRepairs {
			if err := first.tgt.removeUIDs(f.tgt, fc.TargetUIDValidity, extra); err != nil {
				if errors.Is(err, errFolderRemade) {
					return nil, fmt.Errorf("mailbox %s folder %s: %w", j.key, label(f.src), err)
				}
				return nil, j.c.classify(err, Target, "remove duplicates", j.key)
			}
			j.mu.Lock()
			j.stats.Duplicates += int64(len(extra))
			j.mu.Unlock()
			continue
		}
		var tgtBytes int64
		for _, m := range tm {
			tgtBytes += m.size
		}
		why := ""
		switch {
		case missing > 0:
			why = "the copy is short"
		case !canRemove:
			why = "the target cannot expunge by UID (no UIDPLUS), so the extra copies were left"
		default:
			why = fmt.Sprintf("extra copies were still there after %d rounds of removing them", round-1)
		}
		return nil, port.Permanent(contract.ErrTypeVerifyMismatch,
			"mailbox %s folder %s: %d of %d source messages (%d of %d bytes) are not on the target, %d extra copies of source messages are (target has %d messages, %d bytes): %s",
			j.key, label(f.src), missing, len(want), missingBytes, wantBytes, len(extra), len(tm), tgtBytes, why)
	}
}

// missingFrom counts the wanted messages the target lacks, by size and
// INTERNALDATE (both in the servers' indexes: checking a folder opens
// none of its messages).
func missingFrom(want, tm []meta) (n int, bytes int64) {
	have := multiset{}
	for _, m := range tm {
		have.add(m.sizeDate())
	}
	for _, m := range want {
		if !have.take(m.sizeDate()) {
			n++
			bytes += m.size
		}
	}
	return n, bytes
}

// extraCopies finds the target's extra copies of source messages at or
// above base: for each message the target holds more often than the source
// (and the source at least once), byte for byte and with the same
// INTERNALDATE, the newest of those at or above base, as many as it holds
// too many. Size and date pick the suspects from what verify read (almost
// always none); the suspects alone are read whole on both sides and
// compared by SHA-256, so two different messages are never taken for one,
// whatever their Message-IDs, and mail that came to the target some other
// way (with its own Received lines) is never the copy's.
func (j *job) extraCopies(first *lane, f folder, want, tm []meta, base imap.UID) ([]imap.UID, error) {
	if base == 0 {
		return nil, nil // the target gave no next UID: nothing is known to be the copy's
	}
	srcN, tgtN := multiset{}, multiset{}
	for _, m := range want {
		srcN.add(m.sizeDate())
	}
	for _, m := range tm {
		tgtN.add(m.sizeDate())
	}
	suspect := func(m meta) bool { k := m.sizeDate(); return srcN[k] > 0 && tgtN[k] > srcN[k] }
	var tSus []meta
	newer := false
	for _, m := range tm {
		if suspect(m) {
			tSus = append(tSus, m)
			newer = newer || m.uid >= base
		}
	}
	if !newer {
		return nil, nil // none the copy made
	}
	var sSus []meta
	for _, m := range want {
		if suspect(m) {
			sSus = append(sSus, m)
		}
	}
	tDig, err := digests(first.tgt, tSus)
	if err != nil {
		return nil, j.c.classify(err, Target, "fetch", j.key)
	}
	if first.src.selected != f.src {
		if _, err := first.src.selectFolder(f.src); err != nil {
			return nil, j.c.classify(err, Source, "select", j.key)
		}
	}
	sDig, err := digests(first.src, sSus)
	if err != nil {
		return nil, j.c.classify(err, Source, "fetch", j.key)
	}
	srcFull := multiset{}
	for _, m := range sSus {
		srcFull.add(sDig[m.uid] + m.sizeDate())
	}
	byKey := map[string][]meta{}
	for _, m := range tSus {
		k := tDig[m.uid] + m.sizeDate()
		byKey[k] = append(byKey[k], m)
	}
	var extra []imap.UID
	for k, ms := range byKey {
		over := len(ms) - srcFull[k]
		if srcFull[k] == 0 || over <= 0 {
			continue
		}
		// ms is in UID order: the newest first, and none below base.
		for i := len(ms) - 1; i >= 0 && over > 0 && ms[i].uid >= base; i-- {
			extra = append(extra, ms[i].uid)
			over--
		}
	}
	slices.Sort(extra)
	return extra, nil
}

// digests reads the SHA-256 of each of ms's whole messages (of the selected
// folder), streamed through the hash: nothing is held in memory, and a
// server that sends more than the size it listed is refused.
func digests(cn *conn, ms []meta) (map[imap.UID]string, error) {
	out := make(map[imap.UID]string, len(ms))
	sizes := make(map[imap.UID]int64, len(ms))
	for _, m := range ms {
		sizes[m.uid] = m.size
	}
	err := eachBody(cn, sizes, func(uid imap.UID, lit imap.LiteralReader) error {
		h := sha256.New()
		if _, err := io.Copy(h, lit); err != nil {
			return err
		}
		out[uid] = hex.EncodeToString(h.Sum(nil)) + "\x00"
		return nil
	})
	var tl *literalTooLarge
	if errors.As(err, &tl) {
		return nil, fmt.Errorf("the %s sent a message of %d bytes, over the %d bytes it listed: refused", cn.side, tl.size, tl.limit)
	}
	return out, err
}

// eachBody fetches whole bodies by UID (BODY.PEEK[], the UIDs of sizes)
// and hands each on as it streams in, nothing held: a body announced
// larger than the size listed for it is refused (a *literalTooLarge)
// before any of it is read, the connection dropped rather than read to its
// end.
func eachBody(cn *conn, sizes map[imap.UID]int64, each func(uid imap.UID, lit imap.LiteralReader) error) error {
	if len(sizes) == 0 {
		return nil
	}
	cmd := cn.c.Fetch(imap.UIDSetNum(slices.Sorted(maps.Keys(sizes))...), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	defer cmd.Close()
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		var uid imap.UID
		for it := msg.Next(); it != nil; it = msg.Next() {
			switch it := it.(type) {
			case imapclient.FetchItemDataUID:
				uid = it.UID
			case imapclient.FetchItemDataBodySection:
				size, known := sizes[uid]
				if it.Literal == nil || !known {
					continue
				}
				if n := it.Literal.Size(); n < 0 || n > size {
					dropConn(cn.c, it.Literal)
					return &literalTooLarge{uid: uid, size: n, limit: size}
				}
				if err := each(uid, it.Literal); err != nil {
					return err
				}
			}
		}
	}
	return cmd.Close()
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
