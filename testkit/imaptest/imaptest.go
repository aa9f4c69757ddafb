// Package imaptest has helpers for tests and benchmarks that talk to real
// IMAP servers (see testkit/dovecot): seeding mailboxes, and taking a
// snapshot of a whole account to compare source and target after a copy.
package imaptest

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Message is what a snapshot records of one message.
type Message struct {
	Folder       string    // decoded UTF-8 name, "/" between levels
	Flags        []string  // sorted, without \Recent
	InternalDate time.Time // UTC, whole seconds
	Size         int64     // RFC822.SIZE
	BodySHA256   string    // hex SHA-256 of BODY[] (the whole raw message)
	MessageID    string    // from the envelope, without angle brackets; "" if none
}

// SeedFolder is a folder to create. SpecialUse is sent with CREATE only to
// servers that advertise CREATE-SPECIAL-USE (Dovecot 2.3 does not: there it
// comes from the server's configuration, by name).
type SeedFolder struct {
	Name       string
	SpecialUse imap.MailboxAttr
}

// SeedMessage is a message to APPEND.
type SeedMessage struct {
	Folder       string
	Flags        []imap.Flag
	InternalDate time.Time // zero: the server's clock
	Raw          []byte    // RFC 5322, CRLF line endings
}

// Folder is what Folders records of one mailbox.
type Folder struct {
	Name       string
	SpecialUse imap.MailboxAttr // "" if none
	NoSelect   bool             // a parent that holds no messages
}

// Dial connects without TLS and logs in.
func Dial(addr, user, pass string) (*imapclient.Client, error) {
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		return nil, err
	}
	if err := c.Login(user, pass).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("login %s at %s: %w", user, addr, err)
	}
	return c, nil
}

// appendWindow is how many APPENDs one connection keeps in flight: small
// messages go as non-synchronising literals (LITERAL+), so pipelining them
// saves a round trip each.
const appendWindow = 32

// Seed creates folders (in the order given; INBOX and folders that exist
// already are left alone), then APPENDs msgs in order, so UIDs within a
// folder follow the slice.
func Seed(c *imapclient.Client, msgs []SeedMessage, folders []SeedFolder) error {
	if err := CreateFolders(c, folders); err != nil {
		return err
	}
	return appendAll(c, slices.Values(msgs), nil)
}

// CreateFolders creates each folder, with USE where the server takes it.
func CreateFolders(c *imapclient.Client, folders []SeedFolder) error {
	useOK := c.Caps().Has(imap.CapCreateSpecialUse)
	for _, f := range folders {
		if strings.EqualFold(f.Name, "INBOX") {
			continue
		}
		var opts *imap.CreateOptions
		if useOK && f.SpecialUse != "" {
			opts = &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{f.SpecialUse}}
		}
		if err := c.Create(f.Name, opts).Wait(); err != nil && !isCode(err, imap.ResponseCodeAlreadyExists) {
			return fmt.Errorf("create %q: %w", f.Name, err)
		}
	}
	return nil
}

func isCode(err error, code imap.ResponseCode) bool {
	var e *imap.Error
	return errors.As(err, &e) && e.Code == code
}

