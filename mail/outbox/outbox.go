// Package outbox is an activities.Notifier that writes each notice as an
// RFC 5322 message file instead of sending it: <Dir>/<key>-<kind>.eml, kind
// being one of the user notices or "failure" (to the admin contact). It is
// for simulations, dry runs and sites that hand mail to another system.
//
// Files are written atomically (a temporary file in Dir, then a rename), so
// a reader or a crash never sees half a message under the final name, and a
// retried send replaces rather than duplicates.
package outbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"

	gomail "github.com/wneessen/go-mail"

	"mailwave/activities"
	"mailwave/mail/notices"
)

// DefaultFrom is the From address when Options.From is empty.
const DefaultFrom = "NHS Mail Migration <migration@mailwave.invalid>"

const (
	headerKind = gomail.Header("X-Mailwave-Kind")
	headerWave = gomail.Header("X-Mailwave-Wave")
)

// Options configures an Outbox.
type Options struct {
	// Dir receives the .eml files; it is created if missing.
	Dir string
	// From is the sender, in RFC 5322 form; DefaultFrom if empty.
	From string
	// AdminContact receives failure notices, in RFC 5322 form; the From
	// address if empty.
	AdminContact string
	// Templates renders the notices; nil means the embedded defaults.
	Templates *notices.Templates
}

// Outbox writes notices to files. It is safe for concurrent use.
type Outbox struct {
	dir       string
	from      *mail.Address
	admin     *mail.Address
	templates *notices.Templates
}

var _ activities.Notifier = (*Outbox)(nil)

// New checks the options and creates the directory.
func New(o Options) (*Outbox, error) {
	if o.Dir == "" {
		return nil, errors.New("outbox: no directory")
	}
	if o.From == "" {
		o.From = DefaultFrom
	}
	from, err := mail.ParseAddress(o.From)
	if err != nil {
		return nil, fmt.Errorf("outbox: From address %q: %w", o.From, err)
	}
	admin := from
	if o.AdminContact != "" {
		if admin, err = mail.ParseAddress(o.AdminContact); err != nil {
			return nil, fmt.Errorf("outbox: AdminContact address %q: %w", o.AdminContact, err)
		}
	}
	if o.Templates == nil {
		if o.Templates, err = notices.Load(""); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	return &Outbox{dir: o.Dir, from: from, admin: admin, templates: o.Templates}, nil
}

// Send writes the notice's message file. If the file is already there with
// the same Message-ID the notice was sent before: Send leaves the file as it
// is (the first copy, with its original Date, is the one "delivered") and
// reports alreadySent. Any other file under that name is replaced. Two
// concurrent sends of one notice may both write and both report false; the
// rename keeps the result a single whole file.
func (o *Outbox) Send(ctx context.Context, n activities.Notice) (alreadySent bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	path, err := o.path(n.Mailbox.Key, n.Kind)
	if err != nil {
		return false, err
	}
	msgID, err := bareMessageID(n.MessageID)
	if err != nil {
		return false, fmt.Errorf("outbox: mailbox %s: %w", n.Mailbox.Key, err)
	}
	// Build first, so a bad notice is an error even if its file exists.
	msg, err := o.message(n, msgID)
	if err != nil {
		return false, err
	}
	if id, err := fileMessageID(path); err == nil && id == "<"+msgID+">" {
		return true, nil
	}
	if err := writeAtomic(path, msg); err != nil {
		return false, fmt.Errorf("outbox: mailbox %s: %w", n.Mailbox.Key, err)
	}
	return false, nil
}

// Sent reports whether the message file for that mailbox and kind exists.
func (o *Outbox) Sent(ctx context.Context, key string, kind activities.NoticeKind) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	path, err := o.path(key, kind)
	if err != nil {
		return false, err
	}
	switch _, err := os.Stat(path); {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("outbox: mailbox %s: %w", key, err)
	}
}

