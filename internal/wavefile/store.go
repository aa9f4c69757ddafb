package wavefile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

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
// with another secret would not match the mailboxes already started.
func (s *Store) CheckFingerprint(_ context.Context, fp string) error {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return err
	}
	p := filepath.Join(s.dir, fingerprintFile)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err == nil {
		_, werr := f.WriteString(fp + "\n")
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		return werr
	}
	if !errors.Is(err, os.ErrExist) {
		return err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if got := strings.TrimSpace(string(b)); got != fp {
		return fmt.Errorf("the key secret's fingerprint is %s, but this deployment began with %s (%s): "+
			"mailbox keys made with another secret would not match the mailboxes already started; use the deployment's secret", fp, got, p)
	}
	return nil
}
