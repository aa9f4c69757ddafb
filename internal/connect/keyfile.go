package connect

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"mailwave/internal/secretfile"
)

// keyFile is an API key in a file, read again when the file changes (looked
// at no more than once a second), so that a renewed token is taken up by a
// running worker. A file that goes bad keeps the last good key until it is
// mended; the server refuses that key once it expires.
type keyFile struct {
	path string

	mu      sync.Mutex
	checked time.Time
	mtime   time.Time
	size    int64
	value   string
}

func (k *keyFile) key() (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := time.Now()
	if k.value != "" && now.Sub(k.checked) < time.Second && !now.Before(k.checked) {
		return k.value, nil
	}
	k.checked = now
	st, err := os.Stat(k.path)
	if err == nil && k.value != "" && st.ModTime().Equal(k.mtime) && st.Size() == k.size {
		return k.value, nil
	}
	v, err := readKeyFile(k.path)
	if err != nil {
		if k.value != "" {
			return k.value, nil
		}
		return "", err
	}
	k.value = v
	if st != nil {
		k.mtime, k.size = st.ModTime(), st.Size()
	}
	return v, nil
}

// readKeyFile reads an API key from a file only its owner may read: one
// line, no spaces inside.
func readKeyFile(path string) (string, error) {
	b, err := secretfile.Read(path)
	if err != nil {
		return "", fmt.Errorf("--api-key-file: %w", err)
	}
	v := strings.TrimSpace(string(b))
	switch {
	case v == "":
		return "", fmt.Errorf("--api-key-file: %s is empty", path)
	case strings.ContainsAny(v, " \t\r\n"):
		return "", errors.New("--api-key-file: " + path + " holds more than one line or word: it holds one key")
	}
	return v, nil
}
