// Package adapt finds, from a target's own answers, the byte rate it
// accepts, so that a worker copies as fast as the target allows without
// anyone guessing a figure and without the workers of a fleet talking to
// each other.
//
// A cloud target limits the whole tenant at once, says so only by refusing
// ("Request is throttled"), and changes its limit when it likes. Each
// worker (per organisation) keeps one Rate and sends through it, by the
// rule TCP flows sharing a link follow (additive increase, multiplicative
// decrease):
//
//   - at first the rate doubles every second until the target refuses (slow
//     start), so a worker needs no starting figure; the first refusal cuts
//     from half the rate (what the target took a second before, while the
//     rate was doubling), which workers starting together share, rather
//     than from what each happened to send in that second, and the rate
//     climbs back only to 0.6 of that, under the limit (see
//     slowStartKeep);
//   - a refusal cuts the rate to Decrease times what was really being sent
//     for a moment, once: refusals in the next Quiet, and refusals of
//     batches first sent before the cut (in flight, or sent again after
//     their wait), cut nothing more;
//   - after the dip the rate climbs back quickly to Keep (most) of the
//     rate the target refused, and from there on by a fixed Step of bytes
//     per second each second;
//   - a worker sends its bytes in batches of what its rate sends in about
//     a Cadence (Batch), so a worker sending more sends bigger batches at
//     the same pace.
//
// Two things even the shares out. Every worker climbs by the same bytes a
// second (the step is a constant of the rule, the one figure all workers
// share without talking), while a cut takes more from a worker sending more.
// And a target running short of its allowance refuses the batch that does
// not fit, and the bigger batches stop fitting first (one MULTIAPPEND, or a
// group of pipelined LITERAL+ APPENDs whose later messages find the
// allowance taken by the earlier; not a target that has neither, where
// messages go one at a time), so the refusals fall a little more often on
// the worker sending more. Only a little: the refused batch is whichever
// arrives when the allowance runs short, and message sizes vary far more
// than batch sizes (39 of 52 cuts in thirteen one-minute runs of the
// benchmark, 9 of 16 in one four-minute run). A refusal is the only thing
// a worker learns of the others, and there are only a few a minute, so who
// gets them is largely chance. What one refusal costs a worker for good is
// therefore kept small: the dip ends the target's storm of refusals, and
// the rate is soon back to Keep, 0.975, of where it was refused. The rule
// before climbed back to 0.85: a worker refused three times running, ten
// seconds apart, was left at 0.56 of the other's rate, where it is now at
// 0.76 (TestAWorkerRefusedByChanceIsNotLeftFarBehind). bench/throttlebench/NOTES.md has the
// figures measured against the real proxy.
//
// Smaller batches also make a refusal cost less: one APPEND of about 23 a
// second at 16 MiB/s. The batch sizes vary at random by half either way,
// since batches of the same size at the same pace would keep arriving in
// the same order, and the worker whose batches come just after the other's
// would always find the allowance taken. A refusal of a worker that was
// merely unlucky cuts it no deeper than any other (there is no "fast
// convergence" that would keep a worker refused twice lower still): the
// next refusals are the likelier to fall on the other.
//
// The configured bytes per second, when set, is a ceiling, never the
// setting. The rate never climbs past twice what is really being sent, so
// a copier that is slow for other reasons does not build up a rate it
// could never use.
package adapt

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// Options configure a Rate. Zero values take the defaults.
type Options struct {
	// Name labels the log lines (an organisation's configured name).
	Name string
	// Ceiling is the most bytes per second ever sent; 0 is none.
	Ceiling float64
	// Start is the first rate, in bytes per second (default 4 MiB/s, or
	// the ceiling if lower).
	Start float64
	// Floor is the least rate a refusal can cut to (default 64 KiB/s).
	Floor float64
	// Decrease is the factor a refused batch multiplies the rate by, for a
	// moment (default 0.6): a deep dip ends the target's storm of
	// refusals at once. The refusal that ends slow start cuts by
	// slowStartCut instead.
	Decrease float64
	// Keep is the share of the rate at a refusal that the rate climbs back
	// to quickly after the dip (default 0.975): what a refusal costs a
	// worker for good is small, so that one worker refused more often
	// than the other by chance is not left far below it. After the
	// refusal that ends slow start, it is slowStartKeep.
	Keep float64
	// Quiet is how long after a cut further refusals cut nothing, however
	// late the copier reads them (default 1 s).
	Quiet time.Duration
	// Step is how fast the rate climbs past the point of its recovery
	// after a refusal, in bytes per second each second (default 64 KiB/s:
	// two workers sharing 16 MiB/s are refused about every 5 s once at
	// the limit).
	Step float64
	// Recover is the time constant of the climb back to the last refusal's
	// rate (default 3 s).
	Recover time.Duration
	// Cadence is how much sending time a batch holds on average: Batch is
	// the rate times Cadence, times a random factor from 0.5 to 1.5
	// (default 100 ms).
	Cadence time.Duration
	// Fixed keeps the rate at Start whatever the target answers: a fixed
	// setting, as an operator would guess one (benchmarks compare it).
	Fixed bool
	// Logger gets a line at info on each cut and every LogEvery.
	Logger   *zap.Logger
	LogEvery time.Duration // default 30 s
	// Now is the clock (tests).
	Now func() time.Time
}

