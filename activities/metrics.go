package activities

import (
	"errors"
	"sync"

	"go.temporal.io/sdk/client"

	"mailwave/contract"
	"mailwave/contract/metrics"
	"mailwave/mail/port"
)

// meter is where the activities report mailwave's own metrics (named in
// contract/metrics): the handler of the worker's registry, which its
// Temporal client shares, or nowhere. Its labels are fixed small sets (a
// pass, a notice's kind, an activity's name): never a mailbox or an
// organisation.
//
// A handler handed over, rather than activity.GetMetricsHandler, keeps each
// metric's labels the same wherever it is emitted: the cutover runs as a
// local activity on a fleet worker and as a regular one on a routing host,
// and the SDK tags the two differently, which Prometheus refuses under one
// name.
type meter struct {
	h client.MetricsHandler

	mu       sync.Mutex // keeps the in-flight gauge's updates in order
	inFlight int64
}

func newMeter(h client.MetricsHandler) *meter {
	if h == nil {
		h = client.MetricsNopHandler
	}
	return &meter{h: h}
}

// WithMetrics makes the activities report mailwave's metrics to h (the
// worker's registry); without it they report none. Call it before
// registering them.
func (a *Activities) WithMetrics(h client.MetricsHandler) *Activities {
	a.meter = newMeter(h)
	return a
}

// copyStarted counts a copy in flight until the returned function is
// called.
func (m *meter) copyStarted() (ended func()) {
	m.addInFlight(1)
	return func() { m.addInFlight(-1) }
}

func (m *meter) addInFlight(d int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.inFlight += d
	m.h.Gauge(metrics.CopiesInFlight).Update(float64(m.inFlight))
}

// throttled counts a throttle reply that ended an attempt of the activity,
// and the delay it asked for; any other error counts nothing.
func (m *meter) throttled(activity string, err error) {
	var thr *port.ThrottledError
	if !errors.As(err, &thr) {
		return
	}
	h := m.h.WithTags(map[string]string{metrics.TagActivity: activity})
	h.Counter(metrics.Throttled).Inc(1)
	h.Timer(metrics.ThrottleRetryAfter).Record(thr.RetryAfter)
}

// noticeSent counts a notice that went out (not a repeat the notifier
// recognised).
func (m *meter) noticeSent(kind contract.NoticeKind) {
	m.h.WithTags(map[string]string{metrics.TagKind: string(kind)}).Counter(metrics.NoticesSent).Inc(1)
}

// cutover counts a mailbox whose mail was moved to the target.
func (m *meter) cutover() { m.h.Counter(metrics.Cutovers).Inc(1) }

// copyCounter counts what one attempt of a copy put on the target, from
// the running totals the copier reports after each durable step: each call
// adds only the growth since the one before, so a byte is counted once
// however often the totals are reported. A retry resumes from the
// heartbeated checkpoint with totals of its own starting at zero, and
// what it finds already on the target counts as skipped, not copied: a
// byte is counted again only if two attempts copied it at once (the server
// timed the first out while it still ran).
type copyCounter struct {
	bytes, items client.MetricsCounter

	mu      sync.Mutex
	counted contract.CopyStats
}

func (m *meter) copyCounter(pass contract.CopyPass) *copyCounter {
	h := m.h.WithTags(map[string]string{metrics.TagPass: string(pass)})
	return &copyCounter{bytes: h.Counter(metrics.CopiedBytes), items: h.Counter(metrics.CopiedItems)}
}

// saw counts the growth of the attempt's running totals s.
func (c *copyCounter) saw(s contract.CopyStats) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := s.Bytes - c.counted.Bytes; d > 0 {
		c.bytes.Inc(d)
		c.counted.Bytes = s.Bytes
	}
	if d := s.Items - c.counted.Items; d > 0 {
		c.items.Inc(d)
		c.counted.Items = s.Items
	}
}
