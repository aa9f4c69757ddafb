package accesstoken

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"mailwave/internal/atomicfile"
	"mailwave/internal/flock"
)

// The revocation list is a text file, one revocation a line: a subject and
// the time it was revoked (RFC 3339), e.g. "alice 2026-12-07T15:04:05Z".
// A token whose subject is listed is refused if it was issued at or before
// that time; a token issued later for the same name is good. Blank lines and
// lines starting with '#' are ignored. If a name is listed twice, the later
// time counts.

// MaxRevocationsSize bounds the list (a name and a time are ~50 bytes).
const MaxRevocationsSize = 16 << 20

type fileStamp struct {
	exists bool
	size   int64
	mtime  time.Time
}

func stamp(path string) (fileStamp, error) {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fileStamp{}, nil
	}
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{exists: true, size: st.Size(), mtime: st.ModTime()}, nil
}

// ReadRevocations reads the list: each revoked subject with the latest time
// it was revoked. A missing file is an empty list.
func ReadRevocations(path string) (map[string]time.Time, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]time.Time{}, nil
	}
	if err != nil {
		return nil, err
	}
	return parseRevocations(path, b)
}

func parseRevocations(path string, b []byte) (map[string]time.Time, error) {
	if len(b) > MaxRevocationsSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, MaxRevocationsSize)
	}
	out := map[string]time.Time{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("%s line %d: want a name and a time (e.g. \"alice 2026-12-07T15:04:05Z\")", path, n)
		}
		if err := CheckSubject(f[0]); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, n, err)
		}
		at, err := time.Parse(time.RFC3339, f[1])
		if err != nil {
			return nil, fmt.Errorf("%s line %d: time %q is not RFC 3339", path, n, f[1])
		}
		if prev, ok := out[f[0]]; !ok || at.After(prev) {
			out[f[0]] = at
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// Revoke adds subject, revoked at at, to the list at path, creating it if
// need be. It refuses a malformed list rather than rewrite it, writes
// atomically, and holds a lock (path + ".lock") while it does, so that two
// administrators revoking at once both count.
func Revoke(path, subject string, at time.Time) error {
	if err := CheckSubject(subject); err != nil {
		return err
	}
	if path == "" {
		return errors.New("no revocation list named")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	unlock, err := flock.Lock(ctx, path+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("locking %s: %w", path, err)
	}
	defer unlock()
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if _, err := parseRevocations(path, old); err != nil {
		return fmt.Errorf("not revoking: %w", err)
	}
	if len(old) > 0 && old[len(old)-1] != '\n' {
		old = append(old, '\n')
	}
	line := fmt.Sprintf("%s %s\n", subject, at.UTC().Format(time.RFC3339))
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		if _, err := w.Write(old); err != nil {
			return err
		}
		_, err := io.WriteString(w, line)
		return err
	})
}
