// Package activities holds mailwave's side effects: the mailbox's (notices,
// copy, cutover) and the wave's (starting, reading, reconciling and
// cancelling its mailboxes, and a mailbox's report). The mailbox's reach the
// outside world only through the ports of mail/port, whose implementations
// live under mail/ and never import Temporal; the errors they return become
// Temporal's here. The wave's reach Temporal through the worker's client
// (internal/control) and the roster store through the Rosters port.
package activities

import (
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"

	"mailwave/contract"
)

// Register puts the mailbox's activities on a worker under their contract
// names.
func (a *Activities) Register(r worker.ActivityRegistry) {
	r.RegisterActivityWithOptions(a.SendNotice, activity.RegisterOptions{Name: contract.ActivitySendNotice})
	r.RegisterActivityWithOptions(a.CopyMailbox, activity.RegisterOptions{Name: contract.ActivityCopyMailbox})
	r.RegisterActivityWithOptions(a.Cutover, activity.RegisterOptions{Name: contract.ActivityCutover})
	r.RegisterActivityWithOptions(a.CutoverQueue, activity.RegisterOptions{Name: contract.ActivityCutoverQueue})
	r.RegisterActivityWithOptions(a.Preflight, activity.RegisterOptions{Name: contract.ActivityPreflight})
}

// RegisterCutover puts only the cutover on a worker: the routing host's
// worker, which serves that host's task queue and nothing else.
func (a *Activities) RegisterCutover(r worker.ActivityRegistry) {
	r.RegisterActivityWithOptions(a.Cutover, activity.RegisterOptions{Name: contract.ActivityCutover})
}

// Register puts the wave's activities on a worker under their contract
// names.
func (a *WaveActivities) Register(r worker.ActivityRegistry) {
	r.RegisterActivityWithOptions(a.StartMailboxes, activity.RegisterOptions{Name: contract.ActivityStartMailboxes})
	r.RegisterActivityWithOptions(a.ReadMailboxKeys, activity.RegisterOptions{Name: contract.ActivityReadMailboxKeys})
	r.RegisterActivityWithOptions(a.CancelMailboxes, activity.RegisterOptions{Name: contract.ActivityCancelMailboxes})
	r.RegisterActivityWithOptions(a.ReportMailboxDone, activity.RegisterOptions{Name: contract.ActivityReportDone})
	r.RegisterActivityWithOptions(a.SignalWave, activity.RegisterOptions{Name: contract.ActivitySignalWave})
	r.RegisterActivityWithOptions(a.ReconcileMailboxes, activity.RegisterOptions{Name: contract.ActivityReconcileMailboxes})
}

// Register puts the programme's activities on a worker under their contract
// names.
func (a *ProgrammeActivities) Register(r worker.ActivityRegistry) {
	r.RegisterActivityWithOptions(a.ChooseNight, activity.RegisterOptions{Name: contract.ActivityChooseNight})
	r.RegisterActivityWithOptions(a.RecordNight, activity.RegisterOptions{Name: contract.ActivityRecordNight})
	r.RegisterActivityWithOptions(a.WaveEnded, activity.RegisterOptions{Name: contract.ActivityWaveEnded})
	r.RegisterActivityWithOptions(a.ReserveNight, activity.RegisterOptions{Name: contract.ActivityReserveNight})
}
