package imapcopy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	imapv1utf7 "github.com/emersion/go-imap/utf7"
	"github.com/emersion/go-imap/v2"
)

// appender writes to the target with non-synchronising literals
// (LITERAL+, RFC 7888), with batches in flight while the next is fetched:
// a batch is one MULTIAPPEND (RFC 3502) where the server offers it, else
// one APPEND per message, all sent without waiting for any answer (a
// pipeline). go-imap v2 has neither: it waits for the server's
// continuation before every literal over 4 KiB and sends one message per
// APPEND, a round trip per message. Against Dovecot, a MULTIAPPEND of 50
// messages costs the server about a third of what 50 pipelined APPENDs do
// (each APPEND is its own mailbox transaction), and the target is where a
// copy's time goes; Exchange Online offers LITERAL+ but not MULTIAPPEND,
// where the pipeline saves the round trips. A server without LITERAL+ gets
// go-imap's APPEND instead.
//
// The appender speaks only what it needs: greeting, STARTTLS, CAPABILITY,
// login, APPEND and LOGOUT. Everything else goes through go-imap.
type appender struct {
	conn  net.Conn
	trips *tripwire // told of a literal over its bound
	br    *bufio.Reader
	bw    *bufio.Writer
	caps  map[string]bool
	multi bool // batches go as one MULTIAPPEND
	stop  func() bool

	wmu  sync.Mutex // serialises commands on the wire
	mu   sync.Mutex // guards tag, waiting and failed
	tag  int
	wait map[string]chan error
	fail error
}

// errNoLiteralPlus says the server lacks LITERAL+, so nothing can be sent
// without waiting for it.
var errNoLiteralPlus = errors.New("the target offers no LITERAL+")

// dialAppender connects and logs in; it returns errNoLiteralPlus (after
// closing) when the server cannot take literals unasked. With noMulti it
// sends single APPENDs even to a server that offers MULTIAPPEND.
func dialAppender(ctx context.Context, ep Endpoint, cr Credentials, noMulti bool) (*appender, error) {
	d := &net.Dialer{Timeout: ep.DialTimeout}
	raw, err := d.DialContext(ctx, "tcp", ep.Addr())
	if err != nil {
		return nil, err
	}
	a := &appender{conn: raw, trips: tripwireOf(ctx), wait: map[string]chan error{}}
	a.stop = context.AfterFunc(ctx, func() { a.conn.Close() })
	fail := func(err error) (*appender, error) {
		a.stop()
		a.conn.Close()
		return nil, err
	}
	tlsConf := ep.tlsConfig()
	if ep.Security == SecurityTLS {
		tc := tls.Client(raw, tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail(err)
		}
		a.conn = tc
	}
	a.br, a.bw = bufio.NewReaderSize(a.conn, 64<<10), bufio.NewWriterSize(a.conn, 256<<10)
	greeting, err := a.readLine()
	if err != nil {
		return fail(err)
	}
	if !strings.HasPrefix(greeting, "* OK") {
		return fail(fmt.Errorf("unexpected greeting %q", firstWords(greeting)))
	}
	if ep.Security == SecurityStartTLS {
		if err := a.awaitTaggedCmd("STARTTLS", nil); err != nil {
			return fail(err)
		}
		tc := tls.Client(a.conn, tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail(err)
		}
		a.conn = tc
		a.br, a.bw = bufio.NewReaderSize(a.conn, 64<<10), bufio.NewWriterSize(a.conn, 256<<10)
	}
	if err := a.capability(); err != nil {
		return fail(err)
	}
	if err := a.login(cr); err != nil {
		return fail(err)
	}
	if err := a.capability(); err != nil {
		return fail(err)
	}
	if !a.caps["LITERAL+"] {
		_ = a.awaitTaggedCmd("LOGOUT", nil)
		return fail(errNoLiteralPlus)
	}
	a.multi = a.caps["MULTIAPPEND"] && !noMulti
	go a.readLoop()
	return a, nil
}

// maxLine bounds one response line, the literals it carries not counted:
// the longest a server has reason to send (CAPABILITY, a tagged answer) is
// a few hundred bytes. A longer one is refused, so that a hostile or broken
// server cannot make the appender buffer without end.
const maxLine = 64 << 10

// errLineTooLong refuses a response line over maxLine.
var errLineTooLong = fmt.Errorf("the target sent a response line longer than %d bytes: refused", maxLine)

