package imaptest_test

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/testkit/dovecot"
	"mailwave/testkit/imaptest"
)

var alice = dovecot.User{Name: "alice", Password: "correct horse"}

func server(t *testing.T) *dovecot.Server {
	return serverWith(t, dovecot.SDBox)
}

func serverWith(t *testing.T, storage dovecot.Storage) *dovecot.Server {
	return dovecot.StartT(t, dovecot.Options{Users: []dovecot.User{alice}, Plaintext: true, Storage: storage})
}

// storages runs f once per mailbox format.
func storages(t *testing.T, f func(t *testing.T, s *dovecot.Server)) {
	for _, st := range []dovecot.Storage{dovecot.SDBox, dovecot.Maildir} {
		t.Run(string(st), func(t *testing.T) { f(t, serverWith(t, st)) })
	}
}

func dial(t *testing.T, s *dovecot.Server) *imapclient.Client {
	t.Helper()
	c, err := imaptest.Dial(s.Addr(), alice.Name, alice.Password)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// wantStandardFolders is what LIST shows after seeding StandardSeed into
// Dovecot as testkit/dovecot configures it.
var wantStandardFolders = []imaptest.Folder{
	{Name: "Archive", SpecialUse: imap.MailboxAttrArchive},
	{Name: "Archive/2019"},
	{Name: "Drafts", SpecialUse: imap.MailboxAttrDrafts},
	{Name: "Empty"},
	{Name: "INBOX"},
	{Name: "Junk", SpecialUse: imap.MailboxAttrJunk},
	{Name: "Réunions", NoSelect: true}, // implied by its child
	{Name: "Réunions/Été 2020"},
	{Name: "Sent", SpecialUse: imap.MailboxAttrSent},
	{Name: "Trash", SpecialUse: imap.MailboxAttrTrash},
	{Name: "日本語"},
}

func TestStandardSeedShape(t *testing.T) {
	folders, msgs := imaptest.StandardSeed()
	_, again := imaptest.StandardSeed()
	require.Equal(t, msgs, again, "StandardSeed must not change between calls")
	assert.Len(t, folders, 10)
	assert.Len(t, msgs, 41)

	exp := imaptest.Expected(msgs)
	var noID, large int
	ids := map[string][]string{}
	for _, m := range exp {
		if m.MessageID == "" {
			noID++
		} else {
			ids[m.MessageID] = append(ids[m.MessageID], m.Folder)
		}
		if m.Size > imaptest.LargeMessageSize*9/10 {
			large++
		}
	}
	assert.Equal(t, 3, noID)
	assert.Equal(t, 1, large)
	assert.ElementsMatch(t, []string{"INBOX", "Archive/2019"}, ids["agm-2015@example.com"])
	for _, m := range msgs {
		raw := string(m.Raw)
		assert.NotContains(t, strings.ReplaceAll(raw, "\r\n", ""), "\n", "bare LF in %s", m.Folder)
		assert.NotContains(t, strings.ReplaceAll(raw, "\r\n", ""), "\r", "bare CR in %s", m.Folder)
		assert.True(t, strings.HasSuffix(raw, "\r\n"))
	}
}

func TestSeedThenSnapshot(t *testing.T) { storages(t, testSeedThenSnapshot) }

func testSeedThenSnapshot(t *testing.T, s *dovecot.Server) {
	c := dial(t, s)
	folders, msgs := imaptest.StandardSeed()

	t0 := time.Now()
	require.NoError(t, imaptest.Seed(c, msgs, folders))
	t.Logf("Seed(StandardSeed) took %v", time.Since(t0))

	got, err := imaptest.Snapshot(c)
	require.NoError(t, err)
	assert.Equal(t, imaptest.Expected(msgs), got)

	gotFolders, err := imaptest.Folders(c)
	require.NoError(t, err)
	assert.Equal(t, wantStandardFolders, gotFolders)

	// Snapshot peeks: a second one sees the same flags (nothing got \Seen).
	again, err := imaptest.Snapshot(c)
	require.NoError(t, err)
	assert.Equal(t, got, again)

	// Seeding folders again is harmless (they exist: ALREADYEXISTS).
	require.NoError(t, imaptest.CreateFolders(c, folders))
}

func TestRecreateFolderChangesUIDValidity(t *testing.T) {
	storages(t, testRecreateFolderChangesUIDValidity)
}

func testRecreateFolderChangesUIDValidity(t *testing.T, s *dovecot.Server) {
	c := dial(t, s)
	folders, msgs := imaptest.StandardSeed()
	require.NoError(t, imaptest.Seed(c, msgs, folders))

	_, err := c.Select("Sent", nil).Wait()
	require.NoError(t, err)
	before, after, err := imaptest.RecreateFolder(c, "Sent")
	require.NoError(t, err)
	assert.NotZero(t, before)
	assert.NotEqual(t, before, after)

	st, err := c.Status("Sent", &imap.StatusOptions{NumMessages: true, UIDValidity: true}).Wait()
	require.NoError(t, err)
	assert.Equal(t, uint32(0), *st.NumMessages, "recreated folder starts empty")
	assert.Equal(t, after, st.UIDValidity)

	// Still \Sent: the attribute goes by name.
	got, err := imaptest.Folders(c)
	require.NoError(t, err)
	assert.Equal(t, wantStandardFolders, got)
}

func TestSeedMaildirMatchesSeed(t *testing.T) {
	s := serverWith(t, dovecot.Maildir)
	folders, msgs := imaptest.StandardSeed()
	n, size, err := imaptest.SeedMaildir(s, alice.Name, folders, slices.Values(msgs))
	require.NoError(t, err)
	assert.Equal(t, len(msgs), n)
	var total int64
	for _, m := range msgs {
		total += int64(len(m.Raw))
	}
	assert.Equal(t, total, size)

	c := dial(t, s)
	got, err := imaptest.Snapshot(c)
	require.NoError(t, err)
	assert.Equal(t, imaptest.Expected(msgs), got)
	gotFolders, err := imaptest.Folders(c)
	require.NoError(t, err)
	assert.Equal(t, wantStandardFolders, gotFolders)

	// UIDs follow the order of the messages given.
	var want []string
	for _, m := range inFolder(msgs, "INBOX") {
		want = append(want, string(m.Raw[:60]))
	}
	_, err = c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	require.NoError(t, err)
	var all imap.UIDSet
	all.AddRange(1, 0)
	fetched, err := c.Fetch(all, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true, Partial: &imap.SectionPartial{Offset: 0, Size: 60}}}}).Collect()
	require.NoError(t, err)
	var gotOrder []string
	for _, f := range fetched {
		gotOrder = append(gotOrder, string(f.BodySection[0].Bytes))
	}
	assert.Equal(t, want, gotOrder)

	// Only for Maildir servers.
	_, _, err = imaptest.SeedMaildir(server(t), alice.Name, folders, slices.Values(msgs))
	require.ErrorContains(t, err, "Storage: dovecot.Maildir")

	// Dovecot takes over the files: it can append next to them.
	more := imaptest.SeedMessage{Folder: "INBOX", Flags: []imap.Flag{imap.FlagSeen}, InternalDate: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		Raw: []byte("From: x@example.org\r\nSubject: after\r\nMessage-ID: <after@example.org>\r\n\r\nhi\r\n")}
	require.NoError(t, imaptest.Seed(c, []imaptest.SeedMessage{more}, nil))
	got, err = imaptest.Snapshot(c)
	require.NoError(t, err)
	assert.Equal(t, imaptest.Expected(append(slices.Clone(msgs), more)), got)
}

