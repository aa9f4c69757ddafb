package route

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"mailwave/contract"
	"mailwave/internal/atomicfile"
	"mailwave/internal/flock"
	"mailwave/mail/port"
)

// DefaultCommandTimeout bounds the command when
// TransportMapOptions.CommandTimeout is zero.
const DefaultCommandTimeout = 30 * time.Second

// newMapPerm is the mode of a transport map Cutover creates: the owner
// writes, the group (Postfix's tools) reads, others nothing, since the map
// lists addresses. An existing map keeps its own mode.
const newMapPerm fs.FileMode = 0o640

// maxStderr is how much of the command's stderr is kept; only the first
// line is ever quoted.
const maxStderr = 4 << 10

// TransportMapOptions configures a TransportMap.
type TransportMapOptions struct {
	// Path is the transport map, e.g. /etc/postfix/transport. Its directory
	// must exist; the file need not (nothing is cut over yet), and is then
	// created with mode 0640. An existing file keeps its mode.
	Path string
	// NextHop is the target's next hop, e.g. "smtp:[outlook.example]:25".
	NextHop string
	// Command, if set, is run after each rewrite, e.g.
	// ["postmap", "/etc/postfix/transport"]. The map's path is not appended.
	Command []string
	// CommandTimeout bounds each run of Command; DefaultCommandTimeout if
	// zero.
	CommandTimeout time.Duration
}

// TransportMap is an port.Router over a Postfix style transport map:
// one "address nexthop" line per mailbox. A mailbox routes to the target
// when its address has a line with the configured next hop.
//
// Cutovers are serialised within the process and, through an exclusive
// flock on <Path>.lock, across processes sharing the file. The file is
// replaced atomically, so a reader (Postfix, postmap, Route) sees either
// the old map or the new one, never a half-written one.
//
// While Command has not yet succeeded after a rewrite, a marker
// <Path>.pending exists; Route then reports the source for every mailbox,
// and the next Cutover runs the command again even though the line is in
// place. Without that, a retry after a failed postmap would find the line,
// call the cutover done, and leave the live map stale.
type TransportMap struct {
	path    string
	lock    string
	pending string
	nextHop string
	command []string
	bin     string // Command[0] as found on PATH
	timeout time.Duration
}

var _ port.Router = (*TransportMap)(nil)

// NewTransportMap checks the options.
func NewTransportMap(o TransportMapOptions) (*TransportMap, error) {
	if o.Path == "" {
		return nil, errors.New("route: TransportMapOptions.Path is required")
	}
	path, err := filepath.Abs(o.Path)
	if err != nil {
		return nil, fmt.Errorf("route: TransportMapOptions.Path: %w", err)
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("route: TransportMapOptions.Path: directory: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("route: TransportMapOptions.Path: %s is not a directory", filepath.Dir(path))
	}
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("route: TransportMapOptions.Path: %s is not a regular file", path)
	}
	if o.NextHop == "" {
		return nil, errors.New("route: TransportMapOptions.NextHop is required")
	}
	if strings.IndexFunc(o.NextHop, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return nil, fmt.Errorf("route: TransportMapOptions.NextHop %q must not contain whitespace", o.NextHop)
	}
	if o.CommandTimeout < 0 {
		return nil, errors.New("route: TransportMapOptions.CommandTimeout must not be negative")
	}
	if o.CommandTimeout == 0 {
		o.CommandTimeout = DefaultCommandTimeout
	}
	t := &TransportMap{
		path:    path,
		lock:    path + ".lock",
		pending: path + ".pending",
		nextHop: o.NextHop,
		timeout: o.CommandTimeout,
	}
	if len(o.Command) > 0 {
		if o.Command[0] == "" {
			return nil, errors.New("route: TransportMapOptions.Command[0] is empty")
		}
		if t.bin, err = exec.LookPath(o.Command[0]); err != nil {
			return nil, fmt.Errorf("route: TransportMapOptions.Command: %w", err)
		}
		t.command = append([]string(nil), o.Command...)
	}
	return t, nil
}

