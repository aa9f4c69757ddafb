package graphcopy_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/mail/graph"
	"mailwave/mail/graphcopy"
	"mailwave/mail/port"
	"mailwave/testkit/dovecot"
	"mailwave/testkit/fakegraph"
	"mailwave/testkit/imaptest"
)

// giantBytes is the least the fixture's giant message holds: a little
// over Graph's 150 MB (an upload session's most, and the most an
// organisation's message limit can be raised to).
const giantBytes = graph.MaxAttachmentBytes + 300<<10

// writeGiant streams a message of at least size bytes: a text part and
// one base64 attachment, a 1 MiB block of pseudo-random bytes over and
// over (it is never read, only listed).
func writeGiant(w io.Writer, size int64) error {
	const boundary = "giant-boundary-150"
	head := "Date: Mon, 01 Feb 2021 10:00:00 +0000\r\nFrom: Imaging <imaging@example.com>\r\nTo: alice@example.org\r\n" +
		"Subject: The whole archive, scanned\r\nMessage-ID: <giant-scan@example.com>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"" + boundary + "\"\r\n\r\n--" + boundary + "\r\nContent-Type: text/plain\r\n\r\n" +
		"Over Graph's 150 MB.\r\n--" + boundary + "\r\nContent-Type: application/octet-stream\r\n" +
		"Content-Disposition: attachment; filename=\"archive.tif\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	tail := "--" + boundary + "--\r\n"
	data := make([]byte, 1<<20) // 3 divides it not: keep whole lines by hand
	_, _ = rand.NewChaCha8([32]byte{'g', 'i', 'a', 'n', 't'}).Read(data)
	enc := base64.StdEncoding.EncodeToString(data[:57*(len(data)/57)]) // 57 bytes: one 76-character line
	var block bytes.Buffer
	for i := 0; i < len(enc); i += 76 {
		block.WriteString(enc[i:min(i+76, len(enc))])
		block.WriteString("\r\n")
	}
	if _, err := io.WriteString(w, head); err != nil {
		return err
	}
	for written := int64(len(head)); written < size-int64(len(tail)); written += int64(block.Len()) {
		if _, err := w.Write(block.Bytes()); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, tail)
	return err
}

// countingProxy passes connections on to addr, counting the bytes the
// server sends: what a copy read from the source.
func countingProxy(t *testing.T, addr string) (int, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var sent atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			wg.Add(2)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(up, c)
				up.Close()
			}()
			go func() {
				defer wg.Done()
				_, _ = io.Copy(counting{c, &sent}, up)
				c.Close()
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, &sent
}

// counting counts what is written through it.
type counting struct {
	w io.Writer
	n *atomic.Int64
}

