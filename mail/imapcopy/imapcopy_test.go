package imapcopy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/mail/adapt"
	"mailwave/mail/imapcopy"
	"mailwave/mail/port"
	"mailwave/testkit/dovecot"
	"mailwave/testkit/imaptest"
)

const (
	user     = "alice"
	password = "alice-pw"
)

var mailbox = contract.MailboxRef{Key: "k-alice", Address: "alice@trust.nhs.example"}

// pair is a source and a target Dovecot with the same user.
type pair struct {
	src, tgt *dovecot.Server
}

func startPair(t *testing.T) pair { return startPairWith(t, nil, nil) }

// startPairWith starts the pair, each server's options changed by its own
// function (nil leaves them as they are).
func startPairWith(t *testing.T, srcMod, tgtMod func(*dovecot.Options)) pair {
	t.Helper()
	opts := func(mod func(*dovecot.Options)) dovecot.Options {
		o := dovecot.Options{
			Users:      []dovecot.User{{Name: user, Password: password}},
			MasterUser: "admin", MasterPassword: "admin-pw",
			Plaintext: true,
		}
		if mod != nil {
			mod(&o)
		}
		return o
	}
	return pair{src: dovecot.StartT(t, opts(srcMod)), tgt: dovecot.StartT(t, opts(tgtMod))}
}

func endpoint(s *dovecot.Server) imapcopy.Endpoint {
	return imapcopy.Endpoint{Host: "127.0.0.1", Port: s.Port, Security: imapcopy.SecurityNone}
}

func fixedCredentials(mech, username, pass string) imapcopy.CredentialsFunc {
	return func(context.Context, imapcopy.Side, contract.MailboxRef) (imapcopy.Credentials, error) {
		return imapcopy.Credentials{Mechanism: mech, Username: username, Password: pass}, nil
	}
}

func (p pair) copier(t *testing.T, mod func(*imapcopy.Options)) *imapcopy.Copier {
	t.Helper()
	o := imapcopy.Options{
		Source: endpoint(p.src), Target: endpoint(p.tgt),
		Credentials: fixedCredentials(imapcopy.MechPlain, user, password),
		Window:      4, Lanes: 2,
	}
	if mod != nil {
		mod(&o)
	}
	c, err := imapcopy.New(o)
	require.NoError(t, err)
	return c
}

func (p pair) seed(t *testing.T) {
	t.Helper()
	cl, err := imaptest.Dial(p.src.Addr(), user, password)
	require.NoError(t, err)
	defer cl.Close()
	folders, msgs := imaptest.StandardSeed()
	require.NoError(t, imaptest.Seed(cl, msgs, folders))
}

func snapshot(t *testing.T, s *dovecot.Server) []imaptest.Message {
	t.Helper()
	cl, err := imaptest.Dial(s.Addr(), user, password)
	require.NoError(t, err)
	defer cl.Close()
	msgs, err := imaptest.Snapshot(cl)
	require.NoError(t, err)
	return msgs
}

// requireSame asserts the target holds exactly the source's messages:
// per message, folder, flags, INTERNALDATE, size and a hash of the whole
// message, and no message twice.
func requireSame(t *testing.T, p pair) {
	t.Helper()
	src, tgt := snapshot(t, p.src), snapshot(t, p.tgt)
	require.NotEmpty(t, src)
	require.Equal(t, len(src), len(tgt), "message count")
	for i := range src {
		assert.Equal(t, src[i], tgt[i], "message %d", i)
	}
}

func folderNames(msgs []imaptest.Message) map[string]int {
	out := map[string]int{}
	for _, m := range msgs {
		out[m.Folder]++
	}
	return out
}

func TestFullCopyIsAnExactMatch(t *testing.T) {
	t.Run("multiappend", func(t *testing.T) { testFullCopy(t, nil) })
	t.Run("pipelined appends", func(t *testing.T) { testFullCopy(t, func(o *imapcopy.Options) { o.NoMultiAppend = true }) })
	t.Run("append", func(t *testing.T) { testFullCopy(t, func(o *imapcopy.Options) { o.NoPipeline = true }) })
}

