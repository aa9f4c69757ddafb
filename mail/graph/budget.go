package graph

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Limits are Microsoft Graph's documented limits on one application's
// requests to one mailbox. The copier keeps them, so that a steady copy is
// never refused; the tenant's own, undocumented limit is found by the
// adaptive rate on top (mail/adapt).
type Limits struct {
	// Concurrent requests in flight at once (4).
	Concurrent int
	// UploadBytes may be sent in any UploadWindow (150 MB per 5 minutes:
	// 0.5 MB/s).
	UploadBytes  int64
	UploadWindow time.Duration
	// Requests may be made in any RequestWindow (10,000 per 10 minutes).
	Requests      int
	RequestWindow time.Duration
	// Margin widens both windows on the copier's side: a request is
	// counted when it is sent, the service counts it when it arrives.
	Margin time.Duration
}

// DefaultLimits are the documented values.
var DefaultLimits = Limits{
	Concurrent:  4,
	UploadBytes: 150_000_000, UploadWindow: 5 * time.Minute,
	Requests: 10_000, RequestWindow: 10 * time.Minute,
	Margin: 2 * time.Second,
}

// Check refuses limits that cannot be kept.
func (l Limits) Check() error {
	switch {
	case l.Concurrent < 1:
		return fmt.Errorf("graph limits: concurrent %d: must be at least 1", l.Concurrent)
	case l.UploadBytes < 1 || l.UploadWindow <= 0:
		return fmt.Errorf("graph limits: upload budget %d bytes per %s: both must be more than zero", l.UploadBytes, l.UploadWindow)
	case l.Requests < 1 || l.RequestWindow <= 0:
		return fmt.Errorf("graph limits: request budget %d per %s: both must be more than zero", l.Requests, l.RequestWindow)
	case l.Margin < 0:
		return fmt.Errorf("graph limits: margin %s: must not be negative", l.Margin)
	}
	return nil
}

// Budgets keeps each mailbox's budgets, shared by every copy of the
// worker that writes to that mailbox.
type Budgets struct {
	limits Limits
	now    func() time.Time
	mu     sync.Mutex
	boxes  map[string]*Budget
}

// NewBudgets keeps limits per mailbox.
func NewBudgets(l Limits) (*Budgets, error) {
	if err := l.Check(); err != nil {
		return nil, err
	}
	return &Budgets{limits: l, now: time.Now, boxes: map[string]*Budget{}}, nil
}

// For is the budget of one mailbox (by its key: no address is kept).
func (b *Budgets) For(mailbox string) *Budget {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, ok := b.boxes[mailbox]
	if !ok {
		l := b.limits
		m = &Budget{
			slots:    make(chan struct{}, l.Concurrent),
			uploads:  window{limit: l.UploadBytes, span: l.UploadWindow + l.Margin},
			requests: window{limit: int64(l.Requests), span: l.RequestWindow + l.Margin},
			now:      b.now,
		}
		b.boxes[mailbox] = m
	}
	return m
}

// Budget is one mailbox's: its request slots, its sliding windows of
// uploaded bytes and of requests, and the time before which the service
// asked for no request (Retry-After).
type Budget struct {
	slots     chan struct{}
	now       func() time.Time
	mu        sync.Mutex
	uploads   window
	requests  window
	notBefore time.Time
}

// Acquire waits until a request carrying upload bytes may be sent: a slot
// free, the service's Retry-After passed, and both windows with room. The
// request is counted at once; release gives the slot back once its answer
// is read.
func (m *Budget) Acquire(ctx context.Context, upload int64) (release func(), err error) {
	if upload > m.uploads.limit {
		return nil, fmt.Errorf("graph: a request of %d bytes is over the upload budget of %d bytes a window: it can never be sent", upload, m.uploads.limit)
	}
	select {
	case m.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	release = func() { <-m.slots }
	for {
		m.mu.Lock()
		now := m.now()
		wait := m.notBefore.Sub(now)
		if wait <= 0 {
			wait = max(m.uploads.wait(now, upload), m.requests.wait(now, 1))
		}
		if wait <= 0 {
			m.uploads.add(now, upload)
			m.requests.add(now, 1)
			m.mu.Unlock()
			return release, nil
		}
		m.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			release()
			return nil, ctx.Err()
		}
	}
}

// RetryAfter records the service's refusal: no request to this mailbox
// before d has passed.
func (m *Budget) RetryAfter(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t := m.now().Add(d); t.After(m.notBefore) {
		m.notBefore = t
	}
}

// NotBefore is when the next request may go, as far as Retry-After says.
func (m *Budget) NotBefore() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.notBefore
}

// window is a sliding window: what was sent in the last span, by time.
type window struct {
	limit int64
	span  time.Duration
	at    []time.Time
	n     []int64
	sum   int64
}

// drop forgets what left the window.
func (w *window) drop(now time.Time) {
	i := 0
	for i < len(w.at) && now.Sub(w.at[i]) >= w.span {
		w.sum -= w.n[i]
		i++
	}
	w.at, w.n = w.at[i:], w.n[i:]
}

// wait is how long until n more fits; 0 if it fits now.
func (w *window) wait(now time.Time, n int64) time.Duration {
	w.drop(now)
	over := w.sum + n - w.limit
	if over <= 0 {
		return 0
	}
	var freed int64
	for i := range w.at {
		if freed += w.n[i]; freed >= over {
			return w.at[i].Add(w.span).Sub(now)
		}
	}
	return w.span // not reached: n is within the limit
}

func (w *window) add(now time.Time, n int64) {
	w.at = append(w.at, now)
	w.n = append(w.n, n)
	w.sum += n
}
