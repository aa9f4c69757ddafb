package imapcopy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scriptConn is a net.Conn whose reads hand over data in pieces of step
// bytes (1: every announcement split across reads).
type scriptConn struct {
	net.Conn
	data []byte
	step int
}

func (s *scriptConn) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), s.step, len(s.data))
	copy(p, s.data[:n])
	s.data = s.data[n:]
	return n, nil
}

func (s *scriptConn) Close() error { return nil }

// readThrough reads an answer through a boundedConn whose message bodies
// may be up to maxBody bytes, in pieces of step bytes.
func readThrough(answer string, maxBody int64, step int) ([]byte, error) {
	t := &tripwire{}
	b := newBoundedConn(&scriptConn{data: []byte(answer), step: step}, Source, maxBody, t)
	out, err := io.ReadAll(b)
	if err != nil && t.tripped() == nil {
		return out, errors.New("the tripwire was not told")
	}
	return out, err
}

func TestBoundedConnFindsEveryLiteral(t *testing.T) {
	body := strings.Repeat("x", 1000)
	ok := []string{
		"* 1 FETCH (UID 5 BODY[] {1000}\r\n" + body + ")\r\n",
		"* 1 FETCH (UID 5 BODY[]<0> {1000}\r\n" + body + ")\r\n",
		"* 1 FETCH (UID 5 BINARY[1] ~{1000}\r\n" + body + ")\r\n",
		"* 1 FETCH (UID 5 RFC822 {1000}\r\n" + body + ")\r\n",
		"* 1 FETCH (UID 5 BODY[HEADER.FIELDS (MESSAGE-ID)] {1000}\r\n" + body + ")\r\n",
		// A body literal holding what looks like an announcement is not one.
		"* 1 FETCH (UID 5 BODY[] {30}\r\nSubject: {99999999999999}\r\n\r\n)\r\nT1 OK done\r\n",
		"* LIST () \"/\" {5}\r\nINBOX\r\n* STATUS {5}\r\nINBOX (MESSAGES 1)\r\nT2 OK done\r\n",
		// A status line ending in what looks like an announcement.
		"* OK [ALERT] read this {5}\r\n* LIST () \"/\" {5}\r\nINBOX\r\n",
		// Two answers, the second's literal within the small bound.
		"* 1 FETCH (UID 5 BODY[] {3}\r\nabc)\r\n* LIST () \"/\" {3}\r\nabc\r\n",
	}
	for _, a := range ok {
		for _, step := range []int{1, 7, 4096} {
			out, err := readThrough(a, 1000, step)
			require.NoError(t, err, "%q in steps of %d", a, step)
			assert.Equal(t, a, string(out))
		}
	}
}

func TestBoundedConnRefusesALiteralOverItsBound(t *testing.T) {
	for _, c := range []struct {
		answer, what string
		size, limit  int64
	}{
		{"* 1 FETCH (UID 5 BODY[] {1001}\r\n", "a message body literal", 1001, 1000},
		{"* 1 FETCH (UID 5 BINARY[] ~{10737418240}\r\n", "a message body literal", 10737418240, 1000},
		{"* LIST () \"/\" {10737418240}\r\n", "a literal", 10737418240, maxOtherLiteral},
		{"* LIST () \"/\" {65537}\r\n", "a literal", 65537, maxOtherLiteral},
		// A body's bound does not hold for a string inside a FETCH answer
		// (an envelope's subject).
		{"* 1 FETCH (UID 5 ENVELOPE (\"date\" {70000}\r\n", "a literal", 70000, maxOtherLiteral},
		{"* STATUS {99999999999999999999999}\r\n", "a literal", 1 << 62, maxOtherLiteral},
		// Leading zeros push the '{' out of the parser's sight; go-imap
		// would still read the size.
		{"* LIST () \"/\" {" + strings.Repeat("0", 70) + "10737418240}\r\n", "a literal", 1 << 62, maxOtherLiteral},
		// A status line's "{N}" is text, not a literal: what follows it is
		// parsed, and its announcement found.
		{"* OK hello {65536}\r\n* LIST () \"/\" {10737418240}\r\n", "a literal", 10737418240, maxOtherLiteral},
		{"T1 NO nope {65536}\r\n* LIST () \"/\" {70000}\r\n", "a literal", 70000, maxOtherLiteral},
		// A literal in the second answer, after a body literal in the first.
		{"* 1 FETCH (UID 5 BODY[] {3}\r\nabc)\r\n* LIST () \"/\" {70000}\r\n", "a literal", 70000, maxOtherLiteral},
	} {
		for _, step := range []int{1, 5, 4096} {
			_, err := readThrough(c.answer+strings.Repeat("a", 8192), 1000, step)
			var tl *AnswerTooLargeError
			require.ErrorAs(t, err, &tl, "%q in steps of %d", c.answer, step)
			assert.Equal(t, AnswerTooLargeError{Side: Source, What: c.what, Size: c.size, Limit: c.limit}, *tl)
		}
	}
}

func TestBoundedConnRefusesAnEndlessLine(t *testing.T) {
	t.Parallel()
	line := "* OK " + strings.Repeat("a", maxAnswerLine)
	b := newBoundedConn(&scriptConn{data: []byte(line), step: 64 << 10}, Target, 1000, &tripwire{})
	n, err := io.Copy(io.Discard, b)
	var tl *AnswerTooLargeError
	require.ErrorAs(t, err, &tl)
	assert.Equal(t, "a line", tl.What)
	assert.LessOrEqual(t, n, int64(maxAnswerLine))
	assert.Contains(t, err.Error(), "the target sent a line of 16777217 bytes, over the bound of 16777216")
}

func TestBoundedConnHandsOverItsPrefixFirst(t *testing.T) {
	b := newBoundedConn(&scriptConn{data: []byte("T1 OK done\r\n"), step: 3}, Source, 1000, nil)
	b.prefix = []byte("* OK TLS negotiated\r\n")
	out, err := io.ReadAll(b)
	require.NoError(t, err)
	assert.True(t, bytes.Equal([]byte("* OK TLS negotiated\r\nT1 OK done\r\n"), out))
}
