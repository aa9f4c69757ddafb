package imaptest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"

	"mailwave/testkit/dovecot"
)

// maildirFlags are the Maildir info letters of the system flags.
var maildirFlags = map[imap.Flag]byte{
	imap.FlagDraft:    'D',
	imap.FlagFlagged:  'F',
	imap.FlagAnswered: 'R',
	imap.FlagSeen:     'S',
	imap.FlagDeleted:  'T',
}

// SeedMaildir is the fast way to fill a Dovecot account for a benchmark:
// it writes the messages straight into the server's maildirs (flags and
// keywords in the file names, INTERNALDATE as the file's mtime, sizes in
// S= and W= so Dovecot need not stat or read them), then has doveadm sync
// every folder so that UIDs and indexes exist before the first client
// comes. Within a folder, UIDs follow msgs' order.
//
// Folders come from folders and from the messages; special use comes from
// the server's configuration, by name, as with Seed. The server may be
// running, but nobody should be using the account meanwhile.
func SeedMaildir(s *dovecot.Server, user string, folders []SeedFolder, msgs iter.Seq[SeedMessage]) (n int, size int64, err error) {
	if st := s.Options().Storage; st != dovecot.Maildir {
		return 0, 0, fmt.Errorf("seed maildir: the server stores mail as %s; start it with Storage: dovecot.Maildir", st)
	}
	root := s.MailDir(user)
	md := &maildirWriter{s: s, root: root, boxes: map[string]*maildirBox{}, pid: os.Getpid()}
	if err := md.mkdirAll(root); err != nil {
		return 0, 0, err
	}
	if _, err := md.box("INBOX"); err != nil {
		return 0, 0, err
	}
	for _, f := range folders {
		if _, err := md.box(f.Name); err != nil {
			return 0, 0, err
		}
	}
	// File names start with a time that only grows, so Dovecot, which
	// orders new files by it, gives out UIDs in our order whatever order
	// the files land in. Names are made here, in order; the writing, which
	// costs mostly kernel time per file, is spread over a few goroutines.
	base := time.Now().Unix() - 1<<24
	jobs := make(chan maildirFile, 64)
	errc := make(chan error, maildirWriters)
	var wg sync.WaitGroup
	for range maildirWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range jobs {
				if err := md.writeFile(f); err != nil {
					errc <- err
					for range jobs {
						// drain so that the producer does not block
					}
					return
				}
			}
		}()
	}
	var prodErr error
	for m := range msgs {
		select {
		case err := <-errc:
			prodErr = err
		default:
		}
		if prodErr != nil {
			break
		}
		b, err := md.box(m.Folder)
		if err == nil {
			var f maildirFile
			f, err = md.file(b, base+int64(n), m)
			if err == nil {
				jobs <- f
			}
		}
		if err != nil {
			prodErr = err
			break
		}
		n++
		size += int64(len(m.Raw))
	}
	close(jobs)
	wg.Wait()
	close(errc)
	if err := errors.Join(prodErr, <-errc); err != nil {
		return n, size, err
	}
	for _, b := range md.boxes {
		if err := b.writeKeywords(s); err != nil {
			return n, size, err
		}
	}
	// Sync every folder now: the uidlists and indexes get built here rather
	// than inside whatever is being timed later.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := s.Doveadm(ctx, "mailbox", "status", "-u", user, "messages", "*"); err != nil {
		return n, size, err
	}
	return n, size, nil
}

type maildirWriter struct {
	s     *dovecot.Server
	root  string
	boxes map[string]*maildirBox
	pid   int
}

type maildirBox struct {
	dir      string
	keywords map[imap.Flag]int // keyword -> its letter, 0 = 'a'
	changed  bool
}

// box finds or makes the maildir of a folder. With LAYOUT=fs and the UTF-8
// option, folder "A/B" is directory root/A/B, INBOX is root/INBOX.
func (md *maildirWriter) box(name string) (*maildirBox, error) {
	if strings.EqualFold(name, "INBOX") {
		name = "INBOX"
	}
	if b, ok := md.boxes[name]; ok {
		return b, nil
	}
	parts := strings.Split(name, "/")
	for _, p := range parts {
		switch p {
		case "", ".", "..", "cur", "new", "tmp":
			return nil, fmt.Errorf("seed maildir: folder name %q cannot be written directly", name)
		}
	}
	dir := filepath.Join(append([]string{md.root}, parts...)...)
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := md.mkdirAll(filepath.Join(dir, sub)); err != nil {
			return nil, err
		}
	}
	b := &maildirBox{dir: dir, keywords: map[imap.Flag]int{}}
	if err := b.readKeywords(); err != nil {
		return nil, err
	}
	md.boxes[name] = b
	return b, nil
}

