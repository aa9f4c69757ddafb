package contract

import "time"

// MaxWaveSize is the largest wave: the starter refuses a bigger mailbox
// list and the Wave workflow a bigger input. The programme's largest wave
// was 83,000 (a weekend); the bound keeps a wave's carried state small.
const MaxWaveSize = 100_000

// Default lead times of the notices.
const (
	DefaultNoticeLead   = 14 * 24 * time.Hour
	DefaultReminderLead = 24 * time.Hour
)

// Wave defaults.
const (
	DefaultCap             = 100
	DefaultErrorBudget     = 0.02
	DefaultErrorMinSample  = 50
	DefaultStartRate       = 100.0 // mailbox workflows started per second
	DefaultPageSize        = 500
	DefaultMaxEventsPerRun = 8000
	// A run may receive 10,000 signals; a wave gets about two per mailbox.
	DefaultMaxSignalsPerRun = 5000
	// The wave asks the server, this often, whether the mailboxes holding
	// a slot still run.
	DefaultReconcileEvery = 10 * time.Minute
)
