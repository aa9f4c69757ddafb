package throttleproxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// FaultKind is a fault the proxy makes at an APPEND it lets through, the
// way a network, or a server behind a load balancer, can.
type FaultKind int

const (
	// ResetBeforeSend: the APPEND never reaches the server, and both of the
	// connection's sides are reset at once. What the connection passed on
	// before it still goes to the server.
	ResetBeforeSend FaultKind = iota + 1
	// ResetAfterApply: the APPEND reaches the server, which applies it;
	// its answer is thrown away and the client's side reset, so the client
	// never learns that it was applied.
	ResetAfterApply
	// DeliverLate: the APPEND is held by the proxy and the client's side
	// reset; the server's side stays logged in, and the held APPEND goes to
	// the server only once a command of another connection that
	// Fault.After matches has been answered by the server, before that
	// answer reaches its client. So a client that looked at the target
	// after the reset (the next attempt's scan) cannot have seen it, and
	// finds it there before it can do anything else.
	DeliverLate
	// Call: the APPEND passes on as usual, then Fault.Do runs (the
	// connection waits for it): a test restarts the server there, say.
	Call
)

func (k FaultKind) String() string {
	switch k {
	case ResetBeforeSend:
		return "reset before the server reads the APPEND"
	case ResetAfterApply:
		return "reset after the server applied the APPEND, before its answer"
	case DeliverLate:
		return "APPEND held, the client reset, delivered after a later command"
	case Call:
		return "a call at an APPEND"
	}
	return "no fault"
}

// Fault is one fault, armed by Inject.
type Fault struct {
	Kind FaultKind
	// At is which APPEND strikes, counted over every connection from when
	// the fault is armed: 1 is the next one let through. A MULTIAPPEND
	// counts once. 0 is 1.
	At int
	// After, for DeliverLate, matches the first line of the command (tag
	// and all, CRLF trimmed) whose answer releases the held APPEND.
	After func(line string) bool
	// Do, for Call, runs once the APPEND has been passed on.
	Do func()
}

// fault is an armed Fault and how far it has gone.
type fault struct {
	Fault
	left   int           // APPENDs let through before it strikes
	fired  bool          // it has struck (under the proxy's mu)
	struck chan struct{} // closed when it has done all it does
	once   sync.Once
	held   *heldAppend // DeliverLate, once held
}

// heldAppend is an APPEND kept back by DeliverLate.
type heldAppend struct {
	c     *conn
	tag   string
	parts [][]byte
}

func (f *fault) finish() { f.once.Do(func() { close(f.struck) }) }

// errFault ends a connection the proxy reset on purpose.
var errFault = errors.New("throttleproxy reset the connection (an injected fault)")

// Inject arms a fault. The channel is closed once it has struck and done
// all it does (for DeliverLate: once the server has answered the held
// APPEND). Arming another fault replaces one that has not struck; one that
// has struck and holds an APPEND is kept until it is released, and Inject
// panics (a test's mistake), as it does for a DeliverLate without After.
func (p *Proxy) Inject(f Fault) <-chan struct{} {
	if f.Kind == DeliverLate && f.After == nil {
		panic("throttleproxy: a DeliverLate fault needs After, or its APPEND is held for ever")
	}
	ff := &fault{Fault: f, left: max(f.At, 1), struck: make(chan struct{})}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fault != nil && p.fault.fired {
		panic("throttleproxy: a fault still holds an APPEND; wait for it before arming another")
	}
	p.fault = ff
	return ff.struck
}

// strikes counts an APPEND let through against the armed fault, and
// hands the fault back if this is the one it strikes at.
func (p *Proxy) strikes() *fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.fault
	if f == nil || f.fired {
		return nil
	}
	if f.left--; f.left > 0 {
		return nil
	}
	f.fired = true
	if f.Kind != DeliverLate {
		p.fault = nil
	}
	return f
}