func inFolder(msgs []imaptest.SeedMessage, folder string) []imaptest.SeedMessage {
	var out []imaptest.SeedMessage
	for _, m := range msgs {
		if m.Folder == folder {
			out = append(out, m)
		}
	}
	return out
}

func TestGenerateBulk(t *testing.T) {
	folders := []string{"INBOX", "Archive", "Lists/golang"}
	collect := func(seed int64) []imaptest.SeedMessage {
		return slices.Collect(imaptest.GenerateBulk(seed, 300, 20<<20, folders))
	}
	a, b, other := collect(1), collect(1), collect(2)
	require.Len(t, a, 300)
	assert.Equal(t, a, b, "same seed, same messages")
	assert.NotEqual(t, a[0].Raw, other[0].Raw)

	var total int64
	ids := map[string]bool{}
	perFolder := map[string]int{}
	for _, m := range imaptest.Expected(a) {
		total += m.Size
		assert.NotEmpty(t, m.MessageID)
		assert.False(t, ids[m.MessageID], "duplicate Message-ID %s", m.MessageID)
		ids[m.MessageID] = true
		perFolder[m.Folder]++
	}
	assert.InEpsilon(t, 20<<20, total, 0.02, "total size %d", total)
	for _, f := range folders {
		assert.Greater(t, perFolder[f], 50, f)
	}
	for _, m := range a {
		assert.NotContains(t, strings.ReplaceAll(string(m.Raw), "\r\n", ""), "\n")
	}
}

