package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// SourceProperty is mailwave's own single-value extended property: each
// item a copy creates carries its source's identity in it, so a retried
// batch, a resumed copy or a re-run finds what is already there. Its
// value names a folder's UIDVALIDITY and a UID, never anything personal.
const SourceProperty = "String {5d3b8a56-6c1e-4b55-9a0e-6d61696c7761} Name mailwaveSource"

// MAPI properties set at creation: a message created with its flags is
// not a draft, and keeps its dates.
const (
	propFlags    = "Integer 0x0E07"    // PR_MESSAGE_FLAGS
	propSent     = "SystemTime 0x0039" // PR_CLIENT_SUBMIT_TIME
	propReceived = "SystemTime 0x0E06" // PR_MESSAGE_DELIVERY_TIME
	flagRead     = 0x1                 // MSGFLAG_READ (MSGFLAG_UNSENT, 0x8, left clear: not a draft)
)

// WellKnown is the Exchange well-known folder an IMAP folder maps to: INBOX
// and the special-use folders (RFC 6154); "" for any other.
func WellKnown(name, specialUse string) string {
	if strings.EqualFold(name, "INBOX") {
		return "inbox"
	}
	return map[string]string{`\Sent`: "sentitems", `\Drafts`: "drafts", `\Trash`: "deleteditems",
		`\Junk`: "junkemail", `\Archive`: "archive"}[specialUse]
}

type folderJSON struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
}

// Folder finds the folder at path under the mailbox's root, making what is
// missing; a well-known name ("inbox", "sentitems", ...) starts it there
// instead, and path then names its subfolders.
func (m *Mailbox) Folder(ctx context.Context, wellKnown string, path []string) (string, error) {
	start := "msgfolderroot"
	if wellKnown != "" {
		start = wellKnown
	}
	var f folderJSON
	if err := m.do(ctx, http.MethodGet, "/mailFolders/"+url.PathEscape(start), nil, &f); err != nil {
		return "", err
	}
	for _, name := range path {
		child, err := m.child(ctx, f.ID, name)
		if err != nil {
			return "", err
		}
		f = child
	}
	return f.ID, nil
}

// child finds or makes one subfolder by name.
func (m *Mailbox) child(ctx context.Context, parent, name string) (folderJSON, error) {
	find := func() (folderJSON, bool, error) {
		var list struct{ Value []folderJSON }
		q := url.Values{"$filter": {"displayName eq '" + strings.ReplaceAll(name, "'", "''") + "'"}}
		err := m.do(ctx, http.MethodGet, "/mailFolders/"+url.PathEscape(parent)+"/childFolders?"+q.Encode(), nil, &list)
		if err != nil || len(list.Value) == 0 {
			return folderJSON{}, false, err
		}
		return list.Value[0], true, nil
	}
	f, ok, err := find()
	if err != nil || ok {
		return f, err
	}
	err = m.do(ctx, http.MethodPost, "/mailFolders/"+url.PathEscape(parent)+"/childFolders", map[string]string{"displayName": name}, &f)
	if se := (*StatusError)(nil); errors.As(err, &se) && se.Status == http.StatusConflict {
		// Made meanwhile (another attempt): take it.
		f, ok, err = find()
		if err == nil && !ok {
			err = fmt.Errorf("mailbox %s: a folder refused as existing is not there", m.key)
		}
	}
	return f, err
}

// Item is a message to create: its JSON (subject, body, addresses,
// headers, small attachments, categories), its identity at the source, and
// what becomes its MAPI properties.
type Item struct {
	Source   string
	JSON     map[string]any
	Read     bool
	Sent     time.Time
	Received time.Time
}

// Create creates the item in the folder as a non-draft message carrying
// its source's identity and dates, and returns its ID. Create alone may
// make a second item if an earlier call's answer was lost: CreateOnce
// looks first.
func (m *Mailbox) Create(ctx context.Context, folder string, it Item) (string, error) {
	msg := make(map[string]any, len(it.JSON)+1)
	for k, v := range it.JSON {
		msg[k] = v
	}
	flags := 0
	if it.Read {
		flags |= flagRead
	}
	props := []map[string]string{
		{"id": SourceProperty, "value": it.Source},
		{"id": propFlags, "value": fmt.Sprint(flags)},
	}
	if !it.Sent.IsZero() {
		props = append(props, map[string]string{"id": propSent, "value": it.Sent.UTC().Format(time.RFC3339)})
	}
	if !it.Received.IsZero() {
		props = append(props, map[string]string{"id": propReceived, "value": it.Received.UTC().Format(time.RFC3339)})
	}
	msg["singleValueExtendedProperties"] = props
	var out struct{ ID string }
	if err := m.do(ctx, http.MethodPost, "/mailFolders/"+url.PathEscape(folder)+"/messages", msg, &out); err != nil {
		return "", err
	}
	return out.ID, nil
}

