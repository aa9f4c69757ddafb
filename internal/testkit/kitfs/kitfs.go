// Package kitfs is what the test kit's servers share: finding the pinned
// binaries under the module root, and the end of a log for an error.
package kitfs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Binary is $env when set, else rel under the module root (the first
// directory above the working directory holding go.mod); make names the
// make target that builds it, for the error.
func Binary(env, rel, make string) (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, rel)
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("no %s: run `make %s` (or set %s)", p, make, env)
			}
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory; set %s", env)
		}
		dir = parent
	}
}

// Tail is the last n lines of a log file, for an error message.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
