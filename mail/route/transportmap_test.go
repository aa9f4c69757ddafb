package route_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/mail/port"
	"mailwave/mail/route"
)

const (
	targetHop = "smtp:[outlook.example]:25"
	sourceHop = "smtp:[mx.source.example]:25"
)

func mailbox(key, address string) contract.MailboxRef {
	return contract.MailboxRef{Key: key, Address: address, Org: "Example NHS Trust"}
}

// counting returns a command that appends a line to a counter file on each
// run, and a function that counts the runs so far.
func counting(t *testing.T, dir string) ([]string, func() int) {
	t.Helper()
	counter := filepath.Join(dir, "counter")
	return []string{"sh", "-c", "echo run >> '" + counter + "'"}, func() int {
		b, err := os.ReadFile(counter)
		if errors.Is(err, os.ErrNotExist) {
			return 0
		}
		require.NoError(t, err)
		return strings.Count(string(b), "\n")
	}
}

func newMap(t *testing.T, path string, command []string) *route.TransportMap {
	t.Helper()
	m, err := route.NewTransportMap(route.TransportMapOptions{Path: path, NextHop: targetHop, Command: command})
	require.NoError(t, err)
	return m
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

func assertNoAddress(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		assert.NotContains(t, err.Error(), "@")
	}
}

func TestTransportMapCutoverRewritesOnlyItsLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "transport")
	// Comments, blank lines (one with trailing blanks), tabs, a domain entry,
	// a CRLF line and no final newline: all must come back byte for byte.
	original := "# Transport map, kept by hand\n" +
		"   # an indented comment\n" +
		"\n" +
		"other.person@trust.nhs.example    " + sourceHop + "\n" +
		"Jo.Bloggs@Trust.NHS.example\t" + sourceHop + "\n" +
		"  \t \n" +
		"windows.line@trust.nhs.example " + sourceHop + "\r\n" +
		"example.org  relay:[gw.example]"
	require.NoError(t, os.WriteFile(path, []byte(original), 0o640))
	command, runs := counting(t, dir)
	m := newMap(t, path, command)
	ctx := context.Background()
	jo := mailbox("k-jo", "jo.bloggs@trust.nhs.example")
	other := mailbox("k-other", "other.person@trust.nhs.example")
	fresh := mailbox("k-fresh", "new.starter@trust.nhs.example")

	r, err := m.Route(ctx, jo)
	require.NoError(t, err)
	assert.Equal(t, port.RouteSource, r, "a stale next hop is not the target")

	// A stale line is replaced in place, the address written lowercased.
	require.NoError(t, m.Cutover(ctx, jo))
	want := strings.Replace(original, "Jo.Bloggs@Trust.NHS.example\t"+sourceHop, "jo.bloggs@trust.nhs.example "+targetHop, 1)
	assert.Equal(t, want, readFile(t, path))
	assert.Equal(t, 1, runs())
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o640), fi.Mode().Perm(), "permissions kept")

	for _, c := range []struct {
		m    contract.MailboxRef
		want port.Route
	}{
		{jo, port.RouteTarget},
		{mailbox("k-jo", "JO.BLOGGS@TRUST.nhs.example"), port.RouteTarget},
		{other, port.RouteSource},
		{fresh, port.RouteSource},
	} {
		r, err := m.Route(ctx, c.m)
		require.NoError(t, err)
		assert.Equal(t, c.want, r, c.m.Key)
	}

	// A second cutover, in any case, touches nothing and runs nothing.
	require.NoError(t, m.Cutover(ctx, mailbox("k-jo", "Jo.Bloggs@trust.NHS.example")))
	fi2, err := os.Stat(path)
	require.NoError(t, err)
	assert.True(t, os.SameFile(fi, fi2), "the file was not replaced")
	assert.Equal(t, fi.ModTime(), fi2.ModTime())
	assert.Equal(t, want, readFile(t, path))
	assert.Equal(t, 1, runs())

	// A new address is appended, after a newline the file lacked.
	require.NoError(t, m.Cutover(ctx, fresh))
	want += "\nnew.starter@trust.nhs.example " + targetHop + "\n"
	assert.Equal(t, want, readFile(t, path))
	assert.Equal(t, 2, runs())
	r, err = m.Route(ctx, fresh)
	require.NoError(t, err)
	assert.Equal(t, port.RouteTarget, r)

	// Nothing left behind but the lock file.
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{"transport", "transport.lock", "counter"}, names)
}

