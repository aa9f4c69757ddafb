package wavefile

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"
)

// ErrOutOfRange is matched (errors.Is) by a Reader's errors for indexes
// outside a file; retrying such a request cannot help.
var ErrOutOfRange = errors.New("index out of range")

// maxCachedFiles bounds how many files a Reader keeps in memory; beyond it the
// least recently used is dropped (and read again if asked for again). Waves
// overlap by their notice lead, so a worker may serve several at once.
const maxCachedFiles = 16

// Reader serves rows of wave mailbox files to the activities of one worker
// process. It is safe for concurrent use. Each file is read once and kept in
// memory, and read again if its size or modification time changes.
type Reader struct {
	mu    sync.Mutex
	files map[string]*cachedFile // by path
	uses  uint64                 // counts lookups, to find the least recently used file
}

// cachedFile is one file's rows. The loader fills rows and err and then
// closes loaded; others wait on loaded before reading them.
type cachedFile struct {
	size    int64
	modTime time.Time
	lastUse uint64 // guarded by Reader.mu

	loaded chan struct{}
	rows   []Mailbox
	err    error
}

// NewReader returns an empty Reader.
func NewReader() *Reader {
	return &Reader{files: make(map[string]*cachedFile)}
}

// Count returns the number of mailboxes in the file at path.
func (r *Reader) Count(path string) (int, error) {
	rows, err := r.load(path)
	return len(rows), err
}

// Rows returns the mailboxes at indexes from (inclusive) to to (exclusive) of
// the file at path: one page.
func (r *Reader) Rows(path string, from, to int) ([]Mailbox, error) {
	rows, err := r.load(path)
	if err != nil {
		return nil, err
	}
	switch {
	case from < 0 || from > len(rows):
		return nil, outOfRange(path, from, len(rows))
	case to > len(rows):
		return nil, outOfRange(path, to-1, len(rows))
	case to < from:
		return nil, fmt.Errorf("wave file %s: rows from %d to %d: the end is before the start", path, from, to)
	}
	// A copy, so that callers cannot change the cache.
	return slices.Clone(rows[from:to]), nil
}

// Get returns the mailboxes at the given indexes of the file at path, in the
// order asked for.
func (r *Reader) Get(path string, indexes []int) ([]Mailbox, error) {
	rows, err := r.load(path)
	if err != nil {
		return nil, err
	}
	out := make([]Mailbox, len(indexes))
	for i, idx := range indexes {
		if idx < 0 || idx >= len(rows) {
			return nil, outOfRange(path, idx, len(rows))
		}
		out[i] = rows[idx]
	}
	return out, nil
}

func outOfRange(path string, index, count int) error {
	return fmt.Errorf("wave file %s has %d rows: index %d: %w", path, count, index, ErrOutOfRange)
}

// load returns the rows of the file at path, reading it unless the cache holds
// the same version. Concurrent callers for one version share one read.
func (r *Reader) load(path string) ([]Mailbox, error) {
	// The file is read after this, so the rows cached are never older than
	// the version recorded; a change in between only costs another read.
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("wave file: %w", err)
	}

	r.mu.Lock()
	r.uses++
	f := r.files[path]
	fresh := f == nil || f.size != fi.Size() || !f.modTime.Equal(fi.ModTime())
	if fresh {
		f = &cachedFile{size: fi.Size(), modTime: fi.ModTime(), loaded: make(chan struct{})}
		r.files[path] = f
	}
	f.lastUse = r.uses
	if fresh {
		r.evictLocked()
	}
	r.mu.Unlock()

	if fresh {
		f.rows, f.err = readFile(path)
		close(f.loaded)
		if f.err != nil {
			// Forget the failure, so that the next call tries again.
			r.mu.Lock()
			if r.files[path] == f {
				delete(r.files, path)
			}
			r.mu.Unlock()
		}
	}
	<-f.loaded
	return f.rows, f.err
}

// evictLocked drops the least recently used files beyond maxCachedFiles.
func (r *Reader) evictLocked() {
	for len(r.files) > maxCachedFiles {
		var oldest string
		var oldestUse uint64
		for p, f := range r.files {
			if oldest == "" || f.lastUse < oldestUse {
				oldest, oldestUse = p, f.lastUse
			}
		}
		delete(r.files, oldest)
	}
}

// Limits on a wave's mailbox file: a wave has at most contract.MaxWaveSize
// rows of a key, an address (at most 254 bytes), an organisation and a
// display name, so anything much larger is not one of ours and is refused
// before it is read whole.
const (
	MaxFileBytes = 128 << 20
	MaxLineBytes = 4 << 10
)

// readFile reads and checks a whole wave mailbox file. Only a regular file
// is read: a symbolic link, a FIFO or a device is refused without reading
// from it, and nothing of a file's content is quoted in an error.
func readFile(path string) ([]Mailbox, error) {
	// O_NONBLOCK: opening a FIFO does not wait for a writer; O_NOFOLLOW: a
	// link planted in the store is not followed.
	file, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("wave file %s is a symbolic link: only regular files are read", path)
		}
		return nil, fmt.Errorf("wave file: %w", err)
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return nil, fmt.Errorf("wave file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("wave file %s is not a regular file (%s): it is not read", path, fi.Mode().Type())
	}
	if fi.Size() > MaxFileBytes {
		return nil, fmt.Errorf("wave file %s is %d bytes, more than a wave's file can be (%d)", path, fi.Size(), MaxFileBytes)
	}

	lines := &lineCap{r: bufio.NewReader(io.LimitReader(file, MaxFileBytes+1)), max: MaxLineBytes}
	cr := csv.NewReader(lines)
	cr.ReuseRecord = true // each field is copied into a new string anyway
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("wave file %s is empty", path)
	}
	if err != nil {
		return nil, fmt.Errorf("wave file %s: %w", path, safeErr(err))
	}
	if !slices.Equal(header, fileHeader) {
		return nil, fmt.Errorf("wave file %s: the first line is not the header %q", path, fileHeader)
	}
	var rows []Mailbox
	for {
		rec, err := cr.Read() // FieldsPerRecord, set by the header, checks the width
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("wave file %s: %w", path, safeErr(err))
		}
		if rec[0] == "" {
			line, _ := cr.FieldPos(0)
			return nil, fmt.Errorf("wave file %s line %d: the key is empty", path, line)
		}
		rows = append(rows, Mailbox{
			Index:       len(rows),
			Key:         rec[0],
			Address:     rec[1],
			Org:         rec[2],
			DisplayName: rec[3],
		})
	}
}

// errLineTooLong is lineCap's refusal.
var errLineTooLong = fmt.Errorf("a line is longer than %d bytes", MaxLineBytes)

// lineCap reads through r, failing once a line grows past max bytes.
type lineCap struct {
	r   *bufio.Reader
	max int
	n   int // bytes since the last newline
}

func (l *lineCap) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	for _, b := range p[:n] {
		if b == '\n' {
			l.n = 0
			continue
		}
		if l.n++; l.n > l.max {
			return 0, errLineTooLong
		}
	}
	return n, err
}

// safeErr keeps what an error says of a file's shape (line, column, kind)
// and drops anything of its content.
func safeErr(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("line %d, column %d: %w", pe.Line, pe.Column, pe.Err)
	}
	if errors.Is(err, errLineTooLong) {
		return errLineTooLong
	}
	return errors.New("unreadable")
}