// Rate is one worker's adaptive send rate towards one target. It is safe
// for concurrent use by every copy of the worker.
type Rate struct {
	o   Options
	lim *rate.Limiter

	mu         sync.Mutex
	rate       float64 // the current rate, bytes per second
	slowStart  bool    // no refusal yet
	markRate   float64 // in slow start: the rate at markAt, about a second ago
	markAt     time.Time
	prevMark   float64 // the mark before that
	peak       float64 // where the rate climbs back to after a cut
	lastCut    time.Time
	lastSent   time.Time // the last Wait
	lastGrow   time.Time // when the rate last grew
	lastLog    time.Time
	cuts       int
	winStart   time.Time // the sending-rate window
	winBytes   float64
	sent       float64 // bytes per second sent in the last full window
	sentAt     time.Time
	accepted   int64
	throttled  int64
	totalBytes int64
}

// The target's refusals are waited out inside a copy (the copier's and
// the simulated estate's alike) at most MaxResends times in a row, each no
// longer than MaxWait; past that the copy ends throttled and the
// activity's retry waits.
const (
	MaxResends = 10
	MaxWait    = 15 * time.Second
)

// GiveUp reports whether a copy refused for the round-th time in a row
// (counting from 0) and asked to wait wait should stop waiting inside the
// copy.
func GiveUp(round int, wait time.Duration) bool { return round >= MaxResends || wait > MaxWait }

// idleGap is the longest time between two sends that still counts as
// sending.
const idleGap = time.Second

// burst is the limiter's bucket: large enough for a big message to pass in
// a few steps, small enough that a cut takes effect at once.
const burst = 1 << 20

// New makes a Rate with the options' defaults applied.
func New(o Options) *Rate {
	if o.Start <= 0 {
		o.Start = 4 << 20
	}
	if o.Floor <= 0 {
		o.Floor = 64 << 10
	}
	if o.Ceiling > 0 {
		o.Start = min(o.Start, o.Ceiling)
		o.Floor = min(o.Floor, o.Ceiling)
	}
	if o.Decrease <= 0 || o.Decrease >= 1 {
		o.Decrease = 0.6
	}
	if o.Keep <= 0 || o.Keep > 1 {
		o.Keep = 0.975
	}
	if o.Quiet <= 0 {
		o.Quiet = time.Second
	}
	if o.Step <= 0 {
		o.Step = 64 << 10
	}
	if o.Recover <= 0 {
		o.Recover = 3 * time.Second
	}
	if o.Cadence <= 0 {
		o.Cadence = 100 * time.Millisecond
	}
	if o.LogEvery <= 0 {
		o.LogEvery = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	now := o.Now()
	return &Rate{
		o: o, lim: rate.NewLimiter(rate.Limit(o.Start), burst),
		rate: o.Start, slowStart: true, lastGrow: now, lastLog: now, winStart: now,
	}
}

// minBatch is the least Batch: below it, a batch's command costs more than
// its bytes.
const minBatch = 64 << 10

// Batch is how many message bytes the next batch should hold: what the
// current rate sends in a Cadence, larger or smaller by up to half at
// random (see the package doc), and at least 64 KiB. A batch still holds
// at least one message, however large.
func (r *Rate) Batch() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return max(int64(r.rate*r.o.Cadence.Seconds()*(0.5+rand.Float64())), minBatch)
}

