// Package sim is a simulated mail estate kept on disk: a source mail platform
// and a cloud target for demos and load tests. It implements the copier and
// router ports of package activities and verifies the outcome.
//
// An estate directory holds estate.json (the manifest), roster.csv (one row
// per mailbox) and state/, one small JSON file per mailbox touched. What a
// mailbox holds at the source is derived from (seed, index) and never
// stored; messages are virtual, so nothing big is ever written. What changes
// (target contents, route, delta arrival, fault streaks) is in the state
// file, written atomically, so a restarted process loses nothing.
package sim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"mailwave/contract"
	"mailwave/mail/adapt"
	"mailwave/mail/port"
)

// Options tune an opened estate.
type Options struct {
	// TimeScale is simulated seconds per real second: 3600 makes an hour of
	// transfer take a second. 0 means no sleeping, as does Instant.
	TimeScale float64
	// BytesPerSecond is the target's rate limit in simulated bytes per
	// second, shared by every copy through this Estate. 0 means no limit.
	BytesPerSecond int64
	// TenantBytesPerSecond is the target tenant's limit in simulated bytes
	// per second, shared by every worker process that opens the estate
	// (tenant.go); each process's copies then pace themselves by an
	// adaptive rate (package adapt) under BytesPerSecond as its ceiling.
	// 0 means no tenant limit. It applies only with a TimeScale and
	// without Instant, and only when the estate's bucket file is new
	// (SetTenantLimit changes it).
	TenantBytesPerSecond int64
	// MailboxBytesPerSecond is the target's documented per-mailbox budget
	// in simulated bytes per second (Exchange Online: 150 MB per 5
	// minutes), kept by every copy of a mailbox through this Estate, as
	// the Graph copier keeps it: 0 means none. It applies only with a
	// TimeScale and without Instant.
	MailboxBytesPerSecond int64
	// Logger gets the adaptive rate's lines (nil: none).
	Logger *zap.Logger
	// Instant makes copies take no time at all, for benchmarks.
	Instant bool
	// BatchMessages and BatchBytes bound a copy batch, the unit that is made
	// durable (and heartbeated) at once. Zero means 500 messages and 64 MB,
	// or, for an instant target, 20,000 messages and 2 GB: a batch costs a
	// state file write, which would otherwise be most of an instant copy.
	BatchMessages int
	BatchBytes    int64
	// Sync flushes every state write to the disk. Without it a process
	// crash still loses nothing; an operating system crash may.
	Sync   bool
	Faults Faults
}

// Faults injects errors. Each decision is a hash of (seed, mailbox, step,
// consecutive faults so far at that step), so a run is reproducible.
type Faults struct {
	// TransientRate and ThrottleRate are the chances that a copy batch or a
	// cutover call fails with a plain error or a throttling answer. At most
	// MaxConsecutiveFaults strike one step of one mailbox in a row.
	TransientRate float64
	ThrottleRate  float64
	// ThrottleRetryAfter is carried in the ThrottledError, as is (real time).
	ThrottleRetryAfter time.Duration
	// NotFoundRate is the share of mailboxes that are gone from the source
	// when they are copied (a leaver removed after the preflight): the
	// copy fails, for good. The preflight does not see them.
	NotFoundRate float64
	// The preflight's refusals (preflight.go): the shares of mailboxes
	// whose source refuses their login, whose target has no such mailbox,
	// whose target cannot be written, and whose target has no room. Each
	// mailbox draws once, so the shares add up to at most 1 and a mailbox
	// meets one of them at most.
	SourceLoginRate       float64
	TargetMissingRate     float64
	TargetNotWritableRate float64
	TargetNoRoomRate      float64
}

// MaxConsecutiveFaults bounds the injected faults in a row at one step, so a
// retried mailbox always gets through.
const MaxConsecutiveFaults = 3

// Copy batching: a batch is at most this many messages or bytes, by default.
const (
	batchMaxMessages        = 500
	batchMaxBytes           = 64 * mib
	instantBatchMaxMessages = 20_000
	instantBatchMaxBytes    = 2048 * mib
)

// Estate is an opened estate. It is safe for concurrent use.
type Estate struct {
	dir      string
	manifest Manifest
	opts     Options
	index    map[string]int // address -> mailbox index
	limiter  *rate.Limiter  // nil: no sleeping
	tenant   *tenant        // the tenant limit; nil: none
	rate     *adapt.Rate    // the pace towards the tenant limit
	locks    keyLocks
	budgets  *budgets // the per-mailbox budget; nil: none
}

var (
	_ port.Copier      = (*Estate)(nil)
	_ port.Router      = (*Estate)(nil)
	_ port.Preflighter = (*Estate)(nil)
)

