package imaptest

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"mime"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
)

// Keywords used by StandardSeed besides the system flags.
const (
	KeywordLabel1    imap.Flag = "$Label1"
	KeywordForwarded imap.Flag = "$Forwarded"
)

// Folder names of StandardSeed that tests refer to.
const (
	FolderReunions = "Réunions/Été 2020"
	FolderJapanese = "日本語"
	FolderEmpty    = "Empty"
	FolderArchive  = "Archive"
	FolderArchive9 = "Archive/2019"
)

// LargeMessageSize is roughly the size of StandardSeed's large message.
const LargeMessageSize = 10 << 20

// StandardSeed is the account the copier tests start from:
//
//   - INBOX, Sent, Drafts, Trash, Junk and Archive (the last five get their
//     special use from the server's configuration, by name; the folders say
//     which in SpecialUse), Archive/2019 under Archive, "Réunions/Été 2020"
//     (whose parent "Réunions" is only implied, so \Noselect on Dovecot),
//     "日本語", and "Empty" with nothing in it;
//   - 41 messages with \Seen, \Flagged, \Answered, \Draft and the keywords
//     $Label1 and $Forwarded in various mixes, INTERNALDATEs from 2009 on
//     in several time zones;
//   - one message of about 10 MB (text and a base64 attachment);
//   - three messages without a Message-ID (two in INBOX, one in Drafts);
//   - the same message (same bytes, so same Message-ID) in INBOX and in
//     Archive/2019, with different flags;
//   - a raw 8-bit UTF-8 Subject, and RFC 2047 encoded ones.
//
// Every message is RFC 5322 with CRLF line endings. The result is the same
// on every call.
func StandardSeed() ([]SeedFolder, []SeedMessage) {
	folders := []SeedFolder{
		{Name: "INBOX"},
		{Name: "Sent", SpecialUse: imap.MailboxAttrSent},
		{Name: "Drafts", SpecialUse: imap.MailboxAttrDrafts},
		{Name: "Trash", SpecialUse: imap.MailboxAttrTrash},
		{Name: "Junk", SpecialUse: imap.MailboxAttrJunk},
		{Name: FolderArchive, SpecialUse: imap.MailboxAttrArchive},
		{Name: FolderArchive9},
		{Name: FolderReunions},
		{Name: FolderJapanese},
		{Name: FolderEmpty},
	}

	var msgs []SeedMessage
	add := func(folder string, flags []imap.Flag, date time.Time, raw []byte) {
		msgs = append(msgs, SeedMessage{Folder: folder, Flags: flags, InternalDate: date, Raw: raw})
	}
	paris := time.FixedZone("CET", 3600)
	tokyo := time.FixedZone("JST", 9*3600)
	newYork := time.FixedZone("EST", -5*3600)
	seen := []imap.Flag{imap.FlagSeen}

	// INBOX: 16.
	dupe := textMessage(header{
		from: "Carol <carol@example.com>", to: "alice@example.org",
		subject: "Minutes of the 2015 AGM", id: "agm-2015@example.com",
		date: time.Date(2015, 6, 2, 9, 30, 0, 0, time.UTC),
	}, "The minutes are attached to this message in spirit only.\n")
	inbox := []struct {
		flags []imap.Flag
		date  time.Time
		raw   []byte
	}{
		{seen, time.Date(2009, 2, 13, 23, 31, 30, 0, time.UTC), simple(1, "Welcome to your new mailbox", time.Date(2009, 2, 13, 23, 31, 30, 0, time.UTC))},
		{nil, time.Date(2009, 11, 5, 8, 0, 0, 0, paris), simple(2, "Unread since 2009", time.Date(2009, 11, 5, 8, 0, 0, 0, paris))},
		{[]imap.Flag{imap.FlagSeen, imap.FlagFlagged}, time.Date(2011, 3, 11, 14, 46, 0, 0, tokyo), simple(3, "Flagged and seen", time.Date(2011, 3, 11, 14, 46, 0, 0, tokyo))},
		{[]imap.Flag{imap.FlagSeen, imap.FlagAnswered}, time.Date(2012, 12, 21, 11, 11, 0, 0, newYork), simple(4, "Re: answered", time.Date(2012, 12, 21, 11, 11, 0, 0, newYork))},
		{[]imap.Flag{imap.FlagSeen, KeywordLabel1}, time.Date(2014, 7, 14, 10, 0, 0, 0, paris), simple(5, "Labelled", time.Date(2014, 7, 14, 10, 0, 0, 0, paris))},
		{[]imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, KeywordLabel1, KeywordForwarded}, time.Date(2015, 1, 1, 0, 0, 1, 0, time.UTC), simple(6, "Every flag but draft", time.Date(2015, 1, 1, 0, 0, 1, 0, time.UTC))},
		{seen, time.Date(2015, 6, 2, 9, 31, 0, 0, time.UTC), dupe},
		{seen, time.Date(2016, 2, 29, 12, 0, 0, 0, time.UTC), textMessage(header{
			from: "Zoë <zoe@example.fr>", to: "alice@example.org",
			// Raw 8-bit UTF-8 in the header, as many mailers send.
			subject: "Café crème — réunion à 15 h ✓", id: "utf8-subject@example.fr", raw8bit: true,
			date: time.Date(2016, 2, 29, 12, 0, 0, 0, time.UTC),
		}, "Ça va ? Voilà l'ordre du jour : café, crème, brioche.\n")},
		{nil, time.Date(2017, 4, 1, 7, 0, 0, 0, time.UTC), textMessage(header{
			from: "noreply@example.net", to: "alice@example.org", subject: "No Message-ID here (1)",
			date: time.Date(2017, 4, 1, 7, 0, 0, 0, time.UTC),
		}, "Some mailers leave the Message-ID out.\n")},
		{seen, time.Date(2017, 4, 1, 7, 0, 5, 0, time.UTC), textMessage(header{
			from: "noreply@example.net", to: "alice@example.org", subject: "No Message-ID here (2)",
			date: time.Date(2017, 4, 1, 7, 0, 5, 0, time.UTC),
		}, "And some do it twice in a row.\n")},
		{seen, time.Date(2018, 9, 9, 9, 9, 9, 0, time.UTC), largeMessage()},
		{[]imap.Flag{KeywordLabel1}, time.Date(2019, 5, 5, 5, 5, 5, 0, tokyo), simple(7, "Keyword, unseen", time.Date(2019, 5, 5, 5, 5, 5, 0, tokyo))},
		{seen, time.Date(2020, 3, 17, 18, 0, 0, 0, paris), simple(8, "Lockdown", time.Date(2020, 3, 17, 18, 0, 0, 0, paris))},
		{[]imap.Flag{imap.FlagFlagged}, time.Date(2021, 8, 1, 6, 30, 0, 0, time.UTC), simple(9, "Flagged, unseen", time.Date(2021, 8, 1, 6, 30, 0, 0, time.UTC))},
		{seen, time.Date(2023, 10, 29, 1, 30, 0, 0, time.UTC), simple(10, "Around a DST change", time.Date(2023, 10, 29, 1, 30, 0, 0, time.UTC))},
		{nil, time.Date(2024, 1, 2, 3, 4, 5, 0, newYork), simple(11, "Newest", time.Date(2024, 1, 2, 3, 4, 5, 0, newYork))},
	}
	for _, m := range inbox {
		add("INBOX", m.flags, m.date, m.raw)
	}

	// Sent: 5.
	for i := range 5 {
		d := time.Date(2010+2*i, time.Month(1+i), 10+i, 16, 20, 0, 0, paris)
		flags := seen
		if i%2 == 1 {
			flags = []imap.Flag{imap.FlagSeen, KeywordForwarded}
		}
		add("Sent", flags, d, textMessage(header{
			from: "Alice <alice@example.org>", to: fmt.Sprintf("friend%d@example.com", i),
			subject: fmt.Sprintf("Sent message %d", i+1), id: fmt.Sprintf("sent-%d@example.org", i+1), date: d,
		}, strings.Repeat(fmt.Sprintf("Line %d of a sent message.\n", i), 3+i)))
	}

	// Drafts: 3, one without a Message-ID.
	for i := range 3 {
		d := time.Date(2022, 2, 2+i, 22, 0, 0, 0, time.UTC)
		id := fmt.Sprintf("draft-%d@example.org", i+1)
		if i == 2 {
			id = ""
		}
		add("Drafts", []imap.Flag{imap.FlagDraft, imap.FlagSeen}, d, textMessage(header{
			from: "Alice <alice@example.org>", to: "bob@example.net",
			subject: fmt.Sprintf("Unfinished thought %d", i+1), id: id, date: d,
		}, "I was going to say…\n"))
	}

	// Trash: 3; Junk: 2; Archive: 2.
	for i := range 3 {
		d := time.Date(2013, 11, 1+i, 12, 0, 0, 0, time.UTC)
		add("Trash", seen, d, simple(20+i, fmt.Sprintf("Binned %d", i+1), d))
	}
	for i := range 2 {
		d := time.Date(2019, 12, 24+i, 3, 0, 0, 0, time.UTC)
		add("Junk", nil, d, simple(30+i, fmt.Sprintf("You have won %d prizes", i+2), d))
	}
	for i := range 2 {
		d := time.Date(2012, 6, 6+i, 6, 6, 6, 0, time.UTC)
		add(FolderArchive, seen, d, simple(40+i, fmt.Sprintf("Archived long ago %d", i+1), d))
	}

	// Archive/2019: 4, one of them INBOX's AGM minutes again.
	add(FolderArchive9, []imap.Flag{imap.FlagSeen, imap.FlagFlagged}, time.Date(2019, 1, 15, 10, 0, 0, 0, time.UTC), dupe)
	for i := range 3 {
		d := time.Date(2019, time.Month(3+3*i), 1, 9, 0, 0, 0, paris)
		add(FolderArchive9, seen, d, simple(50+i, fmt.Sprintf("2019 quarter %d", i+2), d))
	}

	// Réunions/Été 2020: 3, subjects in RFC 2047.
	for i := range 3 {
		d := time.Date(2020, 7, 1+7*i, 14, 0, 0, 0, paris)
		add(FolderReunions, seen, d, textMessage(header{
			from: "Équipe <equipe@example.fr>", to: "alice@example.org",
			subject: fmt.Sprintf("Réunion d'été n° %d", i+1), id: fmt.Sprintf("reunion-%d@example.fr", i+1), date: d,
		}, fmt.Sprintf("Compte rendu de la réunion n° %d : rien à signaler.\n", i+1)))
	}

	// 日本語: 3.
	for i := range 3 {
		d := time.Date(2015, 4, 1+i, 9, 0, 0, 0, tokyo)
		flags := seen
		if i == 0 {
			flags = []imap.Flag{imap.FlagSeen, imap.FlagAnswered}
		}
		add(FolderJapanese, flags, d, textMessage(header{
			from: "田中 <tanaka@example.jp>", to: "alice@example.org",
			subject: fmt.Sprintf("会議の議事録 %d", i+1), id: fmt.Sprintf("nihongo-%d@example.jp", i+1), date: d,
		}, "本日の会議の議事録をお送りします。\nよろしくお願いいたします。\n"))
	}
	return folders, msgs
}

