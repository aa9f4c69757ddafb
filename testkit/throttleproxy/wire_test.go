package throttleproxy

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLiteralAt(t *testing.T) {
	cases := map[string]struct {
		line string
		want literal
		ok   bool
	}{
		"synchronising":     {"a APPEND INBOX {12}\r\n", literal{size: 12, sync: true, start: 15, close: 18}, true},
		"non-synchronising": {"a APPEND INBOX {12+}\r\n", literal{size: 12, start: 15, close: 19}, true},
		"literal8":          {"a APPEND INBOX ~{7}\r\n", literal{size: 7, sync: true, start: 15, close: 18}, true},
		"bare LF":           {"x {0}\n", literal{size: 0, sync: true, start: 2, close: 4}, true},
		"no literal":        {"a NOOP\r\n", literal{}, false},
		"quoted brace":      {"a SEARCH SUBJECT \"{5}\"\r\n", literal{}, false},
		"not a number":      {"a X {1a}\r\n", literal{}, false},
		"empty braces":      {"a X {}\r\n", literal{}, false},
		"plus only":         {"a X {+}\r\n", literal{}, false},
		"too many digits":   {"a X {12345678901234567890}\r\n", literal{}, false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, ok := literalAt([]byte(tc.line))
			assert.Equal(t, tc.ok, ok)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestNonSync(t *testing.T) {
	line := []byte("a APPEND INBOX (\\Seen) {12}\r\n")
	lit, ok := literalAt(line)
	require.True(t, ok)
	assert.Equal(t, "a APPEND INBOX (\\Seen) {12+}\r\n", string(nonSync(line, lit)))

	already := []byte(" {3+}\r\n")
	lit, ok = literalAt(already)
	require.True(t, ok)
	assert.Equal(t, string(already), string(nonSync(already, lit)))
}

func TestParseCommand(t *testing.T) {
	assert.Equal(t, command{tag: "a1", name: "APPEND", args: "INBOX {3}"}, parseCommand([]byte("a1 append INBOX {3}\r\n")))
	assert.Equal(t, command{tag: "a2", name: "FETCH", args: "1:* FLAGS"}, parseCommand([]byte("a2 UID fetch 1:* FLAGS\r\n")))
	assert.Equal(t, command{tag: "DONE"}, parseCommand([]byte("DONE\r\n")))
	assert.True(t, mailboxIsLiteral(parseCommand([]byte("a APPEND {5}\r\n"))))
	assert.False(t, mailboxIsLiteral(parseCommand([]byte("a APPEND INBOX {5}\r\n"))))
}

func TestLoginUser(t *testing.T) {
	cases := map[string]struct {
		args, user string
		literal    bool
	}{
		"atom":            {"alice secret", "alice", false},
		"quoted":          {`"al ice" "pw"`, "al ice", false},
		"quoted escapes":  {`"a\"b\\c" pw`, `a"b\c`, false},
		"literal":         {"{5}", "", true},
		"atom, literal":   {"alice {13}", "alice", false},
		"master user":     {"alice*admin secret", "alice*admin", false},
		"unclosed quoted": {`"alice`, "alice", false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			user, lit := loginUser(tc.args)
			assert.Equal(t, tc.user, user)
			assert.Equal(t, tc.literal, lit)
		})
	}
}

func TestSASLUser(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	assert.Equal(t, "alice", saslUser("PLAIN", b64("\x00alice\x00pw")))
	assert.Equal(t, "alice", saslUser("plain", b64("alice\x00admin\x00pw")), "the authorisation identity wins")
	assert.Equal(t, "bob", saslUser("XOAUTH2", b64("user=bob\x01auth=Bearer t\x01\x01")))
	assert.Equal(t, "", saslUser("PLAIN", "not base64!"))
	assert.Equal(t, "", saslUser("PLAIN", b64("no separators")))
	assert.Equal(t, "", saslUser("OAUTHBEARER", b64("n,a=bob,\x01")))
}

func TestReadLine(t *testing.T) {
	r := bufio.NewReaderSize(strings.NewReader("short\r\n"+strings.Repeat("x", 100)+"\r\npartial"), 16)
	line, err := readLine(r, 50)
	require.NoError(t, err)
	assert.Equal(t, "short\r\n", string(line))
	_, err = readLine(r, 50)
	assert.ErrorIs(t, err, errLineTooLong)

	r = bufio.NewReader(strings.NewReader("partial"))
	_, err = readLine(r, 50)
	assert.Error(t, err, "a line cut off by the end of the stream")
}

func TestCopyLineKeepsTail(t *testing.T) {
	long := strings.Repeat("y", 200) + " {123}\r\n"
	r := bufio.NewReaderSize(strings.NewReader(long+"rest"), 16)
	var out bytes.Buffer
	tail, err := copyLine(&out, r)
	require.NoError(t, err)
	assert.Equal(t, long, out.String())
	lit, ok := literalAt(tail)
	require.True(t, ok)
	assert.Equal(t, int64(123), lit.size)
}

func TestCeilMillis(t *testing.T) {
	assert.Equal(t, time.Millisecond, ceilMillis(0))
	assert.Equal(t, time.Millisecond, ceilMillis(time.Microsecond))
	assert.Equal(t, 2*time.Millisecond, ceilMillis(time.Millisecond+time.Nanosecond))
	assert.Equal(t, 5*time.Millisecond, ceilMillis(5*time.Millisecond))
}