func TestTransportMapLineAlreadyThereInOtherCase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "transport")
	original := "JO.Bloggs@Trust.nhs.example   " + targetHop + "\n"
	require.NoError(t, os.WriteFile(path, []byte(original), 0o644))
	m := newMap(t, path, nil)
	jo := mailbox("k-jo", "jo.bloggs@trust.nhs.example")
	r, err := m.Route(context.Background(), jo)
	require.NoError(t, err)
	assert.Equal(t, port.RouteTarget, r)
	require.NoError(t, m.Cutover(context.Background(), jo))
	assert.Equal(t, original, readFile(t, path))
}

func TestTransportMapMissingFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "transport")
	m := newMap(t, path, nil)
	jo := mailbox("k-jo", "jo.bloggs@trust.nhs.example")
	r, err := m.Route(context.Background(), jo)
	require.NoError(t, err)
	assert.Equal(t, port.RouteSource, r)

	require.NoError(t, m.Cutover(context.Background(), jo))
	assert.Equal(t, "jo.bloggs@trust.nhs.example "+targetHop+"\n", readFile(t, path))
	r, err = m.Route(context.Background(), jo)
	require.NoError(t, err)
	assert.Equal(t, port.RouteTarget, r)
}

func TestTransportMapContinuationLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "transport")
	// Postfix continues a logical line on lines that start with whitespace;
	// a comment in between belongs to no entry and stays.
	original := "jo.bloggs@trust.nhs.example\n" +
		"# about jo\n" +
		"    " + sourceHop + "\n" +
		"other.person@trust.nhs.example\n" +
		"\t" + targetHop + "\n"
	require.NoError(t, os.WriteFile(path, []byte(original), 0o644))
	m := newMap(t, path, nil)
	ctx := context.Background()

	r, err := m.Route(ctx, mailbox("k-other", "other.person@trust.nhs.example"))
	require.NoError(t, err)
	assert.Equal(t, port.RouteTarget, r, "a next hop on a continuation line counts")

	require.NoError(t, m.Cutover(ctx, mailbox("k-jo", "jo.bloggs@trust.nhs.example")))
	assert.Equal(t, "jo.bloggs@trust.nhs.example "+targetHop+"\n"+
		"# about jo\n"+
		"other.person@trust.nhs.example\n"+
		"\t"+targetHop+"\n", readFile(t, path))
}

// Many cutovers at once, through two TransportMaps on one file (as two
// worker processes would share it: only the flock keeps them apart), end
// with every line exactly once, and a reader never sees a partial file.
func TestTransportMapConcurrentCutovers(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "transport")
	header := "# managed by mailwave\nkeep.me@trust.nhs.example " + sourceHop + "\n"
	require.NoError(t, os.WriteFile(path, []byte(header), 0o644))
	command, runs := counting(t, dir)
	maps := []*route.TransportMap{newMap(t, path, command), newMap(t, path, command)}

	const n = 40
	addr := func(i int) string { return fmt.Sprintf("user%02d@trust.nhs.example", i) }

	stop := make(chan struct{})
	var reads atomic.Int64
	readerErr := make(chan error, 1)
	go func() {
		defer close(readerErr)
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, err := os.ReadFile(path)
			if err != nil {
				readerErr <- err
				return
			}
			s := string(b)
			if !strings.HasPrefix(s, header) || !strings.HasSuffix(s, "\n") {
				readerErr <- fmt.Errorf("partial file seen: %q", s)
				return
			}
			for _, l := range strings.Split(strings.TrimSuffix(strings.TrimPrefix(s, header), "\n"), "\n") {
				if l == "" {
					continue
				}
				if f := strings.Fields(l); len(f) != 2 || f[1] != targetHop {
					readerErr <- fmt.Errorf("bad line seen: %q", l)
					return
				}
			}
			reads.Add(1)
		}
	}()

	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			m := maps[i%2]
			mb := mailbox(fmt.Sprintf("k-%02d", i), addr(i))
			// Twice each, as a retried activity would.
			if errs[i] = m.Cutover(context.Background(), mb); errs[i] == nil {
				errs[i] = m.Cutover(context.Background(), mb)
			}
		})
	}
	wg.Wait()
	close(stop)
	require.NoError(t, <-readerErr)
	for i, err := range errs {
		require.NoError(t, err, "mailbox %d", i)
	}
	assert.Positive(t, reads.Load())

	got := readFile(t, path)
	require.True(t, strings.HasPrefix(got, header))
	for i := range n {
		assert.Equal(t, 1, strings.Count(got, addr(i)+" "+targetHop+"\n"), addr(i))
	}
	assert.Equal(t, n+2, strings.Count(got, "\n"))
	assert.Equal(t, n, runs(), "one command per change, none for the repeats")
	_, err := os.Stat(path + ".pending")
	assert.ErrorIs(t, err, os.ErrNotExist)
}

