// Command throttlebench measures how mailwave's copiers share a target's
// hidden global rate limit (make bench-throttle). A real target Dovecot sits
// behind the test kit's throttling proxy, which lets all connections
// together append L bytes a second and refuses the rest the way Exchange
// Online does ("Request is throttled. Suggested Backoff Time: N
// milliseconds"), dropping a connection after three refusals in a row. Two
// workers (each its own copier and its own adaptive rate, sharing nothing
// but the target, as two worker processes would) copy mailboxes from a
// source Dovecot without stopping, several at once each.
//
// Three cases, each on a fresh target:
//
//   - adaptive: the rate finds the limit by itself; L is halved in mid-run.
//     Figures: achieved_over_limit (bytes a second the target took, over
//     L, after a warm-up), throttled_share (refused APPENDs over all, the
//     whole case), adapt_seconds (from the halving to the start of the
//     first 10-second window that is within 10 % of the new L with under 2 %
//     refused), fair_share_spread (the two workers' bytes after the
//     warm-up at L, max over min, minus 1) and fair_share_spread_end (the
//     same over the last 20 s, at L/2);
//   - fixed_2x and fixed_quarter: a fixed rate per worker of twice L and of
//     L/4, the settings an operator might guess (the same figures).
//
// It prints one `name=value` figure a line on stdout; progress goes to
// stderr. Run it from the module root.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"mailwave/contract"
	"mailwave/mail/adapt"
	"mailwave/mail/imapcopy"
	"mailwave/mail/port"
	"mailwave/testkit/dovecot"
	"mailwave/testkit/imaptest"
	"mailwave/testkit/throttleproxy"
)

const password = "bench-pw"

type options struct {
	limitMiB    float64
	phase       time.Duration // the adaptive case at L
	after       time.Duration // the adaptive case at L/2
	fixedPhase  time.Duration // each fixed case
	warm        time.Duration // not counted at the start of a case
	workers     int
	concurrency int // mailboxes each worker copies at once
	window      int // the copier's Window (0: its default)
	sources     int // source mailboxes
	mbytes      int // per source mailbox
	messages    int // per source mailbox
	keep        bool
	cases       string
	decrease    float64 // the adaptive rule's, 0: its default
	keepShare   float64 // the adaptive rule's Keep, 0: its default
	step        float64 // KiB/s per second, 0: the default
}

func main() {
	var o options
	flag.Float64Var(&o.limitMiB, "limit", 16, "the target's global limit L, MiB a second")
	flag.DurationVar(&o.phase, "phase", 60*time.Second, "the adaptive case's time at L")
	flag.DurationVar(&o.after, "after", 40*time.Second, "the adaptive case's time at L/2")
	flag.DurationVar(&o.fixedPhase, "fixed-phase", 30*time.Second, "each fixed case's time")
	flag.DurationVar(&o.warm, "warm", 15*time.Second, "the start of a case not counted in its rate")
	flag.IntVar(&o.workers, "workers", 2, "workers, each with its own copier and rate")
	flag.IntVar(&o.concurrency, "concurrency", 2, "mailboxes each worker copies at once")
	flag.IntVar(&o.window, "window", 0, "the copier's Window, messages a batch holds at most (0: imapcopy's default)")
	flag.IntVar(&o.sources, "sources", 4, "source mailboxes (copied again and again to new target mailboxes)")
	flag.IntVar(&o.mbytes, "mbytes", 64, "MiB per source mailbox")
	flag.IntVar(&o.messages, "messages", 1600, "messages per source mailbox")
	flag.BoolVar(&o.keep, "keep", false, "keep the servers' directories")
	flag.StringVar(&o.cases, "cases", "adaptive,fixed_2x,fixed_quarter", "the cases to run, in order")
	flag.Float64Var(&o.decrease, "decrease", 0, "the adaptive rule's cut factor (0: mail/adapt's default), to explore the rule")
	flag.Float64Var(&o.keepShare, "keep-share", 0, "the adaptive rule's share of the refused rate it climbs back to quickly (0: mail/adapt's default), to explore the rule")
	flag.Float64Var(&o.step, "step", 0, "the adaptive rule's step, KiB/s a second (0: mail/adapt's default), to explore the rule")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "throttlebench:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "throttlebench: "+format+"\n", args...)
}

