package main

import (
	"bufio"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// probe is a bare IMAP connection for reading what a server advertises
// and timing round trips. It sends only commands whose answers carry no
// literals (CAPABILITY, LOGIN, NOOP).
type probe struct {
	addr string
	conn net.Conn
	br   *bufio.Reader
	tag  int
}

// dialProbe connects to addr and reads the greeting.
func dialProbe(addr string) (*probe, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	// No probe has reason to take this long, even through a slow proxy.
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		conn.Close()
		return nil, err
	}
	p := &probe{addr: addr, conn: conn, br: bufio.NewReader(conn)}
	greeting, err := p.br.ReadString('\n')
	if err != nil || !strings.HasPrefix(greeting, "* OK") {
		conn.Close()
		return nil, fmt.Errorf("probe: %s greeted with %q (%v)", addr, strings.TrimSpace(greeting), err)
	}
	return p, nil
}

func (p *probe) Close() error { return p.conn.Close() }

// run sends one command and returns the untagged lines that came before
// its tagged OK. verb names the command in errors (LOGIN carries the
// password, which is never repeated).
func (p *probe) run(verb, command string) ([]string, error) {
	p.tag++
	tag := fmt.Sprintf("p%d", p.tag)
	if _, err := fmt.Fprintf(p.conn, "%s %s\r\n", tag, command); err != nil {
		return nil, fmt.Errorf("probe: %s to %s: %w", verb, p.addr, err)
	}
	var untagged []string
	for {
		line, err := p.br.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("probe: %s to %s: %w", verb, p.addr, err)
		}
		line = strings.TrimRight(line, "\r\n")
		if rest, ok := strings.CutPrefix(line, tag+" "); ok {
			if !strings.HasPrefix(rest, "OK") {
				return nil, fmt.Errorf("probe: %s refused by %s: %s", verb, p.addr, rest)
			}
			return untagged, nil
		}
		untagged = append(untagged, line)
	}
}

// login logs in with LOGIN (names and passwords here need no escaping).
func (p *probe) login(user, pass string) error {
	_, err := p.run("LOGIN", fmt.Sprintf("LOGIN %q %q", user, pass))
	return err
}

// capabilities asks for the server's capabilities, in the order it lists
// them.
func (p *probe) capabilities() ([]string, error) {
	lines, err := p.run("CAPABILITY", "CAPABILITY")
	if err != nil {
		return nil, err
	}
	for _, line := range lines {
		if rest, ok := strings.CutPrefix(line, "* CAPABILITY "); ok {
			return strings.Fields(rest), nil
		}
	}
	return nil, fmt.Errorf("probe: %s answered CAPABILITY without a capability list", p.addr)
}

// noopTimes times n NOOPs, one after the other.
func (p *probe) noopTimes(n int) ([]time.Duration, error) {
	var times []time.Duration
	for range n {
		t0 := time.Now()
		if _, err := p.run("NOOP", "NOOP"); err != nil {
			return nil, err
		}
		times = append(times, time.Since(t0))
	}
	return times, nil
}

// advertised is what a server lists before and after login.
type advertised struct {
	before, after []string
}

// readAdvertised connects to addr, and lists the capabilities before and
// after logging in as the benchmark's user.
func readAdvertised(addr string) (advertised, error) {
	p, err := dialProbe(addr)
	if err != nil {
		return advertised{}, err
	}
	defer p.Close()
	var a advertised
	if a.before, err = p.capabilities(); err != nil {
		return advertised{}, err
	}
	if err := p.login(user, password); err != nil {
		return advertised{}, err
	}
	if a.after, err = p.capabilities(); err != nil {
		return advertised{}, err
	}
	return a, nil
}

// has says whether caps lists name (capability names are case-blind).
func has(caps []string, name string) bool {
	return slices.ContainsFunc(caps, func(c string) bool { return strings.EqualFold(c, name) })
}

// without is caps less name, in the same order.
func without(caps []string, name string) []string {
	return slices.DeleteFunc(slices.Clone(caps), func(c string) bool { return strings.EqualFold(c, name) })
}