func testFullCopy(t *testing.T, mod func(*imapcopy.Options)) {
	p := startPair(t)
	p.seed(t)
	var progress int
	stats, err := p.copier(t, mod).Copy(context.Background(), port.CopyRequest{
		Mailbox: mailbox, Pass: contract.PassBulk,
		Progress: func(contract.Checkpoint, contract.CopyStats) { progress++ },
	})
	require.NoError(t, err)
	requireSame(t, p)
	src := snapshot(t, p.src)
	assert.Equal(t, int64(len(src)), stats.Items)
	assert.Zero(t, stats.Skipped)
	assert.Zero(t, stats.BadItems)
	assert.Positive(t, progress)
	names := folderNames(src)
	for _, f := range []string{"INBOX", "Sent", "Réunions/Été 2020", "日本語"} {
		assert.Contains(t, names, f)
	}
	// The empty folder exists on the target too.
	cl, err := imaptest.Dial(p.tgt.Addr(), user, password)
	require.NoError(t, err)
	defer cl.Close()
	list, err := cl.List("", "*", &imap.ListOptions{ReturnSpecialUse: true}).Collect()
	require.NoError(t, err)
	got := map[string][]imap.MailboxAttr{}
	for _, l := range list {
		got[l.Mailbox] = l.Attrs
	}
	assert.Contains(t, got, "Empty")
	assert.Contains(t, got["Sent"], imap.MailboxAttrSent)

	// A second pass from nothing (a checkpoint lost) adds nothing.
	again, err := p.copier(t, mod).Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk})
	require.NoError(t, err)
	assert.Zero(t, again.Items)
	assert.Equal(t, int64(len(src)), again.Skipped)
	requireSame(t, p)
}

func TestSpecialUseMapsByAttributeAndRenameMap(t *testing.T) {
	// The source calls its sent folder "Sent Items"; the target's is "Sent".
	p := startPairWith(t, func(o *dovecot.Options) { o.SpecialUse = map[string]string{"Sent Items": `\Sent`} }, nil)
	cl, err := imaptest.Dial(p.src.Addr(), user, password)
	require.NoError(t, err)
	msgs := []imaptest.SeedMessage{
		{Folder: "Sent Items", Raw: rawMessage("<s1@x>", "sent one"), InternalDate: time.Date(2015, 3, 1, 10, 0, 0, 0, time.UTC)},
		{Folder: "Old Stuff", Raw: rawMessage("<o1@x>", "old one"), InternalDate: time.Date(2012, 3, 1, 10, 0, 0, 0, time.UTC)},
	}
	require.NoError(t, imaptest.Seed(cl, msgs, []imaptest.SeedFolder{{Name: "Sent Items", SpecialUse: imap.MailboxAttrSent}, {Name: "Old Stuff"}}))
	cl.Close()
	// The target has its own Sent folder.
	tc, err := imaptest.Dial(p.tgt.Addr(), user, password)
	require.NoError(t, err)
	require.NoError(t, imaptest.Seed(tc, nil, []imaptest.SeedFolder{{Name: "Sent", SpecialUse: imap.MailboxAttrSent}}))
	tc.Close()

	_, err = p.copier(t, func(o *imapcopy.Options) {
		o.FolderMap = map[string]string{"Old Stuff": "Archive/Old"}
	}).Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk})
	require.NoError(t, err)
	got := folderNames(snapshot(t, p.tgt))
	assert.Equal(t, 1, got["Sent"], "\\Sent goes to the target's \\Sent folder, whatever its name")
	assert.Equal(t, 1, got["Archive/Old"])
	assert.NotContains(t, got, "Sent Items")
	assert.NotContains(t, got, "Old Stuff")
}

func rawMessage(msgID, body string) []byte {
	h := "From: a@x.example\r\nTo: b@x.example\r\nSubject: test\r\nDate: Mon, 2 Mar 2015 10:00:00 +0000\r\n"
	if msgID != "" {
		h += "Message-ID: " + msgID + "\r\n"
	}
	return []byte(h + "\r\n" + body + "\r\n")
}

