package contract

import (
	"fmt"
	"time"
)

// WaveInput starts a wave. The mailboxes are by reference: the wave's
// roster, which the starter wrote to the roster store under the wave ID and
// each worker finds in its own configured store; row i (from 0) is the
// mailbox with wave index i. No path travels in a workflow input: a worker
// opens only what its own configuration names. (Waves started before this
// carried a MailboxFile path; it is ignored.)
type WaveInput struct {
	WaveID       string
	Total        int
	MigrateAt    time.Time
	NoticeLead   time.Duration `json:",omitempty"`
	ReminderLead time.Duration `json:",omitempty"`
	Cap          int           `json:",omitempty"`
	// ErrorBudget is the share of finished mailboxes that may need support
	// before the wave pauses itself, once ErrorMinSample have finished.
	ErrorBudget     float64 `json:",omitempty"`
	ErrorMinSample  int     `json:",omitempty"`
	StartRate       float64 `json:",omitempty"`
	PageSize        int     `json:",omitempty"`
	MaxEventsPerRun int     `json:",omitempty"`
	// MaxSignalsPerRun continues the wave as new after it has handled that
	// many signals in one run.
	MaxSignalsPerRun int `json:",omitempty"`
	// ReconcileEvery is how often the slot holders are checked on.
	ReconcileEvery time.Duration `json:",omitempty"`
	// Prestage, when set, pre-stages each mailbox's copy before T in the
	// wave's pre-stage pool (Prestage.Cap at once); nil copies at T.
	Prestage *Prestage `json:",omitempty"`
	// State is carried over continue-as-new; nil on the first run.
	State *WaveState `json:",omitempty"`
}

// WithDefaults returns the input with zero settings replaced by defaults.
func (in WaveInput) WithDefaults() WaveInput {
	if in.Cap <= 0 {
		in.Cap = DefaultCap
	}
	if in.ErrorBudget <= 0 {
		in.ErrorBudget = DefaultErrorBudget
	}
	if in.ErrorMinSample <= 0 {
		in.ErrorMinSample = DefaultErrorMinSample
	}
	if in.StartRate <= 0 {
		in.StartRate = DefaultStartRate
	}
	if in.PageSize <= 0 {
		in.PageSize = DefaultPageSize
	}
	if in.MaxEventsPerRun <= 0 {
		in.MaxEventsPerRun = DefaultMaxEventsPerRun
	}
	if in.MaxSignalsPerRun <= 0 {
		in.MaxSignalsPerRun = DefaultMaxSignalsPerRun
	}
	if in.ReconcileEvery <= 0 {
		in.ReconcileEvery = DefaultReconcileEvery
	}
	return in
}

// Validate names the first problem with a wave's input.
func (in WaveInput) Validate() error {
	switch {
	case in.WaveID == "":
		return fmt.Errorf("wave ID is empty")
	case !ValidWaveID(in.WaveID):
		return fmt.Errorf("wave ID %.80q: %s", in.WaveID, WaveIDRule)
	case in.Total <= 0:
		return fmt.Errorf("wave %s has no mailboxes", in.WaveID)
	case in.MigrateAt.IsZero():
		return fmt.Errorf("wave %s has no migration time", in.WaveID)
	case in.ErrorBudget < 0 || in.ErrorBudget > 1:
		return fmt.Errorf("wave %s: error budget %v is not a share between 0 and 1", in.WaveID, in.ErrorBudget)
	}
	if in.Prestage != nil {
		if err := in.Prestage.Validate(); err != nil {
			return fmt.Errorf("wave %s: %w", in.WaveID, err)
		}
	}
	return nil
}

// SlotGrant is the payload of SignalSlotGrant.
type SlotGrant struct {
	WaveID string
	Index  int
}

// MailboxDone is the payload of SignalMailboxDone.
type MailboxDone struct {
	Index   int
	Key     string
	Outcome Outcome
	// Granted is true when the mailbox had been granted a slot.
	Granted   bool
	Step      Step   `json:",omitempty"`
	ErrorType string `json:",omitempty"`
	Copied    CopyStats
}

// SetCapRequest is the payload of SignalSetCap: the night's cap, the
// pre-stage pool's, or both (0 leaves one as it is).
type SetCapRequest struct {
	Cap      int
	Prestage int `json:",omitempty"`
}

// Refusal is a mailbox a wave would not start, and why.
type Refusal struct {
	Index  int
	Key    string
	Reason string
}