// Find lists the items of the folder that carry that source identity.
func (m *Mailbox) Find(ctx context.Context, folder, source string) ([]string, error) {
	q := url.Values{
		"$filter": {"singleValueExtendedProperties/Any(ep: ep/id eq '" + SourceProperty + "' and ep/value eq '" + strings.ReplaceAll(source, "'", "''") + "')"},
		"$select": {"id"},
	}
	var list struct{ Value []struct{ ID string } }
	if err := m.do(ctx, http.MethodGet, "/mailFolders/"+url.PathEscape(folder)+"/messages?"+q.Encode(), nil, &list); err != nil {
		return nil, err
	}
	ids := make([]string, len(list.Value))
	for i, v := range list.Value {
		ids[i] = v.ID
	}
	return ids, nil
}

// CreateOnce creates the item unless the folder holds it already (a
// retried batch, a resumed copy); created says which.
func (m *Mailbox) CreateOnce(ctx context.Context, folder string, it Item) (id string, created bool, err error) {
	ids, err := m.Find(ctx, folder, it.Source)
	if err != nil || len(ids) > 0 {
		if len(ids) > 0 {
			id = ids[0]
		}
		return id, false, err
	}
	id, err = m.Create(ctx, folder, it)
	return id, err == nil, err
}

// Delete removes an item (an extra copy the copy made).
func (m *Mailbox) Delete(ctx context.Context, id string) error {
	return m.do(ctx, http.MethodDelete, "/messages/"+url.PathEscape(id), nil, nil)
}

// uploadChunk is what one request of an upload session carries: a multiple
// of 320 KiB, as the service asks, under the 4 MB a request may carry.
const uploadChunk = 10 * 320 << 10

// Attach adds a large attachment to a message through an upload session,
// in chunks, each within the mailbox's budget.
func (m *Mailbox) Attach(ctx context.Context, message string, a Attachment) error {
	if len(a.Data) > MaxAttachmentBytes {
		return fmt.Errorf("mailbox %s: %w (%d bytes)", m.key, ErrTooLarge, len(a.Data))
	}
	var session struct {
		UploadURL string `json:"uploadUrl"`
	}
	in := map[string]any{"AttachmentItem": map[string]any{"attachmentType": "file", "name": a.Name, "size": len(a.Data),
		"contentType": a.ContentType, "isInline": a.Inline, "contentId": a.ContentID}}
	if err := m.do(ctx, http.MethodPost, "/messages/"+url.PathEscape(message)+"/attachments/createUploadSession", in, &session); err != nil {
		return err
	}
	for off := 0; off < len(a.Data); off += uploadChunk {
		end := min(off+uploadChunk, len(a.Data))
		// The upload session's URL carries its own authorisation: no
		// token goes with it.
		r := request{method: http.MethodPut, url: session.UploadURL, body: a.Data[off:end],
			contentRange: fmt.Sprintf("bytes %d-%d/%d", off, end-1, len(a.Data))}
		if err := m.exchange(ctx, r, nil); err != nil {
			return err
		}
	}
	return nil
}

// Sources lists the folder's items that carry a source identity, by
// identity: what a copy made there (two IDs for one identity are a copy
// made twice). Pages of 500 are followed to the end.
func (m *Mailbox) Sources(ctx context.Context, folder string) (map[string][]string, error) {
	q := url.Values{
		"$select": {"id"},
		"$expand": {"singleValueExtendedProperties($filter=id eq '" + SourceProperty + "')"},
		"$top":    {"500"},
	}
	path := "/mailFolders/" + url.PathEscape(folder) + "/messages?" + q.Encode()
	out := map[string][]string{}
	for path != "" {
		var page struct {
			Value []struct {
				ID    string `json:"id"`
				Props []struct {
					ID    string `json:"id"`
					Value string `json:"value"`
				} `json:"singleValueExtendedProperties"`
			} `json:"value"`
			Next string `json:"@odata.nextLink"`
		}
		if err := m.do(ctx, http.MethodGet, path, nil, &page); err != nil {
			return nil, err
		}
		for _, v := range page.Value {
			for _, p := range v.Props {
				if strings.EqualFold(p.ID, SourceProperty) {
					out[p.Value] = append(out[p.Value], v.ID)
				}
			}
		}
		path = ""
		if page.Next != "" {
			prefix := m.c.base + "/users/" + url.PathEscape(m.upn)
			rest, ok := strings.CutPrefix(page.Next, prefix)
			if !ok {
				return nil, fmt.Errorf("mailbox %s: graph's next page is not under the mailbox", m.key)
			}
			path = rest
		}
	}
	return out, nil
}

// SetSource changes the source identity an item carries (a message whose
// large attachments have all arrived loses its "partial" mark).
func (m *Mailbox) SetSource(ctx context.Context, id, source string) error {
	in := map[string]any{"singleValueExtendedProperties": []map[string]string{{"id": SourceProperty, "value": source}}}
	return m.do(ctx, http.MethodPatch, "/messages/"+url.PathEscape(id), in, nil)
}
