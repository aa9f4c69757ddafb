package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"mailwave/mail/sim"
)

func newEstateCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "estate", Short: "Generate and verify the simulated mail estate"}
	cmd.AddCommand(newEstateGenerateCmd(a), newEstateVerifyCmd(a))
	return cmd
}

func newEstateGenerateCmd(a *app) *cobra.Command {
	var dir string
	var o sim.GenerateOptions
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Generate a simulated estate (its roster.csv lists the mailboxes)",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			m, err := sim.Generate(dir, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.out, "estate %s: %d mailboxes in %d organisations (seed %d); roster %s/%s\n",
				dir, m.Mailboxes, m.Orgs, m.Seed, dir, sim.RosterFile)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "data/estate", "estate directory")
	cmd.Flags().Int64Var(&o.Seed, "seed", 42, "seed: the same seed gives the same estate")
	cmd.Flags().IntVar(&o.Mailboxes, "mailboxes", 1000, "number of mailboxes")
	cmd.Flags().IntVar(&o.Orgs, "orgs", 0, "number of organisations (default: one per 100 mailboxes)")
	return cmd
}

func newEstateVerifyCmd(a *app) *cobra.Command {
	var dir, csvPath string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check every touched mailbox: items at source and target, items copied twice, routing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			est, err := sim.Open(dir, sim.Options{})
			if err != nil {
				return err
			}
			rep, err := est.Verify(cmd.Context(), nil)
			if err != nil {
				return err
			}
			if csvPath != "" {
				if err := writeReportCSV(csvPath, &rep); err != nil {
					return err
				}
			}
			fmt.Fprintln(a.out, rep.Summary())
			if rep.Totals.Lost > 0 || rep.Totals.Duplicated > 0 {
				return fmt.Errorf("verification failed: %d items lost, %d copied twice", rep.Totals.Lost, rep.Totals.Duplicated)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "data/estate", "estate directory")
	cmd.Flags().StringVar(&csvPath, "csv", "", "also write the per-mailbox report as CSV to this file")
	return cmd
}

func writeReportCSV(path string, rep *sim.Report) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := rep.WriteCSV(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}