// A failed command is retryable, leaves the mailbox reported on the source
// (so that the activity's retry does call Cutover), and the retry runs the
// command again although the line is already in place.
func TestTransportMapFailedCommandRunsAgain(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "transport")
	fail := filepath.Join(dir, "fail")
	counter := filepath.Join(dir, "counter")
	require.NoError(t, os.WriteFile(fail, nil, 0o644))
	script := fmt.Sprintf(`echo run >> '%s'; if [ -f '%s' ]; then echo "postmap: fatal: bad entry jo.bloggs@trust.nhs.example in map" >&2; echo second line >&2; exit 3; fi`, counter, fail)
	m := newMap(t, path, []string{"sh", "-c", script})
	ctx := context.Background()
	jo := mailbox("k-jo", "jo.bloggs@trust.nhs.example")
	runs := func() int { return strings.Count(readFile(t, counter), "\n") }

	err := m.Cutover(ctx, jo)
	require.Error(t, err)
	_, permanent := port.IsPermanent(err)
	assert.False(t, permanent)
	var thr *port.ThrottledError
	assert.False(t, errors.As(err, &thr))
	assert.Contains(t, err.Error(), `"sh"`)
	assert.Contains(t, err.Error(), "exit status 3")
	assert.Contains(t, err.Error(), "postmap: fatal: bad entry")
	assert.Contains(t, err.Error(), "k-jo")
	assert.NotContains(t, err.Error(), "second line")
	assertNoAddress(t, err)
	assert.Equal(t, "jo.bloggs@trust.nhs.example "+targetHop+"\n", readFile(t, path))
	assert.FileExists(t, path+".pending")

	r, err := m.Route(ctx, jo)
	require.NoError(t, err)
	assert.Equal(t, port.RouteSource, r, "not cut over while the command is pending")

	// Still failing: the retry runs it again.
	require.Error(t, m.Cutover(ctx, jo))
	assert.Equal(t, 2, runs())

	require.NoError(t, os.Remove(fail))
	require.NoError(t, m.Cutover(ctx, jo))
	assert.Equal(t, 3, runs())
	assert.NoFileExists(t, path+".pending")
	r, err = m.Route(ctx, jo)
	require.NoError(t, err)
	assert.Equal(t, port.RouteTarget, r)

	require.NoError(t, m.Cutover(ctx, jo))
	assert.Equal(t, 3, runs(), "done: not run again")
	assert.Equal(t, "jo.bloggs@trust.nhs.example "+targetHop+"\n", readFile(t, path))
}

func TestTransportMapCommandTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "transport")
	m, err := route.NewTransportMap(route.TransportMapOptions{
		Path: path, NextHop: targetHop,
		Command: []string{"sh", "-c", "sleep 10; true"}, CommandTimeout: 100 * time.Millisecond,
	})
	require.NoError(t, err)
	start := time.Now()
	err = m.Cutover(context.Background(), mailbox("k-jo", "jo.bloggs@trust.nhs.example"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "timed out")
	assert.False(t, errors.Is(err, context.DeadlineExceeded), "a timed out command is an ordinary retryable failure")
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.FileExists(t, path+".pending")
}

