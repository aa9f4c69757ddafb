package wavefile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"mailwave/contract"
)

// Store is a directory of wave rosters, one file a wave: <dir>/<wave ID>.csv.
// The starter writes a wave's roster into its store, and each worker reads
// it from its own, by wave ID: no path ever travels in a workflow input, and
// a worker opens only files under the directory its configuration names.
type Store struct {
	dir    string
	reader *Reader
}

// NewStore returns the store in dir.
func NewStore(dir string) *Store { return &Store{dir: dir, reader: NewReader()} }

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// Path is where the roster of a wave is; a wave ID that could name anything
// else (a path, "..") is refused.
func (s *Store) Path(waveID string) (string, error) {
	if !contract.ValidWaveID(waveID) {
		return "", fmt.Errorf("wave ID %.80q: %s", waveID, contract.WaveIDRule)
	}
	return filepath.Join(s.dir, waveID+".csv"), nil
}

// Write stores a wave's roster; a wave's roster is written once (the error
// of a second write matches fs.ErrExist).
func (s *Store) Write(_ context.Context, waveID string, mailboxes []Mailbox) error {
	p, err := s.Path(waveID)
	if err != nil {
		return err
	}
	return Write(p, mailboxes)
}

// Rows returns the wave's mailboxes from index from (inclusive) to to.
func (s *Store) Rows(_ context.Context, waveID string, from, to int) ([]Mailbox, error) {
	p, err := s.Path(waveID)
	if err != nil {
		return nil, err
	}
	return s.reader.Rows(p, from, to)
}

// Get returns the wave's mailboxes at the given indexes, in that order.
func (s *Store) Get(_ context.Context, waveID string, indexes []int) ([]Mailbox, error) {
	p, err := s.Path(waveID)
	if err != nil {
		return nil, err
	}
	return s.reader.Get(p, indexes)
}

// All returns every mailbox of the wave's roster.
func (s *Store) All(_ context.Context, waveID string) ([]Mailbox, error) {
	p, err := s.Path(waveID)
	if err != nil {
		return nil, err
	}
	n, err := s.reader.Count(p)
	if err != nil {
		return nil, err
	}
	return s.reader.Rows(p, 0, n)
}

// Remove deletes a wave's roster; one already gone is not an error.
func (s *Store) Remove(_ context.Context, waveID string) error {
	p, err := s.Path(waveID)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the roster of wave %s: %w", waveID, err)
	}
	return nil
}

// fingerprintFile records, in the store, the fingerprint of the key secret
// the deployment's mailbox keys are made with.
const fingerprintFile = ".key-secret-fingerprint"

// CheckFingerprint records fp as the deployment's key secret fingerprint
// if none is recorded yet, and otherwise refuses one that differs: keys made
// with another secret would not match the mailboxes already started. The
// record appears whole (written aside, then linked into place), and is read
// only as a small regular file holding a fingerprint.
func (s *Store) CheckFingerprint(_ context.Context, fp string) error {
	if !fingerprintPattern.MatchString(fp) {
		return fmt.Errorf("%q is not a key secret fingerprint", fp)
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return err
	}
	p := filepath.Join(s.dir, fingerprintFile)
	tmp, err := os.CreateTemp(s.dir, ".fingerprint-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	_, werr := tmp.WriteString(fp + "\n")
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return werr
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), p); err == nil {
		return nil // the first: recorded
	} else if !errors.Is(err, os.ErrExist) {
		return err
	}
	got, err := readFingerprint(p)
	if err != nil {
		return err
	}
	if got != fp {
		return fmt.Errorf("the key secret's fingerprint is %s, but this deployment began with %s (%s): "+
			"mailbox keys made with another secret would not match the mailboxes already started; use the deployment's secret", fp, got, p)
	}
	return nil
}

var fingerprintPattern = regexp.MustCompile(`^[0-9a-f]{16}$`)

// readFingerprint reads a recorded fingerprint: a regular file (no link),
// small, holding one; nothing else is quoted.
func readFingerprint(p string) (string, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", fmt.Errorf("the deployment's key fingerprint %s: %w", p, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() || fi.Size() > 64 {
		return "", fmt.Errorf("the deployment's key fingerprint %s is not a small regular file", p)
	}
	b, err := io.ReadAll(io.LimitReader(f, 64))
	if err != nil {
		return "", err
	}
	got := strings.TrimSpace(string(b))
	if !fingerprintPattern.MatchString(got) {
		return "", fmt.Errorf("the deployment's key fingerprint %s does not hold a fingerprint", p)
	}
	return got, nil
}
