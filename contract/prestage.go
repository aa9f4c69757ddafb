package contract

import (
	"fmt"
	"math"
	"time"
)

// PassIncremental is a pre-staged mailbox's pass between its bulk pass and
// T: what arrived since the pass before.
const PassIncremental CopyPass = "incremental"

// Signals between a wave and its mailboxes for the pre-stage pool.
const (
	// SignalPrestageRequest: mailbox -> wave, its pre-stage pass is due.
	SignalPrestageRequest = "prestage-request"
	// SignalPrestageGrant: wave -> mailbox, the pass may run now.
	SignalPrestageGrant = "prestage-grant"
	// SignalPrestageRelease: mailbox -> wave, the pass ended (done,
	// failed or paused): its place in the pool is free.
	SignalPrestageRelease = "prestage-release"
)

// ActivitySignalWave sends a mailbox's pre-stage request or release to its
// wave (a local activity, as ActivityReportDone).
const ActivitySignalWave = "SignalWave"

// Prestage is a wave's pre-staging: each mailbox's bulk pass runs in the
// days after its T-14 notice, at the target's per-mailbox pace, planned to
// end Margin before T; incremental passes keep it fresh; at T only a final
// delta, the verification and the cutover, under the night's cap. The
// passes before T run in the wave's pre-stage pool, Cap at once, never in
// a slot of the night. A wave without it copies at T, as before.
type Prestage struct {
	// MailboxRate is the target's per-mailbox budget in bytes a second
	// (Exchange Online: 150 MB per 5 minutes); Efficiency the share of it
	// a copy achieves; PassOverhead what a pass adds (listing, verifying).
	MailboxRate  float64
	Efficiency   float64
	PassOverhead time.Duration `json:",omitempty"`
	// StartDelay: the bulk pass starts no sooner than this after the
	// notice. Margin: it is planned to end this long before T.
	StartDelay time.Duration `json:",omitempty"`
	Margin     time.Duration
	// IncrementalEvery: an incremental pass this often after the bulk, the
	// last one no later than IncrementalEvery before T (0: none; the final
	// delta reads all that changed).
	IncrementalEvery time.Duration `json:",omitempty"`
	// Cap is the pre-stage pool: a wave's passes before T at once.
	Cap int
	// Spread, when set, spreads the wave's bulk passes over this long
	// before T-Margin, by wave index (the first at T-Margin-Spread, the
	// last at T-Margin), each no later than its own latest start: a night
	// whose bytes the tenant's limit cannot take in the time of its
	// longest pass begins early enough (programme plan says how early).
	// 0: each planned alone.
	Spread time.Duration `json:",omitempty"`
	// Shape, with a Spread, places the bulk passes over it as the plan
	// starts them, not evenly: the place of the mailbox at share s of the
	// wave (its index over the wave's size) is T-Margin-Spread plus
	// Shape[floor(s*len(Shape))] of the Spread, and it begins there or at
	// its own latest start, whichever is earlier (never before its notice
	// and StartDelay), as with an even spread. Its values are fractions
	// in [0, 1], not decreasing, at most MaxPrestageShape of them: the
	// quantiles of the night's planned starts (plan.Result.Shape). Where
	// the night's passes share the tenant's lanes with another night's,
	// the plan's starts leave those lanes alone; spread evenly, they
	// would queue behind them. Empty: evenly.
	Shape []float64 `json:",omitempty"`
	// Pool, when set, is the tenant's pre-stage pool (PrestagePoolWorkflowID)
	// the passes run in, shared with every wave pre-staging into it, in
	// place of the wave's own; Cap is then the pool's cap when this wave
	// starts it. Empty: the wave's own pool.
	Pool string `json:",omitempty"`
	// TenantRate is the tenant's limit across all its mailboxes, bytes a
	// second (0: none): a programme's night plans its Spread under it
	// from its mailboxes' sizes, when Spread is not given.
	TenantRate float64 `json:",omitempty"`
}

// MaxPrestageShape bounds Prestage.Shape: it is carried in every
// mailbox's input.
const MaxPrestageShape = 64

// Exchange Online's per-mailbox budget for one application.
const DefaultPrestageMailboxRate = 150e6 / 300

// DefaultPrestage: Exchange Online's budget at 0.9 of it (measured 0.906-
// 0.938 against the fake Graph), from an hour after the notice, done a
// day before T, an incremental pass a day, 2,000 passes at once.
var DefaultPrestage = Prestage{
	MailboxRate: DefaultPrestageMailboxRate, Efficiency: 0.9, PassOverhead: 2 * time.Minute,
	StartDelay: time.Hour, Margin: 24 * time.Hour, IncrementalEvery: 24 * time.Hour, Cap: 2000,
}

