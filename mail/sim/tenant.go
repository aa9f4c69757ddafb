package sim

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"mailwave/mail/adapt"
	"mailwave/mail/port"
)

// The simulated target's tenant limit: one token bucket of bytes per second
// shared by every worker process that opens the estate, as a cloud target
// limits a whole tenant. It is kept in a small file in the estate directory
// and changed under an exclusive flock, so processes on one host share it;
// a batch over the limit is refused the way Exchange Online refuses ("Request
// is throttled. Suggested Backoff Time: N milliseconds"), and the copier's
// adaptive rate (package adapt) has to find the limit, as against the real
// target.
const tenantFile = "tenant.bucket"

// tenantState is the bucket file's content, in simulated bytes per real
// second (the estate's TimeScale applied).
type tenantState struct {
	Limit         float64 // bytes per second; 0 is no limit
	Tokens        float64
	At            int64 // unix nanoseconds of Tokens
	AcceptedBytes int64
	Accepted      int64 // batches taken
	Refused       int64 // batches refused
}

// TenantStats is what the tenant's bucket has seen, for benchmarks.
type TenantStats struct {
	Limit         float64 // bytes per real second
	AcceptedBytes int64
	Accepted      int64
	Refused       int64
	At            time.Time
}

type tenant struct {
	mu sync.Mutex // one take at a time in this process; flock across them
	f  *os.File
}

// tenantBurst is the bucket's size: a second of the limit.
const tenantBurstSeconds = 1.0

// openTenant opens (or creates) the estate's tenant bucket; limit, when not
// zero, is set if the file is new or has no limit.
func openTenant(dir string, limit float64) (*tenant, error) {
	f, err := os.OpenFile(filepath.Join(dir, tenantFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("sim: tenant limit: %w", err)
	}
	t := &tenant{f: f}
	err = t.update(func(s *tenantState, now time.Time) {
		if s.At == 0 || (s.Limit == 0 && limit > 0) {
			s.Limit, s.Tokens, s.At = limit, limit*tenantBurstSeconds, now.UnixNano()
		}
	})
	if err != nil {
		f.Close()
		return nil, err
	}
	return t, nil
}

// update reads the state under the file's lock, lets fn change it, and
// writes it back.
func (t *tenant) update(fn func(s *tenantState, now time.Time)) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := syscall.Flock(int(t.f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("sim: tenant limit: lock: %w", err)
	}
	defer syscall.Flock(int(t.f.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing the descriptor unlocks too
	var s tenantState
	err := binary.Read(io.NewSectionReader(t.f, 0, 1<<10), binary.LittleEndian, &s)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("sim: tenant limit: read: %w", err)
	}
	fn(&s, time.Now())
	if err := binary.Write(io.NewOffsetWriter(t.f, 0), binary.LittleEndian, &s); err != nil {
		return fmt.Errorf("sim: tenant limit: write: %w", err)
	}
	return nil
}

// take asks the bucket for n bytes: taken, or refused with how long until
// the bucket would hold them. A batch larger than the bucket passes when
// the bucket is full, leaving it in debt.
func (t *tenant) take(n int64) (ok bool, wait time.Duration, err error) {
	err = t.update(func(s *tenantState, now time.Time) {
		if s.Limit <= 0 {
			ok = true
			return
		}
		burst := s.Limit * tenantBurstSeconds
		el := float64(now.UnixNano()-s.At) / 1e9
		s.Tokens, s.At = min(burst, s.Tokens+max(el, 0)*s.Limit), now.UnixNano()
		need := min(float64(n), burst)
		if s.Tokens >= need {
			s.Tokens -= float64(n)
			s.AcceptedBytes += n
			s.Accepted++
			ok = true
			return
		}
		s.Refused++
		wait = time.Duration(math.Ceil((need-s.Tokens)/s.Limit*1e3)) * time.Millisecond
	})
	return ok, max(wait, time.Millisecond), err
}

func (t *tenant) close() error { return t.f.Close() }

// SetTenantLimit changes the tenant limit of the estate in dir while
// workers run, in simulated bytes per real second (0: none).
func SetTenantLimit(dir string, bytesPerSecond float64) error {
	t, err := openTenant(dir, bytesPerSecond)
	if err != nil {
		return err
	}
	defer t.close()
	return t.update(func(s *tenantState, _ time.Time) {
		s.Limit = bytesPerSecond
		s.Tokens = min(s.Tokens, bytesPerSecond*tenantBurstSeconds)
	})
}

// ReadTenantStats reads the tenant bucket's counters of the estate in dir
// (all zero if it has none yet; it makes none).
func ReadTenantStats(dir string) (TenantStats, error) {
	if _, err := os.Stat(filepath.Join(dir, tenantFile)); errors.Is(err, os.ErrNotExist) {
		return TenantStats{At: time.Now()}, nil
	}
	t, err := openTenant(dir, 0)
	if err != nil {
		return TenantStats{}, err
	}
	defer t.close()
	var out TenantStats
	err = t.update(func(s *tenantState, now time.Time) {
		out = TenantStats{Limit: s.Limit, AcceptedBytes: s.AcceptedBytes, Accepted: s.Accepted, Refused: s.Refused, At: now}
	})
	return out, err
}

// send passes n bytes to the target: through the worker's adaptive rate and
// the tenant's limit when the estate has one, else the fixed rate.
func (e *Estate) send(ctx context.Context, key string, n int64) error {
	if err := e.budgets.wait(ctx, key, n); err != nil {
		return err
	}
	if e.tenant == nil {
		return e.throttle(ctx, n)
	}
	var first time.Time // the first send's: see adapt.Rate.Refused
	for i := 0; ; i++ {
		if err := e.rate.Wait(ctx, int(n)); err != nil {
			return err
		}
		if first.IsZero() {
			first = e.rate.Now()
		}
		ok, wait, err := e.tenant.take(n)
		if err != nil {
			return err
		}
		if ok {
			e.rate.Accepted(int(n))
			return nil
		}
		e.rate.Refused(first)
		if adapt.GiveUp(i, wait) {
			return &port.ThrottledError{RetryAfter: wait,
				Err: fmt.Errorf("sim: target tenant limit for mailbox %s: Request is throttled. Suggested Backoff Time: %d milliseconds", key, wait.Milliseconds())}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Rate is the estate's adaptive rate towards its tenant limit (nil without
// one), for tests and benchmarks.
func (e *Estate) Rate() *adapt.Rate { return e.rate }
