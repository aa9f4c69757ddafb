package throttleproxy

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// maxLine bounds one command line from a client, the literals it carries
// not counted. Dovecot's own bound (imap_max_line_length) is 64 KiB, so
// nothing a real server would take is refused here.
const maxLine = 1 << 20

// errLineTooLong refuses a client line over maxLine.
var errLineTooLong = fmt.Errorf("a command line is longer than %d bytes", maxLine)

// readLine reads one line, its ending included, of at most limit bytes.
func readLine(r *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		// ReadSlice hands back at most the reader's buffer at a time, so
		// nothing grows past limit before it is refused.
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > limit {
			return nil, errLineTooLong
		}
		line = append(line, chunk...)
		if err == nil {
			return line, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) && len(line) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// markerTail is enough of a line's end to hold any literal marker
// ("~{" + 19 digits + "+}" + CRLF).
const markerTail = 32

// copyLine copies one line from r to w, a chunk at a time however long it
// is, and returns its last markerTail bytes (enough to see a literal).
func copyLine(w io.Writer, r *bufio.Reader) ([]byte, error) {
	var tail []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if _, werr := w.Write(chunk); werr != nil {
			return nil, werr
		}
		tail = append(tail, chunk...)
		if len(tail) > markerTail {
			tail = append(tail[:0], tail[len(tail)-markerTail:]...)
		}
		if err == nil {
			return tail, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
	}
}

// literal is a literal announced at the end of a line: "{n}" (synchronising:
// the sender waits for a "+" continuation), "{n+}" (non-synchronising,
// LITERAL+), either with a "~" in front for a BINARY literal8.
type literal struct {
	size  int64
	sync  bool
	start int // where the marker begins in the line
	close int // where its "}" is
}

// literalAt finds the literal marker that ends line (its CRLF or LF
// ending allowed), if there is one.
func literalAt(line []byte) (literal, bool) {
	text := trimEOL(line)
	if !bytes.HasSuffix(text, []byte("}")) {
		return literal{}, false
	}
	open := bytes.LastIndexByte(text, '{')
	if open < 0 {
		return literal{}, false
	}
	inner := text[open+1 : len(text)-1]
	sync := !bytes.HasSuffix(inner, []byte("+"))
	inner = bytes.TrimSuffix(inner, []byte("+"))
	if len(inner) == 0 || len(inner) > 19 || bytes.IndexFunc(inner, notDigit) >= 0 {
		return literal{}, false
	}
	n, err := strconv.ParseInt(string(inner), 10, 64)
	if err != nil {
		return literal{}, false
	}
	start := open
	if start > 0 && text[start-1] == '~' {
		start--
	}
	return literal{size: n, sync: sync, start: start, close: len(text) - 1}, true
}

func notDigit(r rune) bool { return r < '0' || r > '9' }

func trimEOL(line []byte) []byte {
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r"))
}

// nonSync is line with its synchronising literal marker "{n}" made "{n+}".
func nonSync(line []byte, lit literal) []byte {
	if !lit.sync {
		return line
	}
	out := make([]byte, 0, len(line)+1)
	out = append(out, line[:lit.close]...)
	out = append(out, '+')
	return append(out, line[lit.close:]...)
}

// command is what the proxy needs of a command's first line.
type command struct {
	tag  string
	name string // upper case; for "UID x", x
	args string // the rest of the line, literal marker included
}

// parseCommand reads the tag and command name of a first line. A line that
// is not a command (a SASL response, IDLE's DONE) gives an empty name.
func parseCommand(line []byte) command {
	text := string(trimEOL(line))
	tag, rest, _ := strings.Cut(text, " ")
	name, args, _ := strings.Cut(rest, " ")
	name = strings.ToUpper(name)
	if name == "UID" {
		name, args, _ = strings.Cut(args, " ")
		name = strings.ToUpper(name)
	}
	return command{tag: tag, name: name, args: args}
}

// mailboxIsLiteral reports whether an APPEND's first line ends at its
// mailbox name, given as a literal ("tag APPEND {5}"): that literal is the
// name, not a message.
func mailboxIsLiteral(cmd command) bool {
	fields := strings.Fields(cmd.args)
	return len(fields) == 1 && strings.HasPrefix(fields[0], "{")
}

// loginUser is the user a LOGIN's arguments name: an atom or a quoted
// string. A user given as a literal has literal set instead, and the
// caller reads the name from the literal's bytes.
func loginUser(args string) (user string, literal bool) {
	switch {
	case strings.HasPrefix(args, "{"):
		return "", true
	case strings.HasPrefix(args, `"`):
		return unquote(args[1:]), false
	default:
		user, _, _ = strings.Cut(args, " ")
		return user, false
	}
}

// unquote reads a quoted string's body up to its closing quote.
func unquote(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case '"':
			return b.String()
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// saslUser is the user in a SASL initial response (base64) for PLAIN
// (authorisation identity if given, else authentication identity) or
// XOAUTH2 ("user=..."); "" if the mechanism is another or it does not
// decode.
func saslUser(mech, b64 string) string {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		return ""
	}
	switch strings.ToUpper(mech) {
	case "PLAIN":
		parts := strings.Split(string(raw), "\x00")
		if len(parts) != 3 {
			return ""
		}
		if parts[0] != "" {
			return parts[0]
		}
		return parts[1]
	case "XOAUTH2":
		for _, field := range strings.Split(string(raw), "\x01") {
			if user, ok := strings.CutPrefix(field, "user="); ok {
				return user
			}
		}
	}
	return ""
}
