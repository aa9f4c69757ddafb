package smtptest

import (
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Parsed is a notice (multipart/alternative, text and HTML) read back with
// the standard library, as a mail client would.
type Parsed struct {
	Header mail.Header
	// RawMessageID is the Message-ID header line exactly as written.
	RawMessageID string
	Text, HTML   string
}

// ParseMessage reads a notice's raw RFC 5322 bytes, whether received by
// the relay or written to a file.
func ParseMessage(t testing.TB, raw []byte) Parsed {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(string(raw)))
	require.NoError(t, err)
	p := Parsed{Header: m.Header}
	for line := range strings.SplitSeq(string(raw), "\r\n") {
		if strings.HasPrefix(line, "Message-ID:") {
			p.RawMessageID = line
		}
	}
	mediaType, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, "multipart/alternative", mediaType)
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		// NextPart decodes quoted-printable by itself.
		body, err := io.ReadAll(part)
		require.NoError(t, err)
		switch ct := part.Header.Get("Content-Type"); {
		case strings.HasPrefix(ct, "text/plain"):
			p.Text = string(body)
		case strings.HasPrefix(ct, "text/html"):
			p.HTML = string(body)
		default:
			t.Fatalf("unexpected part %q", ct)
		}
	}
	return p
}

// ParseFile is ParseMessage of a message file.
func ParseFile(t testing.TB, path string) Parsed {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	return ParseMessage(t, raw)
}

// FileNames lists the names in a directory, to check what a notifier left
// there (and that no temporary file was left behind).
func FileNames(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