type header struct {
	from, to, subject, id string
	date                  time.Time
	raw8bit               bool // put a non-ASCII subject in raw, not RFC 2047
}

// textMessage builds a single-part text/plain message. body uses "\n";
// the result uses CRLF throughout.
func textMessage(h header, body string) []byte {
	var b strings.Builder
	writeHeader(&b, h)
	cte := "7bit"
	if !isASCII(body) {
		cte = "8bit"
	}
	crlf(&b, "MIME-Version: 1.0\n")
	crlf(&b, "Content-Type: text/plain; charset=utf-8\n")
	crlf(&b, "Content-Transfer-Encoding: "+cte+"\n\n")
	crlf(&b, body)
	return []byte(b.String())
}

func writeHeader(b *strings.Builder, h header) {
	crlf(b, "Date: "+h.date.Format(time.RFC1123Z)+"\n")
	crlf(b, "From: "+encodeAddr(h.from)+"\n")
	crlf(b, "To: "+h.to+"\n")
	subject := h.subject
	if !h.raw8bit && !isASCII(subject) {
		subject = mime.QEncoding.Encode("utf-8", subject)
	}
	crlf(b, "Subject: "+subject+"\n")
	if h.id != "" {
		crlf(b, "Message-ID: <"+h.id+">\n")
	}
}

