package wavefile

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"mailwave/identity"
)

// fileHeader is the header of a wave's mailbox file.
var fileHeader = []string{"key", "address", "org", "display_name"}

// filePerm is the mode of a wave's mailbox file: it holds staff names and
// addresses, so it is not world-readable.
const filePerm fs.FileMode = 0o640

// Mailbox is one row of a wave's mailbox file.
type Mailbox struct {
	Index       int    // position in the file, from 0
	Key         string // identity key of Address
	Address     string
	Org         string
	DisplayName string
}

// Build turns parsed rows into a wave's mailboxes: Index 0..n-1 in row order
// and each address's key. It refuses two rows with the same key, whether the
// same address twice or (which should never happen) two addresses whose keys
// collide.
func Build(rows []Row, keyer *identity.Keyer) ([]Mailbox, error) {
	if keyer == nil {
		return nil, errors.New("wavefile.Build: no keyer")
	}
	out := make([]Mailbox, len(rows))
	byKey := make(map[string]int, len(rows)) // key -> position in rows
	for i, r := range rows {
		addr, err := identity.NormalizeAddress(r.Address)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", r.Line, err)
		}
		key, err := keyer.Key(addr)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", r.Line, err)
		}
		if j, dup := byKey[key]; dup {
			if out[j].Address == addr {
				return nil, fmt.Errorf("line %d: %s is a duplicate of line %d", r.Line, addr, rows[j].Line)
			}
			return nil, fmt.Errorf("line %d (%s) and line %d (%s) have the same key %s",
				rows[j].Line, out[j].Address, r.Line, addr, key)
		}
		byKey[key] = i
		out[i] = Mailbox{Index: i, Key: key, Address: addr, Org: r.Org, DisplayName: r.DisplayName}
	}
	return out, nil
}

// Write writes a wave's mailbox file at path, creating its directory. The
// mailboxes must be in Index order, Index 0..n-1. The file appears whole or
// not at all, and an existing file is never replaced (the error matches
// fs.ErrExist): a wave's file is never rewritten under the workers reading it.
func Write(path string, mailboxes []Mailbox) error {
	for i, m := range mailboxes {
		if m.Index != i {
			return fmt.Errorf("write %s: mailbox at position %d has index %d", path, i, m.Index)
		}
	}
	// Checked first for a quick refusal; publish checks again.
	_, err := os.Lstat(path)
	if err == nil {
		err = fs.ErrExist
	} else if errors.Is(err, fs.ErrNotExist) {
		err = writeNew(path, mailboxes)
	}
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("write %s: a wave's mailbox file is never rewritten: %w", path, fs.ErrExist)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// writeNew writes the file under a temporary name in its directory and then
// publishes it at path.
func writeNew(path string, mailboxes []Mailbox) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		// Once published the file has its own name; removing the temporary
		// one only tidies up, so its failure is not the caller's.
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
	}()
	if err := writeRows(tmp, mailboxes); err != nil {
		return err
	}
	if err := tmp.Chmod(filePerm); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := publish(tmp.Name(), path); err != nil {
		return err
	}
	syncDir(dir)
	return nil
}

func writeRows(w io.Writer, mailboxes []Mailbox) error {
	bw := bufio.NewWriter(w)
	cw := csv.NewWriter(bw)
	if err := cw.Write(fileHeader); err != nil {
		return err
	}
	for _, m := range mailboxes {
		if err := cw.Write([]string{m.Key, m.Address, m.Org, m.DisplayName}); err != nil {
			return err
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return bw.Flush()
}

// publish gives the finished temporary file its final name without replacing
// anything there. A hard link does that atomically; on a file system without
// hard links it falls back to a rename after a last check, which leaves a
// window only for two writers of the same wave at the same instant. It
// returns fs.ErrExist if path exists. The caller removes tmp.
func publish(tmp, path string) error {
	err := os.Link(tmp, path)
	if err == nil || errors.Is(err, fs.ErrExist) {
		return err
	}
	if _, err := os.Lstat(path); err == nil {
		return fs.ErrExist
	}
	return os.Rename(tmp, path)
}

// syncDir makes a new directory entry durable where the platform allows it;
// it is best effort, as the file itself is already synced.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