// strike makes the fault at an APPEND let through (parts are the APPEND as
// it would go to the server). It returns the error that ends the client
// loop, or nil to go on as usual (the command passed on).
func (c *conn) strike(f *fault, tag string, parts [][]byte) error {
	c.p.n.faults.Add(1)
	switch f.Kind {
	case ResetBeforeSend:
		_ = c.sw.Flush()
		c.reset()
		f.finish()
		return errFault
	case ResetAfterApply:
		c.hook(tag, func() (bool, error) {
			c.reset()
			f.finish()
			return false, errFault
		})
		return c.pass(parts)
	case DeliverLate:
		if err := c.sw.Flush(); err != nil {
			c.p.mu.Lock()
			if c.p.fault == f {
				c.p.fault = nil
			}
			c.p.mu.Unlock()
			f.finish()
			return err
		}
		// What the server still answers on this connection is thrown away:
		// its client is gone.
		c.wmu.Lock()
		c.cw = bufio.NewWriter(io.Discard)
		c.wmu.Unlock()
		c.hook(tag, func() (bool, error) {
			f.finish()
			return false, errFault
		})
		c.p.mu.Lock()
		f.held = &heldAppend{c: c, tag: tag, parts: parts}
		c.p.mu.Unlock()
		c.heldFor = f
		resetConn(c.client)
		return errHeld
	case Call:
		err := c.pass(parts)
		if err == nil {
			err = c.sw.Flush()
		}
		if f.Do != nil {
			f.Do()
		}
		f.finish()
		return err
	}
	return c.pass(parts)
}

// errHeld ends the client loop of a connection whose server side waits for
// a held APPEND.
var errHeld = errors.New("throttleproxy holds an APPEND of this connection")

// watchRelease notes a command whose answer releases a held APPEND.
func (c *conn) watchRelease(tag, line string) {
	c.p.mu.Lock()
	f := c.p.fault
	if f == nil || f.held == nil || f.held.c == c || f.After == nil || !f.After(line) {
		c.p.mu.Unlock()
		return
	}
	c.p.fault = nil // released once
	c.p.mu.Unlock()
	c.hook(tag, func() (bool, error) {
		h := f.held
		for _, part := range h.parts {
			if _, err := h.c.sw.Write(part); err != nil {
				break
			}
		}
		if err := h.c.sw.Flush(); err != nil {
			h.c.closeBoth()
			f.finish()
		}
		// Until the server has answered it (or its connection ended; the
		// bound is a safety net, never met by a server that answers).
		select {
		case <-f.struck:
		case <-time.After(time.Minute):
		}
		return true, nil
	})
}

// hook runs h when the server's tagged answer to tag comes, before it is
// copied to the client: h says whether to copy it, and an error ends the
// connection.
func (c *conn) hook(tag string, h func() (bool, error)) {
	c.hmu.Lock()
	defer c.hmu.Unlock()
	if c.hooks == nil {
		c.hooks = map[string]func() (bool, error){}
	}
	c.hooks[tag] = h
	c.hooked.Store(true)
}

// takeHook finds the hook of a response's tag, if any.
func (c *conn) takeHook() func() (bool, error) {
	if !c.hooked.Load() {
		return nil
	}
	tag := c.responseTag()
	if tag == "" || tag == "*" || tag == "+" {
		return nil
	}
	c.hmu.Lock()
	defer c.hmu.Unlock()
	h := c.hooks[tag]
	delete(c.hooks, tag)
	return h
}

// responseTag peeks at the tag of the response the server is sending: the
// bytes up to the first space, "" if the line ends first.
func (c *conn) responseTag() string {
	for n := 1; n <= 64; n++ {
		b, err := c.sr.Peek(n)
		if err != nil {
			return ""
		}
		switch b[n-1] {
		case ' ':
			return string(b[:n-1])
		case '\n':
			return ""
		}
	}
	return ""
}

// pass sends an APPEND's parts to the server.
func (c *conn) pass(parts [][]byte) error {
	for _, part := range parts {
		if _, err := c.sw.Write(part); err != nil {
			return err
		}
	}
	return nil
}

// reset ends both sides, the client's with a TCP reset.
func (c *conn) reset() {
	resetConn(c.client)
	c.closeBoth()
}

// resetConn closes a connection with a TCP reset rather than an orderly
// close, as a broken path or a restarted balancer does.
func resetConn(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = nc.Close()
}
