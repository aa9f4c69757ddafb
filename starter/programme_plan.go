package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"mailwave/plan"
	"mailwave/roster/wavefile"
)

// planOptions are the flags of `programme plan`.
type planOptions struct {
	estate                string
	from, at, zone, lead  string
	weekdays, weekends    int
	nights                int
	skip                  []string
	seed                  int64
	assumeGB              float64
	mailboxMBps, tenantMB float64
	efficiency            float64
	margin, every, wait   time.Duration
	window                time.Duration
	nightCap              int
	changeShare           float64
	copyAtT               bool
	nightsCSV, daysCSV    string
	mailboxesCSV          string
}

func newProgrammePlanCmd(a *app) *cobra.Command {
	o := planOptions{}
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Plan the programme's next nights against the target's limits: when each bulk pass must start, copies at once, the peak, and what cannot be done and why",
		Long: `Plan the next nights of the programme, pre-staged, against the target's
documented limits, before anyone is told. The nights are projected from the
estate's file (the one "programme import" takes, its size column read; a
mailbox without a size is assumed --assume-gb and counted as estimated): each
night takes its size of the mailboxes not yet taken, at random (by --seed and
the night's date), as the nightly choice does. Each mailbox's bulk pass is
planned to end --prestage-margin before its T, no sooner than
--prestage-start-delay after its notice, at --mailbox-rate times
--prestage-efficiency; under --tenant-rate the passes take lanes, and start
earlier when the lanes are full. Printed: the peak of copies at once and
when, the bulk passes' lead before T, and every mailbox and night that cannot
be done, with the reason (TooLargeForLeadTime, TenantLimitTooLow,
NightWindowTooShort) and its figures; --copy-at-t adds today's copy at T for
comparison. CSV by night, by day and by mailbox (keys, never addresses) on
request.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.programmePlan(cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.estate, "estate", "", "the estate's CSV, as programme import takes it: address, org, display_name, size_bytes or size_mb (required)")
	f.StringVar(&o.from, "from", "", "the first night's date, 2006-01-02 in --zone (required)")
	f.IntVar(&o.nights, "nights", 10, "how many nights to plan")
	f.IntVar(&o.weekdays, "weeknight-size", 22000, "mailboxes a night, Monday to Friday (0: no weeknights)")
	f.IntVar(&o.weekends, "weekend-size", 83000, "mailboxes a night, Saturday and Sunday (0: no weekend nights)")
	f.StringVar(&o.at, "at", "20:00", "the nights' time of day, in --zone: T")
	f.StringVar(&o.zone, "zone", "Europe/London", "the nights' time zone")
	f.StringVar(&o.lead, "lead", "14d", "the notice lead: each mailbox is told this long before its night")
	f.StringSliceVar(&o.skip, "skip", nil, "nights' dates to skip: bank holidays (2006-01-02)")
	f.Int64Var(&o.seed, "seed", 1, "the projection's seed")
	f.Float64Var(&o.assumeGB, "assume-gb", 1, "the size of a mailbox the file gives none, in GB (the estate's mean)")
	f.Float64Var(&o.mailboxMBps, "mailbox-rate", plan.DefaultMailboxRate/1e6, "the target's per-mailbox budget, MB a second (Exchange Online: 0.5)")
	f.Float64Var(&o.efficiency, "prestage-efficiency", plan.DefaultLimits.Efficiency, "the share of the per-mailbox budget a copy achieves, in (0, 1]")
	f.Float64Var(&o.tenantMB, "tenant-rate", 0, "the tenant's limit across all mailboxes, MB a second (0: none)")
	f.DurationVar(&o.margin, "prestage-margin", plan.DefaultPolicy.Margin, "a bulk pass ends this long before T")
	f.DurationVar(&o.every, "prestage-incremental-every", 24*time.Hour, "an incremental pass this often after the bulk (0: none)")
	f.DurationVar(&o.wait, "prestage-start-delay", plan.DefaultPolicy.StartDelay, "no bulk pass starts sooner than this after its notice")
	f.DurationVar(&o.window, "night-window", plan.DefaultPolicy.Window, "the night's time for the final deltas and the cutovers")
	f.IntVar(&o.nightCap, "night-cap", plan.DefaultPolicy.NightCap, "final deltas and cutovers at once in a night (0: the tenant's limit only)")
	f.Float64Var(&o.changeShare, "change-share", plan.DefaultPolicy.ChangeShare, "the share of a mailbox's size that changes a day")
	f.BoolVar(&o.copyAtT, "copy-at-t", false, "also plan today's copy at T (the whole copy in the night), for comparison")
	f.StringVar(&o.nightsCSV, "csv-nights", "", "write the plan by night as CSV to this file ('-': standard output)")
	f.StringVar(&o.daysCSV, "csv-days", "", "write the plan by day (UTC) as CSV to this file")
	f.StringVar(&o.mailboxesCSV, "csv-mailboxes", "", "write each mailbox's plan (its key, never its address) as CSV to this file")
	_ = cmd.MarkFlagRequired("estate")
	_ = cmd.MarkFlagRequired("from")
	return cmd
}

// projectNights lists the n nights from the date from on, in zone loc at
// h:m, a night a day but on a day with no size, or a date to skip.
func projectNights(from time.Time, n, weekdays, weekends, h, m int, skip map[string]bool, loc *time.Location) ([]time.Time, []int) {
	var ts []time.Time
	var sizes []int
	for d := from; len(ts) < n && d.Before(from.AddDate(10, 0, 0)); d = d.AddDate(0, 0, 1) {
		size := weekdays
		if wd := d.Weekday(); wd == time.Saturday || wd == time.Sunday {
			size = weekends
		}
		if size <= 0 || skip[d.Format(time.DateOnly)] {
			continue
		}
		ts = append(ts, time.Date(d.Year(), d.Month(), d.Day(), h, m, 0, 0, loc))
		sizes = append(sizes, size)
	}
	return ts, sizes
}

func (a *app) programmePlan(out io.Writer, o planOptions) error {
	loc, err := time.LoadLocation(o.zone)
	if err != nil {
		return fmt.Errorf("--zone %.40q: %v", o.zone, err)
	}
	from, err := time.ParseInLocation(time.DateOnly, o.from, loc)
	if err != nil {
		return fmt.Errorf("--from %.20q: a date as 2006-01-02", o.from)
	}
	h, m, _, err := parseClock(o.at)
	if err != nil {
		return err
	}
	lead, err := parseLead(o.lead)
	if err != nil {
		return fmt.Errorf("--lead: %w", err)
	}
	switch {
	case o.nights < 1:
		return fmt.Errorf("--nights %d: at least 1", o.nights)
	case o.weekdays < 0 || o.weekends < 0 || o.weekdays+o.weekends == 0:
		return errors.New("--weeknight-size and --weekend-size: not negative, and not both 0")
	case !(o.assumeGB > 0):
		return fmt.Errorf("--assume-gb %g: more than 0", o.assumeGB)
	}
	skip := map[string]bool{}
	for _, s := range o.skip {
		if _, err := time.Parse(time.DateOnly, s); err != nil {
			return fmt.Errorf("--skip %.20q: a date as 2006-01-02", s)
		}
		skip[s] = true
	}
	limits := plan.Limits{MailboxRate: o.mailboxMBps * 1e6, TenantRate: o.tenantMB * 1e6, Efficiency: o.efficiency,
		PassOverhead: plan.DefaultLimits.PassOverhead}
	policy := plan.Policy{StartDelay: o.wait, Margin: o.margin, IncrementalEvery: o.every, ChangeShare: o.changeShare,
		Window: o.window, NightCap: o.nightCap, Cutover: plan.DefaultPolicy.Cutover}
	if err := cmp.Or(limits.Check(), policy.Check()); err != nil {
		return err
	}
	mailboxes, estimated, err := a.planMailboxes(o, from, lead, loc, h, m, skip)
	if err != nil {
		return err
	}
	res, err := plan.Plan(mailboxes, limits, policy)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "plan: %d nights from %s, %d mailboxes (%d sizes assumed %.3g GB), %.1f TB\n",
		len(res.Nights), o.from, len(mailboxes), estimated, o.assumeGB, float64(totalBytes(mailboxes))/1e12)
	writePlanSummary(out, "pre-staged", res, limits)
	if o.copyAtT {
		at := policy
		at.AtT = true
		atT, err := plan.Plan(mailboxes, limits, at)
		if err != nil {
			return err
		}
		writePlanSummary(out, "copy at T", atT, limits)
	}
	return writePlanCSVs(out, o, res)
}

// planMailboxes projects the nights and each one's mailboxes, keyed (never
// by address), with their notices.
func (a *app) planMailboxes(o planOptions, from time.Time, lead time.Duration, loc *time.Location, h, m int, skip map[string]bool) ([]plan.Mailbox, int, error) {
	f, err := os.Open(o.estate)
	if err != nil {
		return nil, 0, fmt.Errorf("--estate: %w", err)
	}
	defer f.Close()
	rows, err := wavefile.ParseEstate(f, o.estate)
	if err != nil {
		return nil, 0, err
	}
	keyer, err := a.keyer()
	if err != nil {
		return nil, 0, err
	}
	type sized struct {
		key   string
		bytes int64
		est   bool
	}
	pool := make([]sized, 0, len(rows))
	for _, r := range rows {
		k, err := keyer.Key(r.Address)
		if err != nil {
			return nil, 0, fmt.Errorf("%s line %d: %w", o.estate, r.Line, err)
		}
		s := sized{key: k, bytes: r.SizeBytes}
		if s.bytes <= 0 {
			s.bytes, s.est = int64(o.assumeGB*1e9), true
		}
		pool = append(pool, s)
	}
	// The pool in key order, so the projection depends on the keys and
	// the seed, not the file's order.
	slices.SortFunc(pool, func(x, y sized) int { return cmp.Compare(x.key, y.key) })
	nights, sizes := projectNights(from, o.nights, o.weekdays, o.weekends, h, m, skip, loc)
	var out []plan.Mailbox
	estimated := 0
	for i, t := range nights {
		rng := rand.New(rand.NewPCG(uint64(o.seed), uint64(t.Unix())))
		n := min(sizes[i], len(pool))
		for j := range n {
			k := j + rng.IntN(len(pool)-j)
			pool[j], pool[k] = pool[k], pool[j]
			out = append(out, plan.Mailbox{Key: pool[j].key, Bytes: pool[j].bytes, Estimated: pool[j].est, T: t, Notice: t.Add(-lead)})
			if pool[j].est {
				estimated++
			}
		}
		pool = pool[n:]
		if len(pool) == 0 {
			break
		}
	}
	return out, estimated, nil
}

func totalBytes(ms []plan.Mailbox) (n int64) {
	for _, m := range ms {
		n += m.Bytes
	}
	return n
}

// writePlanSummary says a plan in a few lines: its peak, its leads, and
// what cannot be done.
func writePlanSummary(w io.Writer, name string, r plan.Result, l plan.Limits) {
	fmt.Fprintf(w, "%s:\n", name)
	lanes := "no tenant limit"
	if r.Lanes >= 0 {
		lanes = fmt.Sprintf("tenant limit %.0f MB/s: %d copies at once", l.TenantRate/1e6, r.Lanes)
	}
	fmt.Fprintf(w, "  per-mailbox pace %.3g MB/s; %s\n", l.Pace()/1e6, lanes)
	if !r.PeakAt.IsZero() {
		fmt.Fprintf(w, "  peak: %d copies at once at %s, %.0f MB/s\n", r.PeakCopies, r.PeakAt.UTC().Format(time.RFC3339), r.PeakRate/1e6)
	}
	var leads []float64
	for _, m := range r.Mailboxes {
		if m.Problem == nil {
			leads = append(leads, m.LeadHours)
		}
	}
	if len(leads) > 0 {
		slices.Sort(leads)
		fmt.Fprintf(w, "  copy starts before T: p50 %.1f h, p99 %.1f h\n", leads[len(leads)/2], leads[min(len(leads)-1, len(leads)*99/100)])
	}
	by := map[plan.Reason]int{}
	for _, m := range r.Mailboxes {
		if m.Problem != nil {
			by[m.Problem.Reason]++
		}
	}
	fmt.Fprintf(w, "  mailboxes that cannot be done: %d", r.Infeasible)
	for _, reason := range []plan.Reason{plan.TooLargeForLeadTime, plan.TenantLimitTooLow} {
		if by[reason] > 0 {
			fmt.Fprintf(w, "; %s %d", reason, by[reason])
		}
	}
	fmt.Fprintln(w)
	bad := 0
	for _, n := range r.Nights {
		state := "ok"
		if len(n.Problems) > 0 {
			bad++
			var ps []string
			for _, p := range n.Problems {
				ps = append(ps, p.String())
			}
			state = strings.Join(ps, "; ")
		}
		// How early its passes begin: what --prestage-spread must give.
		spread := ""
		if !n.FirstStart.IsZero() {
			spread = fmt.Sprintf(", passes from %.1f h before T", n.T.Sub(n.FirstStart).Hours())
		}
		fmt.Fprintf(w, "  night %s: %d mailboxes, %.1f TB, %d planned%s, final work %.1f h: %s\n",
			n.T.Format("2006-01-02 15:04 MST"), n.Mailboxes, float64(n.Bytes)/1e12, n.Planned, spread, n.FinalHours, state)
	}
	fmt.Fprintf(w, "  nights that cannot be done: %d of %d\n", bad, len(r.Nights))
}

// planNightRow, planDayRow and planMailboxRow are the plan's CSV rows.
type planNightRow struct {
	T          string `json:"t"`
	Mailboxes  int    `json:"mailboxes"`
	Planned    int    `json:"planned"`
	Bytes      int64  `json:"bytes"`
	Estimated  int    `json:"estimated"`
	FinalHours string `json:"final_hours"`
	Problems   string `json:"problems"`
}

type planDayRow struct {
	Date             string `json:"date"`
	PeakCopies       int    `json:"peak_copies"`
	PeakRate         string `json:"peak_bytes_per_second"`
	BulkBytes        int64  `json:"bulk_bytes"`
	IncrementalBytes int64  `json:"incremental_bytes"`
}

type planMailboxRow struct {
	Key       string `json:"key"`
	Bytes     int64  `json:"bytes"`
	Estimated bool   `json:"estimated"`
	T         string `json:"t"`
	Start     string `json:"bulk_start"`
	End       string `json:"bulk_end"`
	LeadHours string `json:"lead_hours"`
	Problem   string `json:"problem"`
}

func writePlanCSVs(out io.Writer, o planOptions, r plan.Result) error {
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	if o.nightsCSV != "" {
		rows := make([]planNightRow, len(r.Nights))
		for i, n := range r.Nights {
			var ps []string
			for _, p := range n.Problems {
				ps = append(ps, p.String())
			}
			rows[i] = planNightRow{T: ts(n.T), Mailboxes: n.Mailboxes, Planned: n.Planned, Bytes: n.Bytes, Estimated: n.Estimated,
				FinalHours: f(n.FinalHours), Problems: strings.Join(ps, "; ")}
		}
		if err := writeTableCSV(out, o.nightsCSV, rows, func(n planNightRow) []string {
			return []string{n.T, strconv.Itoa(n.Mailboxes), strconv.Itoa(n.Planned), strconv.FormatInt(n.Bytes, 10),
				strconv.Itoa(n.Estimated), n.FinalHours, n.Problems}
		}); err != nil {
			return err
		}
	}
	if o.daysCSV != "" {
		rows := make([]planDayRow, len(r.Days))
		for i, d := range r.Days {
			rows[i] = planDayRow{Date: d.Date, PeakCopies: d.PeakCopies, PeakRate: f(d.PeakRate), BulkBytes: d.BulkBytes, IncrementalBytes: d.IncrementalBytes}
		}
		if err := writeTableCSV(out, o.daysCSV, rows, func(d planDayRow) []string {
			return []string{d.Date, strconv.Itoa(d.PeakCopies), d.PeakRate, strconv.FormatInt(d.BulkBytes, 10), strconv.FormatInt(d.IncrementalBytes, 10)}
		}); err != nil {
			return err
		}
	}
	if o.mailboxesCSV != "" {
		rows := make([]planMailboxRow, len(r.Mailboxes))
		for i, m := range r.Mailboxes {
			rows[i] = planMailboxRow{Key: m.Key, Bytes: m.Bytes, Estimated: m.Estimated, T: ts(m.T), Start: ts(m.Start), End: ts(m.End),
				LeadHours: f(m.LeadHours)}
			if m.Problem != nil {
				rows[i].Problem = m.Problem.String()
			}
		}
		return writeTableCSV(out, o.mailboxesCSV, rows, func(m planMailboxRow) []string {
			return []string{m.Key, strconv.FormatInt(m.Bytes, 10), strconv.FormatBool(m.Estimated), m.T, m.Start, m.End, m.LeadHours, m.Problem}
		})
	}
	return nil
}