// A cutover waiting for another process's lock gives up with its context.
func TestTransportMapLockHonoursContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "transport")
	m := newMap(t, path, nil)
	f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o644)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, syscall.Flock(int(f.Fd()), syscall.LOCK_EX))

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = m.Cutover(ctx, mailbox("k-jo", "jo.bloggs@trust.nhs.example"))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.NoFileExists(t, path)

	require.NoError(t, syscall.Flock(int(f.Fd()), syscall.LOCK_UN))
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, m.Cutover(ctx, mailbox("k-jo", "jo.bloggs@trust.nhs.example")), "the lock let go: the given-up wait passed it on")
}

func TestTransportMapRefusesUnusableAddress(t *testing.T) {
	path := filepath.Join(t.TempDir(), "transport")
	m := newMap(t, path, nil)
	for _, a := range []string{"", "trust.nhs.example", "@trust.nhs.example", "jo@", "jo bloggs@trust.nhs.example", "jo@x\nevil@y z", "#jo@trust.nhs.example"} {
		err := m.Cutover(context.Background(), mailbox("k-bad", a))
		typ, ok := port.IsPermanent(err)
		assert.True(t, ok, "%q", a)
		assert.Equal(t, contract.ErrTypeInvalidMailbox, typ)
		assertNoAddress(t, err)
		_, err = m.Route(context.Background(), mailbox("k-bad", a))
		_, ok = port.IsPermanent(err)
		assert.True(t, ok, "%q", a)
	}
	assert.NoFileExists(t, path)
}

func TestNewTransportMapRejectsBadOptions(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "transport")
	for _, c := range []struct {
		name   string
		o      route.TransportMapOptions
		option string
	}{
		{"no path", route.TransportMapOptions{NextHop: targetHop}, "Path"},
		{"no directory", route.TransportMapOptions{Path: filepath.Join(dir, "missing", "transport"), NextHop: targetHop}, "Path"},
		{"path is a directory", route.TransportMapOptions{Path: dir, NextHop: targetHop}, "Path"},
		{"no next hop", route.TransportMapOptions{Path: path}, "NextHop"},
		{"next hop with a space", route.TransportMapOptions{Path: path, NextHop: "smtp:[a] :25"}, "NextHop"},
		{"next hop with a newline", route.TransportMapOptions{Path: path, NextHop: "smtp:[a]\nx"}, "NextHop"},
		{"command not found", route.TransportMapOptions{Path: path, NextHop: targetHop, Command: []string{"no-such-command-mailwave"}}, "Command"},
		{"empty command", route.TransportMapOptions{Path: path, NextHop: targetHop, Command: []string{""}}, "Command"},
		{"negative timeout", route.TransportMapOptions{Path: path, NextHop: targetHop, CommandTimeout: -time.Second}, "CommandTimeout"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := route.NewTransportMap(c.o)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "TransportMapOptions."+c.option)
		})
	}
}

func TestTransportMapFileMode(t *testing.T) {
	ctx := context.Background()
	jo := mailbox("k-jo", "jo.bloggs@trust.nhs.example")
	mode := func(t *testing.T, path string) os.FileMode {
		t.Helper()
		fi, err := os.Stat(path)
		require.NoError(t, err)
		return fi.Mode().Perm()
	}

	t.Run("a new map is 0640", func(t *testing.T) {
		// Whatever the umask, the mode is set, not masked.
		old := syscall.Umask(0)
		t.Cleanup(func() { syscall.Umask(old) })
		path := filepath.Join(t.TempDir(), "transport")
		require.NoError(t, newMap(t, path, nil).Cutover(ctx, jo))
		assert.Equal(t, os.FileMode(0o640), mode(t, path))
	})

	for _, perm := range []os.FileMode{0o600, 0o644, 0o660} {
		t.Run(fmt.Sprintf("an existing %04o map keeps its mode", perm), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "transport")
			require.NoError(t, os.WriteFile(path, []byte("x@y.example "+sourceHop+"\n"), 0o600))
			require.NoError(t, os.Chmod(path, perm))
			require.NoError(t, newMap(t, path, nil).Cutover(ctx, jo))
			assert.Contains(t, readFile(t, path), "jo.bloggs@trust.nhs.example "+targetHop)
			assert.Equal(t, perm, mode(t, path))
		})
	}
}
