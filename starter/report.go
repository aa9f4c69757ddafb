package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"mailwave/contract"
	"mailwave/contract/searchattr"
	"mailwave/internal/control"
	"mailwave/starter/printer"
	"mailwave/starter/report"
)

// slowestShown is how many of the slowest mailboxes a report names.
const slowestShown = 5

// reportOptions are the flags of `wave report` and `report`.
type reportOptions struct {
	wave          string
	csvPath       string
	supportBudget float64
	output        printer.Format
}

func newWaveReportCmd(a *app) *cobra.Command {
	var o reportOptions
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Report on a wave: a CSV row per mailbox, and a summary per organisation against the support budget",
		Long: `Report on a wave from what its mailboxes published when they finished (their
memo), read by listing them: no history is read. Mailboxes still running are
counted as remaining. --csv writes one row per mailbox: key, organisation,
outcome, failed step, error type, items at source and target, bytes, bad items,
consistency, duration and notices sent.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.report(cmd, o)
		},
	}
	cmd.Flags().StringVar(&o.wave, "wave", "", "the wave's ID (required)")
	addReportFlags(cmd, &o)
	_ = cmd.MarkFlagRequired("wave")
	return cmd
}

func newReportCmd(a *app) *cobra.Command {
	var o reportOptions
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Report on the whole programme so far: per organisation migrated, remaining and needing support",
		Long: `Report on every mailbox migration so far, in any wave or on its own, from what
each published when it finished (its latest run counts). Mailboxes still
running are counted as remaining. --csv writes one row per mailbox.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.report(cmd, o)
		},
	}
	addReportFlags(cmd, &o)
	return cmd
}

func addReportFlags(cmd *cobra.Command, o *reportOptions) {
	cmd.Flags().StringVar(&o.csvPath, "csv", "", "write one row per mailbox to this CSV file")
	cmd.Flags().Float64Var(&o.supportBudget, "support-budget", 0.02, "the share of finished mailboxes that may need support (0.02 is 2 %)")
	addOutputFlag(cmd, &o.output)
}

func (a *app) report(cmd *cobra.Command, o reportOptions) error {
	if o.supportBudget <= 0 || o.supportBudget >= 1 {
		return fmt.Errorf("--support-budget %v: a share between 0 and 1, e.g. 0.02 for 2 %%", o.supportBudget)
	}
	query, err := reportQuery(o.wave)
	if err != nil {
		return err
	}
	dc, _, err := a.converters()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	var c client.Client
	scope := "programme"
	if o.wave != "" {
		c, _, err = a.waveTarget(ctx, o.wave)
		scope = "wave " + o.wave
	} else {
		c, err = a.dial(ctx)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	prog := newProgress(cmd.ErrOrStderr())
	mailboxes, err := reportMailboxes(ctx, c, dc, query, prog)
	prog.done()
	if err != nil {
		return err
	}
	if o.csvPath != "" {
		if err := writeReportFile(o.csvPath, mailboxes); err != nil {
			return err
		}
	}
	p := printerFor(cmd, o.output)
	if err := p.Object(report.Summarise(scope, mailboxes, o.supportBudget, slowestShown)); err != nil {
		return err
	}
	if o.csvPath != "" {
		note(cmd, p, "%d mailboxes written to %s", len(mailboxes), o.csvPath)
	}
	return nil
}

// reportMailboxes lists the mailboxes query matches, with their memo: the
// latest run of each, by organisation then key.
func reportMailboxes(ctx context.Context, c client.Client, dc converter.DataConverter, query string, prog *progress) ([]report.Mailbox, error) {
	latest := map[string]*workflowpb.WorkflowExecutionInfo{}
	n := 0
	err := control.EachWorkflow(ctx, c, query, func(ex *workflowpb.WorkflowExecutionInfo) {
		n++
		prog.show("read %d mailbox runs", n)
		id := ex.GetExecution().GetWorkflowId()
		if prev, ok := latest[id]; !ok || ex.GetStartTime().AsTime().After(prev.GetStartTime().AsTime()) {
			latest[id] = ex
		}
	})
	if err != nil {
		return nil, err
	}
	out := make([]report.Mailbox, 0, len(latest))
	for _, ex := range latest {
		m, err := reportMailbox(ex, dc)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b report.Mailbox) int {
		return cmp.Or(strings.Compare(a.Org, b.Org), strings.Compare(a.Key, b.Key))
	})
	return out, nil
}

// reportMailbox is a listed mailbox run: its published summary, or
// remaining while it runs, or its status if it closed without one.
func reportMailbox(ex *workflowpb.WorkflowExecutionInfo, dc converter.DataConverter) (report.Mailbox, error) {
	id := ex.GetExecution().GetWorkflowId()
	var org, wave, stage string
	fields := ex.GetSearchAttributes().GetIndexedFields()
	decodeAttr(fields, searchattr.Org.GetName(), &org)
	decodeAttr(fields, searchattr.Wave.GetName(), &wave)
	decodeAttr(fields, searchattr.Stage.GetName(), &stage)
	if p, ok := ex.GetMemo().GetFields()[contract.MemoSummary]; ok {
		var s contract.MailboxSummary
		if err := dc.FromPayload(p, &s); err != nil {
			return report.Mailbox{}, fmt.Errorf("reading the summary in the memo of workflow %s: %w", id, err)
		}
		s.Key = cmp.Or(s.Key, contract.MailboxKeyOf(id))
		s.Org, s.WaveID = cmp.Or(s.Org, org), cmp.Or(s.WaveID, wave)
		return report.FromSummary(s), nil
	}
	m := report.Mailbox{Key: contract.MailboxKeyOf(id), Org: org, Wave: wave, Stage: stage, Outcome: report.OutcomeRemaining}
	if ex.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		m.Outcome = control.StatusName(ex.GetStatus())
	}
	return m, nil
}

// writeReportFile writes the report CSV to path.
func writeReportFile(path string, mailboxes []report.Mailbox) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--csv: %w", err)
	}
	if err := report.WriteCSV(f, mailboxes); err != nil {
		_ = f.Close()
		return fmt.Errorf("--csv %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--csv %s: %w", path, err)
	}
	return nil
}
