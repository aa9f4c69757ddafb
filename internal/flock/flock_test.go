package flock_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/internal/flock"
)

// heldElsewhere takes the lock on path through an open of its own, as
// another process would, and returns how to let it go (from any
// goroutine: it touches only the descriptor's number, which the test's
// cleanup closes after the test has seen the lock let go).
func heldElsewhere(t *testing.T, path string) (letGo func()) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	fd := int(f.Fd())
	require.NoError(t, syscall.Flock(fd, syscall.LOCK_EX))
	return func() { _ = syscall.Flock(fd, syscall.LOCK_UN) }
}

// free reports whether nobody holds the lock on path (called from
// assert.Eventually's goroutine too: it must not stop the test).
func free(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
}

// A lock held elsewhere is waited for, and taken as soon as it is let go;
// unlock lets it go in turn.
func TestLockWaitsForTheOtherHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	letGo := heldElsewhere(t, path)
	let := time.AfterFunc(200*time.Millisecond, letGo)
	defer let.Stop()
	start := time.Now()
	unlock, err := flock.Lock(context.Background(), path, os.O_RDWR, 0)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond, "not before the other let go")
	assert.False(t, free(path), "held")
	unlock()
	assert.True(t, free(path), "let go")
}

// A wait ends with its context, naming the file; the wait given up does
// not keep the lock once the other holder lets it go.
func TestAWaitEndsWithItsContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	letGo := heldElsewhere(t, path)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := flock.Lock(ctx, path, os.O_RDWR, 0)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, path)

	letGo()
	assert.Eventually(t, func() bool { return free(path) }, 5*time.Second, 10*time.Millisecond,
		"the abandoned wait lets the lock go as soon as it has it")
	unlock, err := flock.Lock(context.Background(), path, os.O_RDWR, 0)
	require.NoError(t, err)
	unlock()
}

// A file that cannot be opened is an error naming it.
func TestAMissingFileIsAnError(t *testing.T) {
	_, err := flock.Lock(context.Background(), filepath.Join(t.TempDir(), "nope"), os.O_RDONLY, 0)
	require.ErrorIs(t, err, os.ErrNotExist)
}
