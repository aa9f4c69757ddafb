package flock_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime/pprof"
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

// lock calls flock.Lock with a context of timeout, and fails the test,
// rather than hanging it, if Lock does not return within a few seconds of
// that.
func lock(t *testing.T, path string, timeout time.Duration) (func(), error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	type result struct {
		unlock func()
		err    error
	}
	done := make(chan result, 1)
	go func() {
		unlock, err := flock.Lock(ctx, path, os.O_RDWR, 0)
		done <- result{unlock, err}
	}()
	select {
	case r := <-done:
		return r.unlock, r.err
	case <-time.After(timeout + 5*time.Second):
		t.Fatalf("flock.Lock did not end with its context of %s", timeout)
		return nil, nil
	}
}

// A lock held elsewhere is waited for, and taken as soon as it is let go;
// unlock lets it go in turn.
func TestLockWaitsForTheOtherHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	letGo := heldElsewhere(t, path)
	let := time.AfterFunc(200*time.Millisecond, letGo)
	defer let.Stop()
	start := time.Now()
	unlock, err := lock(t, path, 5*time.Second)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond, "not before the other let go")
	assert.False(t, free(path), "held")
	unlock()
	assert.True(t, free(path), "let go")
}

// Waits end with their contexts, naming the file. However many give up,
// at most one goes on waiting in the kernel (holding an OS thread), and it
// lets the lock go as soon as it has it: the next caller gets the lock.
func TestWaitsEndWithTheirContexts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	letGo := heldElsewhere(t, path)
	threads := pprof.Lookup("threadcreate")
	before := threads.Count()
	for range 50 {
		_, err := lock(t, path, 5*time.Millisecond)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.ErrorContains(t, err, path)
	}
	// One wait in the kernel; a loaded machine, stalling threads in their
	// syscalls, can make the runtime start a few more to run the rest (it
	// reuses them after). One kept by each given-up wait would be 50.
	assert.LessOrEqual(t, threads.Count()-before, 10, "given-up waits do not each keep a thread")

	letGo()
	unlock, err := lock(t, path, 5*time.Second)
	require.NoError(t, err, "the given-up wait let the lock go")
	assert.False(t, free(path))
	unlock()
	assert.True(t, free(path))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = flock.Lock(ctx, path, os.O_RDWR, 0)
	require.ErrorIs(t, err, context.Canceled, "an ended context, even with the lock free")
}

// A file that cannot be opened is an error naming it.
func TestAMissingFileIsAnError(t *testing.T) {
	_, err := flock.Lock(context.Background(), filepath.Join(t.TempDir(), "nope"), os.O_RDONLY, 0)
	require.ErrorIs(t, err, os.ErrNotExist)
}