func TestDeltaBringsWhatArrivedAfterTheBulkPass(t *testing.T) {
	p := startPair(t)
	p.seed(t)
	c := p.copier(t, nil)
	var last contract.Checkpoint
	bulk, err := c.Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk,
		Progress: func(cp contract.Checkpoint, _ contract.CopyStats) { last = cp }})
	require.NoError(t, err)
	require.Positive(t, bulk.Items)

	cl, err := imaptest.Dial(p.src.Addr(), user, password)
	require.NoError(t, err)
	newMail := []imaptest.SeedMessage{
		{Folder: "INBOX", Raw: rawMessage("<late1@x>", "arrived after the bulk"), Flags: []imap.Flag{imap.FlagSeen}, InternalDate: time.Now().Truncate(time.Second)},
		{Folder: "INBOX", Raw: rawMessage("", "no message id, late"), InternalDate: time.Now().Truncate(time.Second)},
		{Folder: "Sent", Raw: rawMessage("<late2@x>", "sent late"), InternalDate: time.Now().Truncate(time.Second)},
	}
	require.NoError(t, imaptest.Seed(cl, newMail, nil))
	cl.Close()

	delta, err := c.Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassDelta, Checkpoint: last})
	require.NoError(t, err)
	assert.Equal(t, int64(len(newMail)), delta.Items, "the delta copies only what is new")
	assert.Zero(t, delta.Skipped, "the delta does not even look at what the bulk pass copied")
	requireSame(t, p)
}

func TestUIDValidityChangeRescansTheFolder(t *testing.T) {
	p := startPair(t)
	p.seed(t)
	c := p.copier(t, nil)
	var last contract.Checkpoint
	_, err := c.Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk,
		Progress: func(cp contract.Checkpoint, _ contract.CopyStats) { last = cp }})
	require.NoError(t, err)
	before := last.Folders["Drafts"].UIDValidity

	// The source's Drafts is deleted and made again with the same messages
	// and one more: a new UIDVALIDITY, and UIDs that start again at 1.
	drafts := snapshotRaw(t, p.src, "Drafts")
	require.NotEmpty(t, drafts)
	cl, err := imaptest.Dial(p.src.Addr(), user, password)
	require.NoError(t, err)
	require.NoError(t, cl.Delete("Drafts").Wait())
	drafts = append(drafts, imaptest.SeedMessage{Folder: "Drafts", Raw: rawMessage("<draft-new@x>", "new draft"), Flags: []imap.Flag{imap.FlagDraft}, InternalDate: time.Now().Truncate(time.Second)})
	require.NoError(t, imaptest.Seed(cl, drafts, []imaptest.SeedFolder{{Name: "Drafts", SpecialUse: imap.MailboxAttrDrafts}}))
	cl.Close()

	var after contract.Checkpoint
	delta, err := c.Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassDelta, Checkpoint: last,
		Progress: func(cp contract.Checkpoint, _ contract.CopyStats) { after = cp }})
	require.NoError(t, err)
	assert.NotEqual(t, before, after.Folders["Drafts"].UIDValidity)
	assert.Equal(t, int64(1), delta.Items, "only the new draft is copied")
	assert.Equal(t, int64(len(drafts)-1), delta.Skipped, "the rest are found on the target")
	requireSame(t, p)
}

// snapshotRaw reads a folder's messages back as seed messages.
func snapshotRaw(t *testing.T, s *dovecot.Server, folder string) []imaptest.SeedMessage {
	t.Helper()
	cl, err := imaptest.Dial(s.Addr(), user, password)
	require.NoError(t, err)
	defer cl.Close()
	_, err = cl.Select(folder, nil).Wait()
	require.NoError(t, err)
	bufs, err := cl.Fetch(imap.SeqSet{imap.SeqRange{Start: 1}}, &imap.FetchOptions{
		Flags: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	require.NoError(t, err)
	var out []imaptest.SeedMessage
	for _, b := range bufs {
		var flags []imap.Flag
		for _, f := range b.Flags {
			if !strings.EqualFold(string(f), `\Recent`) {
				flags = append(flags, f)
			}
		}
		out = append(out, imaptest.SeedMessage{Folder: folder, Flags: flags, InternalDate: b.InternalDate, Raw: b.BodySection[0].Bytes})
	}
	return out
}

func TestWrongCredentialsArePermanent(t *testing.T) {
	p := startPair(t)
	_, err := p.copier(t, func(o *imapcopy.Options) {
		o.Credentials = fixedCredentials(imapcopy.MechPlain, user, "wrong")
	}).Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk})
	require.Error(t, err)
	typ, permanent := port.IsPermanent(err)
	assert.True(t, permanent, "%v", err)
	assert.Equal(t, contract.ErrTypeBadCredentials, typ)
	assert.NotContains(t, err.Error(), "@")

	// The IMAP LOGIN command and a master user work, and a wrong master
	// password is refused the same way.
	p.seed(t)
	_, err = p.copier(t, func(o *imapcopy.Options) {
		o.Credentials = fixedCredentials(imapcopy.MechLogin, user+"*admin", "admin-pw")
	}).Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk})
	require.NoError(t, err)
	requireSame(t, p)
}

