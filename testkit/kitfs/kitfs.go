// Package kitfs is what the test kit's servers share: finding the pinned
// binaries under the module root, and the end of a log for an error.
package kitfs

import (
	"errors"
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
	root, err := ModuleRoot()
	if err != nil {
		return "", fmt.Errorf("%w; set %s", err, env)
	}
	p := filepath.Join(root, rel)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no %s: run `make %s` (or set %s)", p, make, env)
	}
	return p, nil
}

// ModuleRoot is the first directory above the working directory holding
// go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
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
