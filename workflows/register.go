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
	r.RegisterWorkflowWithOptions(PrestagePool, workflow.RegisterOptions{Name: contract.PrestagePoolWorkflowName})
}