func TestOversizeMessageIsABadItemAndBlocksCutover(t *testing.T) {
	p := startPair(t)
	p.seed(t)
	src := snapshot(t, p.src)
	var big imaptest.Message
	for _, m := range src {
		if m.Size > big.Size {
			big = m
		}
	}
	require.Greater(t, big.Size, int64(9<<20), "the seed has a 10 MB message")

	_, err := p.copier(t, func(o *imapcopy.Options) { o.MaxMessageBytes = 5 << 20 }).
		Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk})
	require.Error(t, err)
	typ, permanent := port.IsPermanent(err)
	require.True(t, permanent, "%v", err)
	assert.Equal(t, contract.ErrTypeBadItems, typ)
	assert.Contains(t, err.Error(), strconv.Quote(big.Folder))
	assert.Contains(t, err.Error(), "UID ")
	// Everything else was copied all the same.
	assert.Len(t, snapshot(t, p.tgt), len(src)-1)

	// With a limit of one, the same copy succeeds and lists the item.
	// (The target already has the rest: they are found, not copied again.)
	stats, err := p.copier(t, func(o *imapcopy.Options) { o.MaxMessageBytes = 5 << 20; o.BadItemLimit = 1 }).
		Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk})
	require.NoError(t, err)
	assert.Equal(t, int64(1), stats.BadItems)
	require.Len(t, stats.Bad, 1)
	assert.Equal(t, big.Folder, stats.Bad[0].Folder)
	assert.Equal(t, big.Size, stats.Bad[0].Size)
	assert.Contains(t, stats.Bad[0].Reason, "limit")
}

// TestMessageTheTargetRefusesIsABadItem has a target that refuses
// messages over 5 MB. With MULTIAPPEND the batch holding the 10 MB message
// is refused whole and the copier finds the one message by sending that
// batch's messages one at a time. Pipelined single APPENDs (LITERAL+, as to
// Exchange) get the one refusal in mid-pipeline and go on. With go-imap's
// APPEND, go-imap drops the connection after a refused synchronising
// literal, so the attempt may fail and the retry, from the attempt's last
// checkpoint as the activity hands it on, finishes the copy; every way the
// message is one bad item.
func TestMessageTheTargetRefusesIsABadItem(t *testing.T) {
	for _, mode := range []string{"multiappend", "pipelined", "append"} {
		t.Run(mode, func(t *testing.T) {
			p := startPairWith(t, nil, func(o *dovecot.Options) { o.MaxMessageBytes = 5 << 20 })
			p.seed(t)
			src := snapshot(t, p.src)
			c := p.copier(t, func(o *imapcopy.Options) {
				o.BadItemLimit, o.Window = 1, 64
				o.NoMultiAppend, o.NoPipeline = mode != "multiappend", mode == "append"
			})
			var cp contract.Checkpoint
			var total, last contract.CopyStats
			var err error
			attempts := 0
			for attempt := 1; attempt <= 3; attempt++ {
				attempts = attempt
				last = contract.CopyStats{}
				var stats contract.CopyStats
				stats, err = c.Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk, Checkpoint: cp,
					Progress: func(c contract.Checkpoint, s contract.CopyStats) { cp, last = c, s }})
				if err == nil {
					total = total.Add(stats)
					break
				}
				_, permanent := port.IsPermanent(err)
				require.False(t, permanent, "%v", err)
				t.Logf("attempt %d: %v; checkpoint %+v; stats %+v", attempt, err, cp, last)
				total = total.Add(last)
			}
			require.NoError(t, err)
			assert.Equal(t, int64(1), total.BadItems)
			require.Len(t, total.Bad, 1)
			assert.Contains(t, total.Bad[0].Reason, "the target refused it")
			assert.Greater(t, total.Bad[0].Size, int64(5<<20))
			assert.Len(t, snapshot(t, p.tgt), len(src)-1, "everything else is copied, once")
			if mode != "append" {
				assert.Equal(t, 1, attempts, "the copy goes on past the refusal")
			}
		})
	}
}

