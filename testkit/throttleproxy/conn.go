package throttleproxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// bufSize is each direction's read and write buffer.
const bufSize = 64 << 10

// maxLoginLiteral bounds a user name sent as a literal that the proxy reads
// to learn the user; a longer one passes through unread.
const maxLoginLiteral = 256

// conn is one client connection and the server connection made for it.
// The client loop reads commands and writes to the server; the server loop
// copies responses to the client. Both write to the client, a whole
// response or answer at a time under wmu.
type conn struct {
	p              *Proxy
	client, server net.Conn

	cr *bufio.Reader // from the client; flushes sw before it waits
	sw *bufio.Writer // to the server; the client loop alone writes it
	sr *bufio.Reader // from the server

	wmu sync.Mutex    // held while a response or answer goes to the client
	cw  *bufio.Writer // to the client

	// The client loop's own.
	refusals int    // APPENDs refused since the last one let through
	user     string // the login name, once seen
	saslMech string // AUTHENTICATE without an initial response: the next line is it

	closeOnce sync.Once

	// Injected faults (faults.go): hooks on the server's tagged answers,
	// by tag, and the fault holding an APPEND of this connection.
	hmu     sync.Mutex
	hooks   map[string]func() (bool, error)
	hooked  atomic.Bool
	heldFor *fault
}

func newConn(p *Proxy, client, server net.Conn) *conn {
	c := &conn{p: p, client: client, server: server}
	c.sw = bufio.NewWriterSize(server, bufSize)
	c.cr = bufio.NewReaderSize(flushingReader{r: client, w: c.sw}, bufSize)
	c.sr = bufio.NewReaderSize(server, bufSize)
	c.cw = bufio.NewWriterSize(client, bufSize)
	return c
}

// flushingReader sends what is waiting for the server before it waits for
// the client, so that nothing the server needs is held back while the
// proxy waits, and pipelined commands still go out in few writes.
//
// Never copy into w with its ReadFrom (io.Copy to a *bufio.Writer does):
// the flush would run inside it. copyN below hides ReadFrom.
type flushingReader struct {
	r io.Reader
	w *bufio.Writer
}

func (f flushingReader) Read(b []byte) (int, error) {
	if f.w.Buffered() > 0 {
		if err := f.w.Flush(); err != nil {
			return 0, err
		}
	}
	return f.r.Read(b)
}

// writerOnly hides a writer's ReadFrom.
type writerOnly struct{ io.Writer }

// copyN copies n bytes with plain reads and writes.
func copyN(w io.Writer, r io.Reader, n int64) error {
	_, err := io.CopyN(writerOnly{w}, r, n)
	return err
}

// run proxies until both sides are done.
func (c *conn) run() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.serverLoop() // how it ended matters not: the connection is over
		c.closeBoth()
	}()
	err := c.clientLoop()
	if errors.Is(err, errHeld) {
		// The server side waits for the held APPEND; it ends once the
		// server has answered it, or the proxy closes.
		<-done
		c.heldFor.finish()
		return
	}
	if errors.Is(err, io.EOF) && c.closeWriteServer() == nil {
		// The client has said all it will: the server answers what it
		// has, then closes, which ends the server loop.
		<-done
		return
	}
	c.closeBoth()
	<-done
}

func (c *conn) closeWriteServer() error {
	if err := c.sw.Flush(); err != nil {
		return err
	}
	tc, ok := c.server.(*net.TCPConn)
	if !ok {
		return errors.New("the server connection is not TCP")
	}
	return tc.CloseWrite()
}

func (c *conn) closeBoth() {
	c.closeOnce.Do(func() {
		c.client.Close()
		c.server.Close()
	})
}

// serverLoop copies the server's responses to the client, each whole
// under wmu.
func (c *conn) serverLoop() error {
	for {
		// Wait for a response to begin without holding the lock.
		if _, err := c.sr.Peek(1); err != nil {
			return err
		}
		copyIt, herr := true, error(nil)
		if h := c.takeHook(); h != nil {
			copyIt, herr = h()
		}
		c.wmu.Lock()
		var err error
		if copyIt {
			err = c.copyResponse(c.cw)
			if err == nil && c.sr.Buffered() == 0 {
				err = c.cw.Flush()
			}
		} else {
			err = c.copyResponse(io.Discard)
		}
		c.wmu.Unlock()
		if herr != nil {
			return herr
		}
		if err != nil {
			return err
		}
	}
}

// copyResponse copies one response: a line, and if it ends in a literal,
// the literal and the line that goes on after it, and so on.
func (c *conn) copyResponse(w io.Writer) error {
	for {
		tail, err := copyLine(w, c.sr)
		if err != nil {
			return err
		}
		lit, ok := literalAt(tail)
		if !ok {
			return nil
		}
		if err := copyN(w, c.sr, lit.size); err != nil {
			return err
		}
	}
}

// clientLoop reads the client's commands until it stops or the proxy
// drops it.
func (c *conn) clientLoop() error {
	for {
		line, err := readLine(c.cr, maxLine)
		if err == nil {
			err = c.command(line)
		}
		if errors.Is(err, errLineTooLong) {
			return c.drop(err.Error())
		}
		if err != nil {
			return err
		}
	}
}

// command handles one command, its first line read.
func (c *conn) command(line []byte) error {
	if mech := c.saslMech; mech != "" {
		c.saslMech = ""
		if user := saslUser(mech, string(trimEOL(line))); user != "" {
			c.user = user
		}
		return c.stream(line, false)
	}
	cmd := parseCommand(line)
	switch cmd.name {
	case "APPEND":
		return c.append(cmd, line)
	case "STARTTLS", "COMPRESS":
		return c.answer(cmd.tag + " NO " + cmd.name + " is not offered through throttleproxy (plain TCP only)")
	case "LOGIN":
		return c.stream(line, c.noteLogin(cmd.args))
	case "AUTHENTICATE":
		c.noteAuthenticate(cmd.args)
	}
	c.watchRelease(cmd.tag, string(trimEOL(line)))
	return c.stream(line, false)
}