// Route reports the target when the mailbox's address has a line with the
// next hop and no command is pending. A missing file means nothing is cut
// over. It takes no lock: the file is only ever replaced by a rename.
func (t *TransportMap) Route(ctx context.Context, m contract.MailboxRef) (port.Route, error) {
	addr, err := mapKey(m)
	if err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	content, _, err := t.read()
	if err != nil {
		return "", fmt.Errorf("transport map: route of mailbox %s: %w", m.Key, err)
	}
	e, ok := find(splitLines(content), addr)
	if !ok || e.value != t.nextHop {
		return port.RouteSource, nil
	}
	pending, err := exists(t.pending)
	if err != nil {
		return "", fmt.Errorf("transport map: route of mailbox %s: %w", m.Key, err)
	}
	if pending {
		return port.RouteSource, nil
	}
	return port.RouteTarget, nil
}

// Cutover gives the mailbox's address a line with the next hop, replacing a
// line with another next hop or appending one, then runs the command. If
// the line is already there and no command is pending it changes nothing.
// A failed command is a retryable error; the retry runs it again.
func (t *TransportMap) Cutover(ctx context.Context, m contract.MailboxRef) error {
	addr, err := mapKey(m)
	if err != nil {
		return err
	}
	unlock, err := t.acquire(ctx)
	if err != nil {
		return fmt.Errorf("transport map: cutover of mailbox %s: lock: %w", m.Key, err)
	}
	defer unlock()

	content, perm, err := t.read()
	if err != nil {
		return fmt.Errorf("transport map: cutover of mailbox %s: %w", m.Key, err)
	}
	pending, err := exists(t.pending)
	if err != nil {
		return fmt.Errorf("transport map: cutover of mailbox %s: %w", m.Key, err)
	}
	lines := splitLines(content)
	e, found := find(lines, addr)
	done := found && e.value == t.nextHop
	if done && !pending {
		return nil
	}
	if !done {
		// The marker goes down before the rewrite, so that a crash or a
		// failed command between the two leaves it behind.
		if len(t.command) > 0 && !pending {
			if err := touch(t.pending); err != nil {
				return fmt.Errorf("transport map: cutover of mailbox %s: %w", m.Key, err)
			}
		}
		var at *entry
		if found {
			at = &e
		}
		// The map keeps its own permissions, as Postfix's tools may read it
		// as another user.
		data := rewrite(lines, at, addr+" "+t.nextHop)
		if err := atomicfile.Write(t.path, perm, func(w io.Writer) error {
			_, err := w.Write(data)
			return err
		}); err != nil {
			return fmt.Errorf("transport map: cutover of mailbox %s: %w", m.Key, err)
		}
	}
	if len(t.command) > 0 {
		if err := t.run(ctx, m.Key); err != nil {
			return err
		}
	}
	// Left behind, the marker would only cost one more run of the command.
	if err := os.Remove(t.pending); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("transport map: cutover of mailbox %s: %w", m.Key, err)
	}
	return nil
}

// acquire takes the lock shared by the cutovers of this process and of
// others (flock.Lock), waiting for it no longer than ctx allows: a cutover
// queued behind a slow command gives up when its context ends. The lock
// file is never removed: a process could be waiting on the old inode while
// another locks a new one.
func (t *TransportMap) acquire(ctx context.Context) (func(), error) {
	return flock.Lock(ctx, t.lock, os.O_RDWR|os.O_CREATE, 0o644)
}

// read returns the map's content and permissions; a missing map is empty,
// with the permissions a new map gets.
func (t *TransportMap) read() ([]byte, fs.FileMode, error) {
	f, err := os.Open(t.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, newMapPerm, nil
	}
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	content, err := io.ReadAll(f)
	if err != nil {
		return nil, 0, err
	}
	return content, fi.Mode().Perm(), nil
}