// TestKilledCopyResumesFromItsCheckpoint copies in a child process, kills
// it once it has reported progress, and finishes from the last checkpoint
// it reported, as a retried activity does from its heartbeat.
func TestKilledCopyResumesFromItsCheckpoint(t *testing.T) {
	p := startPair(t)
	p.seed(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCopyProcess$")
	cmd.Env = append(os.Environ(), "MAILWAVE_HELPER_COPY=1",
		"MAILWAVE_HELPER_SRC="+strconv.Itoa(p.src.Port), "MAILWAVE_HELPER_TGT="+strconv.Itoa(p.tgt.Port))
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	var first contract.Checkpoint
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	reports := 0
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "CHECKPOINT ") {
			continue
		}
		var cp contract.Checkpoint
		require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(line, "CHECKPOINT ")), &cp))
		if reports++; reports == 1 {
			first = cp
		}
		if reports == 3 {
			require.NoError(t, cmd.Process.Kill())
			break
		}
	}
	_ = cmd.Wait()
	require.Equal(t, 3, reports, "the child reported progress before it was killed")
	partial := len(snapshot(t, p.tgt))
	total := len(snapshot(t, p.src))
	require.Less(t, partial, total, "the child was killed mid-way")

	// Resume from the first checkpoint, not the last: a heartbeat the
	// server never recorded leaves messages on the target that the
	// checkpoint does not cover, and they must not be added twice.
	stats, err := p.copier(t, nil).Copy(context.Background(), port.CopyRequest{
		Mailbox: mailbox, Pass: contract.PassBulk, Checkpoint: first,
	})
	require.NoError(t, err)
	requireSame(t, p)
	assert.Positive(t, stats.Skipped, "the resumed copy found what the lost checkpoints had copied")
	assert.Equal(t, int64(total), stats.Items+stats.Skipped+int64(covered(t, p.src, first)),
		"every message is copied, skipped as found, or covered by the checkpoint")
	t.Logf("killed after %d of %d messages; resumed copied %d, skipped %d", partial, total, stats.Items, stats.Skipped)
}

// covered counts the source messages a checkpoint says are copied: in
// each folder, those at or below its last UID.
func covered(t *testing.T, s *dovecot.Server, cp contract.Checkpoint) int {
	t.Helper()
	cl, err := imaptest.Dial(s.Addr(), user, password)
	require.NoError(t, err)
	defer cl.Close()
	n := 0
	for name, fc := range cp.Folders {
		if fc.LastUID == 0 {
			continue
		}
		_, err := cl.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait()
		require.NoError(t, err)
		res, err := cl.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{{imap.UIDRange{Start: 1, Stop: imap.UID(fc.LastUID)}}}}, nil).Wait()
		require.NoError(t, err)
		n += len(res.AllUIDs())
	}
	return n
}

// TestHelperCopyProcess is the child of TestKilledCopyResumesFromItsCheckpoint.
func TestHelperCopyProcess(t *testing.T) {
	if os.Getenv("MAILWAVE_HELPER_COPY") != "1" {
		t.Skip("run by TestKilledCopyResumesFromItsCheckpoint")
	}
	num := func(name string) int {
		n, err := strconv.Atoi(os.Getenv(name))
		require.NoError(t, err)
		return n
	}
	window := 1
	if w := os.Getenv("MAILWAVE_HELPER_WINDOW"); w != "" {
		window = num("MAILWAVE_HELPER_WINDOW")
	}
	c, err := imapcopy.New(imapcopy.Options{
		Source:      imapcopy.Endpoint{Host: "127.0.0.1", Port: num("MAILWAVE_HELPER_SRC"), Security: imapcopy.SecurityNone},
		Target:      imapcopy.Endpoint{Host: "127.0.0.1", Port: num("MAILWAVE_HELPER_TGT"), Security: imapcopy.SecurityNone},
		Credentials: fixedCredentials(imapcopy.MechPlain, user, password),
		Window:      window, Lanes: 1,
		// Slow enough to be killed mid-way.
		Rate:          adapt.New(adapt.Options{Ceiling: 2 << 20}),
		NoMultiAppend: os.Getenv("MAILWAVE_HELPER_NO_MULTIAPPEND") == "true",
		NoPipeline:    os.Getenv("MAILWAVE_HELPER_NO_PIPELINE") == "true",
	})
	require.NoError(t, err)
	_, err = c.Copy(context.Background(), port.CopyRequest{
		Mailbox: mailbox, Pass: contract.PassBulk,
		Progress: func(cp contract.Checkpoint, _ contract.CopyStats) {
			b, _ := json.Marshal(cp)
			fmt.Printf("CHECKPOINT %s\n", b)
		},
	})
	require.NoError(t, err)
}

