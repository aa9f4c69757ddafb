package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"mailwave/contract"
)

func newWaveCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "wave", Short: "Launch, watch, pause, resume and cancel a wave of mailboxes"}
	cmd.AddCommand(newWaveLaunchCmd(a), newWaveStatusCmd(a), newWaveStuckCmd(a), newWaveReportCmd(a),
		newWaveSignalCmd(a, "pause", contract.SignalPause, "Hold the wave: no mailbox enters copy; those mid-step finish the step and hold"),
		newWaveSignalCmd(a, "resume", contract.SignalResume, "Resume a paused wave"),
		newWaveSignalCmd(a, "cancel", contract.SignalCancel, "Cancel the wave: mailboxes not yet cut over stop cleanly"),
		newWaveSignalCmd(a, "retry-failed", contract.SignalRetryFailed, "Run the wave's needs-support mailboxes again"),
		newWaveSetCapCmd(a), newWavePurgeCmd(a), newWaveRemoveCmd(a))
	return cmd
}

// waveTarget connects and checks the wave exists, returning its status.
func (a *app) waveTarget(ctx context.Context, wave string) (client.Client, enumspb.WorkflowExecutionStatus, error) {
	if err := checkWaveID(wave); err != nil {
		return nil, 0, err
	}
	c, err := a.dial(ctx)
	if err != nil {
		return nil, 0, err
	}
	desc, err := c.DescribeWorkflowExecution(ctx, contract.WaveWorkflowID(wave), "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		c.Close()
		return nil, 0, fmt.Errorf("no wave %q: launch it with `starter wave launch`", wave)
	}
	if err != nil {
		c.Close()
		return nil, 0, fmt.Errorf("looking up wave %s: %w", wave, err)
	}
	return c, desc.GetWorkflowExecutionInfo().GetStatus(), nil
}

// checkWaveID refuses a --wave that is not a wave ID before it goes into a
// workflow ID, a file name or a visibility query.
func checkWaveID(wave string) error {
	if !contract.ValidWaveID(wave) {
		return fmt.Errorf("--wave %.80q: %s", wave, contract.WaveIDRule)
	}
	return nil
}
