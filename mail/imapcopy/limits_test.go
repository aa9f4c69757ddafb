package imapcopy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/internal/prefix"
)

// fakeServer accepts one connection on loopback and runs script on it; the
// script ends when it is done or the client hangs up.
func fakeServer(t *testing.T, script func(c net.Conn, r *bufio.Reader)) (host string, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		script(c, bufio.NewReader(c))
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	a := ln.Addr().(*net.TCPAddr)
	return a.IP.String(), a.Port
}

// within runs f and fails the test if it takes longer than d; stop is
// called then, to end f.
func within(t *testing.T, d time.Duration, stop func(), f func() error) error {
	t.Helper()
	res := make(chan error, 1)
	go func() { res <- f() }()
	select {
	case err := <-res:
		return err
	case <-time.After(d):
		stop()
		t.Errorf("still running after %s: the limit did not apply", d)
		return <-res
	}
}

// endless writes s to w again and again until the write fails.
func endless(w io.Writer, s string) {
	b := []byte(strings.Repeat(s, (32<<10)/len(s)+1))
	for {
		if _, err := w.Write(b); err != nil {
			return
		}
	}
}

func TestAppenderRefusesAnEndlessLine(t *testing.T) {
	for name, script := range map[string]func(c net.Conn, r *bufio.Reader){
		"one line": func(c net.Conn, _ *bufio.Reader) {
			_, _ = io.WriteString(c, "* OK ")
			endless(c, "a")
		},
		"short pieces between literals": func(c net.Conn, _ *bufio.Reader) {
			_, _ = io.WriteString(c, "* OK ")
			endless(c, "x {1}\r\ny")
		},
	} {
		t.Run(name, func(t *testing.T) {
			host, port := fakeServer(t, script)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ep := Endpoint{Host: host, Port: port, Security: SecurityNone, DialTimeout: 5 * time.Second}
			err := within(t, 5*time.Second, cancel, func() error {
				_, err := dialAppender(ctx, ep, Credentials{Mechanism: MechPlain, Username: "u", Password: "p"}, false)
				return err
			})
			require.ErrorIs(t, err, errLineTooLong)
			assert.Contains(t, err.Error(), "longer than 65536 bytes")
		})
	}
}

func TestAppenderReadsLinesWithLiterals(t *testing.T) {
	long := strings.Repeat("c", maxLine-100)
	host, port := fakeServer(t, func(c net.Conn, r *bufio.Reader) {
		_, _ = io.WriteString(c, "* OK {3}\r\nabc ready\r\n* NOTE "+long+"\r\n")
		_, _ = io.Copy(io.Discard, r)
	})
	conn, err := net.Dial("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	require.NoError(t, err)
	defer conn.Close()
	a := &appender{conn: conn, br: bufio.NewReaderSize(conn, 64<<10)}
	line, err := a.readLine()
	require.NoError(t, err)
	assert.Equal(t, "* OK {3} ready", line, "the literal's bytes are skipped")
	line, err = a.readLine()
	require.NoError(t, err)
	assert.Equal(t, "* NOTE "+long, line, "a long line under the limit is read whole")
}

func TestAppenderRefusesALiteralOverItsBound(t *testing.T) {
	host, port := fakeServer(t, func(c net.Conn, r *bufio.Reader) {
		_, _ = io.WriteString(c, "* OK {10737418240}\r\n")
		endless(c, "a")
	})
	conn, err := net.Dial("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	require.NoError(t, err)
	defer conn.Close()
	trips := &tripwire{}
	a := &appender{conn: conn, trips: trips, br: bufio.NewReaderSize(conn, 64<<10)}
	_, err = a.readLine()
	var tl *AnswerTooLargeError
	require.ErrorAs(t, err, &tl)
	assert.Equal(t, AnswerTooLargeError{Side: Target, What: "a literal", Size: 10737418240, Limit: maxOtherLiteral}, *tl)
	assert.Same(t, tl, trips.tripped(), "the call is told")
}

func TestReadLiteral(t *testing.T) {
	b, err := readLiteral(lit("hello"), 5)
	require.NoError(t, err)
	assert.Equal(t, "hello", string(b))

	r := lit("hello!")
	_, err = readLiteral(r, 5)
	var tl *literalTooLarge
	require.ErrorAs(t, err, &tl)
	assert.Equal(t, int64(6), tl.size)
	assert.Equal(t, int64(5), tl.limit)
	assert.Equal(t, 6, r.Len(), "nothing is read of a literal over the limit")

	_, err = readLiteral(&literal{Reader: strings.NewReader("abc"), size: 5}, 5)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF, "a literal that breaks off is an error")
}

// literal is an imap.LiteralReader over a string.
type literal struct {
	*strings.Reader
	size int64
}

func (l *literal) Size() int64 { return l.size }

func lit(s string) *literal { return &literal{Reader: strings.NewReader(s), size: int64(len(s))} }

// fakeIMAP is a scripted IMAP server: it greets, then hands each command
// line to answer, which writes what it likes; when answer returns false the
// server says nothing more and waits for the client to hang up.
func fakeIMAP(t *testing.T, answer func(w io.Writer, tag, command string) bool) (host string, port int) {
	return fakeServer(t, func(c net.Conn, r *bufio.Reader) {
		_, _ = io.WriteString(c, "* OK [CAPABILITY IMAP4rev1] fake\r\n")
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			tag, command, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
			if !answer(c, tag, command) {
				_, _ = io.Copy(io.Discard, r)
				return
			}
		}
	})
}