func run(o options) error {
	if err := dovecot.Available(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "mailwave-throttlebench-")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	src, err := startSource(filepath.Join(dir, "source"), o)
	if err != nil {
		return err
	}
	defer src.Stop()
	limit := o.limitMiB * (1 << 20)
	fmt.Printf("limit_mib_s=%g\nworkers=%d\n", o.limitMiB, o.workers)

	type fixedCase struct {
		name string
		rate float64
	}
	known := map[string]float64{"adaptive": 0, "fixed_2x": 2 * limit, "fixed_quarter": limit / 4}
	var cases []fixedCase
	for _, name := range strings.Split(o.cases, ",") {
		r, ok := known[name]
		if !ok {
			return fmt.Errorf("-cases: %q is not a case (adaptive, fixed_2x, fixed_quarter)", name)
		}
		cases = append(cases, fixedCase{name, r})
	}
	for _, c := range cases {
		tgt, err := startTarget(filepath.Join(dir, c.name), o)
		if err != nil {
			return err
		}
		res, err := runCase(o, src, tgt, limit, c.rate)
		tgt.Stop()
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		res.print(c.name)
	}
	return nil
}

func sourceUser(i int) string    { return fmt.Sprintf("s%d", i) }
func targetUser(w, k int) string { return fmt.Sprintf("w%d-%d", w, k) }
func workerOf(targetUser string) int {
	var w, k int
	_, _ = fmt.Sscanf(targetUser, "w%d-%d", &w, &k)
	return w
}

// startSource starts the source and fills its mailboxes by writing maildirs.
func startSource(dir string, o options) (*dovecot.Server, error) {
	var users []dovecot.User
	for i := range o.sources {
		users = append(users, dovecot.User{Name: sourceUser(i), Password: password})
	}
	s, err := dovecot.Start(dir, dovecot.Options{Users: users, Plaintext: true, Storage: dovecot.Maildir})
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	t0 := time.Now()
	folders := []string{"INBOX", "Sent", "Archive"}
	for i := range o.sources {
		if _, _, err := imaptest.SeedMaildir(s, sourceUser(i), imaptest.BulkFolders(folders),
			imaptest.GenerateBulk(int64(i+1), o.messages, int64(o.mbytes)<<20, folders)); err != nil {
			s.Stop()
			return nil, fmt.Errorf("seeding: %w", err)
		}
	}
	logf("seeded %d source mailboxes of %d MiB in %s", o.sources, o.mbytes, time.Since(t0).Round(time.Millisecond))
	return s, nil
}

// startTarget starts an empty target with enough mailboxes for every copy
// a case can make.
func startTarget(dir string, o options) (*dovecot.Server, error) {
	var users []dovecot.User
	for w := range o.workers {
		for k := range 100 {
			users = append(users, dovecot.User{Name: targetUser(w, k), Password: password})
		}
	}
	s, err := dovecot.Start(dir, dovecot.Options{Users: users, Plaintext: true})
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	return s, nil
}

// sample is the proxy's counters at one moment.
type sample = throttleproxy.Stats

// result is one case's figures.
type result struct {
	achieved, share float64
	adaptSeconds    float64 // -1: never; NaN: not measured
	spread          float64
	spreadEnd       float64   // over the last 20 s (adaptive: at L/2); NaN if not measured
	rates           []float64 // each worker's rate at the end, bytes a second
	copies          int
}

