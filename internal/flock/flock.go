// Package flock takes an exclusive flock(2) shared with other processes,
// waiting for another process to release it no longer than a context
// allows.
package flock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
)

// turns holds a one-slot semaphore per lock path: the callers of this
// process take turns before they ask the kernel, so at most one of them
// at a time waits in the kernel for a path, holding an OS thread.
var turns sync.Map // path -> chan struct{}

func turn(path string) chan struct{} {
	t, _ := turns.LoadOrStore(path, make(chan struct{}, 1))
	return t.(chan struct{})
}

// Lock opens path (flag and perm as os.OpenFile's) and takes an exclusive
// flock on it, waiting while another holds it, until ctx ends. unlock
// releases the lock and closes the file.
//
// Callers in this process take turns first (a wait the context can end,
// costing nothing while it lasts). The one whose turn it is waits for
// another process in the kernel (woken when the lock is let go), in a
// goroutine of its own, so that the wait can be given up when the context
// ends (an activity cancelled, or its timeout passed). A wait given up
// goes on in that goroutine, which keeps the turn, and closes the file and
// passes the turn on as soon as it gets the lock: however many callers give
// up, one thread at most waits in the kernel for a path.
func Lock(ctx context.Context, path string, flag int, perm os.FileMode) (unlock func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("flock %s: %w", path, err)
	}
	t := turn(path)
	select {
	case t <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("flock %s: waiting for it: %w", path, ctx.Err())
	}
	f, err := os.OpenFile(path, flag, perm)
	if err != nil {
		<-t
		return nil, err
	}
	release := func() {
		f.Close()
		<-t
	}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if err == nil {
		return release, nil
	}
	if !errors.Is(err, syscall.EWOULDBLOCK) {
		release()
		return nil, fmt.Errorf("flock %s: %w", path, err)
	}
	got := make(chan error) // unbuffered: a lock nobody takes is released
	given := make(chan struct{})
	go func() {
		err := flockWait(f)
		select {
		case got <- err:
		case <-given:
			release() // nobody is waiting for it any more
		}
	}()
	select {
	case err := <-got:
		if err != nil {
			release()
			return nil, fmt.Errorf("flock %s: %w", path, err)
		}
		return release, nil
	case <-ctx.Done():
		close(given)
		return nil, fmt.Errorf("flock %s: waiting for it: %w", path, ctx.Err())
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