// encodeAddr encodes a non-ASCII display name ("Zoë <z@x>") in RFC 2047.
func encodeAddr(a string) string {
	if isASCII(a) {
		return a
	}
	name, rest, ok := strings.Cut(a, " <")
	if !ok {
		return a
	}
	return mime.QEncoding.Encode("utf-8", name) + " <" + rest
}

// simple is a short ASCII message numbered n.
func simple(n int, subject string, date time.Time) []byte {
	return textMessage(header{
		from:    fmt.Sprintf("Sender %d <sender%d@example.com>", n, n),
		to:      "alice@example.org",
		subject: subject,
		id:      fmt.Sprintf("msg-%d@example.com", n),
		date:    date,
	}, fmt.Sprintf("Message number %d.\n\nNothing much to say, but it says it on two lines.\n", n))
}

// largeMessage is about LargeMessageSize bytes: a note and a base64
// attachment of pseudo-random bytes (always the same ones).
func largeMessage() []byte {
	const boundary = "mailwave-boundary-7f3a"
	var b strings.Builder
	b.Grow(LargeMessageSize + 4096)
	writeHeader(&b, header{
		from: "Scanner <scanner@example.com>", to: "alice@example.org",
		subject: "Scan of the whole archive (large attachment)", id: "large-scan@example.com",
		date: time.Date(2018, 9, 9, 9, 9, 9, 0, time.UTC),
	})
	crlf(&b, "MIME-Version: 1.0\n")
	crlf(&b, "Content-Type: multipart/mixed; boundary=\""+boundary+"\"\n\n")
	crlf(&b, "This is a multi-part message in MIME format.\n")
	crlf(&b, "--"+boundary+"\n")
	crlf(&b, "Content-Type: text/plain; charset=us-ascii\n\n")
	crlf(&b, "Please find the scan attached.\n")
	crlf(&b, "--"+boundary+"\n")
	crlf(&b, "Content-Type: application/octet-stream; name=\"archive.bin\"\n")
	crlf(&b, "Content-Disposition: attachment; filename=\"archive.bin\"\n")
	crlf(&b, "Content-Transfer-Encoding: base64\n\n")
	// base64 is 4/3 of the data, plus CRLF every 76 characters.
	data := make([]byte, LargeMessageSize*3/4*76/78)
	rng := rand.NewChaCha8([32]byte{'m', 'a', 'i', 'l', 'w', 'a', 'v', 'e'})
	_, _ = rng.Read(data)
	writeBase64Lines(&b, data)
	crlf(&b, "--"+boundary+"--\n")
	return []byte(b.String())
}

func writeBase64Lines(b *strings.Builder, data []byte) {
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc)
	b.WriteString("\r\n")
}

// crlf writes s with every "\n" as "\r\n".
func crlf(b *strings.Builder, s string) {
	b.WriteString(strings.ReplaceAll(s, "\n", "\r\n"))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