func (c counting) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// TestTheFixtureWithAMessageOver150MBIntoGraph is the first test:
// the standard account (folders, flags, dates, keywords, the 10 MB scan)
// with three more messages of more than 3 and 4 MB (an attachment kept in
// the create request, one through an upload session, and two of which
// one must move to an upload session for the request to stay under
// 4 MB), and a message of a little over 150 MB written straight into the
// Maildir, copied into the fake Graph with the message limit at Graph's
// 150 MB: every other message is one non-draft item in its mapped
// folder, with its dates, read state, flag, categories and attachments;
// the giant one is the one bad item, named with its folder, UID, size and
// why, and never read (the source sent the other messages and its
// protocol's lines, not a megabyte more); the verification passes, and
// a delta pass after it makes nothing and finds no new bad item.
func TestTheFixtureWithAMessageOver150MBIntoGraph(t *testing.T) {
	src := startSource(t, dovecot.Options{Storage: dovecot.Maildir})
	_, seeds := imaptest.StandardSeed()
	date := time.Date(2022, 11, 3, 14, 15, 16, 0, time.UTC)
	extras := []imaptest.SeedMessage{
		{Folder: "INBOX", Flags: []imap.Flag{imap.FlagFlagged, imaptest.KeywordLabel1}, InternalDate: date,
			Raw: withAttachments("over-3mb@example.com", 2<<20+512<<10)}, // 3.6 MB: the attachment in the request
		{Folder: "Sent", Flags: []imap.Flag{imap.FlagSeen}, InternalDate: date.Add(time.Hour),
			Raw: withAttachments("over-4mb@example.com", 3<<20+256<<10)}, // 4.6 MB: over 3 MB, by upload session
		{Folder: imaptest.FolderArchive9, Flags: []imap.Flag{imap.FlagSeen, imaptest.KeywordForwarded}, InternalDate: date.Add(2 * time.Hour),
			Raw: withAttachments("two-halves@example.com", 3<<19, 3<<19)}, // 4.2 MB: one of the two moves out
	}
	cl, err := imaptest.Dial(src.Addr(), user, password)
	require.NoError(t, err)
	require.NoError(t, imaptest.Seed(cl, extras, nil))
	cl.Close()
	seeds = append(seeds, extras...)

	giantDate := time.Date(2021, 2, 1, 10, 0, 0, 0, time.UTC)
	giantSize, err := imaptest.WriteMaildirMessage(src, user, imaptest.FolderArchive9, []imap.Flag{imap.FlagSeen}, giantDate,
		func(w io.Writer) error { return writeGiant(w, giantBytes) })
	require.NoError(t, err)
	require.Greater(t, giantSize, int64(graph.MaxAttachmentBytes))

	// The source as its index lists it, zipped with the seeds folder by
	// folder (UIDs follow the order they were added in).
	type sourceMsg struct {
		seed     imaptest.SeedMessage
		listed   sourceTarget
		size     int64
		received time.Time
	}
	bySeed := map[string][]imaptest.SeedMessage{}
	for _, m := range seeds {
		bySeed[m.Folder] = append(bySeed[m.Folder], m)
	}
	want := sourceTargets(t, src.Port)
	reader := sourceAt(t, src.Port)
	sm, err := reader.Open(context.Background(), mailbox)
	require.NoError(t, err)
	folders, err := sm.Folders()
	require.NoError(t, err)
	byIdentity := map[string]sourceMsg{}
	var giant sourceMsg
	var others int64
	for _, f := range folders {
		uv, msgs, err := sm.Select(f.Name)
		require.NoError(t, err)
		if f.Name == imaptest.FolderArchive9 {
			require.Len(t, msgs, len(bySeed[f.Name])+1)
			last := msgs[len(msgs)-1]
			require.Equal(t, giantSize, last.Size)
			giant = sourceMsg{listed: want[identity(uv, last.UID)], size: last.Size, received: last.Date}
			msgs = msgs[:len(msgs)-1]
		}
		require.Len(t, msgs, len(bySeed[f.Name]), "folder %s", f.Name)
		for i, m := range msgs {
			seed := bySeed[f.Name][i]
			require.Equal(t, int64(len(seed.Raw)), m.Size, "folder %s message %d is the seed's", f.Name, i)
			byIdentity[identity(uv, m.UID)] = sourceMsg{seed: seed, listed: want[identity(uv, m.UID)], size: m.Size, received: m.Date}
			others += m.Size
		}
	}
	sm.Close()
	require.Len(t, byIdentity, len(seeds))
	assert.True(t, giant.received.Equal(giantDate))

	e := setupOn(t, src, fakegraph.Options{})
	proxyPort, sent := countingProxy(t, src.Addr())
	c, err := graphcopy.New(graphcopy.Options{Source: sourceAt(t, proxyPort), Graph: e.client,
		MaxMessageBytes: graph.MaxAttachmentBytes, BadItemLimit: 1})
	require.NoError(t, err)

	start := time.Now()
	var cp contract.Checkpoint
	stats, err := c.Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk,
		Progress: func(c contract.Checkpoint, _ contract.CopyStats) { cp = c }})
	took := time.Since(start)
	require.NoError(t, err, "copied, and every folder verified")
	read := sent.Load()

	// The giant: one bad item, named, never read.
	assert.Equal(t, int64(1), stats.BadItems)
	require.Len(t, stats.Bad, 1)
	bad := stats.Bad[0]
	assert.Equal(t, imaptest.FolderArchive9, bad.Folder)
	assert.Equal(t, giant.listed.uid, bad.UID)
	assert.Equal(t, giantSize, bad.Size)
	assert.Equal(t, fmt.Sprintf("%d bytes is over the target's %d-byte limit", giantSize, graph.MaxAttachmentBytes), bad.Reason)
	assert.GreaterOrEqual(t, read, others, "every other message read")
	assert.Less(t, read, others+1<<20, "the giant's body not read: the source sent the others and the protocol's lines")

	// Everything else: once, in its folder, as it was.
	assert.Equal(t, int64(len(seeds)), stats.Items)
	assert.Zero(t, stats.Duplicates)
	_, _, all := e.items()
	assert.Len(t, all, len(seeds))
	where := e.targetIdentities()
	uploads := map[string][]int{}
	byItem := map[string]*fakegraph.Message{}
	for _, m := range all {
		id := m.Props[strings.ToLower(graph.SourceProperty)]
		s, ok := byIdentity[id]
		if !assert.True(t, ok, "item %s carries a source message's identity (%q)", m.ID, id) {
			continue
		}
		assert.Equal(t, []string{s.listed.folder}, where[id], "%s once, in its folder", id)
		byItem[id] = m
		assert.False(t, m.IsDraft, "%s non-draft", id)
		assert.Equal(t, s.received.UTC().Format(time.RFC3339), m.Props["systemtime 0x0e06"], "%s received as the source's INTERNALDATE", id)
		if !s.seed.InternalDate.IsZero() {
			assert.True(t, s.received.Equal(s.seed.InternalDate), "%s: the source kept the fixture's date", id)
		}
		if msg, err := mail.ReadMessage(bytes.NewReader(s.seed.Raw)); assert.NoError(t, err) {
			if d, err := msg.Header.Date(); err == nil {
				assert.Equal(t, d.UTC().Format(time.RFC3339), m.Props["systemtime 0x0039"], "%s sent as its Date", id)
			}
		}
		read := slices.Contains(s.seed.Flags, imap.FlagSeen)
		assert.Equal(t, map[bool]string{false: "0", true: "1"}[read], m.Props["integer 0x0e07"], "%s read state", id)
		flag, _ := m.JSON["flag"].(map[string]any)
		assert.Equal(t, slices.Contains(s.seed.Flags, imap.FlagFlagged), flag["flagStatus"] == "flagged", "%s flag", id)
		var wantCats, gotCats []string
		for _, f := range s.seed.Flags {
			if !strings.HasPrefix(string(f), `\`) && f != imaptest.KeywordForwarded {
				wantCats = append(wantCats, string(f))
			}
		}
		cats, _ := m.JSON["categories"].([]any)
		for _, c := range cats {
			gotCats = append(gotCats, fmt.Sprint(c))
		}
		assert.Equal(t, wantCats, gotCats, "%s categories from its keywords", id)
		for _, u := range m.Uploaded {
			uploads[id] = append(uploads[id], len(u.Data))
		}
		if len(m.Uploaded) > 0 || m.JSON["attachments"] != nil {
			t.Logf("%s (%d bytes): request %d bytes, %d uploaded", id, s.size, m.Size, len(m.Uploaded))
		}
		assert.Less(t, m.Size, int64(graph.MaxRequestBytes), "%s: the create request under 4 MB", id)
	}
	wantUploads := map[string][]int{}
	for id, s := range byIdentity {
		switch messageIDOf(s.seed.Raw) {
		case "over-4mb":
			wantUploads[id] = []int{3<<20 + 256<<10}
		case "two-halves":
			wantUploads[id] = []int{3 << 19}
		case "large-scan":
			if assert.Len(t, uploads[id], 1) {
				assert.Greater(t, uploads[id][0], graph.InlineAttachmentBytes)
			}
			wantUploads[id] = uploads[id]
		case "over-3mb":
			atts, _ := byItem[id].JSON["attachments"].([]any)
			assert.Len(t, atts, 1, "the 3.6 MB message's attachment in its create request")
		}
	}
	assert.Equal(t, wantUploads, uploads, "exactly the attachments over 3 MB, and one of the two halves, by upload session")
	st := e.graph.Stats()
	assert.Zero(t, st.Refused["RequestBodyTooLarge"])
	assert.Zero(t, st.Early)

	// A delta pass: nothing made, the giant not named again nor read.
	before := sent.Load()
	delta, err := c.Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassDelta, Checkpoint: cp})
	require.NoError(t, err)
	assert.Zero(t, delta.Items+delta.Skipped+delta.BadItems)
	assert.Less(t, sent.Load()-before, int64(1<<20))
	t.Logf("copy took %s; the source sent %d bytes for %d of other messages (the giant %d bytes)",
		took.Round(time.Millisecond), read, others, giantSize)
}

// messageIDOf is a raw message's Message-ID's local part, or "".
func messageIDOf(raw []byte) string {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return ""
	}
	id, _, _ := strings.Cut(strings.Trim(msg.Header.Get("Message-ID"), "<>"), "@")
	return id
}

// identity is the copier's source identity, "uidvalidity.uid".
func identity(uidValidity, uid uint32) string {
	return strconv.FormatUint(uint64(uidValidity), 10) + "." + strconv.FormatUint(uint64(uid), 10)
}
