package notices

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"

	gomail "github.com/wneessen/go-mail"

	"mailwave/mail/port"
)

// Headers every composed notice carries besides the standard ones.
const (
	HeaderKind = gomail.Header("X-Mailwave-Kind") // the notice kind, e.g. "t14"
	HeaderWave = gomail.Header("X-Mailwave-Wave") // the wave ID, when there is one
)

// Compose validates the notice, renders it and builds the message: From
// from, To the user (or admin, for a failure notice), the notice's own
// Message-ID (so that a resend is recognisably the same message), and the
// HeaderKind and HeaderWave headers. from and admin are copied, never
// changed; admin may be nil only if the notice is not a failure notice.
//
// A failure notice goes to admin; the user's address, if known, is only
// shown in its body. A user notice goes to the mailbox's address, which
// must be a bare addr-spec: the display name comes from its own field.
//
// Errors never contain an email address: it is personal data, and errors
// end up in workflow histories and logs, so they name the mailbox by its
// key. They carry no "notices:" prefix of their own (except those of
// Render), so the caller adds its own.
func (t *Templates) Compose(n port.Notice, from, admin *mail.Address) (*gomail.Msg, error) {
	key := n.Mailbox.Key
	if err := ValidKey(key); err != nil {
		return nil, err
	}
	msgID, err := BareMessageID(n.MessageID)
	if err != nil {
		return nil, fmt.Errorf("mailbox %s: %w", key, err)
	}
	to, err := recipient(n, admin)
	if err != nil {
		return nil, err
	}
	if strings.ContainsFunc(n.WaveID, isControl) {
		return nil, fmt.Errorf("mailbox %s: wave ID contains control characters", key)
	}
	r, err := t.Render(n)
	if err != nil {
		return nil, err
	}

	sender := *from
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	msg.FromMailAddress(&sender)
	msg.ToMailAddress(to)
	msg.Subject(r.Subject)
	msg.SetDate()
	// go-mail adds the angle brackets itself.
	msg.SetMessageIDWithValue(msgID)
	msg.SetGenHeader(HeaderKind, string(n.Kind))
	if n.WaveID != "" {
		msg.SetGenHeader(HeaderWave, n.WaveID)
	}
	msg.SetBodyString(gomail.TypeTextPlain, r.Text)
	msg.AddAlternativeString(gomail.TypeTextHTML, r.HTML)
	return msg, nil
}

// recipient is the admin contact for a failure notice and the user for the
// others.
func recipient(n port.Notice, admin *mail.Address) (*mail.Address, error) {
	key := n.Mailbox.Key
	if n.Kind.ToAdmin() {
		if admin == nil {
			return nil, fmt.Errorf("mailbox %s: %s notice: no admin contact", key, n.Kind)
		}
		a := *admin
		return &a, nil
	}
	if n.Mailbox.Address == "" {
		return nil, fmt.Errorf("mailbox %s: no recipient address", key)
	}
	// net/mail quotes or encodes the name when the header is written.
	to, err := mail.ParseAddress(n.Mailbox.Address)
	if err != nil || to.Name != "" {
		return nil, fmt.Errorf("mailbox %s: recipient address is not a valid address", key)
	}
	to.Name = strings.TrimSpace(n.Mailbox.DisplayName)
	return to, nil
}

// ValidKey checks a mailbox key. The key is opaque but becomes part of file
// names and of the Message-ID, so only letters, digits, '-' and '_' are
// accepted. The error has no prefix.
func ValidKey(key string) error {
	if key == "" {
		return errors.New("empty mailbox key")
	}
	if strings.ContainsFunc(key, func(r rune) bool { return !isKeyRune(r) }) {
		return fmt.Errorf("mailbox key %q has characters other than letters, digits, '-' and '_'", key)
	}
	return nil
}

func isKeyRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_'
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// BareMessageID strips the angle brackets from a Message-ID such as
// contract.NoticeMessageID returns, since go-mail adds its own, and
// rejects anything that would not be a single clean msg-id. The error has
// no prefix.
func BareMessageID(id string) (string, error) {
	bare := strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">")
	if bare == "" {
		return "", errors.New("no Message-ID")
	}
	if !strings.Contains(bare, "@") || strings.ContainsAny(bare, "<> \t\r\n") {
		return "", fmt.Errorf("malformed Message-ID %q", id)
	}
	return bare, nil
}