// WaveProgress is what the progress query returns.
type WaveProgress struct {
	WaveID       string
	Total        int
	Started      int
	Refused      int
	Waiting      int // started, not yet granted a slot, not finished
	Active       int // holding a slot: copying or cutting over
	Migrated     int
	NeedsSupport int
	Cancelled    int
	// Deferred are the mailboxes their preflight found cannot go, or an
	// operator moved to another night (ErrTypeRescheduled), by reason: not
	// failures, and not in the error budget.
	Deferred   int           `json:",omitempty"`
	DeferredBy []ReasonCount `json:",omitempty"`
	Copied     CopyStats
	Cap        int
	// The pre-stage pool of a pre-staging wave: its cap, the passes
	// running in it and those waiting for it.
	PrestageCap    int `json:",omitempty"`
	Prestaging     int `json:",omitempty"`
	PrestageQueued int `json:",omitempty"`
	// PrestagePool names the tenant's pool the wave's passes run in
	// (Prestage.Pool): the figures above are then the pool's to show
	// (starter prestage-pool status), not the wave's.
	PrestagePool string `json:",omitempty"`
	Paused       bool
	PauseReason  string `json:",omitempty"`
	Cancelling   bool
	Runs         int // runs so far (continue-as-new)
	StartedAt    time.Time
	Refusals     []Refusal `json:",omitempty"` // the first ones
	// PublishedAt is when the wave wrote this into its memo (MemoProgress);
	// zero in a query's answer, which is live.
	PublishedAt time.Time `json:",omitempty"`
}

// WaveResult is how a wave ended.
type WaveResult struct {
	WaveID       string
	Total        int
	Migrated     int
	NeedsSupport int
	Cancelled    int
	Refused      int
	// Deferred are the mailboxes their preflight found cannot go, or moved
	// to another night (ErrTypeRescheduled), by reason.
	Deferred   int           `json:",omitempty"`
	DeferredBy []ReasonCount `json:",omitempty"`
	Copied     CopyStats
	StartedAt  time.Time
	FinishedAt time.Time
	Duration   time.Duration
	Runs       int
	Refusals   []Refusal `json:",omitempty"` // the first ones
}

// WaveState is a wave's state, carried over continue-as-new. Per mailbox it
// keeps three bits: started by this wave, granted a slot, done (reported).
type WaveState struct {
	Runs      int
	StartedAt time.Time
	NextStart int // the next index to start
	Started   Bitset
	Granted   Bitset
	Done      Bitset
	// Restarting marks mailboxes being started again by retry-failed: they
	// get no slot until their start is confirmed.
	Restarting   Bitset
	StartedCount int
	Refused      int
	Refusals     []Refusal `json:",omitempty"`
	// Active are the mailboxes holding a slot, by index.
	Active       []ActiveSlot `json:",omitempty"`
	Migrated     int
	NeedsSupport []int `json:",omitempty"` // indexes, for retry-failed
	Cancelled    int
	// Deferred counts the mailboxes their preflight deferred, or moved to
	// another night, by reason.
	Deferred    int           `json:",omitempty"`
	DeferredBy  []ReasonCount `json:",omitempty"`
	Copied      CopyStats
	Cap         int
	Paused      bool
	PauseReason string `json:",omitempty"`
	// BudgetBase is the count of finished and failed mailboxes when the wave
	// was last resumed: the error budget is judged on what came after.
	BudgetBaseFinished int
	BudgetBaseFailed   int
	Cancelling         bool
	CancelCursor       int
	// CancelQueue holds mailboxes a cancel passed by while they were being
	// started again: they are cancelled before the cursor goes on.
	CancelQueue  []int `json:",omitempty"`
	RetryPending bool
	GrantCursor  int // no index below it is waiting for a slot
	// The pre-stage pool (WaveInput.Prestage): its cap, the passes granted
	// and running, and the requests waiting, in the order they came.
	PrestageCap    int            `json:",omitempty"`
	PrestageActive []PrestageSlot `json:",omitempty"`
	PrestageQueue  []PrestageSlot `json:",omitempty"`
	// PoolHolds counts the holds sent to the tenant's pool (Prestage.
	// Pool): the pool keeps the latest.
	PoolHolds int64 `json:",omitempty"`
}

// ActiveSlot is a mailbox holding a slot.
type ActiveSlot struct {
	Index int
	Key   string
}

// ReasonCount is how many mailboxes ended for one reason (an error type).
type ReasonCount struct {
	Reason string
	Count  int
}

// CountReason adds one mailbox to its reason's count, keeping the counts
// sorted by reason (workflow code: no map to iterate).
func CountReason(counts []ReasonCount, reason string) []ReasonCount {
	for i := range counts {
		switch {
		case counts[i].Reason == reason:
			counts[i].Count++
			return counts
		case counts[i].Reason > reason:
			counts = append(counts, ReasonCount{})
			copy(counts[i+1:], counts[i:])
			counts[i] = ReasonCount{Reason: reason, Count: 1}
			return counts
		}
	}
	return append(counts, ReasonCount{Reason: reason, Count: 1})
}
