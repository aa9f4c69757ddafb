package workflows

import (
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"mailwave/contract"
)

// Register puts mailwave's workflows on a worker or a replayer under their
// contract names. The worker and the replay test both use it, so what is
// replayed is what runs.
func Register(r worker.WorkflowRegistry) {
	r.RegisterWorkflowWithOptions(MailboxMigration, workflow.RegisterOptions{Name: contract.MailboxWorkflowName})
	r.RegisterWorkflowWithOptions(Wave, workflow.RegisterOptions{Name: contract.WaveWorkflowName})
	r.RegisterWorkflowWithOptions(ProgrammeNight, workflow.RegisterOptions{Name: contract.NightWorkflowName})
	// The pool runs for the whole programme, continuing as new: pinned to
	// one build it would never drain from it, nor take a fix. It moves to
	// the current build at its next workflow task, so a change to the
	// commands it issues takes a change ID from the first (VERSIONING.md).
	r.RegisterWorkflowWithOptions(PrestagePool, workflow.RegisterOptions{Name: contract.PrestagePoolWorkflowName,
		VersioningBehavior: workflow.VersioningBehaviorAutoUpgrade})
}