// Wait blocks until n more bytes may be sent, and counts them as sent.
func (r *Rate) Wait(ctx context.Context, n int) error {
	for n > 0 {
		step := min(n, burst)
		if err := r.lim.WaitN(ctx, step); err != nil {
			return err
		}
		r.mu.Lock()
		r.countSent(r.o.Now(), float64(step))
		r.mu.Unlock()
		n -= step
	}
	return nil
}

// countSent keeps the rate really sent over windows of about a second.
// A pause in sending (a throttle waited out, no copy to do) starts a new
// window, so idle time is not taken for a slow rate.
func (r *Rate) countSent(now time.Time, n float64) {
	if !r.lastSent.IsZero() && now.Sub(r.lastSent) > idleGap {
		r.winStart, r.winBytes = now, 0
	}
	r.lastSent = now
	r.winBytes += n
	if el := now.Sub(r.winStart); el >= time.Second {
		r.sent, r.sentAt = r.winBytes/el.Seconds(), now
		r.winStart, r.winBytes = now, 0
	}
}

// Accepted records that the target took n bytes: the rate grows with the
// time since it last grew.
func (r *Rate) Accepted(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.o.Now()
	r.accepted++
	r.totalBytes += int64(n)
	dt := min(now.Sub(r.lastGrow), time.Second).Seconds()
	r.lastGrow = now
	if dt <= 0 || r.o.Fixed {
		return
	}
	next := r.rate
	switch {
	case r.slowStart:
		next *= math.Exp2(dt)
		if now.Sub(r.markAt) >= time.Second {
			r.prevMark, r.markRate, r.markAt = r.markRate, r.rate, now
		}
	case r.rate < r.peak:
		// Back towards the last refusal's rate, most of the way in a few
		// Recover times, plus the step.
		next += (r.peak-r.rate)*(1-math.Exp(-dt/r.o.Recover.Seconds())) + r.o.Step*dt
	default:
		next += r.o.Step * dt
	}
	// Never more than twice what is really sent (a rate the copier cannot
	// use is no information about the target).
	if r.sent > 0 && now.Sub(r.sentAt) < 5*time.Second {
		next = min(next, max(r.rate, 2*r.sent))
	}
	r.set(next)
	r.maybeLog(now, "")
}

// Throttled records that the target refused a batch sent just now (its
// answer comes at once), and cuts the rate. The copier calls it, or
// Refused, once per refused batch, however many of the batch's messages
// were refused.
func (r *Rate) Throttled() { r.Refused(time.Time{}) }

// Now is the Rate's clock: the time to give Refused for a batch about to
// be sent.
func (r *Rate) Now() time.Time { return r.o.Now() }

// Refused records that the target refused a batch first sent at sentAt
// (zero if not known; a batch sent again after a refusal keeps its first
// time), and cuts the rate unless the last cut already answers it.
func (r *Rate) Refused(sentAt time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.o.Now()
	r.throttled++
	if r.o.Fixed || r.answered(now, sentAt) {
		return
	}
	r.lastCut = now
	base := r.rate
	fresh := r.sent > 0 && now.Sub(r.sentAt) < 5*time.Second
	cut, keep := r.o.Decrease, r.o.Keep // a dip, then back to just under where the target refused
	if r.slowStart {
		// Whatever held the rate, the target has just given out the
		// allowance it had saved.
		cut, keep = slowStartCut, slowStartKeep
	}
	switch {
	case r.slowStart && r.doubling():
		// The rate has been doubling: half of it is what the target took
		// a second ago. Workers that start together share that schedule;
		// what each really sent in the second is noise of its copies.
		base /= 2
		if fresh && r.sent < base/2 {
			base = r.sent // the copies use far less than the rate
		}
	case fresh && r.sent < base:
		base = r.sent
	}
	r.peak = base * keep
	r.slowStart = false
	r.lastGrow = now
	r.cuts++
	r.set(base * cut)
	r.maybeLog(now, "throttled by the target")
}