func (r result) print(name string) {
	prefix := name + "_"
	if name == "adaptive" {
		prefix = ""
	}
	fmt.Printf("%sachieved_over_limit=%.3f\n", prefix, r.achieved)
	fmt.Printf("%sthrottled_share=%.4f\n", prefix, r.share)
	if !math.IsNaN(r.adaptSeconds) {
		fmt.Printf("%sadapt_seconds=%.0f\n", prefix, r.adaptSeconds)
	}
	fmt.Printf("%sfair_share_spread=%.3f\n", prefix, r.spread)
	if !math.IsNaN(r.spreadEnd) {
		fmt.Printf("%sfair_share_spread_end=%.3f\n", prefix, r.spreadEnd)
	}
	fmt.Printf("%scopies=%d\n", prefix, r.copies)
}

// runCase runs one case: fixed 0 is the adaptive rate, else each worker's
// fixed rate.
func runCase(o options, src, tgt *dovecot.Server, limit, fixed float64) (result, error) {
	res := result{adaptSeconds: math.NaN(), spreadEnd: math.NaN()}
	px, err := throttleproxy.Start(tgt.Addr(), throttleproxy.Options{Limit: limit})
	if err != nil {
		return res, err
	}
	defer px.Close()
	length := o.fixedPhase
	if fixed == 0 {
		length = o.phase + o.after
	}
	ctx, cancel := context.WithTimeout(context.Background(), length)
	defer cancel()

	rates := make([]*adapt.Rate, o.workers)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var copyErr error
	done := 0
	for w := range o.workers {
		ro := adapt.Options{Name: fmt.Sprintf("worker %d", w), Decrease: o.decrease, Keep: o.keepShare, Step: o.step * (1 << 10)}
		if fixed > 0 {
			ro.Start, ro.Ceiling, ro.Fixed = fixed, fixed, true
		}
		rates[w] = adapt.New(ro)
		c, err := imapcopy.New(imapcopy.Options{
			Source:      imapcopy.Endpoint{Host: "127.0.0.1", Port: src.Port, Security: imapcopy.SecurityNone},
			Target:      imapcopy.Endpoint{Host: px.Host(), Port: px.Port(), Security: imapcopy.SecurityNone},
			Credentials: credentials,
			Window:      o.window,
			Rate:        rates[w],
		})
		if err != nil {
			return res, err
		}
		next := 0
		for range o.concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					mu.Lock()
					k := next
					next++
					mu.Unlock()
					m := contract.MailboxRef{Key: targetUser(w, k), Address: sourceUser(k % o.sources)}
					err := copyToEnd(ctx, c, m)
					mu.Lock()
					switch {
					case err == nil:
						done++
					case ctx.Err() == nil && copyErr == nil:
						copyErr = err
					}
					mu.Unlock()
				}
			}()
		}
	}

	// The proxy's counters every second, and the halving.
	start := time.Now()
	var samples []sample
	tick := time.NewTicker(time.Second)
	halved := false
	for ctx.Err() == nil {
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
		s := px.Stats()
		samples = append(samples, s)
		el := s.At.Sub(start)
		logf("%s: %.1f MiB/s, %d APPENDs refused of %d, %d connections dropped; rates %s", el.Round(time.Second),
			rateBetween(samples, len(samples)-2, len(samples)-1)/(1<<20), s.AppendsRefused, s.AppendsRefused+s.AppendsAccepted, s.Dropped, rateList(rates))
		if fixed == 0 && !halved && el >= o.phase {
			px.SetLimit(limit / 2)
			halved = true
			logf("limit halved to %.1f MiB/s", limit/2/(1<<20))
		}
	}
	tick.Stop()
	wg.Wait()
	if copyErr != nil {
		return res, copyErr
	}
	res.copies = done
	for _, r := range rates {
		res.rates = append(res.rates, r.Snapshot().BytesPerSecond)
	}
	phaseEnd := length
	if fixed == 0 {
		phaseEnd = o.phase
	}
	from, to := index(samples, start, o.warm), index(samples, start, phaseEnd)
	res.achieved = rateBetween(samples, from, to) / limit
	last := samples[len(samples)-1]
	res.share = float64(last.AppendsRefused) / float64(max(1, last.AppendsRefused+last.AppendsAccepted))
	res.spread = spread(samples[from], samples[to], o.workers)
	if fixed == 0 {
		res.adaptSeconds = adaptSeconds(samples, index(samples, start, o.phase), limit/2)
		end := len(samples) - 1
		res.spreadEnd = spread(samples[index(samples, start, length-20*time.Second)], samples[end], o.workers)
	}
	logf("%d copies finished; achieved %.3f of L; %.4f refused; spread %.3f; rates at the end %s MiB/s", done, res.achieved, res.share, res.spread, rateList(rates))
	return res, nil
}