// Open opens the estate generated in dir.
func Open(dir string, o Options) (*Estate, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	m, err := readManifest(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("sim: no estate in %s (generate one first)", dir)
		}
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, stateDir), 0o755); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	if o.BatchMessages == 0 {
		o.BatchMessages = batchMaxMessages
		if o.Instant {
			o.BatchMessages = instantBatchMaxMessages
		}
	}
	if o.BatchBytes == 0 {
		o.BatchBytes = batchMaxBytes
		if o.Instant {
			o.BatchBytes = instantBatchMaxBytes
		}
	}
	e := &Estate{dir: dir, manifest: *m, opts: o, index: make(map[string]int, m.Mailboxes)}
	for i := range m.Mailboxes {
		e.index[m.entry(i).Address] = i
	}
	if !o.Instant && o.TimeScale > 0 && o.BytesPerSecond > 0 {
		// Real bytes per second: the simulated rate sped up by the scale.
		// The bucket holds 50 ms worth, so a burst does not defeat the limit.
		limit := float64(o.BytesPerSecond) * o.TimeScale
		burst := int(min(max(limit/20, 64<<10), float64(o.BatchBytes)))
		e.limiter = rate.NewLimiter(rate.Limit(limit), burst)
	}
	if !o.Instant && o.TimeScale > 0 && o.MailboxBytesPerSecond > 0 {
		e.budgets = newBudgets(float64(o.MailboxBytesPerSecond) * o.TimeScale)
	}
	if !o.Instant && o.TimeScale > 0 && o.TenantBytesPerSecond > 0 {
		if e.tenant, err = openTenant(dir, float64(o.TenantBytesPerSecond)*o.TimeScale); err != nil {
			return nil, err
		}
		// The rate's own figures scale with the simulated time as well.
		e.rate = adapt.New(adapt.Options{Name: "simulated target", Logger: o.Logger,
			Ceiling: float64(o.BytesPerSecond) * o.TimeScale, Start: 4 << 20 * o.TimeScale, Floor: 64 << 10 * o.TimeScale})
	}
	return e, nil
}

func (o Options) validate() error {
	f := o.Faults
	for _, r := range []float64{f.TransientRate, f.ThrottleRate, f.NotFoundRate,
		f.SourceLoginRate, f.TargetMissingRate, f.TargetNotWritableRate, f.TargetNoRoomRate} {
		if r < 0 || r > 1 {
			return fmt.Errorf("sim: fault rate %g is not within [0, 1]", r)
		}
	}
	if f.SourceLoginRate+f.TargetMissingRate+f.TargetNotWritableRate+f.TargetNoRoomRate > 1 {
		return fmt.Errorf("sim: the preflight's refusal rates add up to more than 1")
	}
	if f.TransientRate+f.ThrottleRate > 1 {
		return fmt.Errorf("sim: transient and throttle rates add up to more than 1")
	}
	if o.TimeScale < 0 || o.BytesPerSecond < 0 || o.MailboxBytesPerSecond < 0 || f.ThrottleRetryAfter < 0 || o.BatchMessages < 0 || o.BatchBytes < 0 {
		return fmt.Errorf("sim: time scale, rate limit, retry-after and batch sizes must not be negative")
	}
	return nil
}

// Dir returns the estate's directory.
func (e *Estate) Dir() string { return e.dir }

// Manifest returns the estate's manifest.
func (e *Estate) Manifest() Manifest { return e.manifest }

// Roster reads the estate's roster.csv.
func (e *Estate) Roster() ([]RosterEntry, error) {
	f, err := os.Open(filepath.Join(e.dir, RosterFile))
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	defer f.Close()
	return ReadRoster(f)
}

// Profile returns what the mailbox at address holds at the source before
// its delta arrives.
func (e *Estate) Profile(address string) (Profile, bool) {
	i, ok := e.lookupAddress(address)
	if !ok {
		return Profile{}, false
	}
	return e.profile(i), true
}

func (e *Estate) profile(index int) Profile { return profileOf(e.manifest.Seed, index) }

func (e *Estate) lookupAddress(address string) (int, bool) {
	i, ok := e.index[strings.ToLower(strings.TrimSpace(address))]
	return i, ok
}

// lookup resolves a mailbox to its index. Errors name the key, never the
// address.
func (e *Estate) lookup(m contract.MailboxRef) (int, error) {
	if !validKey(m.Key) {
		return 0, port.Permanent(contract.ErrTypeInvalidMailbox, "invalid mailbox key (%d bytes)", len(m.Key))
	}
	i, ok := e.lookupAddress(m.Address)
	if !ok || unit(hash(uint64(e.manifest.Seed), uint64(i), saltNotFound)) < e.opts.Faults.NotFoundRate {
		return 0, port.Permanent(contract.ErrTypeMailboxNotFound, "mailbox %s not found at source", m.Key)
	}
	return i, nil
}

// validKey accepts keys that are safe as file names: 1-128 of [0-9A-Za-z_-].
func validKey(k string) bool {
	if k == "" || len(k) > 128 {
		return false
	}
	for _, c := range []byte(k) {
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// throttle sleeps as long as the rate limit asks for n bytes.
func (e *Estate) throttle(ctx context.Context, n int64) error {
	if e.limiter == nil {
		return nil
	}
	burst := int64(e.limiter.Burst())
	for n > 0 {
		c := min(n, burst)
		if err := e.limiter.WaitN(ctx, int(c)); err != nil {
			return err
		}
		n -= c
	}
	return nil
}

// injectFault decides whether step of the mailbox fails, and records the
// streak in st for the caller to save. On success the streak is cleared.
func (e *Estate) injectFault(st *mailboxState, step string) error {
	streak := 0
	if st.FaultStep == step {
		streak = st.FaultStreak
	}
	st.FaultStep, st.FaultStreak = "", 0
	if streak >= MaxConsecutiveFaults {
		return nil
	}
	f := e.opts.Faults
	u := unit(hash(uint64(e.manifest.Seed), uint64(st.Index), saltFault, hashString(step), uint64(streak)))
	var err error
	switch {
	case u < f.ThrottleRate:
		err = &port.ThrottledError{RetryAfter: f.ThrottleRetryAfter, Err: fmt.Errorf("sim: target busy at %s of mailbox %s", step, st.Key)}
	case u < f.ThrottleRate+f.TransientRate:
		err = fmt.Errorf("sim: transient failure at %s of mailbox %s", step, st.Key)
	default:
		return nil
	}
	st.FaultStep, st.FaultStreak = step, streak+1
	return err
}