// Validate names the first problem with a pre-staging policy.
func (p Prestage) Validate() error {
	switch {
	case !(p.MailboxRate >= 1000) || math.IsInf(p.MailboxRate, 0):
		return fmt.Errorf("pre-stage: mailbox rate %g bytes/s: must be at least 1,000 and finite", p.MailboxRate)
	case !(p.Efficiency > 0 && p.Efficiency <= 1):
		return fmt.Errorf("pre-stage: efficiency %g: must be in (0, 1]", p.Efficiency)
	case p.PassOverhead < 0 || p.StartDelay < 0 || p.Margin < 0 || p.IncrementalEvery < 0 || p.Spread < 0:
		return fmt.Errorf("pre-stage: pass overhead %s, start delay %s, margin %s, incremental every %s: none may be negative",
			p.PassOverhead, p.StartDelay, p.Margin, p.IncrementalEvery)
	case p.Cap <= 0:
		return fmt.Errorf("pre-stage: pool cap %d: must be more than zero", p.Cap)
	case !(p.TenantRate >= 0) || math.IsInf(p.TenantRate, 0):
		return fmt.Errorf("pre-stage: tenant rate %g bytes/s: must not be negative, and finite", p.TenantRate)
	case p.Pool != "" && !ValidPoolName(p.Pool):
		return fmt.Errorf("pre-stage: pool %q: %s", p.Pool, WaveIDRule)
	case len(p.Shape) > 0 && p.Spread <= 0:
		return fmt.Errorf("pre-stage: a shape of %d points without a spread: the shape places passes over the spread", len(p.Shape))
	case len(p.Shape) > MaxPrestageShape:
		return fmt.Errorf("pre-stage: a shape of %d points: at most %d", len(p.Shape), MaxPrestageShape)
	}
	for i, f := range p.Shape {
		if !(f >= 0 && f <= 1) || (i > 0 && f < p.Shape[i-1]) {
			return fmt.Errorf("pre-stage: shape point %d is %g: each must be in [0, 1], and none less than the one before", i+1, f)
		}
	}
	return nil
}

// ShapeAt is the fraction of the spread at which the mailbox at share s
// (in [0, 1)) of its wave begins: Shape's point for it, or s itself
// without a shape.
func (p Prestage) ShapeAt(share float64) float64 {
	if len(p.Shape) == 0 {
		return share
	}
	j := min(max(int(share*float64(len(p.Shape))), 0), len(p.Shape)-1)
	return p.Shape[j]
}

// PrestageSlot is the payload of SignalPrestageRequest and
// SignalPrestageRelease (mailbox -> wave) and SignalPrestageGrant (wave ->
// mailbox). Pass counts a mailbox's pre-stage passes from 1: a request or
// a release of a pass that is not the one the wave knows is ignored.
type PrestageSlot struct {
	WaveID string `json:",omitempty"`
	Index  int
	Key    string `json:",omitempty"`
	Pass   int
}

// PrestageState is what a pre-staged mailbox shows of its passes before T.
type PrestageState struct {
	// BulkAt is when its bulk pass was planned to start; Late: it cannot
	// end Margin before T even starting at once (it starts at once, and
	// what is left is read at T).
	BulkAt time.Time
	Late   bool `json:",omitempty"`
	// SizeUnknown: the preflight read no size; it starts at its earliest.
	SizeUnknown bool `json:",omitempty"`
	// Passes ended; Pass the one running or waiting (0: none).
	Passes int
	Pass   int  `json:",omitempty"`
	Queued bool `json:",omitempty"` // waiting for the pool
	// BulkStarted is when the bulk pass first began copying.
	BulkStarted time.Time `json:",omitempty"`
	// BulkDone: the bulk pass ended; LastPassEnded when the last pass did.
	BulkDone      bool      `json:",omitempty"`
	LastPassEnded time.Time `json:",omitempty"`
	// Interrupted counts passes paused mid-way (each goes on from its
	// checkpoint once resumed).
	Interrupted int `json:",omitempty"`
	// Failed is the error type of a pass that failed for good: the copy
	// is left to T, from the last checkpoint.
	Failed string `json:",omitempty"`
}

// PoolRate is what a policy's passes may take at once, bytes a second:
// the tenant's limit, or the pool's cap at the per-mailbox pace if that is
// less (0: the tenant's limit is not known, and the cap alone bounds it).
func PoolRate(p Prestage) float64 {
	byCap := float64(p.Cap) * p.MailboxRate * p.Efficiency
	if p.TenantRate > 0 && p.TenantRate < byCap {
		return p.TenantRate
	}
	return byCap
}