// TestTLSAndXOAuth2 copies from a source over implicit TLS with a password
// to a target over STARTTLS with an OAuth2 bearer token, both servers'
// certificates trusted through their CA files; a wrong token is refused
// for good.
func TestTLSAndXOAuth2(t *testing.T) {
	p := startPairWith(t, nil, func(o *dovecot.Options) { o.OAuth2Tokens = map[string]string{user: "good-token"} })
	p.seed(t)
	srcTLS, err := p.src.TLSConfig()
	require.NoError(t, err)
	tgtTLS, err := p.tgt.TLSConfig()
	require.NoError(t, err)
	copier := func(token string) *imapcopy.Copier {
		return p.copier(t, func(o *imapcopy.Options) {
			o.Source = imapcopy.Endpoint{Host: "127.0.0.1", Port: p.src.TLSPort, Security: imapcopy.SecurityTLS, TLS: srcTLS}
			o.Target = imapcopy.Endpoint{Host: "127.0.0.1", Port: p.tgt.Port, Security: imapcopy.SecurityStartTLS, TLS: tgtTLS}
			o.Credentials = func(_ context.Context, side imapcopy.Side, _ contract.MailboxRef) (imapcopy.Credentials, error) {
				if side == imapcopy.Target {
					return imapcopy.Credentials{Mechanism: imapcopy.MechXOAuth2, Username: user, Token: token}, nil
				}
				return imapcopy.Credentials{Mechanism: imapcopy.MechPlain, Username: user, Password: password}, nil
			}
		})
	}
	_, err = copier("bad-token").Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk})
	typ, permanent := port.IsPermanent(err)
	require.True(t, permanent, "%v", err)
	assert.Equal(t, contract.ErrTypeBadCredentials, typ)

	_, err = copier("good-token").Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk})
	require.NoError(t, err)
	requireSame(t, p)

	// Without the CA file the source's certificate is not trusted: a
	// transient failure (the operator fixes the configuration), not a
	// mailbox's permanent one.
	_, err = p.copier(t, func(o *imapcopy.Options) {
		o.Source = imapcopy.Endpoint{Host: "127.0.0.1", Port: p.src.TLSPort, Security: imapcopy.SecurityTLS}
	}).Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk})
	require.Error(t, err)
	_, permanent = port.IsPermanent(err)
	assert.False(t, permanent)
	assert.Contains(t, err.Error(), "certificate")
}

// TestARefusedTokenIsAskedForAgainOnce: a target that refuses the cached
// token gets one more login with the credentials asked for again, once
// the token is dropped; a token refused again fails the mailbox for good,
// after that one retry.
func TestARefusedTokenIsAskedForAgainOnce(t *testing.T) {
	p := startPairWith(t, nil, func(o *dovecot.Options) { o.OAuth2Tokens = map[string]string{user: "good-token"} })
	p.seed(t)
	var mu sync.Mutex
	copier := func(cached, fresh string, dropped *int) *imapcopy.Copier {
		return p.copier(t, func(o *imapcopy.Options) {
			o.Credentials = func(_ context.Context, side imapcopy.Side, _ contract.MailboxRef) (imapcopy.Credentials, error) {
				if side == imapcopy.Source {
					return imapcopy.Credentials{Mechanism: imapcopy.MechPlain, Username: user, Password: password}, nil
				}
				mu.Lock()
				defer mu.Unlock()
				tok := cached
				return imapcopy.Credentials{Mechanism: imapcopy.MechXOAuth2, Username: user, Token: tok, Invalidate: func() {
					mu.Lock()
					defer mu.Unlock()
					*dropped++
					if cached == tok {
						cached = fresh
					}
				}}, nil
			}
		})
	}
	var dropped int
	_, err := copier("ended-token", "good-token", &dropped).Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk})
	require.NoError(t, err)
	requireSame(t, p)
	assert.Equal(t, 1, dropped, "the refused token dropped once; every later login had the fresh one")

	dropped = 0
	_, err = copier("ended-token", "revoked-token", &dropped).Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk})
	typ, permanent := port.IsPermanent(err)
	require.True(t, permanent, "%v", err)
	assert.Equal(t, contract.ErrTypeBadCredentials, typ)
	assert.Equal(t, 1, dropped, "one retry, not more")
	assert.NotContains(t, err.Error(), "@")
}

