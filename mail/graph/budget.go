package graph

import (
	"context"
	"fmt"
	"slices"
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
			slots:    l.Concurrent,
			uploads:  window{limit: l.UploadBytes, span: l.UploadWindow + l.Margin},
			requests: window{limit: int64(l.Requests), span: l.RequestWindow + l.Margin},
			now:      b.now,
		}
		b.boxes[mailbox] = m
	}
	return m
}

// Budget is one mailbox's: its request slots, its sliding windows of
// uploaded bytes and of requests, the time before which the service asked
// for no request (Retry-After), and the requests waiting for them.
//
// Waiting requests are admitted in their order of arrival, with one
// exception that keeps the upload budget used: while the first waits for
// room, a later one may go at once if it fits now and leaves room for the
// first at the time the first would have gone anyway (backfilling). A
// sliding window frees what was sent a window ago in the same pieces, so
// without it the space a large message cannot use is left empty window
// after window.
type Budget struct {
	now       func() time.Time
	mu        sync.Mutex
	slots     int // requests at once
	inFlight  int
	uploads   window
	requests  window
	notBefore time.Time
	waiting   []*waiter
	timer     *time.Timer
}

// waiter is one request waiting for its admission.
type waiter struct {
	upload  int64
	ready   chan struct{}
	granted bool
}

// Acquire waits until a request carrying upload bytes may be sent: a slot
// free, the service's Retry-After passed, and both windows with room. The
// request is counted at once; release gives the slot back once its answer
// is read.
func (m *Budget) Acquire(ctx context.Context, upload int64) (release func(), err error) {
	if upload > m.uploads.limit {
		return nil, fmt.Errorf("graph: a request of %d bytes is over the upload budget of %d bytes a window: it can never be sent", upload, m.uploads.limit)
	}
	w := &waiter{upload: upload, ready: make(chan struct{})}
	m.mu.Lock()
	m.waiting = append(m.waiting, w)
	m.admit()
	m.mu.Unlock()
	select {
	case <-w.ready:
		return func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.inFlight--
			m.answered(w)
			m.admit()
		}, nil
	case <-ctx.Done():
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if w.granted {
		// Admitted as the context ended: its slot goes back, its bytes
		// count from now (they may have been sent).
		m.inFlight--
		m.answered(w)
	} else {
		m.waiting = slices.DeleteFunc(m.waiting, func(x *waiter) bool { return x == w })
	}
	m.admit()
	return nil, ctx.Err()
}

// admit lets waiting requests go while they may, and sets the timer for
// when the next may; m.mu is held.
func (m *Budget) admit() {
	if m.timer != nil {
		m.timer.Stop()
	}
	now := m.now()
	if wait := m.notBefore.Sub(now); wait > 0 {
		m.wake(wait)
		return
	}
	for len(m.waiting) > 0 && m.inFlight < m.slots {
		head := m.waiting[0]
		wait := max(m.uploads.wait(now, head.upload), m.requests.wait(now, 1))
		if wait <= 0 {
			m.grant(now, 0)
			continue
		}
		// The first must wait: a later one that fits now and leaves the
		// first its room when its time comes goes before it. (When only
		// an answer can make room for the first, its time is not known,
		// and none goes before it.)
		var uploadRoom, requestRoom int64
		if wait != never {
			at := now.Add(wait)
			uploadRoom = m.uploads.limit - m.uploads.sumAt(at) - head.upload
			requestRoom = m.requests.limit - m.requests.sumAt(at) - 1
		}
		for i := 1; i < len(m.waiting) && m.inFlight < m.slots && requestRoom >= 1; i++ {
			w := m.waiting[i]
			if w.upload <= uploadRoom && m.uploads.wait(now, w.upload) <= 0 && m.requests.wait(now, 1) <= 0 {
				uploadRoom -= w.upload
				requestRoom--
				m.grant(now, i)
				i--
			}
		}
		if m.inFlight < m.slots {
			// Look again when the first or the next of those behind it
			// may go: when the window's oldest piece leaves it. (Room
			// that only an answer frees needs no timer: the answer's
			// release looks again.)
			if len(m.waiting) > 1 && len(m.uploads.at) > 0 {
				wait = min(wait, max(m.uploads.at[0].Add(m.uploads.span).Sub(now), time.Millisecond))
			}
			if wait != never {
				m.wake(wait)
			}
		}
		return
	}
}

// grant admits the i-th waiting request; m.mu is held.
func (m *Budget) grant(now time.Time, i int) {
	w := m.waiting[i]
	m.waiting = slices.Delete(m.waiting, i, i+1)
	m.uploads.send(w.upload)
	m.requests.send(1)
	m.inFlight++
	w.granted = true
	close(w.ready)
}

// answered counts an answered request's pieces from now: the service
// counted it at some time between its sending and its answer, which for a
// large body or a busy connection can be long after it was sent, and it
// leaves the service's windows a window after that. Counted from its
// sending, it would leave the copier's first, and the next request could
// be refused for it. m.mu is held.
func (m *Budget) answered(w *waiter) {
	now := m.now()
	m.uploads.answer(now, w.upload)
	m.requests.answer(now, 1)
}

// wake runs admit again after d; m.mu is held.
func (m *Budget) wake(d time.Duration) {
	if m.timer == nil {
		m.timer = time.AfterFunc(d, func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.admit()
		})
		return
	}
	m.timer.Reset(d)
}

// RetryAfter records the service's refusal: no request to this mailbox
// before d has passed.
func (m *Budget) RetryAfter(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t := m.now().Add(d); t.After(m.notBefore) {
		m.notBefore = t
		m.admit()
	}
}

// NotBefore is when the next request may go, as far as Retry-After says.
func (m *Budget) NotBefore() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.notBefore
}

// window is a sliding window: what was sent in the last span, by time, in
// pieces, and what is in flight (open): sent, not answered yet, so not
// known to have been counted by the service before its answer. An open
// piece holds its room until it is answered and a span has passed after.
type window struct {
	limit int64
	span  time.Duration
	at    []time.Time // in order
	n     []int64
	sum   int64 // of n
	open  int64
}

// never is a wait that only an answer can end: no timer is set for it.
const never = time.Duration(1<<63 - 1)

// drop forgets what left the window.
func (w *window) drop(now time.Time) {
	i := 0
	for i < len(w.at) && now.Sub(w.at[i]) >= w.span {
		w.sum -= w.n[i]
		i++
	}
	w.at, w.n = w.at[i:], w.n[i:]
}

// sumAt is what the window will hold at a later time, of what it holds
// now (an open piece is still there).
func (w *window) sumAt(t time.Time) int64 {
	sum := w.sum + w.open
	for i := 0; i < len(w.at) && t.Sub(w.at[i]) >= w.span; i++ {
		sum -= w.n[i]
	}
	return sum
}

// wait is how long until n more fits: 0 if it fits now, never if it fits
// only once an open piece is answered.
func (w *window) wait(now time.Time, n int64) time.Duration {
	w.drop(now)
	over := w.sum + w.open + n - w.limit
	if over <= 0 {
		return 0
	}
	var freed int64
	for i := range w.at {
		if freed += w.n[i]; freed >= over {
			return w.at[i].Add(w.span).Sub(now)
		}
	}
	return never
}

// send opens a piece of n.
func (w *window) send(n int64) { w.open += n }

// answer closes an open piece of n: it counts from now, for a span.
func (w *window) answer(now time.Time, n int64) {
	w.open -= n
	w.drop(now)
	w.at = append(w.at, now)
	w.n = append(w.n, n)
	w.sum += n
}