// appendAll APPENDs every message, keeping appendWindow in flight. If
// counter is not nil it is called with each message's size once appended.
func appendAll(c *imapclient.Client, msgs iter.Seq[SeedMessage], counter func(int64)) error {
	type pending struct {
		cmd  *imapclient.AppendCommand
		size int64
		name string
	}
	var inflight []pending
	wait := func(p pending) error {
		if _, err := p.cmd.Wait(); err != nil {
			return fmt.Errorf("append to %q: %w", p.name, err)
		}
		if counter != nil {
			counter(p.size)
		}
		return nil
	}
	var firstErr error
	for m := range msgs {
		opts := &imap.AppendOptions{Flags: m.Flags, Time: m.InternalDate}
		cmd := c.Append(m.Folder, int64(len(m.Raw)), opts)
		_, err := cmd.Write(m.Raw)
		err = errors.Join(err, cmd.Close())
		inflight = append(inflight, pending{cmd, int64(len(m.Raw)), m.Folder})
		if err != nil {
			// The tagged response says more than the write error.
			firstErr = wait(inflight[len(inflight)-1])
			if firstErr == nil {
				firstErr = err
			}
			break
		}
		if len(inflight) >= appendWindow {
			if firstErr = wait(inflight[0]); firstErr != nil {
				break
			}
			inflight = inflight[1:]
		}
	}
	for _, p := range inflight {
		if err := wait(p); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// SeedParallel creates folders and APPENDs msgs over conns connections of
// their own (order across connections, hence UIDs, is not kept). It
// returns the number of messages and bytes appended.
func SeedParallel(addr, user, pass string, conns int, folders []SeedFolder, msgs iter.Seq[SeedMessage]) (n int, size int64, err error) {
	conns = max(conns, 1)
	c, err := Dial(addr, user, pass)
	if err != nil {
		return 0, 0, err
	}
	err = CreateFolders(c, folders)
	c.Logout().Wait()
	c.Close()
	if err != nil {
		return 0, 0, err
	}

	ch := make(chan SeedMessage, conns*4)
	done := make(chan struct{})
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	count := func(b int64) {
		mu.Lock()
		n++
		size += b
		mu.Unlock()
	}
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := Dial(addr, user, pass)
			if err == nil {
				err = appendAll(c, func(yield func(SeedMessage) bool) {
					for m := range ch {
						if !yield(m) {
							return
						}
					}
				}, count)
				c.Logout().Wait()
				c.Close()
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				// Let the producer stop rather than block on a full channel.
				select {
				case <-done:
				default:
					close(done)
				}
			}
		}()
	}
feed:
	for m := range msgs {
		select {
		case ch <- m:
		case <-done:
			break feed
		}
	}
	close(ch)
	wg.Wait()
	return n, size, errors.Join(errs...)
}

// Folders lists every mailbox (LIST "" "*" RETURN (SPECIAL-USE)), sorted by
// name.
func Folders(c *imapclient.Client) ([]Folder, error) {
	opts := &imap.ListOptions{ReturnSpecialUse: c.Caps().Has(imap.CapSpecialUse)}
	list, err := c.List("", "*", opts).Collect()
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	var out []Folder
	for _, l := range list {
		f := Folder{Name: l.Mailbox}
		skip := false
		for _, a := range l.Attrs {
			switch a {
			case imap.MailboxAttrNonExistent:
				skip = true
			case imap.MailboxAttrNoSelect:
				f.NoSelect = true
			case imap.MailboxAttrAll, imap.MailboxAttrArchive, imap.MailboxAttrDrafts,
				imap.MailboxAttrFlagged, imap.MailboxAttrJunk, imap.MailboxAttrSent,
				imap.MailboxAttrTrash, imap.MailboxAttrImportant:
				f.SpecialUse = a
			}
		}
		if !skip {
			out = append(out, f)
		}
	}
	slices.SortFunc(out, func(a, b Folder) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Snapshot reads every message of every selectable folder (read-only:
// EXAMINE and BODY.PEEK, so \Seen is left as it was), sorted by folder,
// then Message-ID, date and hash. Bodies are hashed as they stream in, so
// large mailboxes need little memory.
func Snapshot(c *imapclient.Client) ([]Message, error) {
	folders, err := Folders(c)
	if err != nil {
		return nil, err
	}
	var out []Message
	for _, f := range folders {
		if f.NoSelect {
			continue
		}
		msgs, err := snapshotFolder(c, f.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, msgs...)
	}
	SortMessages(out)
	return out, nil
}

func snapshotFolder(c *imapclient.Client, name string) ([]Message, error) {
	sel, err := c.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, fmt.Errorf("examine %q: %w", name, err)
	}
	if sel.NumMessages == 0 {
		return nil, nil
	}
	var all imap.SeqSet
	all.AddRange(1, 0) // 1:*
	fetch := c.Fetch(all, &imap.FetchOptions{
		Flags:        true,
		InternalDate: true,
		RFC822Size:   true,
		Envelope:     true,
		BodySection:  []*imap.FetchItemBodySection{{Peek: true}},
	})
	var out []Message
	for {
		msg := fetch.Next()
		if msg == nil {
			break
		}
		m := Message{Folder: name}
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch item := item.(type) {
			case imapclient.FetchItemDataFlags:
				m.Flags = flagStrings(item.Flags)
			case imapclient.FetchItemDataInternalDate:
				m.InternalDate = item.Time.UTC()
			case imapclient.FetchItemDataRFC822Size:
				m.Size = item.Size
			case imapclient.FetchItemDataEnvelope:
				if item.Envelope != nil {
					m.MessageID = item.Envelope.MessageID
				}
			case imapclient.FetchItemDataBodySection:
				h := sha256.New()
				if item.Literal != nil {
					if _, err := io.Copy(h, item.Literal); err != nil {
						fetch.Close()
						return nil, fmt.Errorf("fetch %q: %w", name, err)
					}
				}
				m.BodySHA256 = hex.EncodeToString(h.Sum(nil))
			}
		}
		out = append(out, m)
	}
	if err := fetch.Close(); err != nil {
		return nil, fmt.Errorf("fetch %q: %w", name, err)
	}
	if len(out) != int(sel.NumMessages) {
		return nil, fmt.Errorf("fetch %q: %d messages, EXISTS said %d", name, len(out), sel.NumMessages)
	}
	return out, nil
}

// flagStrings sorts flags as strings and drops \Recent, which says only
// which session saw a message first.
func flagStrings(flags []imap.Flag) []string {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		if strings.EqualFold(string(f), `\Recent`) {
			continue
		}
		out = append(out, string(f))
	}
	slices.Sort(out)
	return out
}

