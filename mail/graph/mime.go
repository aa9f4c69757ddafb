package graph

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	_ "github.com/emersion/go-message/charset" // bodies and headers in the charsets mail uses
	"github.com/emersion/go-message/mail"
)

// Graph's bounds on a message created in one request.
const (
	// MaxRequestBytes: a request body over 4 MB is refused (413); what the
	// JSON would carry past it goes through upload sessions instead.
	MaxRequestBytes = 4_000_000
	// InlineAttachmentBytes: an attachment up to 3 MB may travel in the
	// request; a larger one goes through an upload session.
	InlineAttachmentBytes = 3 << 20
	// MaxAttachmentBytes: an upload session takes up to 150 MB.
	MaxAttachmentBytes = 150 << 20
)

// Attachment is a file attached to a message.
type Attachment struct {
	Name        string
	ContentType string
	ContentID   string
	Inline      bool
	Data        []byte
}

// Converted is a source message as Graph takes it: the JSON of the
// create request (attachments small enough included) and the attachments
// that go through upload sessions once the message exists.
type Converted struct {
	JSON  map[string]any
	Large []Attachment
	// Sent is the message's Date header (zero if it has none).
	Sent time.Time
}

// ErrTooLarge is a message Graph cannot take: an attachment over the
// upload session's 150 MB. The copy reports it as a bad item.
var ErrTooLarge = errors.New("an attachment is over Graph's 150 MB")

// FromMIME converts a source message: its addresses, subject, Message-ID,
// body (HTML where it has one, else text), attachments, and from its IMAP
// flags the follow-up flag and the categories (its keywords). Read state
// and dates travel as MAPI properties (Item).
func FromMIME(raw []byte, flags []string) (Converted, error) {
	mr, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		return Converted{}, fmt.Errorf("graph: reading the message: %w", err)
	}
	defer mr.Close()
	h := mr.Header
	msg := map[string]any{}
	if s, err := h.Subject(); err == nil {
		msg["subject"] = s
	}
	sent, _ := h.Date()
	if id, err := h.MessageID(); err == nil && id != "" {
		msg["internetMessageId"] = "<" + id + ">"
	}
	for key, field := range map[string]string{"From": "from", "Sender": "sender"} {
		if list, _ := h.AddressList(key); len(list) > 0 {
			msg[field] = recipient(list[0])
		}
	}
	for key, field := range map[string]string{"To": "toRecipients", "Cc": "ccRecipients", "Bcc": "bccRecipients", "Reply-To": "replyTo"} {
		if list, _ := h.AddressList(key); len(list) > 0 {
			rs := make([]any, len(list))
			for i, a := range list {
				rs[i] = recipient(a)
			}
			msg[field] = rs
		}
	}
	var text, html string
	var atts []Attachment
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Converted{}, fmt.Errorf("graph: reading the message's parts: %w", err)
		}
		data, err := io.ReadAll(p.Body)
		if err != nil {
			return Converted{}, fmt.Errorf("graph: reading a part: %w", err)
		}
		switch ph := p.Header.(type) {
		case *mail.InlineHeader:
			ct, _, _ := ph.ContentType()
			switch {
			case ct == "text/html" && html == "":
				html = string(data)
			case (ct == "text/plain" || ct == "") && text == "":
				text = string(data)
			default:
				id := strings.Trim(ph.Get("Content-Id"), "<>")
				atts = append(atts, Attachment{Name: "part", ContentType: ct, ContentID: id, Inline: true, Data: data})
			}
		case *mail.AttachmentHeader:
			name, _ := ph.Filename()
			ct, _, _ := ph.ContentType()
			if name == "" {
				name = "attachment"
			}
			atts = append(atts, Attachment{Name: name, ContentType: ct, Data: data})
		}
	}
	if html != "" {
		msg["body"] = map[string]string{"contentType": "html", "content": html}
	} else {
		msg["body"] = map[string]string{"contentType": "text", "content": text}
	}
	var cats []string
	for _, f := range flags {
		switch {
		case strings.EqualFold(f, `\Flagged`):
			msg["flag"] = map[string]string{"flagStatus": "flagged"}
		case f == "" || strings.HasPrefix(f, `\`) || slices.ContainsFunc(protocolKeywords, func(k string) bool { return strings.EqualFold(k, f) }):
		default:
			cats = append(cats, f) // a user's keyword (a label, a tag)
		}
	}
	if len(cats) > 0 {
		msg["categories"] = cats
	}
	c, err := place(msg, atts)
	c.Sent = sent
	return c, err
}

// protocolKeywords are IMAP keywords that say what happened to a message,
// not how the user sorted it: they become no category.
var protocolKeywords = []string{"$Forwarded", "$MDNSent", "$Junk", "$NotJunk", "$Phishing", "$Submitted", "$SubmitPending", "NonJunk", "Junk"}

// place puts the small attachments in the request and the rest aside for
// upload sessions, so that the request stays under MaxRequestBytes.
func place(msg map[string]any, atts []Attachment) (Converted, error) {
	c := Converted{JSON: msg}
	var inline []Attachment
	for _, a := range atts {
		switch {
		case len(a.Data) > MaxAttachmentBytes:
			return Converted{}, fmt.Errorf("%w (%d bytes)", ErrTooLarge, len(a.Data))
		case len(a.Data) > InlineAttachmentBytes:
			c.Large = append(c.Large, a)
		default:
			inline = append(inline, a)
		}
	}
	// Largest first out while the request is too big.
	slices.SortStableFunc(inline, func(a, b Attachment) int { return len(a.Data) - len(b.Data) })
	for {
		msg["attachments"] = fileAttachments(inline)
		size, err := json.Marshal(msg)
		if err != nil {
			return Converted{}, err
		}
		if len(size) <= MaxRequestBytes-64<<10 || len(inline) == 0 {
			break
		}
		c.Large = append(c.Large, inline[len(inline)-1])
		inline = inline[:len(inline)-1]
	}
	if len(inline) == 0 {
		delete(msg, "attachments")
	}
	return c, nil
}

func fileAttachments(atts []Attachment) []any {
	out := make([]any, len(atts))
	for i, a := range atts {
		fa := map[string]any{"@odata.type": "#microsoft.graph.fileAttachment", "name": a.Name,
			"contentType": a.ContentType, "contentBytes": base64.StdEncoding.EncodeToString(a.Data)}
		if a.Inline {
			fa["isInline"] = true
			if a.ContentID != "" {
				fa["contentId"] = a.ContentID
			}
		}
		out[i] = fa
	}
	return out
}

func recipient(a *mail.Address) map[string]any {
	return map[string]any{"emailAddress": map[string]string{"name": a.Name, "address": a.Address}}
}