// credentials logs in to the source mailbox named by the ref's Address and
// the target mailbox named by its Key.
func credentials(_ context.Context, side imapcopy.Side, m contract.MailboxRef) (imapcopy.Credentials, error) {
	u := m.Key
	if side == imapcopy.Source {
		u = m.Address
	}
	return imapcopy.Credentials{Mechanism: imapcopy.MechPlain, Username: u, Password: password}, nil
}

// copyToEnd copies a mailbox's bulk pass, retrying from the checkpoint as
// the activity would, until it ends or ctx does.
func copyToEnd(ctx context.Context, c *imapcopy.Copier, m contract.MailboxRef) error {
	var cp contract.Checkpoint
	for attempt := 1; ; attempt++ {
		_, err := c.Copy(ctx, port.CopyRequest{Mailbox: m, Pass: contract.PassBulk, Checkpoint: cp,
			Progress: func(c contract.Checkpoint, _ contract.CopyStats) { cp = c }})
		if err == nil || ctx.Err() != nil {
			return err
		}
		if _, permanent := port.IsPermanent(err); permanent || attempt == 100 {
			return err
		}
		wait := time.Second
		var thr *port.ThrottledError
		if errors.As(err, &thr) {
			wait = min(thr.RetryAfter, 5*time.Second)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// index is the first sample at least d after start (the last if none).
func index(samples []sample, start time.Time, d time.Duration) int {
	for i, s := range samples {
		if s.At.Sub(start) >= d {
			return i
		}
	}
	return len(samples) - 1
}

func rateBetween(samples []sample, i, j int) float64 {
	if i < 0 || j <= i {
		return 0
	}
	return samples[j].RateSince(samples[i])
}

// spread is the workers' shares of the bytes between two samples, max over
// min, minus 1.
func spread(a, b sample, workers int) float64 {
	per := make([]float64, workers)
	for u, n := range b.UserBytes {
		per[workerOf(u)] += float64(n - a.UserBytes[u])
	}
	lo, hi := math.Inf(1), 0.0
	for _, v := range per {
		lo, hi = min(lo, v), max(hi, v)
	}
	if lo <= 0 {
		return math.Inf(1)
	}
	return hi/lo - 1
}

// adaptSeconds is the time from sample h (the halving) to the start of the
// first 10-second window within 10 % of the new limit with under 2 % of
// its APPENDs refused; -1 if none. (A window this long holds enough
// APPENDs for 2 % to allow a refusal.)
func adaptSeconds(samples []sample, h int, limit float64) float64 {
	const window = 10
	for i := h; i+window < len(samples); i++ {
		a, b := samples[i], samples[i+window]
		r := b.RateSince(a)
		refused := b.AppendsRefused - a.AppendsRefused
		all := refused + b.AppendsAccepted - a.AppendsAccepted
		if math.Abs(r-limit) <= 0.1*limit && float64(refused) < 0.02*float64(max(all, 1)) {
			return a.At.Sub(samples[h].At).Seconds()
		}
	}
	return -1
}

func rateList(rates []*adapt.Rate) string {
	parts := make([]string, len(rates))
	for i, r := range rates {
		parts[i] = fmt.Sprintf("%.1f", r.Snapshot().BytesPerSecond/(1<<20))
	}
	return strings.Join(parts, ", ")
}
