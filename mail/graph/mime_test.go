package graph_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/mail/graph"
	"mailwave/testkit/fakegraph"
)

// mimeMessage is a message with text and HTML bodies and two attachments
// of the given sizes.
func mimeMessage(small, large int) ([]byte, []byte, []byte) {
	a, b := bytes.Repeat([]byte("s"), small), bytes.Repeat([]byte{0xfe, 'L'}, large/2)
	var w strings.Builder
	w.WriteString("From: Zoë <zoe@example.fr>\r\nTo: alice@trust.nhs.example, Bob <bob@trust.nhs.example>\r\nCc: carol@example.com\r\n")
	w.WriteString("Subject: =?UTF-8?Q?Caf=C3=A9_minutes?=\r\nMessage-ID: <minutes-1@example.fr>\r\nDate: Sun, 5 May 2019 05:05:05 +0000\r\n")
	w.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n")
	w.WriteString("--outer\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n")
	w.WriteString("--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe minutes.\r\n")
	w.WriteString("--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>The minutes.</p>\r\n--alt--\r\n")
	for _, att := range []struct {
		name string
		data []byte
	}{{"small.txt", a}, {"scan.bin", b}} {
		fmt.Fprintf(&w, "--outer\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=%q\r\nContent-Transfer-Encoding: base64\r\n\r\n", att.name)
		enc := base64.StdEncoding.EncodeToString(att.data)
		for len(enc) > 76 {
			w.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		w.WriteString(enc + "\r\n")
	}
	w.WriteString("--outer--\r\n")
	return []byte(w.String()), a, b
}

// TestAMessageFromMIMEWithALargeAttachment: a message converted from its
// MIME keeps its addresses, subject, Message-ID, HTML body, follow-up flag
// and keywords as categories; the small attachment travels in the create
// request and the 5 MB one through an upload session, in chunks, both
// whole.
func TestAMessageFromMIMEWithALargeAttachment(t *testing.T) {
	srv, c, _ := setup(t, fakegraph.Options{}, graph.DefaultLimits)
	ctx := context.Background()
	raw, small, large := mimeMessage(100<<10, 5<<20)
	conv, err := graph.FromMIME(raw, []string{`\Seen`, `\Flagged`, "$Label1", "Project-X", "$Forwarded"})
	require.NoError(t, err)
	require.Len(t, conv.Large, 1)
	assert.Equal(t, "scan.bin", conv.Large[0].Name)

	m := c.Mailbox(alice)
	folder, err := m.Folder(ctx, "inbox", nil)
	require.NoError(t, err)
	id, err := m.Create(ctx, folder, graph.Item{Source: "v1.1", JSON: conv.JSON, Read: true})
	require.NoError(t, err)
	for _, a := range conv.Large {
		require.NoError(t, m.Attach(ctx, id, a))
	}

	var got *fakegraph.Message
	for _, f := range srv.Folders(upn) {
		for _, msg := range f.Messages {
			if msg.ID == id {
				got = msg
			}
		}
	}
	require.NotNil(t, got)
	j := got.JSON
	assert.Equal(t, "Café minutes", j["subject"])
	assert.Equal(t, "<minutes-1@example.fr>", j["internetMessageId"])
	assert.Equal(t, map[string]any{"contentType": "html", "content": "<p>The minutes.</p>"}, j["body"])
	assert.Equal(t, map[string]any{"emailAddress": map[string]any{"name": "Zoë", "address": "zoe@example.fr"}}, j["from"])
	assert.Len(t, j["toRecipients"], 2)
	assert.Len(t, j["ccRecipients"], 1)
	assert.Equal(t, map[string]any{"flagStatus": "flagged"}, j["flag"])
	assert.Equal(t, []any{"$Label1", "Project-X"}, j["categories"], "keywords, not protocol ones")
	atts, _ := j["attachments"].([]any)
	require.Len(t, atts, 1)
	inline := atts[0].(map[string]any)
	assert.Equal(t, "small.txt", inline["name"])
	assert.Equal(t, base64.StdEncoding.EncodeToString(small), inline["contentBytes"])
	require.Len(t, got.Uploaded, 1)
	assert.Equal(t, "scan.bin", got.Uploaded[0].Name)
	assert.True(t, bytes.Equal(large, got.Uploaded[0].Data), "uploaded whole, in order")
	assert.False(t, got.IsDraft)
	assert.Less(t, got.Size, int64(graph.MaxRequestBytes))
}

// TestAnAttachmentOverTheSessionLimitIsTooLarge: Graph cannot take an
// attachment over 150 MB: the conversion says so (the copy's bad item).
func TestAnAttachmentOverTheSessionLimitIsTooLarge(t *testing.T) {
	raw, _, _ := mimeMessage(10, 2)
	raw = bytes.Replace(raw, []byte("--outer--"), []byte(""), 1)
	big := make([]byte, graph.MaxAttachmentBytes+3)
	var w bytes.Buffer
	w.Write(raw)
	w.WriteString("--outer\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"huge.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.NewEncoder(base64.StdEncoding, &w)
	_, _ = enc.Write(big)
	_ = enc.Close()
	w.WriteString("\r\n--outer--\r\n")
	_, err := graph.FromMIME(w.Bytes(), nil)
	assert.True(t, errors.Is(err, graph.ErrTooLarge), "%v", err)
}