// run runs the command with the timeout. Its error never quotes the
// command's output unsanitised: postmap names offending keys, which are
// addresses.
func (t *TransportMap) run(ctx context.Context, key string) error {
	cctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, t.bin, t.command[1:]...)
	cmd.Args[0] = t.command[0]
	// A child of the command (sh -c ...) may hold stderr open after the
	// command is killed; do not wait for it for ever.
	cmd.WaitDelay = time.Second
	var stderr capped
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil || errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success() {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("transport map: command %q after cutover of mailbox %s: %w", t.command[0], key, ctx.Err())
	}
	var status string
	var exit *exec.ExitError
	switch {
	case errors.Is(cctx.Err(), context.DeadlineExceeded):
		status = "timed out after " + t.timeout.String()
	case errors.As(err, &exit):
		status = exit.ProcessState.String() // "exit status 1", "signal: killed"
	default:
		status = err.Error()
	}
	msg := fmt.Sprintf("transport map: command %q failed after cutover of mailbox %s: %s", t.command[0], key, status)
	if line := snippet(string(stderr.b)); line != "" {
		msg += ": " + line
	}
	return errors.New(msg)
}

// capped is a writer that keeps the first maxStderr bytes and discards the
// rest, so that a chatty command cannot exhaust memory.
type capped struct{ b []byte }

func (c *capped) Write(p []byte) (int, error) {
	if room := maxStderr - len(c.b); room > 0 {
		c.b = append(c.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// mapKey is the mailbox's address as a transport map key: lowercased, as
// Postfix looks keys up. An address that would not be read back as one
// full address is refused for good: with no local part it would route a
// whole domain.
func mapKey(m contract.MailboxRef) (string, error) {
	a := strings.ToLower(m.Address)
	at := strings.LastIndexByte(a, '@')
	bad := at <= 0 || at == len(a)-1 || a[0] == '#' ||
		strings.IndexFunc(a, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0
	if bad {
		return "", port.Permanent(contract.ErrTypeInvalidMailbox,
			"transport map: mailbox %s: its address cannot be a transport map key", m.Key)
	}
	return a, nil
}

// entry is one logical line of the map: its first physical line, then any
// continuation lines (Postfix continues a logical line on lines that start
// with whitespace).
type entry struct {
	lines []int // indices into the physical lines
	key   string
	value string
}

// splitLines cuts content into physical lines, each with its line ending as
// read, so that lines not touched are written back byte for byte.
func splitLines(content []byte) []string {
	if len(content) == 0 {
		return nil
	}
	lines := strings.SplitAfter(string(content), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// find returns the first entry for key (lowercased), which is the one
// Postfix uses when there are duplicates.
func find(lines []string, key string) (entry, bool) {
	var cur *entry
	var text string
	finish := func() (entry, bool) {
		if cur == nil {
			return entry{}, false
		}
		f := strings.Fields(text)
		cur.key = strings.ToLower(f[0])
		cur.value = strings.Join(f[1:], " ")
		return *cur, cur.key == key
	}
	for i, l := range lines {
		body := strings.TrimRight(l, "\r\n")
		trimmed := strings.TrimSpace(body)
		switch {
		case trimmed == "" || trimmed[0] == '#':
			// Blank lines and comments neither start nor end a logical line.
		case body[0] == ' ' || body[0] == '\t':
			// A continuation; with nothing to continue Postfix ignores it.
			if cur != nil {
				cur.lines = append(cur.lines, i)
				text += " " + trimmed
			}
		default:
			if e, ok := finish(); ok {
				return e, true
			}
			cur, text = &entry{lines: []int{i}}, trimmed
		}
	}
	return finish()
}

// rewrite returns the map with entry at replaced by line (its continuation
// lines dropped), or with line appended when at is nil. Every other line is
// kept as it was.
func rewrite(lines []string, at *entry, line string) []byte {
	var b strings.Builder
	drop := map[int]bool{}
	if at != nil {
		for _, i := range at.lines[1:] {
			drop[i] = true
		}
	}
	for i, l := range lines {
		switch {
		case drop[i]:
		case at != nil && i == at.lines[0]:
			b.WriteString(line)
			if strings.HasSuffix(l, "\r\n") {
				b.WriteString("\r\n")
			} else {
				b.WriteString("\n")
			}
		default:
			b.WriteString(l)
		}
	}
	if at == nil {
		if b.Len() > 0 && !strings.HasSuffix(b.String(), "\n") {
			b.WriteString("\n")
		}
		b.WriteString(line + "\n")
	}
	return []byte(b.String())
}

// touch creates an empty file if it is missing and makes its name durable.
func touch(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(path))
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}