// SortMessages puts messages in Snapshot's order.
func SortMessages(msgs []Message) {
	slices.SortFunc(msgs, func(a, b Message) int {
		return cmp.Or(
			strings.Compare(a.Folder, b.Folder),
			strings.Compare(a.MessageID, b.MessageID),
			a.InternalDate.Compare(b.InternalDate),
			strings.Compare(a.BodySHA256, b.BodySHA256),
		)
	})
}

// Expected is the snapshot a server should give back after Seed(msgs):
// compare it with Snapshot's result.
func Expected(msgs []SeedMessage) []Message {
	out := make([]Message, 0, len(msgs))
	for _, m := range msgs {
		sum := sha256.Sum256(m.Raw)
		out = append(out, Message{
			Folder:       m.Folder,
			Flags:        flagStrings(m.Flags),
			InternalDate: m.InternalDate.UTC().Truncate(time.Second),
			Size:         int64(len(m.Raw)),
			BodySHA256:   hex.EncodeToString(sum[:]),
			MessageID:    messageID(m.Raw),
		})
	}
	SortMessages(out)
	return out
}

// messageID reads the Message-ID header as go-imap reads the envelope's:
// without angle brackets, "" if absent or unparsable.
func messageID(raw []byte) string {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return ""
	}
	id := strings.TrimSpace(msg.Header.Get("Message-Id"))
	if len(id) < 2 || id[0] != '<' || id[len(id)-1] != '>' {
		return ""
	}
	return id[1 : len(id)-1]
}

// RecreateFolder deletes a folder (and its messages) and creates it again,
// which gives it a new UIDVALIDITY: what a copier must notice to drop its
// UID checkpoints. It returns the UIDVALIDITY before and after.
func RecreateFolder(c *imapclient.Client, name string) (before, after uint32, err error) {
	st, err := c.Status(name, &imap.StatusOptions{UIDValidity: true}).Wait()
	if err != nil {
		return 0, 0, fmt.Errorf("status %q: %w", name, err)
	}
	if mbox := c.Mailbox(); mbox != nil && mbox.Name == name {
		if err := c.Unselect().Wait(); err != nil {
			return 0, 0, err
		}
	}
	if err := c.Delete(name).Wait(); err != nil {
		return 0, 0, fmt.Errorf("delete %q: %w", name, err)
	}
	if err := c.Create(name, nil).Wait(); err != nil {
		return 0, 0, fmt.Errorf("create %q: %w", name, err)
	}
	st2, err := c.Status(name, &imap.StatusOptions{UIDValidity: true}).Wait()
	if err != nil {
		return 0, 0, fmt.Errorf("status %q: %w", name, err)
	}
	return st.UIDValidity, st2.UIDValidity, nil
}