// TestResumeDoesNotTakeANewMessageForAnOldCopy resumes from a checkpoint
// that lags (the heartbeat recorded before the last messages were copied)
// after a new source message arrived that is identical to one already
// copied: the old copy on the target must not be taken for the new one.
func TestResumeDoesNotTakeANewMessageForAnOldCopy(t *testing.T) {
	p := startPair(t)
	cl, err := imaptest.Dial(p.src.Addr(), user, password)
	require.NoError(t, err)
	date := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	seed := []imaptest.SeedMessage{
		{Folder: "INBOX", Raw: rawMessage("<a@x>", "a"), InternalDate: date},
		{Folder: "INBOX", Raw: rawMessage("<b@x>", "b"), InternalDate: date},
		{Folder: "INBOX", Raw: rawMessage("<c@x>", "c"), InternalDate: date},
	}
	require.NoError(t, imaptest.Seed(cl, seed, nil))
	var full contract.Checkpoint
	_, err = p.copier(t, nil).Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk,
		Progress: func(cp contract.Checkpoint, _ contract.CopyStats) { full = cp }})
	require.NoError(t, err)
	assert.Greater(t, full.Folders["INBOX"].TargetUIDNext, uint32(1), "the target's next UID is read after the batches landed")

	// The same message as b arrives again (a user's copy of it).
	require.NoError(t, imaptest.Seed(cl, seed[1:2], nil))
	cl.Close()
	lagging := full.Clone()
	inbox := lagging.Folders["INBOX"]
	inbox.LastUID, inbox.TargetUIDNext, inbox.TargetSinceUID = 2, 1, 0
	lagging.Folders["INBOX"] = inbox

	stats, err := p.copier(t, nil).Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassDelta, Checkpoint: lagging})
	require.NoError(t, err)
	assert.Equal(t, int64(1), stats.Items, "the second b is copied")
	assert.Equal(t, int64(1), stats.Skipped, "c is found on the target")
	requireSame(t, p)
}

// TestRecreatedTargetFolderIsCopiedAgain: the target's folder is deleted
// and made again between the passes (new UIDVALIDITY, empty), so the delta
// copies that folder again in full.
func TestRecreatedTargetFolderIsCopiedAgain(t *testing.T) {
	p := startPair(t)
	p.seed(t)
	var last contract.Checkpoint
	_, err := p.copier(t, nil).Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk,
		Progress: func(cp contract.Checkpoint, _ contract.CopyStats) { last = cp }})
	require.NoError(t, err)
	tc, err := imaptest.Dial(p.tgt.Addr(), user, password)
	require.NoError(t, err)
	before, after, err := imaptest.RecreateFolder(tc, "Drafts")
	require.NoError(t, err)
	require.NotEqual(t, before, after)
	tc.Close()

	_, err = p.copier(t, nil).Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassDelta, Checkpoint: last})
	require.NoError(t, err)
	requireSame(t, p)
}

// TestTwoSourceFoldersForOneTargetAreRefused: "Sent Items" (\Sent) and
// "Sent" on the source would both land in the target's Sent.
func TestTwoSourceFoldersForOneTargetAreRefused(t *testing.T) {
	p := startPairWith(t, func(o *dovecot.Options) { o.SpecialUse = map[string]string{"Sent Items": `\Sent`} }, nil)
	cl, err := imaptest.Dial(p.src.Addr(), user, password)
	require.NoError(t, err)
	require.NoError(t, imaptest.Seed(cl, nil, []imaptest.SeedFolder{{Name: "Sent Items"}, {Name: "Sent"}}))
	cl.Close()
	tc, err := imaptest.Dial(p.tgt.Addr(), user, password)
	require.NoError(t, err)
	require.NoError(t, imaptest.Seed(tc, nil, []imaptest.SeedFolder{{Name: "Sent"}}))
	tc.Close()
	_, err = p.copier(t, nil).Copy(context.Background(), port.CopyRequest{Mailbox: mailbox, Pass: contract.PassBulk})
	typ, permanent := port.IsPermanent(err)
	require.True(t, permanent, "%v", err)
	assert.Equal(t, contract.ErrTypeInvalidMailbox, typ)
	assert.Contains(t, err.Error(), `"Sent Items"`)
	assert.Contains(t, err.Error(), "folder map")
}