// mkdirAll makes dir and its missing parents, owned by the mail user.
func (md *maildirWriter) mkdirAll(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := md.mkdirAll(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return err
	}
	return md.chown(dir)
}

func (md *maildirWriter) chown(path string) error {
	if os.Geteuid() != 0 {
		return nil // we are the mail user
	}
	return os.Lchown(path, md.s.MailUID, md.s.MailGID)
}

// maildirWriters is how many goroutines write message files.
const maildirWriters = 4

// maildirFile is one message file to write: tmp/name, then cur/name.
type maildirFile struct {
	dir, name string
	raw       []byte
	mtime     time.Time
}

// file names a message's file: flags and keywords as info letters, S= the
// file's size and W= its size with CRLF line endings (RFC822.SIZE).
func (md *maildirWriter) file(b *maildirBox, secs int64, m SeedMessage) (maildirFile, error) {
	var letters []byte
	for _, f := range m.Flags {
		if l, ok := maildirFlags[imap.Flag(canonicalFlag(f))]; ok {
			letters = append(letters, l)
			continue
		}
		if strings.HasPrefix(string(f), `\`) {
			continue // \Recent and friends are not stored
		}
		l, err := b.keyword(f)
		if err != nil {
			return maildirFile{}, err
		}
		letters = append(letters, l)
	}
	slices.Sort(letters)
	letters = slices.Compact(letters)
	vsize := len(m.Raw) + bytes.Count(m.Raw, []byte("\n")) - bytes.Count(m.Raw, []byte("\r\n"))
	date := m.InternalDate
	if date.IsZero() {
		date = time.Now()
	}
	return maildirFile{
		dir:   b.dir,
		name:  fmt.Sprintf("%d.M%dP%d.mailwave,S=%d,W=%d:2,%s", secs, secs%1000000, md.pid, len(m.Raw), vsize, letters),
		raw:   m.Raw,
		mtime: date,
	}, nil
}

// writeFile writes into tmp/ and renames into cur/, so that a Dovecot
// looking meanwhile never sees half a message. Maildir's INTERNALDATE is
// the file's mtime.
func (md *maildirWriter) writeFile(f maildirFile) error {
	tmp := filepath.Join(f.dir, "tmp", f.name)
	if err := os.WriteFile(tmp, f.raw, 0o600); err != nil {
		return err
	}
	if err := md.chown(tmp); err != nil {
		return err
	}
	if err := os.Chtimes(tmp, f.mtime, f.mtime); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(f.dir, "cur", f.name))
}

// canonicalFlag spells system flags the way imap.Flag constants do.
func canonicalFlag(f imap.Flag) string {
	for k := range maildirFlags {
		if strings.EqualFold(string(k), string(f)) {
			return string(k)
		}
	}
	return string(f)
}

// keyword returns the letter of a keyword in this maildir's
// dovecot-keywords file, adding it if new. Maildir has 26 letters.
func (b *maildirBox) keyword(f imap.Flag) (byte, error) {
	if i, ok := b.keywords[f]; ok {
		return 'a' + byte(i), nil
	}
	used := slices.Collect(maps.Values(b.keywords))
	for i := range 26 {
		if !slices.Contains(used, i) {
			b.keywords[f] = i
			b.changed = true
			return 'a' + byte(i), nil
		}
	}
	return 0, fmt.Errorf("seed maildir: more than 26 keywords in %s", b.dir)
}

// readKeywords loads an existing dovecot-keywords ("<index> <keyword>"
// lines) so that letters already in use keep their meaning.
func (b *maildirBox) readKeywords() error {
	data, err := os.ReadFile(filepath.Join(b.dir, "dovecot-keywords"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		idx, kw, ok := strings.Cut(sc.Text(), " ")
		i, err := strconv.Atoi(idx)
		if !ok || err != nil || i < 0 || i >= 26 {
			continue
		}
		b.keywords[imap.Flag(kw)] = i
	}
	return sc.Err()
}

func (b *maildirBox) writeKeywords(s *dovecot.Server) error {
	if !b.changed {
		return nil
	}
	var buf strings.Builder
	for _, kw := range slices.Sorted(maps.Keys(b.keywords)) {
		fmt.Fprintf(&buf, "%d %s\n", b.keywords[kw], kw)
	}
	path := filepath.Join(b.dir, "dovecot-keywords")
	if err := os.WriteFile(path, []byte(buf.String()), 0o600); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		return os.Lchown(path, s.MailUID, s.MailGID)
	}
	return nil
}
