package main

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/pflag"

	"mailwave/contract"
	"mailwave/identity"
	"mailwave/plan"
	"mailwave/roster/wavefile"
)

// launchPlanFlags are what `wave launch --dry-run --prestage` plans with,
// besides the wave's pre-stage flags (the tenant's limit among them): the
// mailboxes' sizes.
type launchPlanFlags struct {
	sizes    string
	assumeGB float64
	flags    *pflag.FlagSet
}

func (p *launchPlanFlags) add(f *pflag.FlagSet) {
	p.flags = f
	f.StringVar(&p.sizes, "sizes", "", "with --dry-run --prestage: the estate's CSV (as programme import takes it) to read the mailboxes' sizes from")
	f.Float64Var(&p.assumeGB, "assume-gb", 1, "with --dry-run --prestage: the size of a mailbox --sizes does not give, in GB")
}

// check refuses the planning flags where they would do nothing.
func (p launchPlanFlags) check(dryRun bool, prestage *contract.Prestage) error {
	if dryRun && prestage != nil {
		if !(p.assumeGB > 0) {
			return fmt.Errorf("--assume-gb %g: more than 0", p.assumeGB)
		}
		return nil
	}
	for _, name := range []string{"sizes", "assume-gb"} {
		if p.flags != nil && p.flags.Changed(name) {
			return fmt.Errorf("--%s is for planning a pre-staged wave: add --dry-run --prestage", name)
		}
	}
	return nil
}

// planLaunch plans a pre-staged wave's bulk passes, as the wave will, and
// says what cannot be done before anyone is told: the same planner as
// `programme plan`, for the wave's own mailboxes.
func planLaunch(out io.Writer, p launchPlanFlags, in contract.WaveInput, mailboxes []wavefile.Mailbox, keyer *identity.Keyer) error {
	sizes := map[string]int64{}
	if p.sizes != "" {
		f, err := os.Open(p.sizes)
		if err != nil {
			return fmt.Errorf("--sizes: %w", err)
		}
		rows, err := wavefile.ParseEstate(f, p.sizes)
		f.Close()
		if err != nil {
			return fmt.Errorf("--sizes: %w", err)
		}
		for _, r := range rows {
			if r.SizeBytes > 0 {
				k, err := keyer.Key(r.Address)
				if err != nil {
					return fmt.Errorf("--sizes: line %d: %w", r.Line, err)
				}
				sizes[k] = r.SizeBytes
			}
		}
	}
	pol := in.Prestage
	notice := in.MigrateAt.Add(-in.NoticeLead)
	var boxes []plan.Mailbox
	assumed := 0
	for _, m := range mailboxes {
		b, ok := sizes[m.Key]
		if !ok {
			b, assumed = int64(p.assumeGB*1e9), assumed+1
		}
		boxes = append(boxes, plan.Mailbox{Key: m.Key, Bytes: b, Estimated: !ok, T: in.MigrateAt, Notice: notice})
	}
	limits := plan.Limits{MailboxRate: pol.MailboxRate, TenantRate: contract.PoolRate(*pol), Efficiency: pol.Efficiency,
		PassOverhead: pol.PassOverhead}
	policy := plan.Policy{StartDelay: pol.StartDelay, Margin: pol.Margin, IncrementalEvery: pol.IncrementalEvery,
		ChangeShare: plan.DefaultPolicy.ChangeShare, Window: plan.DefaultPolicy.Window, NightCap: in.Cap,
		Cutover: plan.DefaultPolicy.Cutover}
	if err := cmp.Or(limits.Check(), policy.Check()); err != nil {
		return err
	}
	res, err := plan.Plan(boxes, limits, policy)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "plan: %d mailboxes (%d sizes assumed %.3g GB), %.2f TB\n",
		len(boxes), assumed, p.assumeGB, float64(totalBytes(boxes))/1e12)
	writePlanSummary(out, "pre-staged", res, limits)
	const listed = 20
	n := 0
	for _, m := range res.Mailboxes {
		if m.Problem == nil {
			continue
		}
		if n++; n <= listed {
			fmt.Fprintf(out, "  mailbox %s: %s\n", m.Key, m.Problem)
		}
	}
	if n > listed {
		fmt.Fprintf(out, "  ... and %d more that cannot be done\n", n-listed)
	}
	if len(res.Nights) == 1 {
		// What --prestage-spread must give for the wave's passes to begin
		// as the plan has them.
		if need := res.Nights[0].Spread(pol.Margin); need > pol.Spread+time.Hour {
			fmt.Fprintf(out, "  the passes begin %.1f h before T-margin: launch with --prestage-spread %s\n",
				need.Hours(), need.Round(time.Hour))
		}
	}
	return nil
}