// readLine reads one response line, with any literals it carries inlined
// as "{n}" markers (their bytes are skipped: nothing we read needs them).
// The line, its pieces between literals together, is at most maxLine bytes.
func (a *appender) readLine() (string, error) {
	var line []byte
	for {
		start := len(line)
		for {
			// ReadSlice hands back at most the reader's buffer at a time,
			// so nothing grows past maxLine before it is refused.
			chunk, err := a.br.ReadSlice('\n')
			if len(line)+len(chunk) > maxLine {
				return "", errLineTooLong
			}
			line = append(line, chunk...)
			if err == nil {
				break
			}
			if !errors.Is(err, bufio.ErrBufferFull) {
				return "", err
			}
		}
		line = bytes.TrimRight(line, "\r\n")
		if n, ok := literalSize(string(line[min(start, len(line)):])); ok {
			// Skipped, not kept; but a server that announces more than
			// any answer to an APPEND holds would keep us reading.
			if n > maxOtherLiteral {
				tl := &AnswerTooLargeError{Side: Target, What: "a literal", Size: n, Limit: maxOtherLiteral}
				a.trips.trip(tl)
				return "", tl
			}
			if _, err := io.CopyN(io.Discard, a.br, n); err != nil {
				return "", err
			}
			continue
		}
		return string(line), nil
	}
}

func literalSize(line string) (int64, bool) {
	if !strings.HasSuffix(line, "}") {
		return 0, false
	}
	open := strings.LastIndexByte(line, '{')
	if open < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSuffix(line[open+1:len(line)-1], "+"), 10, 64)
	return n, err == nil
}

// awaitTagged reads until the tagged answer, passing untagged lines and
// continuation requests to onLine.
func (a *appender) awaitTagged(tag string, onLine func(string) error) error {
	for {
		line, err := a.readLine()
		if err != nil {
			return err
		}
		if rest, ok := strings.CutPrefix(line, tag+" "); ok {
			return statusError(rest)
		}
		if onLine != nil {
			if err := onLine(line); err != nil {
				return err
			}
		}
	}
}

func (a *appender) capability() error {
	return a.awaitTaggedCmd("CAPABILITY", func(line string) error {
		if rest, ok := strings.CutPrefix(line, "* CAPABILITY "); ok {
			a.caps = map[string]bool{}
			for _, c := range strings.Fields(rest) {
				a.caps[strings.ToUpper(c)] = true
			}
		}
		return nil
	})
}

// awaitTaggedCmd runs a command before the read loop starts and waits for
// its end, passing other lines to onLine.
func (a *appender) awaitTaggedCmd(cmd string, onLine func(string) error) error {
	a.tag++
	tag := "P" + strconv.Itoa(a.tag)
	if _, err := a.bw.WriteString(tag + " " + cmd + "\r\n"); err != nil {
		return err
	}
	if err := a.bw.Flush(); err != nil {
		return err
	}
	return a.awaitTagged(tag, onLine)
}

// login logs in as go-imap would for the same credentials.
func (a *appender) login(cr Credentials) error {
	var mech, ir string
	switch cr.Mechanism {
	case MechLogin:
		user, err := quoted(cr.Username)
		if err != nil {
			return err
		}
		pass, err := quoted(cr.Password)
		if err != nil {
			return err
		}
		return a.awaitTaggedCmd("LOGIN "+user+" "+pass, nil)
	case MechXOAuth2:
		mech, ir = "XOAUTH2", "user="+cr.Username+"\x01auth=Bearer "+cr.Token+"\x01\x01"
	default:
		if !a.caps["AUTH=PLAIN"] {
			return a.login(Credentials{Mechanism: MechLogin, Username: cr.Username, Password: cr.Password})
		}
		mech, ir = "PLAIN", "\x00"+cr.Username+"\x00"+cr.Password
	}
	enc := base64.StdEncoding.EncodeToString([]byte(ir))
	cmd := "AUTHENTICATE " + mech
	if a.caps["SASL-IR"] {
		cmd += " " + enc
	}
	sent := a.caps["SASL-IR"]
	return a.awaitTaggedCmd(cmd, func(line string) error {
		if !strings.HasPrefix(line, "+") {
			return nil
		}
		// A continuation: the initial response if not yet sent, else an
		// empty answer to an error challenge, after which the server says NO.
		reply := ""
		if !sent {
			reply, sent = enc, true
		}
		if _, err := a.bw.WriteString(reply + "\r\n"); err != nil {
			return err
		}
		return a.bw.Flush()
	})
}

