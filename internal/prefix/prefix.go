// Package prefix tracks how far a settled prefix of planned items reaches
// when they settle out of order: a copy's checkpoint may only move over
// items all settled before it.
package prefix

import "sync"

// Tracker knows which of the planned items are settled. Safe for
// concurrent use.
type Tracker[T comparable] struct {
	mu    sync.Mutex
	items []T
	index map[T]int
	done  []bool
	next  int
}

// New tracks items in the order given.
func New[T comparable](items []T) *Tracker[T] {
	t := &Tracker[T]{items: items, index: make(map[T]int, len(items)), done: make([]bool, len(items))}
	for i, v := range items {
		t.index[v] = i
	}
	return t
}

// Settle marks v settled and returns the last item of the settled prefix
// if the prefix grew.
func (t *Tracker[T]) Settle(v T) (last T, grew bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i, ok := t.index[v]
	if !ok {
		return last, false
	}
	t.done[i] = true
	start := t.next
	for t.next < len(t.done) && t.done[t.next] {
		t.next++
	}
	if t.next == start {
		return last, false
	}
	return t.items[t.next-1], true
}
