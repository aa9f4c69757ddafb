// Command twin runs a twin of the programme at 1:100 on this machine: a
// simulated estate of 21,000 mailboxes with the estate's size distribution
// (median 300 MB, mean 1 GB, a tail to 50 GB), ten nights in compressed
// time (a day is -day of real time: weeknights 220, weekend nights 830; the
// first -lead-days after the start), each a real Wave of real
// MailboxMigration workflows on a fresh Temporal dev server, copied by a
// real worker process into the simulated target,
// which keeps Exchange Online's per-mailbox budget (0.5 MB/s) and a tenant
// limit (5.1 MB/s, 1:100 of the 510 MB/s a night of 22,000 needs), both in
// simulated time, with 1 % of copy batches failing.
//
// It runs the twin twice, each on its own server and estate: pre-staged
// (the bulk copy after the notice, planned by package plan, each night's
// passes spread as the plan says) and copying at T as before, and prints
// one name=value figure a line:
//
//	on_their_night_share          migrated within their night's window (12 h from T)
//	needs_support_share           ended needing support
//	lost, duplicated              the estate's verifier, over every chosen mailbox
//	peak_copies_in_flight         passes before T and night slots at once, at most
//	prestage_lead_hours_p50/p99   T minus the bulk pass's start, in real hours
//	prestage_behind_plan_hours_p50/p99  the bulk pass's start after its planned start
//	bulk_done_before_t_share      pre-staged mailboxes whose bulk pass ended before T
//	worker_peak_rss_mb            the worker process's
//	temporal_events_per_second    history events of every workflow over the run
//	..._copy_at_t                 the same for copying at T
//
// Progress goes to stderr. Run it with make bench-programme.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"mailwave/contract"
	"mailwave/identity"
	"mailwave/mail/sim"
	"mailwave/plan"
	"mailwave/roster/wavefile"
	"mailwave/testkit"
	"mailwave/testkit/proc"
)

const secret = "mailwave-twin-secret-not-for-production"

type options struct {
	mailboxes, nights       int
	leadDays                int
	weeknight, weekend      int
	day                     time.Duration
	seed                    int64
	mailboxMBps, tenantMBps float64
	efficiency              float64
	nightCap                int
	faults                  float64
	temporalBin, worker     string
	skipAtT, keep, even     bool
	capacity                int
	capacityHold            time.Duration
	pool                    string
	poolCapFactor           float64
}