// quoted is an IMAP quoted string; CR and LF cannot be quoted.
func quoted(s string) (string, error) {
	if strings.ContainsAny(s, "\r\n\x00") {
		return "", errors.New("a login name or password holds a line break")
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`, nil
}

// statusError is nil for OK, else an *imap.Error as go-imap makes one, so
// that classify treats both alike.
func statusError(rest string) error {
	typ, text, _ := strings.Cut(rest, " ")
	e := &imap.Error{Type: imap.StatusResponseType(strings.ToUpper(typ))}
	if strings.HasPrefix(text, "[") {
		if end := strings.IndexByte(text, ']'); end > 0 {
			code, _, _ := strings.Cut(text[1:end], " ")
			e.Code = imap.ResponseCode(strings.ToUpper(code))
			text = strings.TrimSpace(text[end+1:])
		}
	}
	e.Text = text
	if e.Type == imap.StatusResponseTypeOK {
		return nil
	}
	return e
}

func firstWords(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// readLoop delivers tagged answers to the commands waiting for them.
func (a *appender) readLoop() {
	for {
		line, err := a.readLine()
		if err != nil {
			a.mu.Lock()
			a.fail = err
			for tag, ch := range a.wait {
				ch <- err
				delete(a.wait, tag)
			}
			a.mu.Unlock()
			return
		}
		tag, rest, ok := strings.Cut(line, " ")
		if !ok || tag == "*" || tag == "+" {
			continue
		}
		a.mu.Lock()
		ch := a.wait[tag]
		delete(a.wait, tag)
		a.mu.Unlock()
		if ch != nil {
			ch <- statusError(rest)
		}
	}
}

// item is one message for an APPEND.
type item struct {
	m    meta
	body []byte
}

// send writes items to mailbox, as one MULTIAPPEND or as one APPEND per
// item, and returns where the answers will arrive: one for the
// MULTIAPPEND, else one per item. Nothing waits for the server. The bodies
// may be reused once send returns.
func (a *appender) send(mailbox string, items []item) ([]<-chan error, error) {
	name, err := imapv1utf7.Encoding.NewEncoder().String(mailbox)
	if err != nil {
		return nil, err
	}
	qname, err := quoted(name)
	if err != nil {
		return nil, err
	}
	groups := [][]item{items}
	if !a.multi {
		groups = make([][]item, len(items))
		for i := range items {
			groups[i] = items[i : i+1]
		}
	}
	a.mu.Lock()
	if a.fail != nil {
		a.mu.Unlock()
		return nil, a.fail
	}
	tags := make([]string, len(groups))
	answers := make([]<-chan error, len(groups))
	for i := range groups {
		a.tag++
		tags[i] = "A" + strconv.Itoa(a.tag)
		ch := make(chan error, 1)
		a.wait[tags[i]], answers[i] = ch, ch
	}
	a.mu.Unlock()

	a.wmu.Lock()
	defer a.wmu.Unlock()
	for i, g := range groups {
		a.writeAppend(tags[i], qname, g)
	}
	if err := a.bw.Flush(); err != nil {
		a.mu.Lock()
		for _, tag := range tags {
			delete(a.wait, tag)
		}
		a.mu.Unlock()
		return nil, err
	}
	return answers, nil
}

// writeAppend buffers one APPEND command of one or more messages, each as
// a non-synchronising literal.
func (a *appender) writeAppend(tag, qname string, items []item) {
	a.bw.WriteString(tag + " APPEND " + qname)
	for _, it := range items {
		a.bw.WriteString(" (")
		for i, f := range appendFlags(it.m.flags) {
			if i > 0 {
				a.bw.WriteByte(' ')
			}
			a.bw.WriteString(string(f))
		}
		a.bw.WriteString(") \"")
		a.bw.WriteString(it.m.date.Format(dateTimeLayout))
		a.bw.WriteString("\" {")
		a.bw.WriteString(strconv.Itoa(len(it.body)))
		a.bw.WriteString("+}\r\n")
		a.bw.Write(it.body)
	}
	a.bw.WriteString("\r\n")
}

// dateTimeLayout is IMAP's date-time (RFC 3501 section 9).
const dateTimeLayout = "_2-Jan-2006 15:04:05 -0700"

func (a *appender) close() {
	if a == nil {
		return
	}
	a.stop()
	a.wmu.Lock()
	a.bw.WriteString("Z LOGOUT\r\n")
	_ = a.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_ = a.bw.Flush()
	a.wmu.Unlock()
	a.conn.Close()
}
