package codecserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"
)

// Record is one line of the audit file: who did what, when, to which
// workflows' payloads, and how it ended. It never holds a payload's
// content, nor a token or a session ID.
type Record struct {
	Time time.Time `json:"time"`
	// Event is decode, encode, sign-in, sign-out or refused.
	Event string `json:"event"`
	// Subject is the person (the access token's sub); TokenID its jti.
	Subject string `json:"subject,omitempty"`
	TokenID string `json:"tokenId,omitempty"`
	// Via is how the request was authenticated: session (the browser's
	// cookie), bearer (the Authorization header) or login.
	Via       string `json:"via,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	// Payloads is how many payloads the request held; Workflows the
	// distinct workflow IDs they were sealed for, sorted; Unlabelled how
	// many sealed payloads carry none (sealed outside a workflow's context,
	// or before workflow IDs were stamped); Plain how many were not
	// encrypted at all (returned as they came).
	Payloads   int      `json:"payloads"`
	Workflows  []string `json:"workflows,omitempty"`
	Unlabelled int      `json:"unlabelled,omitempty"`
	Plain      int      `json:"plain,omitempty"`
	// Outcome is ok, refused or failed; Reason says why when it is not ok.
	Outcome string `json:"outcome"`
	Reason  string `json:"reason,omitempty"`
	// SessionExpires is when a sign-in's session ends.
	SessionExpires *time.Time `json:"sessionExpires,omitempty"`
	Remote         string     `json:"remote,omitempty"`
}

// Audit is the audit file: JSON lines, appended, each record written in one
// write and synced to disk before the request it records is answered.
type Audit struct {
	mu   sync.Mutex
	f    *os.File
	path string
}

// OpenAudit opens (creating it, mode 0600) the audit file at path for
// appending. An existing file must be a regular file (not a link) that
// neither group nor others may read or write: it says who read whose data.
func OpenAudit(path string) (*Audit, error) {
	f, err := openAuditFile(path)
	if err != nil {
		return nil, err
	}
	return &Audit{f: f, path: path}, nil
}

// Reopen closes the file and opens path again, as OpenAudit does: after
// the file was moved away to be archived (logrotate without copytruncate,
// then SIGHUP to the codec server), records go to a new file.
func (a *Audit) Reopen() error {
	f, err := openAuditFile(a.path)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	old := a.f
	a.f = f
	if old != nil {
		return old.Close()
	}
	return nil
}

func openAuditFile(path string) (*os.File, error) {
	if path == "" {
		return nil, errors.New("audit file: no path given")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("audit file %s is a symbolic link: give the file itself", path)
		}
		return nil, fmt.Errorf("audit file: %w", err)
	}
	st, err := f.Stat()
	if err == nil {
		switch {
		case !st.Mode().IsRegular():
			err = fmt.Errorf("audit file %s is not a regular file", path)
		case st.Mode().Perm()&0o077 != 0:
			err = fmt.Errorf("audit file %s has mode %04o: group and others must have no access (chmod 600)", path, st.Mode().Perm())
		}
	}
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

// Path is where the records go.
func (a *Audit) Path() string { return a.path }

// Write appends one record and syncs it to disk.
func (a *Audit) Write(r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return fs.ErrClosed
	}
	if _, err := a.f.Write(b); err != nil {
		return fmt.Errorf("audit file %s: %w", a.path, err)
	}
	if err := a.f.Sync(); err != nil {
		return fmt.Errorf("audit file %s: %w", a.path, err)
	}
	return nil
}

// Close closes the file; later writes fail.
func (a *Audit) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return nil
	}
	err := a.f.Close()
	a.f = nil
	return err
}
