// Package secretfile reads files that hold secrets (key rings, the mailbox
// key secret, TLS private keys, the secrets file): only regular files that
// neither group nor others may read, and never quoted in an error.
package secretfile

import (
	"fmt"
	"io"
	"os"
)

// MaxSize bounds a secret file: every one of ours is a few kilobytes.
const MaxSize = 1 << 20

// Check refuses a path that is not a regular file, or that group or others
// may access.
func Check(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s has mode %04o: group and others must have no access (chmod 600 %s)", path, perm, path)
	}
	return nil
}

// Read checks the file and reads it, up to MaxSize.
func Read(path string) ([]byte, error) {
	if err := Check(path); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a secret file", path, MaxSize)
	}
	return b, nil
}