// noteLogin learns the user from LOGIN's arguments, and reports whether
// the name is in the literal that follows instead.
func (c *conn) noteLogin(args string) (userInLiteral bool) {
	user, inLiteral := loginUser(args)
	if user != "" {
		c.user = user
	}
	return inLiteral
}

// noteAuthenticate learns the user from AUTHENTICATE's initial response,
// or from the next line if the client sends none with the command.
func (c *conn) noteAuthenticate(args string) {
	mech, ir, _ := strings.Cut(args, " ")
	if ir == "" {
		c.saslMech = mech
		return
	}
	if user := saslUser(mech, ir); user != "" {
		c.user = user
	}
}

// stream passes a command on as it comes: each line, and each literal
// after its line (for a synchronising one the client waits for the
// server's "+"). With userInLiteral the first literal, if short, is read
// whole on the way as the login name.
func (c *conn) stream(line []byte, userInLiteral bool) error {
	for {
		if _, err := c.sw.Write(line); err != nil {
			return err
		}
		lit, ok := literalAt(line)
		if !ok {
			return nil
		}
		if userInLiteral && lit.size <= maxLoginLiteral {
			name := make([]byte, lit.size)
			if _, err := io.ReadFull(c.cr, name); err != nil {
				return err
			}
			c.user = string(name)
			if _, err := c.sw.Write(name); err != nil {
				return err
			}
		} else if err := copyN(c.sw, c.cr, lit.size); err != nil {
			return err
		}
		userInLiteral = false
		var err error
		if line, err = readLine(c.cr, maxLine); err != nil {
			return err
		}
	}
}

// appendCmd is an APPEND read whole: its lines, literals made
// non-synchronising, and its literals, in order.
type appendCmd struct {
	parts [][]byte
	size  int64 // lines and literals
	bytes int64 // message literals
	msgs  int
}

// append reads an APPEND whole, answering "+" to its synchronising
// literals itself, then passes it on if the bucket holds its bytes, or
// refuses it.
func (c *conn) append(cmd command, first []byte) error {
	a := appendCmd{size: int64(len(first))}
	nameLiteral := mailboxIsLiteral(cmd)
	line := first
	for {
		lit, ok := literalAt(line)
		if !ok {
			a.parts = append(a.parts, line)
			break
		}
		if a.size+lit.size > c.p.o.MaxCommandBytes {
			return c.tooBig(cmd.tag, lit)
		}
		data, err := c.readLiteral(lit)
		if err != nil {
			return err
		}
		a.parts = append(a.parts, nonSync(line, lit), data)
		a.size += lit.size
		if nameLiteral {
			nameLiteral = false
		} else {
			a.msgs++
			a.bytes += lit.size
		}
		if line, err = readLine(c.cr, maxLine); err != nil {
			return err
		}
		a.size += int64(len(line))
	}
	if wait := c.p.admit(a.bytes, a.msgs, c.user); wait > 0 {
		return c.refuse(cmd.tag, wait)
	}
	c.refusals = 0
	if f := c.p.strikes(); f != nil {
		return c.strike(f, cmd.tag, a.parts)
	}
	return c.pass(a.parts)
}

// readLiteral reads a literal's bytes, first asking for them if the
// client waits to be asked.
func (c *conn) readLiteral(lit literal) ([]byte, error) {
	if lit.sync {
		if err := c.answer("+ go ahead"); err != nil {
			return nil, err
		}
	}
	data := make([]byte, lit.size)
	if _, err := io.ReadFull(c.cr, data); err != nil {
		return nil, err
	}
	return data, nil
}

// tooBig refuses an APPEND over MaxCommandBytes. A client waiting to be
// asked for the literal sends nothing more of the command, so the
// connection goes on; one that sends it unasked is dropped, rather than
// reading and throwing away what it sends.
func (c *conn) tooBig(tag string, lit literal) error {
	c.p.n.appendsTooBig.Add(1)
	text := fmt.Sprintf("[TOOBIG] The command is over throttleproxy's bound of %d bytes", c.p.o.MaxCommandBytes)
	if lit.sync {
		return c.answer(tag + " NO " + text)
	}
	return c.drop("Command too big", tag+" BAD "+text)
}

// refuse answers a throttled APPEND, and drops the connection after
// MaxRefusals in a row.
func (c *conn) refuse(tag string, wait time.Duration) error {
	c.refusals++
	no := tag + " NO " + throttledText(wait, !c.p.o.NoBackoff)
	if limit := c.p.o.MaxRefusals; limit > 0 && c.refusals >= limit {
		return c.drop(fmt.Sprintf("Too many throttled requests (%d in a row)", c.refusals), no)
	}
	return c.answer(no)
}

// drop sends lines and a BYE saying why, then ends the connection. What
// the client loop had passed on still goes to the server first.
func (c *conn) drop(why string, lines ...string) error {
	c.p.n.dropped.Add(1)
	_ = c.sw.Flush() // the connection ends either way
	_ = c.answer(append(lines, "* BYE "+why)...)
	return errDropped
}

// answer sends the proxy's own lines to the client, between the server's
// responses.
func (c *conn) answer(lines ...string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for _, l := range lines {
		if _, err := c.cw.WriteString(l + "\r\n"); err != nil {
			return err
		}
	}
	return c.cw.Flush()
}
