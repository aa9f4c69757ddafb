// Package flock takes an exclusive flock(2) shared with other processes,
// waiting for another process to release it no longer than a context
// allows.
package flock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
)

// Lock opens path (flag and perm as os.OpenFile's) and takes an exclusive
// flock on it, waiting while another process holds it, until ctx ends.
// unlock releases the lock and closes the file.
//
// The wait is the kernel's (waiters are woken when the lock is let go),
// in a goroutine of its own, so that it can be given up when the context
// ends (an activity cancelled, or its timeout passed). A wait given up
// goes on in that goroutine, which closes the file, and so releases the
// lock, as soon as it gets it.
func Lock(ctx context.Context, path string, flag int, perm os.FileMode) (unlock func(), err error) {
	f, err := os.OpenFile(path, flag, perm)
	if err != nil {
		return nil, err
	}
	unlock = func() { f.Close() }
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if err == nil {
		return unlock, nil
	}
	if !errors.Is(err, syscall.EWOULDBLOCK) {
		f.Close()
		return nil, fmt.Errorf("flock %s: %w", path, err)
	}
	got := make(chan error) // unbuffered: a lock nobody takes is closed
	given := make(chan struct{})
	go func() {
		err := flockWait(f)
		select {
		case got <- err:
		case <-given:
			f.Close() // nobody is waiting for it any more
		}
	}()
	select {
	case err := <-got:
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("flock %s: %w", path, err)
		}
		return unlock, nil
	case <-ctx.Done():
		close(given)
		return nil, fmt.Errorf("flock %s: still held by another process: %w", path, ctx.Err())
	}
}

// flockWait blocks until the exclusive lock is taken, trying again when a
// signal interrupts the wait.
func flockWait(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