func main() {
	var o options
	flag.IntVar(&o.mailboxes, "mailboxes", 21000, "the simulated estate's mailboxes")
	flag.IntVar(&o.nights, "nights", 10, "nights, from a Monday")
	flag.IntVar(&o.weeknight, "weeknight", 220, "mailboxes a weeknight")
	flag.IntVar(&o.weekend, "weekend", 830, "mailboxes a weekend night")
	flag.DurationVar(&o.day, "day", 30*time.Second, "a day of the programme in real time")
	flag.IntVar(&o.leadDays, "lead-days", 14, "days from the start to the first night: under 14, the users of the nights within 14 days are told at the start (a late start), not at T-14, and their passes planned from then")
	flag.Int64Var(&o.seed, "seed", 1, "the estate's and the nights' seed")
	flag.Float64Var(&o.mailboxMBps, "mailbox-rate", 0.5, "the target's per-mailbox budget, MB a second of simulated time")
	flag.Float64Var(&o.tenantMBps, "tenant-rate", 5.1, "the target tenant's limit, MB a second of simulated time")
	flag.Float64Var(&o.efficiency, "efficiency", 0.9, "the share of the per-mailbox budget a pass is planned at")
	flag.IntVar(&o.nightCap, "night-cap", 1000, "a night's slots for final deltas and cutovers (copying at T: for whole copies)")
	flag.Float64Var(&o.faults, "faults", 0.01, "the share of copy batches that fail (and are retried)")
	flag.StringVar(&o.temporalBin, "temporal", "bin/temporal", "the Temporal CLI")
	flag.StringVar(&o.worker, "worker", "bin/worker", "the mailwave worker")
	flag.BoolVar(&o.skipAtT, "skip-copy-at-t", false, "run the pre-staged twin only")
	flag.BoolVar(&o.keep, "keep", false, "keep the working directories")
	flag.BoolVar(&o.even, "even-spread", false, "pre-staged: spread each night's bulk passes evenly over its spread, not as the plan starts them (its shape)")
	flag.StringVar(&o.pool, "pool", "twin", "pre-staged: the tenant's pre-stage pool every night's passes share (empty: each wave its own pool of the tenant's lanes, as before the tenant's pool)")
	flag.Float64Var(&o.poolCapFactor, "pool-cap-factor", 1, "pre-staged: the pool's cap in tenant lanes (at 2,880 times a grant's round trip of about a second is 48 simulated minutes, longer than a median pass: above 1, the target's tenant limit throttles instead of the pool)")
	flag.IntVar(&o.capacity, "capacity", 0, "instead of the twin: measure one worker holding this many slow copies at once")
	flag.DurationVar(&o.capacityHold, "capacity-hold", time.Minute, "with -capacity: how long the copies are measured")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	run := run
	if o.leadDays < 1 {
		fmt.Fprintln(os.Stderr, "twin: -lead-days must be at least 1")
		os.Exit(2)
	}
	if o.capacity > 0 {
		run = func(ctx context.Context, o options) error { return capacity(ctx, o, o.capacity, o.capacityHold) }
	}
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "twin:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, "twin: "+format+"\n", args...) }

// figures are one twin's.
type figures struct {
	onNight, needsSupport float64
	lost, duplicated      int64
	peak                  int
	leadP50, leadP99      float64
	// behindP50/P99: a bulk pass's start after its planned start (the
	// pool's queue and its grant's round trip), in real hours; bulkDone:
	// the share of pre-staged mailboxes whose bulk pass ended before T.
	behindP50, behindP99, bulkDone float64
	rssMB, eventsPerSecond         float64
	mailboxes, infeasible          int
	// endP50/P99: a migrated mailbox's end after its T, in real hours;
	// weeknight and weekend: on_their_night_share by kind of night.
	endP50, endP99     float64
	weeknight, weekend float64
}

func run(ctx context.Context, o options) error {
	pre, err := twin(ctx, o, true)
	if err != nil {
		return fmt.Errorf("pre-staged: %w", err)
	}
	fmt.Printf("mailboxes=%d\nnights=%d\nday_seconds=%g\nlead_days=%d\n", pre.mailboxes, o.nights, o.day.Seconds(), o.leadDays)
	fmt.Printf("on_their_night_share=%.4f\non_their_night_share_weeknights=%.4f\non_their_night_share_weekends=%.4f\n",
		pre.onNight, pre.weeknight, pre.weekend)
	fmt.Printf("ended_hours_after_t_p50=%.1f\nended_hours_after_t_p99=%.1f\n", pre.endP50, pre.endP99)
	fmt.Printf("needs_support_share=%.4f\nlost=%d\nduplicated=%d\npeak_copies_in_flight=%d\n",
		pre.needsSupport, pre.lost, pre.duplicated, pre.peak)
	fmt.Printf("prestage_lead_hours_p50=%.1f\nprestage_lead_hours_p99=%.1f\nplanned_infeasible=%d\n", pre.leadP50, pre.leadP99, pre.infeasible)
	fmt.Printf("prestage_behind_plan_hours_p50=%.2f\nprestage_behind_plan_hours_p99=%.2f\nbulk_done_before_t_share=%.4f\n",
		pre.behindP50, pre.behindP99, pre.bulkDone)
	fmt.Printf("worker_peak_rss_mb=%.0f\ntemporal_events_per_second=%.0f\n", pre.rssMB, pre.eventsPerSecond)
	if o.skipAtT {
		return nil
	}
	atT, err := twin(ctx, o, false)
	if err != nil {
		return fmt.Errorf("copy at T: %w", err)
	}
	fmt.Printf("on_their_night_share_copy_at_t=%.4f\non_their_night_share_weeknights_copy_at_t=%.4f\non_their_night_share_weekends_copy_at_t=%.4f\n",
		atT.onNight, atT.weeknight, atT.weekend)
	fmt.Printf("ended_hours_after_t_p50_copy_at_t=%.1f\nended_hours_after_t_p99_copy_at_t=%.1f\n", atT.endP50, atT.endP99)
	fmt.Printf("needs_support_share_copy_at_t=%.4f\nlost_copy_at_t=%d\nduplicated_copy_at_t=%d\n",
		atT.needsSupport, atT.lost, atT.duplicated)
	fmt.Printf("peak_copies_in_flight_copy_at_t=%d\nworker_peak_rss_mb_copy_at_t=%.0f\ntemporal_events_per_second_copy_at_t=%.0f\n",
		atT.peak, atT.rssMB, atT.eventsPerSecond)
	return nil
}

// night is one night of the twin.
type night struct {
	wave      string
	t         time.Time
	mailboxes []wavefile.Mailbox
	spread    time.Duration
	shape     []float64
	weekend   bool
}

// twin runs the programme's nights once, pre-staged or copying at T.
func twin(ctx context.Context, o options, prestaged bool) (figures, error) {
	var f figures
	name := map[bool]string{true: "pre-staged", false: "copy at T"}[prestaged]
	dir, err := os.MkdirTemp("", "mailwave-twin-")
	if err != nil {
		return f, err
	}
	defer func() {
		if o.keep {
			logf("kept %s", dir)
		} else {
			_ = os.RemoveAll(dir)
		}
	}()
	scale := float64(24*time.Hour) / float64(o.day) // simulated seconds a real second
	logf("%s: %d nights, a day every %s (x%.0f), estate of %d", name, o.nights, o.day, scale, o.mailboxes)
	srv, err := testkit.StartDevServer(ctx, testkit.DevServerConfig{Bin: o.temporalBin, Dir: dir})
	if err != nil {
		return f, err
	}
	defer func() { _ = srv.Stop() }()
	estateDir, wavesDir := filepath.Join(dir, "estate"), filepath.Join(dir, "waves")
	if _, err := sim.Generate(estateDir, sim.GenerateOptions{Seed: o.seed, Mailboxes: o.mailboxes}); err != nil {
		return f, err
	}
	est, err := sim.Open(estateDir, sim.Options{Instant: true})
	if err != nil {
		return f, err
	}
	keyer, err := identity.NewKeyer([]byte(secret))
	if err != nil {
		return f, err
	}

	worker, err := startWorker(o, srv.FrontendHostPort(), dir, estateDir, wavesDir, scale)
	if err != nil {
		return f, err
	}
	defer worker.stop()

	// The nights: the start a minute from now, the first night lead-days
	// after it, a night a day.
	t0 := time.Now().Add(time.Minute).Truncate(time.Second)
	nights, sizes, err := chooseNights(o, est, keyer, t0)
	if err != nil {
		return f, err
	}
	limits := plan.Limits{MailboxRate: o.mailboxMBps * 1e6 * scale, TenantRate: o.tenantMBps * 1e6 * scale,
		Efficiency: o.efficiency, PassOverhead: time.Duration(float64(2*time.Minute) / scale)}
	day := func(d time.Duration) time.Duration { return time.Duration(float64(d) / scale) }
	policy := plan.Policy{StartDelay: day(time.Hour), Margin: o.day, IncrementalEvery: o.day, ChangeShare: 0.005,
		Window: o.day / 2, NightCap: o.nightCap, Cutover: day(time.Minute)}
	lanes := int(limits.TenantRate / limits.Pace())
	if prestaged {
		f.infeasible, err = planSpreads(nights, sizes, t0, o.day, limits, policy, !o.even)
		if err != nil {
			return f, err
		}
	}
	c := srv.Client()
	store := wavefile.NewStore(wavesDir)
	for _, n := range nights {
		if err := store.Write(ctx, n.wave, n.mailboxes); err != nil {
			return f, err
		}
		in := contract.WaveInput{WaveID: n.wave, Total: len(n.mailboxes), MigrateAt: n.t, NoticeLead: 14 * o.day,
			ReminderLead: o.day, Cap: o.nightCap, StartRate: 500, ReconcileEvery: o.day}
		if prestaged {
			in.Prestage = &contract.Prestage{MailboxRate: limits.MailboxRate, Efficiency: o.efficiency, PassOverhead: limits.PassOverhead,
				StartDelay: policy.StartDelay, Margin: policy.Margin, IncrementalEvery: policy.IncrementalEvery,
				Cap: max(int(float64(lanes)*o.poolCapFactor), 1), Spread: n.spread, Shape: n.shape, Pool: o.pool}
		}
		if _, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.WaveWorkflowID(n.wave), TaskQueue: contract.TaskQueue},
			contract.WaveWorkflowName, in); err != nil {
			return f, err
		}
	}
	start := time.Now()
	pool := ""
	if prestaged {
		pool = o.pool
	}
	if f.peak, err = watch(ctx, c, nights, pool); err != nil {
		return f, err
	}
	elapsed := time.Since(start)
	if f.rssMB, err = proc.VmHWM(worker.cmd.Process.Pid); err != nil {
		logf("worker peak RSS: %v", err)
	}
	if err := outcomes(ctx, c, nights, o.day/2, scale, &f); err != nil {
		return f, err
	}
	var addresses []string
	for _, n := range nights {
		for _, m := range n.mailboxes {
			addresses = append(addresses, m.Address)
		}
	}
	rep, err := est.Verify(ctx, addresses)
	if err != nil {
		return f, err
	}
	f.lost, f.duplicated = rep.Totals.Lost, rep.Totals.Duplicated
	events, err := historyEvents(ctx, c)
	if err != nil {
		return f, err
	}
	f.eventsPerSecond = float64(events) / elapsed.Seconds()
	logf("%s: %d mailboxes, %.3f on their night, %d events in %s", name, f.mailboxes, f.onNight, events, elapsed.Round(time.Second))
	return f, nil
}