// dialFake connects go-imap's client to a fake server, as a connection of
// side with folder selected.
func dialFake(t *testing.T, side Side, host string, port int) *conn {
	t.Helper()
	nc, err := net.Dial("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	require.NoError(t, err)
	cl := imapclient.New(nc, nil)
	t.Cleanup(func() { cl.Close() })
	require.NoError(t, cl.WaitGreeting())
	return &conn{c: cl, side: side, selected: "INBOX", stop: func() bool { return false }}
}

// fetchJob is a job copying INBOX whose source answers with the fake server.
func fetchJob(t *testing.T, answer func(w io.Writer, tag, command string) bool) (*job, *lane) {
	t.Helper()
	ep := Endpoint{Host: "127.0.0.1", Port: 1, Security: SecurityNone}
	c, err := New(Options{Source: ep, Target: ep, Credentials: func(context.Context, Side, contract.MailboxRef) (Credentials, error) {
		return Credentials{}, errors.New("not used")
	}})
	require.NoError(t, err)
	host, port := fakeIMAP(t, answer)
	j := &job{ctx: context.Background(), c: c, key: "k-alice", cp: contract.Checkpoint{Folders: map[string]contract.FolderCheckpoint{"INBOX": {}}}}
	// The target's appender writes nowhere; its answers are not awaited.
	app := &appender{bw: bufio.NewWriter(io.Discard), wait: map[string]chan error{}}
	return j, &lane{src: dialFake(t, Source, host, port), app: app}
}

func TestFetchRefusesABodyLargerThanListed(t *testing.T) {
	const huge = 256 << 20
	inbox := folder{src: "INBOX", tgt: "INBOX"}
	chunk := []meta{{uid: 5, size: 1000}, {uid: 6, size: 2000}}
	for _, c := range []struct {
		name, answer string
		want         []string
	}{
		{"far over", "* 1 FETCH (UID 5 BODY[] {" + strconv.Itoa(huge) + "}\r\nFrom: ",
			[]string{"UID 5", strconv.Itoa(huge) + " bytes", "over the 1000 bytes listed for it", "bad item"}},
		{"a byte too many", "* 1 FETCH (UID 6 BODY[] {2001}\r\nFrom: ",
			[]string{"UID 6", "2001 bytes", "over the 2000 bytes listed for it"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			j, l := fetchJob(t, func(w io.Writer, tag, command string) bool {
				_, _ = io.WriteString(w, c.answer)
				return false
			})
			tr := prefix.New([]imap.UID{5, 6})
			sent := make(chan *batch, 1)
			err := within(t, 5*time.Second, func() { l.src.c.Close() }, func() error {
				return j.fetchChunk(context.Background(), l, inbox, tr, chunk, sent)
			})
			require.Error(t, err)
			for _, w := range c.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.Empty(t, sent, "nothing is sent on")
			assert.True(t, j.c.mem.TryAcquire(j.c.o.MaxBytesInFlight), "the chunk's memory is given back")
			require.Len(t, j.stats.Bad, 1)
			assert.Contains(t, j.stats.Bad[0].Reason, "over the")
			assert.Equal(t, []uint32{j.stats.Bad[0].UID}, j.cp.Folders["INBOX"].Bad, "the retry goes on without it")
		})
	}
}

func TestFetchTakesBodiesOfTheListedSize(t *testing.T) {
	j, l := fetchJob(t, func(w io.Writer, tag, command string) bool {
		_, _ = io.WriteString(w, "* 1 FETCH (UID 5 BODY[] {5}\r\nhello)\r\n* 2 FETCH (UID 6 BODY[] {3}\r\nabc)\r\n"+tag+" OK done\r\n")
		return true
	})
	chunk := []meta{{uid: 5, size: 5}, {uid: 6, size: 3}}
	sent := make(chan *batch, 1)
	err := within(t, 5*time.Second, func() { l.src.c.Close() }, func() error {
		return j.fetchChunk(context.Background(), l, folder{src: "INBOX", tgt: "INBOX"}, prefix.New([]imap.UID{5, 6}), chunk, sent)
	})
	require.NoError(t, err)
	require.Len(t, sent, 1)
	b := <-sent
	require.Len(t, b.items, 2)
	assert.Equal(t, "hello", string(b.items[0].body))
	assert.Equal(t, "abc", string(b.items[1].body))
}

func TestFetchMetaRefusesAnOversizeHeader(t *testing.T) {
	header := "Message-ID: <a@x.example>\r\n\r\n"
	for _, c := range []struct {
		name, answer string
		wantErr      string
	}{
		{"oversize", "* 1 FETCH (UID 5 RFC822.SIZE 10 BODY[HEADER.FIELDS (MESSAGE-ID)] {" + strconv.Itoa(256<<20) + "}\r\nMessage-ID: ",
			"the target sent a Message-ID header block of 268435456 bytes, over the 65536-byte limit"},
		{"ordinary", "* 1 FETCH (UID 5 RFC822.SIZE 10 BODY[HEADER.FIELDS (MESSAGE-ID)] {" + strconv.Itoa(len(header)) + "}\r\n" + header + ")\r\n", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			host, port := fakeIMAP(t, func(w io.Writer, tag, command string) bool {
				_, _ = io.WriteString(w, c.answer)
				if c.wantErr != "" {
					return false
				}
				_, _ = io.WriteString(w, tag+" OK done\r\n")
				return true
			})
			cn := dialFake(t, Target, host, port)
			var got []meta
			err := within(t, 5*time.Second, func() { cn.c.Close() }, func() error {
				var err error
				got, err = fetchMeta(cn, imap.UIDSetNum(5), true)
				return err
			})
			if c.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), c.wantErr)
				return
			}
			require.NoError(t, err)
			require.Len(t, got, 1)
			assert.Equal(t, meta{uid: 5, size: 10, msgID: "<a@x.example>"}, got[0])
		})
	}
}