func TestSeedParallel(t *testing.T) {
	s := server(t)
	msgs := slices.Collect(imaptest.GenerateBulk(7, 200, 4<<20, []string{"INBOX", "A", "B/C"}))
	n, size, err := imaptest.SeedParallel(s.Addr(), alice.Name, alice.Password, 3,
		imaptest.BulkFolders([]string{"A", "B/C"}), slices.Values(msgs))
	require.NoError(t, err)
	assert.Equal(t, 200, n)
	assert.Greater(t, size, int64(3<<20))
	got, err := imaptest.Snapshot(dial(t, s))
	require.NoError(t, err)
	assert.Equal(t, imaptest.Expected(msgs), got)
}

func TestSeedParallelReportsErrors(t *testing.T) {
	s := server(t)
	msgs := slices.Collect(imaptest.GenerateBulk(7, 50, 1<<20, []string{"NoSuchFolder"}))
	_, _, err := imaptest.SeedParallel(s.Addr(), alice.Name, alice.Password, 2, nil, slices.Values(msgs))
	require.Error(t, err)
	_, _, err = imaptest.SeedParallel(s.Addr(), alice.Name, "wrong", 2, nil, slices.Values(msgs))
	require.Error(t, err)
}

// TestBulkTimings measures seeding a benchmark-sized account both ways.
// Run with MAILWAVE_BULK_TIMING=1 (it moves 400 MB through Dovecot).
func TestBulkTimings(t *testing.T) {
	if os.Getenv("MAILWAVE_BULK_TIMING") != "1" {
		t.Skip("set MAILWAVE_BULK_TIMING=1 to time seeding 5000 messages / 200 MB")
	}
	const count, total = 5000, 200 << 20
	folders := []string{"INBOX", "Sent", "Archive", "Archive/2020", "Lists/golang", "Lists/dovecot"}
	seed := imaptest.BulkFolders(folders)

	t0 := time.Now()
	msgs := slices.Collect(imaptest.GenerateBulk(42, count, total, folders))
	t.Logf("generate: %v", time.Since(t0))

	t0 = time.Now()
	md := serverWith(t, dovecot.Maildir)
	t.Logf("start: %v", time.Since(t0))
	t0 = time.Now()
	n, size, err := imaptest.SeedMaildir(md, alice.Name, seed, slices.Values(msgs))
	require.NoError(t, err)
	t.Logf("SeedMaildir: %d messages, %d MB in %v", n, size>>20, time.Since(t0))
	t0 = time.Now()
	snap, err := imaptest.Snapshot(dial(t, md))
	require.NoError(t, err)
	t.Logf("Snapshot: %v", time.Since(t0))
	require.Equal(t, imaptest.Expected(msgs), snap)

	for _, st := range []dovecot.Storage{dovecot.SDBox, dovecot.Maildir} {
		for _, conns := range []int{1, 4} {
			ap := serverWith(t, st)
			t0 = time.Now()
			n, size, err = imaptest.SeedParallel(ap.Addr(), alice.Name, alice.Password, conns, seed, slices.Values(msgs))
			require.NoError(t, err)
			t.Logf("SeedParallel to %s over %d connections: %d messages, %d MB in %v", st, conns, n, size>>20, time.Since(t0))
			require.NoError(t, ap.Stop()) // free its disk before the next
		}
	}
}
