package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"mailwave/contract"
	"mailwave/starter/printer"
)

// newPrestagePoolCmd: a tenant's pre-stage pool (wave launch --prestage
// --prestage-pool NAME), shared by the waves pre-staging into the tenant.
func newPrestagePoolCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "prestage-pool",
		Short: "Show or set a tenant's pre-stage pool, shared by every wave launched with --prestage-pool",
	}
	cmd.AddCommand(newPrestagePoolStatusCmd(a), newPrestagePoolSetCapCmd(a))
	return cmd
}

func newPrestagePoolStatusCmd(a *app) *cobra.Command {
	var format printer.Format
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "The pool's cap, the passes running and waiting (by wave), and the T of the first waiting",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.poolTarget(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			defer c.Close()
			st, err := queryPool(cmd.Context(), c, args[0], 30*time.Second)
			if err != nil {
				return err
			}
			return printerFor(cmd, format).Object(poolStatusOf(st))
		},
	}
	addOutputFlag(cmd, &format)
	return cmd
}

func newPrestagePoolSetCapCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "set-cap NAME N",
		Short: "Change how many passes before T run at once in the pool (a lower cap lets the running finish; 0 grants none)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[1])
			if err != nil || n < 0 {
				return fmt.Errorf("cap %q: a whole number, 0 or more (0 grants no place until raised)", args[1])
			}
			c, err := a.poolTarget(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.SignalWorkflow(cmd.Context(), contract.PrestagePoolWorkflowID(args[0]), "", contract.SignalPrestagePoolCap, n); err != nil {
				return fmt.Errorf("set the cap of pre-stage pool %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cap %d sent to pre-stage pool %s\n", n, args[0])
			return nil
		},
	}
}

// queryPool asks a pool for its status, waiting at most timeout.
func queryPool(ctx context.Context, c client.Client, name string, timeout time.Duration) (contract.PrestagePoolStatus, error) {
	var st contract.PrestagePoolStatus
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, err := c.QueryWorkflow(qctx, contract.PrestagePoolWorkflowID(name), "", contract.QueryPrestagePool)
	if err != nil {
		return st, fmt.Errorf("pre-stage pool %s did not answer: %w", name, err)
	}
	if err := v.Get(&st); err != nil {
		return st, fmt.Errorf("pre-stage pool %s: its answer: %w", name, err)
	}
	return st, nil
}

// poolTarget dials Temporal for a pool that runs, or says why not.
func (a *app) poolTarget(ctx context.Context, name string) (client.Client, error) {
	if !contract.ValidPoolName(name) {
		return nil, fmt.Errorf("pre-stage pool %q: %s", name, contract.WaveIDRule)
	}
	c, err := a.dial(ctx)
	if err != nil {
		return nil, err
	}
	desc, err := c.DescribeWorkflowExecution(ctx, contract.PrestagePoolWorkflowID(name), "")
	var notFound *serviceerror.NotFound
	switch {
	case errors.As(err, &notFound):
		err = fmt.Errorf("no pre-stage pool %q: it starts when the first pass of a wave launched with --prestage-pool %s asks it", name, name)
	case err != nil:
		err = fmt.Errorf("pre-stage pool %s: %w", name, err)
	case desc.GetWorkflowExecutionInfo().GetStatus().String() != "Running":
		err = fmt.Errorf("pre-stage pool %s is not running (%s): the next pass that asks starts it again",
			name, desc.GetWorkflowExecutionInfo().GetStatus())
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// poolStatus is a pool as shown.
type poolStatus struct {
	Pool    string          `json:"pool"`
	Cap     int             `json:"cap"`
	Running int             `json:"running"`
	Waiting int             `json:"waiting"`
	NextDue *time.Time      `json:"next_due"` // the T of the first waiting
	Granted int64           `json:"granted"`
	Expired int64           `json:"expired"` // places taken back, their release lost
	Dropped int64           `json:"dropped"` // requests dropped, the queue full (each asks again)
	Held    []string        `json:"held"`    // waves whose passes are held (paused, cancelling)
	Runs    int             `json:"runs"`
	Waves   []poolWaveCount `json:"waves"`
}

type poolWaveCount struct {
	Wave    string `json:"wave"`
	Running int    `json:"running"`
	Waiting int    `json:"waiting"`
}

func poolStatusOf(st contract.PrestagePoolStatus) poolStatus {
	out := poolStatus{Pool: st.Pool, Cap: st.Cap, Running: st.Active, Waiting: st.Queued, Granted: st.Granted,
		Expired: st.Expired, Dropped: st.Dropped, Held: append([]string{}, st.Held...), Runs: st.Runs, Waves: []poolWaveCount{}}
	if !st.NextDue.IsZero() {
		t := st.NextDue
		out.NextDue = &t
	}
	for wave, n := range st.Waves {
		out.Waves = append(out.Waves, poolWaveCount{Wave: wave, Running: n.Active, Waiting: n.Queued})
	}
	slices.SortFunc(out.Waves, func(a, b poolWaveCount) int {
		switch {
		case a.Wave < b.Wave:
			return -1
		case a.Wave > b.Wave:
			return 1
		}
		return 0
	})
	return out
}

// WriteText shows the pool as a block, every field of its JSON.
func (st poolStatus) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "pre-stage pool %s\n", st.Pool)
	fmt.Fprintf(w, "  running   %d of %d at once\n  waiting   %d", st.Running, st.Cap, st.Waiting)
	if st.NextDue != nil {
		fmt.Fprintf(w, " (the first for T %s)", st.NextDue.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(w, "\n  granted   %d since it began (%d taken back, their release lost; %d requests dropped, the queue full)\n  runs      %d\n",
		st.Granted, st.Expired, st.Dropped, st.Runs)
	if len(st.Held) > 0 {
		fmt.Fprintf(w, "  held      %s (paused or cancelling: their passes wait)\n", strings.Join(st.Held, ", "))
	}
	for _, c := range st.Waves {
		fmt.Fprintf(w, "  wave %-20s %d running, %d waiting\n", c.Wave, c.Running, c.Waiting)
	}
	return nil
}
