package throttleproxy

import (
	"math"
	"sync"
	"time"
)

// bucket is the token bucket of bytes that every connection through the
// proxy draws on. It is written by hand rather than with
// golang.org/x/time/rate because the proxy refuses at once and must say how
// long to wait, and a rate.Limiter fits that badly:
//
//   - it never grants more than its burst, so a message larger than the
//     burst would be refused for ever; here a command needs at most a full
//     bucket, takes all it asks for and leaves the bucket in debt, which
//     the rate then repays (the long-run rate still holds);
//   - telling the wait takes either AllowN then TokensAt (two steps,
//     another connection may act between them) or ReserveN then Cancel,
//     which gives back only part of the tokens once later reservations
//     exist. Here one lock covers the decision and the wait.
type bucket struct {
	mu sync.Mutex

	rate  float64 // bytes per second; 0: no limit
	burst float64 // the most tokens the bucket holds
	fixed float64 // Options.Burst: 0 makes burst one second of rate

	tokens float64   // may be negative: debt from a command over the burst
	last   time.Time // when tokens was last brought up to date
}

// slack absorbs float rounding, so that a client that waits exactly the
// back-off it was told (rounded up to a millisecond) is not refused again
// for a millionth of a byte.
const slack = 1e-6

func newBucket(rate, fixedBurst float64, now time.Time) *bucket {
	b := &bucket{fixed: fixedBurst, last: now}
	b.setRate(rate)
	b.tokens = b.burst
	return b
}

// setRate sets rate and the burst that goes with it; the caller holds mu
// (or owns b alone).
func (b *bucket) setRate(rate float64) {
	if rate <= 0 || math.IsInf(rate, 1) || math.IsNaN(rate) {
		rate = 0
	}
	b.rate = rate
	b.burst = b.fixed
	if b.burst <= 0 {
		b.burst = rate
	}
}

// refill adds what the rate has earned since last; the caller holds mu.
func (b *bucket) refill(now time.Time) {
	if !now.After(b.last) {
		return
	}
	if b.rate > 0 {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
}

// take grants n bytes if the bucket holds them (or is full, for a command
// over the burst) and takes them; otherwise it takes nothing and says how
// long until it would grant them, assuming no one else takes any.
func (b *bucket) take(n int64, now time.Time) (ok bool, wait time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.rate == 0 || n <= 0 {
		return true, 0 // no limit, or nothing to count
	}
	b.refill(now)
	need := min(float64(n), b.burst)
	if b.tokens+slack >= need {
		b.tokens -= float64(n)
		return true, 0
	}
	return false, time.Duration((need - b.tokens) / b.rate * float64(time.Second))
}

// setLimit changes the rate from now on. Lowering it lowers what the bucket
// holds to the new burst; raising it adds nothing at once. Going from no
// limit to a limit starts with a full bucket.
func (b *bucket) setLimit(rate float64, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	wasUnlimited := b.rate == 0
	b.setRate(rate)
	if wasUnlimited {
		b.tokens = b.burst
	}
	b.tokens = min(b.tokens, b.burst)
}

func (b *bucket) limit() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rate
}