// Leaving slow start, the rate is cut to slowStartCut of what the target
// took a second before and climbs back quickly to slowStartKeep of it. That
// is less than it took: while the workers doubled, the target also gave out
// the allowance it had saved, so their halves add up to more than its
// limit, however many they are (about 1.3 times with a second's allowance
// saved, as the proxy and Exchange's budgets have, and copiers that keep
// up with the doubling). Climbing back to all of it (the rule before) had
// them refused again within seconds, and the refusals of that second storm
// fell by chance, at times twice on one worker. From 0.6 the workers
// climb by the same step, their shares as even as their starts, and reach
// the limit together: against the proxy at 16 MiB/s, two workers were not
// refused again for 43 s or more. A worker alone takes longer to reach
// the limit: a fifth of it at the step, 51 s at 16 MiB/s, more at a
// higher limit.
//
// Whatever held a rate in slow start (the ceiling, or twice what the
// copies sent), the refusal that ends it cuts as deep: the target has
// just given out what it had saved all the same.
const (
	slowStartCut  = 0.5
	slowStartKeep = 0.6
)

// doubling reports whether slow start has been doubling the rate over
// the last second or two, not held at the ceiling or at twice what is sent.
func (r *Rate) doubling() bool {
	ref := r.markRate
	if r.o.Now().Sub(r.markAt) < time.Second/2 {
		ref = r.prevMark // the mark was just taken: compare with the one before
	}
	return ref > 0 && r.rate >= 1.3*ref
}

// answered reports whether a refusal is already answered by the last cut:
// it came within Quiet of the cut (the cut has not yet shown in what the
// target sees), or the refused batch was first sent before the cut (it
// was in flight, or it is the same batch sent again after its wait,
// racing the other workers' batches for the bucket's first tokens:
// cutting again for it would make a refused worker the likeliest to be
// refused again, the opposite of fair).
//
// When the refusal came is when its batch was sent, if that is known: the
// target answers at once, but a copier reads a lane's answers in order and
// may read one seconds late, after waiting out the refusal of the batch
// before it. Taking the time it was read made a refusal of the storm that
// ended slow start cut again five seconds later, measured against the
// proxy (a worker at 3.4 MiB/s beside one at 6.4 for the minute).
func (r *Rate) answered(now, sentAt time.Time) bool {
	if r.lastCut.IsZero() {
		return false
	}
	at := now
	if !sentAt.IsZero() && sentAt.Before(now) {
		at = sentAt
	}
	return at.Sub(r.lastCut) < r.o.Quiet
}

// set applies a new rate within the floor and the ceiling.
func (r *Rate) set(v float64) {
	v = max(v, r.o.Floor)
	if r.o.Ceiling > 0 {
		v = min(v, r.o.Ceiling)
	}
	r.rate = v
	r.lim.SetLimit(rate.Limit(v))
}

// maybeLog writes the rate at info on a cut and every LogEvery.
func (r *Rate) maybeLog(now time.Time, why string) {
	if why == "" && now.Sub(r.lastLog) < r.o.LogEvery {
		return
	}
	r.lastLog = now
	msg := "copy rate"
	if why != "" {
		msg = "copy rate cut: " + why
	}
	r.o.Logger.Info(msg,
		zap.String("organisation", r.o.Name),
		zap.Float64("bytes_per_second", math.Round(r.rate)),
		zap.Float64("sent_bytes_per_second", math.Round(r.sent)),
		zap.Float64("ceiling_bytes_per_second", r.o.Ceiling),
		zap.Bool("slow_start", r.slowStart),
		zap.Int("cuts", r.cuts))
}

// Snapshot is a Rate's state, for logs, metrics and tests.
type Snapshot struct {
	BytesPerSecond     float64 // the current rate
	SentBytesPerSecond float64 // what was really sent, last window
	SlowStart          bool
	Cuts               int
	Accepted           int64 // answers taken
	Throttled          int64 // refusals
	AcceptedBytes      int64
}

// Snapshot reads the current state.
func (r *Rate) Snapshot() Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Snapshot{
		BytesPerSecond: r.rate, SentBytesPerSecond: r.sent, SlowStart: r.slowStart,
		Cuts: r.cuts, Accepted: r.accepted, Throttled: r.throttled, AcceptedBytes: r.totalBytes,
	}
}