// chooseNights takes each night's mailboxes at random from those not yet
// taken, weeknights and weekend nights from a Monday, and their sizes.
func chooseNights(o options, est *sim.Estate, keyer *identity.Keyer, t0 time.Time) ([]night, map[string]int64, error) {
	roster, err := est.Roster()
	if err != nil {
		return nil, nil, err
	}
	rng := rand.New(rand.NewPCG(uint64(o.seed), 0x7477696e))
	rng.Shuffle(len(roster), func(i, j int) { roster[i], roster[j] = roster[j], roster[i] })
	sizes := map[string]int64{}
	var nights []night
	for k := range o.nights {
		size, weekend := o.weeknight, false
		if wd := k % 7; wd == 5 || wd == 6 { // from a Monday
			size, weekend = o.weekend, true
		}
		size = min(size, len(roster))
		rows := make([]wavefile.Row, size)
		for i, r := range roster[:size] {
			rows[i] = wavefile.Row{Line: i + 2, Address: r.Address, Org: r.Org, DisplayName: r.DisplayName}
			p, _ := est.Profile(r.Address)
			key, err := keyer.Key(r.Address)
			if err != nil {
				return nil, nil, err
			}
			sizes[key] = p.Bytes
		}
		roster = roster[size:]
		mbs, err := wavefile.Build(rows, keyer)
		if err != nil {
			return nil, nil, err
		}
		nights = append(nights, night{wave: fmt.Sprintf("twin-night-%02d", k+1), t: t0.Add(time.Duration(o.leadDays+k) * o.day), mailboxes: mbs, weekend: weekend})
	}
	return nights, sizes, nil
}

