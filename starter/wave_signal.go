package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"

	"mailwave/contract"
)

func newWaveSignalCmd(a *app, verb, signal, short string) *cobra.Command {
	var wave, reason string
	cmd := &cobra.Command{
		Use:   verb,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var payload any
			if verb == "pause" {
				payload = contract.PauseRequest{Reason: reason}
			}
			return a.signalWave(cmd.Context(), wave, verb, signal, payload)
		},
	}
	cmd.Flags().StringVar(&wave, "wave", "", "the wave's ID (required)")
	if verb == "pause" {
		cmd.Flags().StringVar(&reason, "reason", "", "why, for the record")
	}
	_ = cmd.MarkFlagRequired("wave")
	return cmd
}

func newWaveSetCapCmd(a *app) *cobra.Command {
	var wave string
	var prestage bool
	cmd := &cobra.Command{
		Use:   "set-concurrency N",
		Short: "Change how many of the wave's mailboxes may be in copy or cutover at once (with --prestage: its passes before T)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[0])
			if err != nil || n < 1 {
				return fmt.Errorf("concurrency %q: a whole number of at least 1", args[0])
			}
			req := contract.SetCapRequest{Cap: n}
			if prestage {
				if err := a.checkPrestaging(cmd.Context(), wave); err != nil {
					return err
				}
				req = contract.SetCapRequest{Prestage: n}
			}
			return a.signalWave(cmd.Context(), wave, "set-concurrency", contract.SignalSetCap, req)
		},
	}
	cmd.Flags().StringVar(&wave, "wave", "", "the wave's ID (required)")
	cmd.Flags().BoolVar(&prestage, "prestage", false, "set the pre-stage pool's cap (passes before T at once), not the night's")
	_ = cmd.MarkFlagRequired("wave")
	return cmd
}

func (a *app) signalWave(ctx context.Context, wave, verb, signal string, payload any) error {
	c, status, err := a.waveTarget(ctx, wave)
	if err != nil {
		return err
	}
	defer c.Close()
	if status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return fmt.Errorf("wave %s has finished (%s): nothing to %s", wave, status, verb)
	}
	if err := c.SignalWorkflow(ctx, contract.WaveWorkflowID(wave), "", signal, payload); err != nil {
		return fmt.Errorf("%s wave %s: %w", verb, wave, err)
	}
	fmt.Fprintf(a.out, "%s sent to wave %s\n", verb, wave)
	return nil
}

// checkPrestaging refuses to set the pre-stage pool of a wave that does
// not pre-stage, when the wave answers (a wave that does not ignores it,
// and only its worker's log would say so).
func (a *app) checkPrestaging(ctx context.Context, wave string) error {
	c, _, err := a.waveTarget(ctx, wave)
	if err != nil {
		return err
	}
	defer c.Close()
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := c.QueryWorkflow(qctx, contract.WaveWorkflowID(wave), "", contract.QueryProgress)
	if err != nil {
		return nil // no answer: the wave judges
	}
	var p contract.WaveProgress
	if v.Get(&p) != nil {
		return nil // an answer not read: the wave judges
	}
	if p.PrestagePool != "" {
		return fmt.Errorf("wave %s pre-stages in the tenant's pool %s: set its cap with `starter prestage-pool set-cap %s N`",
			wave, p.PrestagePool, p.PrestagePool)
	}
	if p.PrestageCap == 0 {
		return fmt.Errorf("wave %s does not pre-stage (launched without --prestage): it has no pre-stage pool", wave)
	}
	return nil
}
