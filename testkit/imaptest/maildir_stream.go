package imaptest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"mailwave/testkit/dovecot"
)

// WriteMaildirMessage adds one message to a folder of a Dovecot account
// stored as Maildir, as write streams it: never held in memory, so a
// message of 150 MB costs a file and no heap. The message takes the next
// UID in its folder (doveadm indexes the folder before it returns), its
// flags and keywords in the file's name, date as its INTERNALDATE, and
// its sizes in S= and W=, so Dovecot lists it without reading it. write
// must use CRLF line endings. It returns the message's size.
//
// As with SeedMaildir, nobody should be using the account meanwhile.
func WriteMaildirMessage(s *dovecot.Server, user, folder string, flags []imap.Flag, date time.Time, write func(io.Writer) error) (int64, error) {
	if st := s.Options().Storage; st != dovecot.Maildir {
		return 0, fmt.Errorf("write maildir message: the server stores mail as %s; start it with Storage: dovecot.Maildir", st)
	}
	md := &maildirWriter{s: s, root: s.MailDir(user), boxes: map[string]*maildirBox{}, pid: os.Getpid()}
	if err := md.mkdirAll(md.root); err != nil {
		return 0, err
	}
	b, err := md.box(folder)
	if err != nil {
		return 0, err
	}
	var letters []byte
	for _, f := range flags {
		if l, ok := maildirFlags[imap.Flag(canonicalFlag(f))]; ok {
			letters = append(letters, l)
			continue
		}
		if strings.HasPrefix(string(f), `\`) {
			continue
		}
		l, err := b.keyword(f)
		if err != nil {
			return 0, err
		}
		letters = append(letters, l)
	}
	slices.Sort(letters)
	letters = slices.Compact(letters)

	// The folder's messages have their UIDs already (Seed and SeedMaildir
	// leave them indexed): this one, new, takes the next.
	secs := time.Now().Unix()
	base := fmt.Sprintf("%d.M%dP%d.mailwave-stream", secs, time.Now().Nanosecond()/1000, md.pid)
	tmp := filepath.Join(b.dir, "tmp", base)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	cw := &crlfCounter{}
	bw := bufio.NewWriterSize(io.MultiWriter(f, cw), 1<<20)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = md.chown(tmp)
	}
	if err == nil {
		err = os.Chtimes(tmp, date, date)
	}
	if err == nil {
		err = b.writeKeywords(s)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return 0, err
	}
	vsize := cw.n + cw.bareLF
	name := fmt.Sprintf("%s,S=%d,W=%d:2,%s", base, cw.n, vsize, letters)
	if err := os.Rename(tmp, filepath.Join(b.dir, "cur", name)); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.Doveadm(ctx, "mailbox", "status", "-u", user, "messages", folder); err != nil {
		return cw.n, err
	}
	return cw.n, nil
}

// crlfCounter counts the bytes written and the line feeds not after a
// carriage return (each one more byte in RFC822.SIZE).
type crlfCounter struct {
	n, bareLF int64
	lastCR    bool
}

func (c *crlfCounter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	// bytes' own loops: a byte at a time here would cost seconds for
	// 150 MB under the race detector.
	lf := int64(bytes.Count(p, []byte("\n")) - bytes.Count(p, []byte("\r\n")))
	if c.lastCR && p[0] == '\n' {
		lf-- // the CR ended the last write
	}
	c.bareLF += lf
	c.lastCR = p[len(p)-1] == '\r'
	c.n += int64(len(p))
	return len(p), nil
}
