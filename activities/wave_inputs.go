package activities

import (
	"time"

	"mailwave/contract"
)

// ReportDoneInput asks for a mailbox's end to be reported to its wave.
type ReportDoneInput struct {
	WaveWorkflowID string
	Done           contract.MailboxDone
}

// SignalWaveInput asks for a mailbox's pre-stage request or release to be
// sent to its wave: Signal is contract.SignalPrestageRequest or
// contract.SignalPrestageRelease.
type SignalWaveInput struct {
	WaveWorkflowID string
	Signal         string
	Slot           contract.PoolSlot
	// Pool, when set, is the tenant's pre-stage pool to send it to in
	// place of the wave (started with PoolCap if it does not run).
	Pool    string `json:",omitempty"`
	PoolCap int    `json:",omitempty"`
	// Hold is a wave's hold (Signal contract.SignalPrestagePoolHold, to
	// the pool only).
	Hold *contract.PoolHold `json:",omitempty"`
}

// StartMailboxesInput asks for the mailboxes of a wave at the given indexes
// (or, when Indexes is empty, From to To-1) to be started. A retry (set
// NotBefore) starts again mailboxes whose last run ended in needs support.
type StartMailboxesInput struct {
	WaveID   string
	From, To int
	Indexes  []int `json:",omitempty"`
	Retry    bool  `json:",omitempty"`
	// NotBefore, on a retry, is when the retry was asked for: a run of the
	// wave started since then is the retry's own.
	NotBefore    time.Time `json:",omitempty"`
	MigrateAt    time.Time
	NoticeLead   time.Duration
	ReminderLead time.Duration
	StartRate    float64
	// Prestage is the wave's pre-staging, given to each mailbox; nil
	// copies at T.
	Prestage *contract.Prestage `json:",omitempty"`
	Total    int                `json:",omitempty"` // the wave's mailboxes, with Prestage
}

// StartMailboxesResult lists the mailboxes refused; every other one asked
// for is running in this wave.
type StartMailboxesResult struct {
	Started int
	Refused []contract.Refusal `json:",omitempty"`
}

// ReadMailboxKeysInput asks for the keys of rows From to To-1 of a wave's
// roster.
type ReadMailboxKeysInput struct {
	WaveID   string
	From, To int
}

// ReconcileMailboxesInput asks which of these mailboxes of the wave have
// ended without reporting.
type ReconcileMailboxesInput struct {
	WaveID  string
	Indexes []int
}

// CancelMailboxesInput asks for the wave's running mailboxes at Indexes to
// be cancelled (cleanly: a mailbox in cutover finishes it).
type CancelMailboxesInput struct {
	WaveID  string
	Indexes []int
}