// planSpreads plans every night's bulk passes together, under the tenant's
// lanes, and gives each night the spread its passes need before its
// deadline (T-Margin) and, shaped, the shape of the plan's starts over it;
// it returns the mailboxes the plan cannot fit. A mailbox is told at T-14
// days, or at the start (t0) when that is later.
func planSpreads(nights []night, sizes map[string]int64, t0 time.Time, day time.Duration, l plan.Limits, p plan.Policy, shaped bool) (int, error) {
	var ms []plan.Mailbox
	for _, n := range nights {
		notice := n.t.Add(-14 * day)
		if notice.Before(t0) {
			notice = t0
		}
		for _, m := range n.mailboxes {
			ms = append(ms, plan.Mailbox{Key: m.Key, Bytes: sizes[m.Key], T: n.t, Notice: notice})
		}
	}
	r, err := plan.Plan(ms, l, p)
	if err != nil {
		return 0, err
	}
	spread := map[time.Time]time.Duration{}
	for _, n := range r.Nights {
		spread[n.T] = n.Spread(p.Margin)
	}
	for i := range nights {
		nights[i].spread = spread[nights[i].t.UTC()]
		if shaped {
			nights[i].shape = r.Shape(nights[i].t.UTC(), p.Margin, contract.MaxPrestageShape)
		}
	}
	logf("planned: %d mailboxes, peak %d copies at once, %d cannot be done", len(ms), r.PeakCopies, r.Infeasible)
	return r.Infeasible, nil
}

