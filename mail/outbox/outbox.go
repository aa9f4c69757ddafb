// Package outbox is an port.Notifier that writes each notice as an
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
	"io"
	"io/fs"
	"net/mail"
	"os"
	"path/filepath"
	"slices"

	"mailwave/contract"
	"mailwave/internal/atomicfile"
	"mailwave/mail/notices"
	"mailwave/mail/port"
)

// DefaultFrom is the From address when Options.From is empty.
const DefaultFrom = "NHS Mail Migration <migration@mailwave.invalid>"

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

var _ port.Notifier = (*Outbox)(nil)

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
func (o *Outbox) Send(ctx context.Context, n port.Notice) (alreadySent bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	path, err := o.path(n.Mailbox.Key, n.Kind)
	if err != nil {
		return false, err
	}
	msgID, err := notices.BareMessageID(n.MessageID)
	if err != nil {
		return false, fmt.Errorf("outbox: mailbox %s: %w", n.Mailbox.Key, err)
	}
	// Build first, so a bad notice is an error even if its file exists.
	// Errors never include the address (see notices.Templates.Compose).
	msg, err := o.templates.Compose(n, o.from, o.admin)
	if err != nil {
		return false, fmt.Errorf("outbox: %w", err)
	}
	if id, err := fileMessageID(path); err == nil && id == "<"+msgID+">" {
		return true, nil
	}
	// A leading dot and no .eml suffix keep the temporary file out of globs
	// for *.eml; the outbox is readable to the group, like the directory.
	if err := atomicfile.Write(path, 0o640, func(w io.Writer) error {
		if _, err := msg.WriteTo(w); err != nil {
			return fmt.Errorf("write message: %w", err)
		}
		return nil
	}); err != nil {
		return false, fmt.Errorf("outbox: mailbox %s: %w", n.Mailbox.Key, err)
	}
	return false, nil
}

// Sent reports whether the message file for that mailbox and kind exists.
func (o *Outbox) Sent(ctx context.Context, key string, kind contract.NoticeKind) (bool, error) {
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

// path is the message file for a mailbox and kind. The key becomes part of
// a file name, so it must pass notices.ValidKey.
func (o *Outbox) path(key string, kind contract.NoticeKind) (string, error) {
	if err := notices.ValidKey(key); err != nil {
		return "", fmt.Errorf("outbox: %w", err)
	}
	if !slices.Contains(contract.AllNoticeKinds, kind) {
		return "", fmt.Errorf("outbox: mailbox %s: unknown notice kind %q", key, kind)
	}
	return filepath.Join(o.dir, key+"-"+string(kind)+".eml"), nil
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
