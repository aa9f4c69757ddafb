package sim

import (
	"context"
	"sync"

	"golang.org/x/time/rate"
)

// budgets keep the target's per-mailbox budget: one token bucket of real
// bytes per second for each mailbox copied through this Estate, holding a
// twentieth of a second's worth, so that no copy of a mailbox passes the
// budget however many passes run.
type budgets struct {
	limit float64
	mu    sync.Mutex
	by    map[string]*rate.Limiter
}

func newBudgets(limit float64) *budgets {
	return &budgets{limit: limit, by: map[string]*rate.Limiter{}}
}

// wait sleeps until the mailbox's budget allows n bytes.
func (b *budgets) wait(ctx context.Context, key string, n int64) error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	l, ok := b.by[key]
	if !ok {
		l = rate.NewLimiter(rate.Limit(b.limit), int(max(b.limit/20, 64<<10)))
		b.by[key] = l
	}
	b.mu.Unlock()
	burst := int64(l.Burst())
	for n > 0 {
		c := min(n, burst)
		if err := l.WaitN(ctx, int(c)); err != nil {
			return err
		}
		n -= c
	}
	return nil
}