// watch waits for every wave to end, sampling the copies in flight (passes
// before T, in the waves' pools or the tenant's, and night slots, over all
// waves) each second; progress to stderr.
func watch(ctx context.Context, c client.Client, nights []night, pool string) (peak int, err error) {
	last := time.Now()
	for {
		running, inFlight, migrated := 0, 0, 0
		for _, n := range nights {
			d, err := c.DescribeWorkflowExecution(ctx, contract.WaveWorkflowID(n.wave), "")
			if err != nil {
				return peak, err
			}
			if d.GetWorkflowExecutionInfo().GetCloseTime() != nil {
				continue
			}
			running++
			qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			v, err := c.QueryWorkflow(qctx, contract.WaveWorkflowID(n.wave), "", contract.QueryProgress)
			cancel()
			var p contract.WaveProgress
			if err == nil && v.Get(&p) == nil {
				inFlight += p.Prestaging + p.Active
				migrated += p.Migrated
			}
		}
		if pool != "" {
			// The passes before T run in the tenant's pool, not the waves'.
			qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			v, err := c.QueryWorkflow(qctx, contract.PrestagePoolWorkflowID(pool), "", contract.QueryPrestagePool)
			cancel()
			var st contract.PrestagePoolStatus
			if err == nil && v.Get(&st) == nil {
				inFlight += st.Active
			}
		}
		peak = max(peak, inFlight)
		if running == 0 {
			return peak, nil
		}
		if time.Since(last) >= 10*time.Second {
			logf("%d waves running, %d copies in flight (peak %d), %d migrated in them", running, inFlight, peak, migrated)
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return peak, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// outcomes reads every mailbox's result: migrated within its night's window
// (T to T+window), needing support, and its bulk pass's lead before T.
func outcomes(ctx context.Context, c client.Client, nights []night, window time.Duration, scale float64, f *figures) error {
	var leads, ends, behind []float64
	prestaged, bulkDone := 0, 0
	onNight, support := 0, 0
	kind := map[bool][2]int{} // weekend -> on their night, mailboxes
	for _, n := range nights {
		weekend := n.weekend
		for _, m := range n.mailboxes {
			var res contract.MailboxResult
			if err := c.GetWorkflow(ctx, contract.MailboxWorkflowID(m.Key), "").Get(ctx, &res); err != nil {
				return fmt.Errorf("mailbox %s: %w", m.Key, err)
			}
			f.mailboxes++
			k := kind[weekend]
			k[1]++
			switch {
			case res.Outcome == contract.OutcomeNeedsSupport:
				support++
			case res.Outcome == contract.OutcomeMigrated && !res.FinishedAt.After(n.t.Add(window)):
				onNight++
				k[0]++
			}
			kind[weekend] = k
			if res.Outcome == contract.OutcomeMigrated {
				ends = append(ends, res.FinishedAt.Sub(n.t).Seconds()*scale/3600)
			}
			if p := res.Prestage; p != nil {
				prestaged++
				if p.BulkDone {
					bulkDone++
				}
				if !p.BulkStarted.IsZero() {
					leads = append(leads, n.t.Sub(p.BulkStarted).Seconds()*scale/3600)
					behind = append(behind, max(p.BulkStarted.Sub(p.BulkAt), 0).Seconds()*scale/3600)
				}
			}
		}
	}
	f.onNight = float64(onNight) / float64(max(f.mailboxes, 1))
	f.needsSupport = float64(support) / float64(max(f.mailboxes, 1))
	f.leadP50, f.leadP99 = percentiles(leads)
	f.behindP50, f.behindP99 = percentiles(behind)
	f.bulkDone = float64(bulkDone) / float64(max(prestaged, 1))
	f.endP50, f.endP99 = percentiles(ends)
	share := func(k [2]int) float64 { return float64(k[0]) / float64(max(k[1], 1)) }
	f.weeknight, f.weekend = share(kind[false]), share(kind[true])
	return nil
}

// percentiles are the p50 and p99 of xs (sorted in place); 0 for none.
func percentiles(xs []float64) (p50, p99 float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	slices.Sort(xs)
	return xs[len(xs)/2], xs[min(len(xs)-1, int(math.Ceil(float64(len(xs))*0.99))-1)]
}

// historyEvents sums the history lengths of every workflow on the server.
func historyEvents(ctx context.Context, c client.Client) (int64, error) {
	var total int64
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{PageSize: 1000, NextPageToken: token})
		if err != nil {
			return 0, err
		}
		for _, e := range resp.GetExecutions() {
			total += e.GetHistoryLength()
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return total, nil
		}
	}
}

// workerProcess is the mailwave worker, a process of its own.
type workerProcess struct {
	cmd  *exec.Cmd
	done chan error
}

func startWorker(o options, hostPort, dir, estateDir, wavesDir string, scale float64) (*workerProcess, error) {
	return startWorkerWith(o, dir, []string{
		"--temporal-address", hostPort,
		"--sim-dir", estateDir, "--outbox-dir", filepath.Join(dir, "outbox"), "--waves-dir", wavesDir,
		"--sim-time-scale", strconv.FormatFloat(scale, 'f', -1, 64),
		"--sim-rate", strconv.FormatInt(int64(o.tenantMBps*1e6)*4, 10),
		"--sim-tenant-rate", strconv.FormatInt(int64(o.tenantMBps*1e6), 10),
		"--sim-mailbox-rate", strconv.FormatInt(int64(o.mailboxMBps*1e6), 10),
		"--sim-transient-rate", strconv.FormatFloat(o.faults, 'f', -1, 64),
		"--log-level", "warn",
		"--max-activities", "500", "--max-local-activities", "500", "--max-workflow-tasks", "100"})
}

// startWorkerWith starts the worker with args, its log in dir.
func startWorkerWith(o options, dir string, args []string) (*workerProcess, error) {
	log, err := os.Create(filepath.Join(dir, "worker.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(o.worker, args...)
	cmd.Env = append(append(os.Environ(), identity.SecretEnv+"="+secret), testkit.TestKeysEnv()...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		_ = log.Close()
		return nil, fmt.Errorf("starting the worker %s: %w", o.worker, err)
	}
	w := &workerProcess{cmd: cmd, done: make(chan error, 1)}
	go func() { w.done <- cmd.Wait(); _ = log.Close() }()
	return w, nil
}

func (w *workerProcess) stop() {
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-w.done:
		if err != nil && !errors.Is(err, context.Canceled) {
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				logf("worker: %v", err)
			}
		}
	case <-time.After(40 * time.Second):
		_ = w.cmd.Process.Kill()
		<-w.done
	}
}
