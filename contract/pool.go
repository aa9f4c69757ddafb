package contract

import (
	"fmt"
	"time"
)

// The tenant's pre-stage pool: one workflow per target tenant, shared by
// every wave that pre-stages into it (Prestage.Pool), so the passes of
// waves whose notices overlap never run more at once than the tenant's
// limit allows. A pass asks it for a place (SignalPrestageRequest), is
// granted one (SignalPrestageGrant, to the mailbox), and gives it back
// (SignalPrestageRelease): the protocol of a wave's own pool. Places go
// to the pass whose T comes first, then in the order asked for: a wave
// nearer its night is never kept waiting by one further off.

// PrestagePoolWorkflowName is the pool's workflow type.
const PrestagePoolWorkflowName = "PrestagePool"

// PrestagePoolWorkflowID is the workflow ID of a tenant's pool. A pool
// name follows WaveIDRule (it is a tenant's name in the programme's
// configuration, never a person's).
func PrestagePoolWorkflowID(pool string) string { return "prestage-pool-" + pool }

// ValidPoolName reports whether a pool's name follows WaveIDRule.
func ValidPoolName(name string) bool { return waveIDPattern.MatchString(name) }

// SignalPrestagePoolCap sets a pool's cap (an int; 0 grants nothing, the
// passes running finish).
const SignalPrestagePoolCap = "prestage-pool-cap"

// SignalPrestagePoolHold holds or frees a wave's passes in the pool (a
// PoolHold): a paused or cancelling wave's passes waiting are granted no
// place; those running finish, as in a wave's own pool.
const SignalPrestagePoolHold = "prestage-pool-hold"

// PoolHold is a wave's hold in the pool. Seq orders a wave's holds: one
// older than the last the pool has is ignored (a pause and a resume sent
// close together may arrive in either order).
type PoolHold struct {
	WaveID string
	Held   bool
	Seq    int64
}

// MaxPoolQueue bounds the passes a pool keeps waiting, so that its state
// stays well under the server's 2 MB payload limit when it continues as
// new. Beyond it the pass whose T comes last is dropped; its mailbox asks
// again within the hour.
const MaxPoolQueue = 5_000

// QueryPrestagePool answers a pool's PrestagePoolStatus.
const QueryPrestagePool = "prestage-pool"

// PrestagePoolInput starts a pool (signal-with-start, by the first wave
// launched into it or the first pass that asks) or carries its state into
// a new run.
type PrestagePoolInput struct {
	Pool string
	Cap  int
	// MaxEventsPerRun continues the pool as new past this many history
	// events (0: DefaultPoolEventsPerRun).
	MaxEventsPerRun int `json:",omitempty"`
	// MaxSignalsPerRun does the same past this many signals (0:
	// DefaultPoolSignalsPerRun).
	MaxSignalsPerRun int `json:",omitempty"`
	// MaxQueue bounds the passes waiting (0: MaxPoolQueue).
	MaxQueue int                `json:",omitempty"`
	State    *PrestagePoolState `json:",omitempty"`
}

// DefaultPoolEventsPerRun bounds a pool's run: a pass makes about five
// events (request, grant sent and delivered, release).
const DefaultPoolEventsPerRun = 10_000

// DefaultPoolSignalsPerRun bounds the signals a run takes.
const DefaultPoolSignalsPerRun = 2_500

// Validate names the first problem with a pool's input.
func (in PrestagePoolInput) Validate() error {
	switch {
	case !ValidPoolName(in.Pool):
		return fmt.Errorf("pre-stage pool %q: %s", in.Pool, WaveIDRule)
	case in.Cap < 0:
		return fmt.Errorf("pre-stage pool %s: cap %d: must not be negative", in.Pool, in.Cap)
	}
	return nil
}

// PoolSlot is a pass in a pool: asked for (queued) or granted (active).
type PoolSlot struct {
	PrestageSlot
	// Due is the mailbox's T: the pool grants the earliest first.
	Due time.Time
	// Seq orders passes of the same T as they asked.
	Seq int64
	// Budget is the pass's time, its retries included; a place granted is
	// taken back Budget plus an hour after its grant if its release never
	// came (the pass has surely ended by then).
	Budget time.Duration `json:",omitempty"`
	// Lease ends a granted place (zero while queued).
	Lease time.Time `json:",omitzero"`
}

// PrestagePoolState is a pool's state, carried across runs.
type PrestagePoolState struct {
	Cap     int
	Active  []PoolSlot `json:",omitempty"`
	Queue   []PoolSlot `json:",omitempty"` // by Due, then Seq
	Seq     int64
	Granted int64 // places granted since the pool began
	Expired int64 // places taken back when their lease ended
	Dropped int64 // requests dropped, the queue full (each asks again)
	Runs    int
	// Holds are the waves' holds, by wave ID.
	Holds []PoolHold `json:",omitempty"`
}

// PrestagePoolStatus is what a pool shows.
type PrestagePoolStatus struct {
	Pool    string
	Cap     int
	Active  int
	Queued  int
	Granted int64
	Expired int64
	Dropped int64 `json:",omitempty"`
	Runs    int
	// Held are the waves whose passes are held (paused or cancelling).
	Held []string `json:",omitempty"`
	// NextDue is the T of the first pass waiting (zero: none waits).
	NextDue time.Time `json:",omitempty"`
	// Waves counts the places held and waited for by wave.
	Waves map[string]PoolWaveCount `json:",omitempty"`
}

// PoolWaveCount is one wave's passes in a pool.
type PoolWaveCount struct {
	Active int `json:",omitempty"`
	Queued int `json:",omitempty"`
}
