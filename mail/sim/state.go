package sim

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"mailwave/contract"
	"mailwave/mail/port"
)

// mailboxState is everything that changes about one mailbox: what has
// arrived at the source, what the target holds, the route and the fault
// streak. One small JSON file per mailbox, rewritten whole on every change.
type mailboxState struct {
	Key   string `json:"key"`
	Index int    `json:"index"`
	// DeltaArrived is set when a bulk pass completes while mail still goes to
	// the source: the profile's delta messages are then in the source INBOX.
	DeltaArrived bool              `json:"delta_arrived,omitempty"`
	Route        port.Route        `json:"route,omitempty"`
	Cutovers     int               `json:"cutovers,omitempty"`      // cutovers that changed the route
	CutoverNoops int               `json:"cutover_noops,omitempty"` // cutovers that found it done
	Target       map[string]*store `json:"target,omitempty"`        // by folder name
	// FaultStep and FaultStreak count consecutive injected faults at one step.
	FaultStep   string `json:"fault_step,omitempty"`
	FaultStreak int    `json:"fault_streak,omitempty"`
}

// store is one target folder.
type store struct {
	UIDValidity uint32 `json:"uidvalidity"`
	UIDs        uidSet `json:"uids"`
	// Duplicates counts messages written over UIDs the folder already held.
	Duplicates int64 `json:"duplicates,omitempty"`
}

// route returns the mailbox's route, the source by default.
func (s *mailboxState) route() port.Route {
	if s.Route == "" {
		return port.RouteSource
	}
	return s.Route
}

// folder returns the target folder, creating it if asked to.
func (s *mailboxState) folder(f FolderProfile, create bool) *store {
	t := s.Target[f.Name]
	if t == nil && create {
		if s.Target == nil {
			s.Target = make(map[string]*store)
		}
		t = &store{UIDValidity: f.UIDValidity}
		s.Target[f.Name] = t
	}
	return t
}

// write appends [lo, hi] to the target folder as an IMAP APPEND would: the
// target does not deduplicate, it only counts what it already had.
func (t *store) write(lo, hi uint32) {
	t.Duplicates += t.UIDs.add(lo, hi)
}

// statePath is where the state of the mailbox with key lives.
func (e *Estate) statePath(key string) string {
	shard := key[:min(2, len(key))]
	return filepath.Join(e.dir, stateDir, shard, key+".json")
}

// load reads a mailbox's state, or a fresh one if it has none yet. A state
// bound to another mailbox index is refused: the key is not that mailbox's.
func (e *Estate) load(key string, index int) (*mailboxState, error) {
	st, err := readState(e.statePath(key))
	if errors.Is(err, fs.ErrNotExist) {
		return &mailboxState{Key: key, Index: index}, nil
	}
	if err != nil {
		return nil, err
	}
	if st.Index != index || st.Key != key {
		return nil, port.Permanent(contract.ErrTypeInvalidMailbox, "mailbox key %s is bound to another mailbox", key)
	}
	return st, nil
}

// save writes a mailbox's state atomically.
func (e *Estate) save(st *mailboxState) error {
	return writeFileAtomic(e.statePath(st.Key), e.opts.Sync, func(w io.Writer) error {
		return json.NewEncoder(w).Encode(st)
	})
}

// readState parses one state file.
func readState(path string) (*mailboxState, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var st mailboxState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("sim: bad state file %s: %w", filepath.Base(path), err)
	}
	return &st, nil
}

// writeFileAtomic writes path through a temporary file in the same
// directory and a rename, so a reader or a restart sees the old content or
// the new, never a part. sync also flushes the data to the disk first.
func writeFileAtomic(path string, sync bool, fill func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(dir, 0o755); err == nil {
			f, err = os.CreateTemp(dir, filepath.Base(path)+".tmp*")
		}
	}
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("sim: writing %s: %w", filepath.Base(path), err)
		}
	}()
	w := bufio.NewWriter(f)
	if err = fill(w); err != nil {
		return err
	}
	if err = w.Flush(); err != nil {
		return err
	}
	if sync {
		if err = f.Sync(); err != nil {
			return err
		}
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// keyLocks serialises access to one mailbox's state within the process: two
// attempts of the same activity may overlap. Entries live only while used.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	ch   chan struct{} // holds a token while locked
	refs int
}

// lock takes the key's lock, giving up if ctx ends first. It returns the
// function that releases it.
func (l *keyLocks) lock(ctx context.Context, key string) (func(), error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[string]*keyLock)
	}
	kl := l.m[key]
	if kl == nil {
		kl = &keyLock{ch: make(chan struct{}, 1)}
		l.m[key] = kl
	}
	kl.refs++
	l.mu.Unlock()

	release := func() {
		l.mu.Lock()
		if kl.refs--; kl.refs == 0 {
			delete(l.m, key)
		}
		l.mu.Unlock()
	}
	select {
	case kl.ch <- struct{}{}:
		return func() { <-kl.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