// message builds the notice. Errors never include the address: it is
// personal data, and errors end up in workflow histories and logs.
func (o *Outbox) message(n activities.Notice, msgID string) (*gomail.Msg, error) {
	key := n.Mailbox.Key
	to, err := o.recipient(n)
	if err != nil {
		return nil, err
	}
	if strings.ContainsFunc(n.WaveID, isControl) {
		return nil, fmt.Errorf("outbox: mailbox %s: wave ID contains control characters", key)
	}

	r, err := o.templates.Render(n)
	if err != nil {
		return nil, err
	}

	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	msg.FromMailAddress(o.from)
	msg.ToMailAddress(to)
	msg.Subject(r.Subject)
	msg.SetDate()
	// go-mail adds the angle brackets itself.
	msg.SetMessageIDWithValue(msgID)
	msg.SetGenHeader(headerKind, string(n.Kind))
	if n.WaveID != "" {
		msg.SetGenHeader(headerWave, n.WaveID)
	}
	msg.SetBodyString(gomail.TypeTextPlain, r.Text)
	msg.AddAlternativeString(gomail.TypeTextHTML, r.HTML)
	return msg, nil
}

// recipient is the admin contact for a failure notice (the user's address,
// if any, is only shown in its body) and the user for the others.
func (o *Outbox) recipient(n activities.Notice) (*mail.Address, error) {
	key := n.Mailbox.Key
	if n.Kind == activities.NoticeFailure {
		admin := *o.admin
		return &admin, nil
	}
	if n.Mailbox.Address == "" {
		return nil, fmt.Errorf("outbox: mailbox %s: no recipient address", key)
	}
	// Only a bare addr-spec is accepted; the display name comes from its own
	// field. net/mail quotes or encodes the name when the header is written.
	to, err := mail.ParseAddress(n.Mailbox.Address)
	if err != nil || to.Name != "" {
		return nil, fmt.Errorf("outbox: mailbox %s: recipient address is not a valid address", key)
	}
	to.Name = strings.TrimSpace(n.Mailbox.DisplayName)
	return to, nil
}

// path is the message file for a mailbox and kind. The key is opaque but
// becomes part of a file name and the Message-ID, so only letters, digits,
// '-' and '_' are accepted.
func (o *Outbox) path(key string, kind activities.NoticeKind) (string, error) {
	if key == "" {
		return "", errors.New("outbox: empty mailbox key")
	}
	if strings.ContainsFunc(key, func(r rune) bool { return !isKeyRune(r) }) {
		return "", fmt.Errorf("outbox: mailbox key %q has characters other than letters, digits, '-' and '_'", key)
	}
	if !slices.Contains(activities.AllNoticeKinds, kind) {
		return "", fmt.Errorf("outbox: mailbox %s: unknown notice kind %q", key, kind)
	}
	return filepath.Join(o.dir, key+"-"+string(kind)+".eml"), nil
}

func isKeyRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_'
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// bareMessageID strips the angle brackets from a Message-ID such as
// activities.NoticeMessageID returns, since go-mail adds its own, and
// rejects anything that would not be a single clean msg-id.
func bareMessageID(id string) (string, error) {
	bare := strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">")
	if bare == "" {
		return "", errors.New("no Message-ID")
	}
	if !strings.Contains(bare, "@") || strings.ContainsAny(bare, "<> \t\r\n") {
		return "", fmt.Errorf("malformed Message-ID %q", id)
	}
	return bare, nil
}

// fileMessageID reads the Message-ID header of an existing message file.
func fileMessageID(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	m, err := mail.ReadMessage(bufio.NewReader(f))
	if err != nil {
		return "", err
	}
	return m.Header.Get("Message-ID"), nil
}

// writeAtomic writes msg to a temporary file in path's directory, syncs it
// and renames it over path, then syncs the directory so the rename survives
// a crash.
func writeAtomic(path string, msg *gomail.Msg) (err error) {
	dir, base := filepath.Split(path)
	// A leading dot and no .eml suffix keep temporary files out of globs
	// for *.eml.
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = msg.WriteTo(tmp); err != nil {
		return fmt.Errorf("write message: %w", err)
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	// CreateTemp makes the file 0600; the outbox is readable to the group,
	// like the directory.
	if err = os.Chmod(tmp.Name(), 0o640); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
