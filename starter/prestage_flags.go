package main

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"mailwave/contract"
)

// prestageFlags are a wave's pre-staging flags: with --prestage, each
// mailbox's bulk pass runs before T in the wave's pre-stage pool, planned
// to end --prestage-margin before T.
type prestageFlags struct {
	on                  bool
	cap                 int
	mailboxMBps         float64
	efficiency          float64
	margin, every, wait time.Duration
	spread              time.Duration
	pool                string
	tenantMBps          float64
	flags               *pflag.FlagSet // to tell a flag given from its default
}

// minIncrementalEvery is the shortest interval between incremental passes
// the starter takes: each pass is a few events in its mailbox's history and
// three signals to its wave, and a mailbox lives fourteen days.
const minIncrementalEvery = time.Hour

func (p *prestageFlags) add(f *pflag.FlagSet) {
	p.flags = f
	d := contract.DefaultPrestage
	f.BoolVar(&p.on, "prestage", false, "pre-stage each mailbox's bulk copy before T (from its notice on), leaving only the final delta and the cutover to the night")
	f.IntVar(&p.cap, "prestage-cap", d.Cap, "with --prestage: passes before T at once in the wave's pre-stage pool")
	f.Float64Var(&p.mailboxMBps, "mailbox-rate", d.MailboxRate/1e6, "with --prestage: the target's per-mailbox budget, MB a second (Exchange Online: 0.5)")
	f.Float64Var(&p.efficiency, "prestage-efficiency", d.Efficiency, "with --prestage: the share of the per-mailbox budget a copy achieves, in (0, 1]")
	f.DurationVar(&p.margin, "prestage-margin", d.Margin, "with --prestage: the bulk pass is planned to end this long before T")
	f.DurationVar(&p.every, "prestage-incremental-every", d.IncrementalEvery, "with --prestage: an incremental pass this often after the bulk (0: none)")
	f.DurationVar(&p.wait, "prestage-start-delay", d.StartDelay, "with --prestage: no bulk pass starts sooner than this after its notice")
	f.StringVar(&p.pool, "prestage-pool", "", "with --prestage: the tenant's pre-stage pool the passes run in, shared with every wave naming it, the pass whose T comes first going first (started with --prestage-cap by the first pass that asks; `starter prestage-pool` shows and sets it); empty: the wave's own pool")
	f.Float64Var(&p.tenantMBps, "tenant-rate", 0, "with --prestage: the tenant's limit across all mailboxes, MB a second: a programme's night plans its --prestage-spread under it from its mailboxes' sizes, and a dry run plans with it (0: none)")
	f.DurationVar(&p.spread, "prestage-spread", 0, "with --prestage: spread the wave's bulk passes over this long before T-margin, by index (programme plan says how long a night needs; 0: each planned alone)")
}

// policy is the wave's pre-staging, or nil without --prestage.
func (p prestageFlags) policy() (*contract.Prestage, error) {
	if !p.on {
		if p.flags != nil {
			for _, name := range []string{"prestage-cap", "mailbox-rate", "prestage-efficiency", "prestage-margin",
				"prestage-incremental-every", "prestage-start-delay", "prestage-spread", "prestage-pool", "tenant-rate"} {
				if p.flags.Changed(name) {
					return nil, fmt.Errorf("--%s is for a pre-staged wave: add --prestage", name)
				}
			}
		}
		return nil, nil
	}
	if p.every != 0 && p.every < minIncrementalEvery {
		return nil, fmt.Errorf("--prestage-incremental-every %s: 0 (none) or at least %s", p.every, minIncrementalEvery)
	}
	pol := contract.Prestage{
		MailboxRate: p.mailboxMBps * 1e6, Efficiency: p.efficiency, PassOverhead: contract.DefaultPrestage.PassOverhead,
		StartDelay: p.wait, Margin: p.margin, IncrementalEvery: p.every, Cap: p.cap, Spread: p.spread, Pool: p.pool, TenantRate: p.tenantMBps * 1e6,
	}
	if err := pol.Validate(); err != nil {
		return nil, fmt.Errorf("--prestage: %w", err)
	}
	return &pol, nil
}

// checkPrestageLead refuses a policy whose bulk pass could never end its
// margin before T: its start delay and margin take the whole notice lead.
func checkPrestageLead(p *contract.Prestage, notice time.Duration) error {
	if p != nil && p.StartDelay+p.Margin+p.Spread >= notice {
		return fmt.Errorf("--prestage-start-delay %s, --prestage-margin %s and --prestage-spread %s leave no time of the %s notice lead for the bulk pass",
			p.StartDelay, p.Margin, p.Spread, notice)
	}
	return nil
}

// describe is the policy in a line, for the launch's summary.
func describePrestage(p *contract.Prestage) string {
	if p == nil {
		return "copy at T"
	}
	s := fmt.Sprintf("pre-staged: bulk pass at %.3g MB/s x %.2g ending %s before T, %d at once",
		p.MailboxRate/1e6, p.Efficiency, p.Margin, p.Cap)
	if p.Pool != "" {
		s = fmt.Sprintf("pre-staged: bulk pass at %.3g MB/s x %.2g ending %s before T, in the tenant's pool %s (%d at once if this wave starts it)",
			p.MailboxRate/1e6, p.Efficiency, p.Margin, p.Pool, p.Cap)
	}
	if p.Spread > 0 {
		s += fmt.Sprintf(", spread over %s before that", p.Spread)
	}
	if p.IncrementalEvery > 0 {
		s += fmt.Sprintf(", an incremental pass every %s", p.IncrementalEvery)
	}
	return s
}
