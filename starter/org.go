package main

import (
	"context"
	"errors"
	"fmt"
	"os/user"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"mailwave/contract"
	"mailwave/roster/estate"
	"mailwave/starter/printer"
)

// defaultSupportBudget is an organisation's support budget, in percent:
// the share of a pilot's moved mailboxes that may need support ("fewer
// than 1.2 % of users needing support").
const defaultSupportBudget = 1.2

func newOrgCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "org",
		Short: "The estate's organisations: list them, make one ready after its pilot, hold or resume one",
		Long: `The estate's organisations and their states: a pilot (new in an import; only
a pilot night takes its mailboxes), ready (the nightly sample chooses from
it), or held (taken out of the sample, with why and by whom).

An organisation's pilot is the last night chosen with it among the night's
organisations (a pilot wave's).`,
	}
	cmd.AddCommand(newOrgListCmd(a), newOrgPilotCmd(a), newOrgReadyCmd(a), newOrgHoldCmd(a), newOrgResumeCmd(a))
	return cmd
}

// orgRow is one organisation in org list.
type orgRow struct {
	Org    string    `json:"org"`
	State  string    `json:"state"`
	Since  time.Time `json:"since"`
	By     string    `json:"by"`
	Reason string    `json:"reason"`
}

func newOrgListCmd(a *app) *cobra.Command {
	var spec, csvPath string
	var format printer.Format
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the organisations with their states, since when, by whom and why",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			st, err := estate.Open(ctx, spec)
			if err != nil {
				return err
			}
			defer st.Close()
			orgs, err := st.Orgs(ctx)
			if err != nil {
				return err
			}
			rows := make([]orgRow, len(orgs))
			for i, o := range orgs {
				rows[i] = orgRow{Org: o.Name, State: string(o.State), Since: o.Since, By: o.By, Reason: o.Reason}
			}
			if csvPath != "" {
				err := writeTableCSV(cmd.OutOrStdout(), csvPath, rows, func(r orgRow) []string {
					return []string{r.Org, r.State, r.Since.UTC().Format(time.RFC3339), r.By, r.Reason}
				})
				if err != nil || csvPath == "-" {
					return err
				}
			}
			p := printerFor(cmd, format)
			if len(rows) == 0 && p.IsText() {
				fmt.Fprintf(p.Out, "no organisations in %s: \"starter programme import FILE.csv\" adds them\n", estateWhere(spec))
				return nil
			}
			return p.List(rows)
		},
	}
	wavesDirFlag(cmd, &spec)
	cmd.Flags().StringVar(&csvPath, "csv", "", "also write the list as CSV to this file ('-': standard output, instead of the table)")
	addOutputFlag(cmd, &format)
	return cmd
}

// orgChange is what ready, hold and resume share: the organisation, the
// operator, why, and the store.
type orgChange struct {
	spec, reason, by string
}

func (o *orgChange) flags(cmd *cobra.Command, reasonHelp string) {
	wavesDirFlag(cmd, &o.spec)
	cmd.Flags().StringVar(&o.reason, "reason", "", reasonHelp)
	cmd.Flags().StringVar(&o.by, "by", "", "who is changing it (default: the OS user's name)")
}

// who is the operator: --by, else the OS user.
func (o *orgChange) who() (string, error) {
	if o.by != "" {
		return o.by, nil
	}
	u, err := user.Current()
	if err != nil || u.Username == "" {
		return "", errors.New("who is changing it? --by NAME")
	}
	return u.Username, nil
}

// find opens the estate and reads the organisation.
func (o *orgChange) find(ctx context.Context, name string) (estate.Store, estate.Org, error) {
	st, err := estate.Open(ctx, o.spec)
	if err != nil {
		return nil, estate.Org{}, err
	}
	orgs, err := st.Orgs(ctx)
	if err != nil {
		st.Close()
		return nil, estate.Org{}, err
	}
	i := slices.IndexFunc(orgs, func(x estate.Org) bool { return x.Name == name })
	if i < 0 {
		st.Close()
		return nil, estate.Org{}, fmt.Errorf("organisation %.80q: %w (\"starter org list\" lists them)", name, estate.ErrUnknownOrg)
	}
	return st, orgs[i], nil
}

// describe says where an organisation stands, for a refusal.
func describe(o estate.Org) string {
	s := fmt.Sprintf("%s is %s", o.Name, o.State)
	if o.Reason != "" {
		s += " (" + o.Reason + ")"
	}
	if o.By != "" {
		s += " by " + o.By
	}
	if !o.Since.IsZero() {
		s += " since " + o.Since.UTC().Format(time.RFC3339)
	}
	return s
}

type orgReadyOptions struct {
	orgChange
	force  bool
	budget float64
}

func newOrgReadyCmd(a *app) *cobra.Command {
	var o orgReadyOptions
	cmd := &cobra.Command{
		Use:   "ready ORG",
		Short: "Make an organisation ready for the nightly sample, once its pilot finished within its support budget",
		Long: `Make a pilot organisation ready: the nightly sample chooses from it from now on.
Refused unless its pilot (the last night chosen with it among the night's
organisations) has finished, none of its mailboxes still in flight, with no
more of those moved than its support budget needing support (deferred ones
are not counted). --force --reason R makes it ready anyway, the reason
recorded. A held organisation is made ready again by "starter org resume".`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.orgReady(cmd, args[0], o, time.Now().UTC())
		},
	}
	o.flags(cmd, "why (required with --force; recorded with the pilot's verdict otherwise)")
	cmd.Flags().BoolVar(&o.force, "force", false, "make it ready whatever its pilot says (needs --reason)")
	cmd.Flags().Float64Var(&o.budget, "budget", defaultSupportBudget, "the support budget: the percentage of the pilot's moved mailboxes that may need support")
	return cmd
}

func (a *app) orgReady(cmd *cobra.Command, name string, o orgReadyOptions, now time.Time) error {
	if o.force && o.reason == "" {
		return errors.New("--force needs --reason: say why it is made ready without a pilot within its budget")
	}
	if !(o.budget >= 0 && o.budget <= 100) {
		return fmt.Errorf("--budget %v: a percentage from 0 to 100", o.budget)
	}
	by, err := o.who()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	st, org, err := o.find(ctx, name)
	if err != nil {
		return err
	}
	defer st.Close()
	switch org.State {
	case estate.Ready:
		fmt.Fprintf(cmd.OutOrStdout(), "%s: nothing changed\n", describe(org))
		return nil
	case estate.Held:
		return fmt.Errorf("%s: \"starter org resume %s --reason R\" makes it ready again", describe(org), name)
	}
	verdict, err := pilotVerdict(ctx, st, name, o.budget)
	var refusal *pilotRefusal
	switch {
	case errors.As(err, &refusal) && o.force:
		verdict = "forced: " + o.reason + " (" + refusal.Error() + ")"
	case refusal != nil:
		return fmt.Errorf("%s stays a pilot: %w; --force --reason R makes it ready anyway", name, err)
	case err != nil:
		return err
	case o.reason != "":
		verdict += ": " + o.reason
	}
	if err := st.SetOrg(ctx, estate.Org{Name: name, State: estate.Ready, Reason: verdict, By: by, Since: now}); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s is ready (%s), by %s: the nightly sample chooses from it\n", name, verdict, by)
	return nil
}

// pilotRefusal is why a pilot does not make its organisation ready.
type pilotRefusal struct{ reason string }

func (r *pilotRefusal) Error() string { return r.reason }

// pilotVerdict judges an organisation's pilot, the last night chosen with
// it among the night's organisations: its verdict when it passed, a
// *pilotRefusal when it did not.
func pilotVerdict(ctx context.Context, st estate.Store, org string, budget float64) (string, error) {
	nights, err := st.Nights(ctx)
	if err != nil {
		return "", err
	}
	pilot := ""
	for _, n := range nights {
		if slices.Contains(n.Orgs, org) {
			pilot = n.Name
		}
	}
	if pilot == "" {
		return "", &pilotRefusal{"no pilot yet: no night was chosen with " + org + " among its organisations"}
	}
	night, err := st.Night(ctx, pilot)
	if err != nil {
		return "", err
	}
	var inFlight, migrated, support, deferred int
	for _, m := range night.Mailboxes {
		if m.Org != org {
			continue
		}
		switch m.Outcome {
		case estate.Migrated:
			migrated++
		case estate.NeedsSupport:
			support++
		case estate.Deferred:
			deferred++
		default:
			inFlight++
		}
	}
	moved := migrated + support
	switch {
	case inFlight > 0:
		return "", &pilotRefusal{fmt.Sprintf("pilot %s not finished: %d still in flight", pilot, inFlight)}
	case moved == 0:
		return "", &pilotRefusal{fmt.Sprintf("pilot %s moved none of %s's mailboxes (%d deferred)", pilot, org, deferred)}
	}
	share := 100 * float64(support) / float64(moved)
	if share > budget {
		return "", &pilotRefusal{fmt.Sprintf("pilot %s over budget: %d of %d needed support (%s) > %s", pilot, support, moved, percent(share), percent(budget))}
	}
	return fmt.Sprintf("pilot %s: %d of %d needed support (%s), within %s", pilot, support, moved, percent(share), percent(budget)), nil
}

// percent writes a percentage to two decimals at most: "10 %", "1.2 %".
func percent(p float64) string {
	return strconv.FormatFloat(float64(int64(p*100+0.5))/100, 'f', -1, 64) + " %"
}

func newOrgHoldCmd(a *app) *cobra.Command {
	var o orgChange
	cmd := &cobra.Command{
		Use:   "hold ORG --reason R",
		Short: "Take an organisation out of the nightly sample, saying why",
		Long: `Hold an organisation: no nightly sample chooses from it until "starter org
resume". Nights already chosen keep their mailboxes.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Only a ready organisation is held: a pilot is not in the
			// sample, and one held from its pilot would be made ready by
			// org resume without its pilot's verdict.
			return a.setOrgState(cmd, args[0], o, estate.Held, []estate.OrgState{estate.Ready}, time.Now().UTC())
		},
	}
	o.flags(cmd, "why it is held (required)")
	return cmd
}

func newOrgResumeCmd(a *app) *cobra.Command {
	var o orgChange
	cmd := &cobra.Command{
		Use:   "resume ORG --reason R",
		Short: "Make a held organisation ready again, saying why",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.setOrgState(cmd, args[0], o, estate.Ready, []estate.OrgState{estate.Held}, time.Now().UTC())
		},
	}
	o.flags(cmd, "why it is ready again (required)")
	return cmd
}

// setOrgState puts an organisation in state (from one of from, if given),
// with the operator's reason.
func (a *app) setOrgState(cmd *cobra.Command, name string, o orgChange, state estate.OrgState, from []estate.OrgState, now time.Time) error {
	if o.reason == "" {
		return fmt.Errorf("--reason is required: say why %s is to be %s", name, state)
	}
	by, err := o.who()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	st, org, err := o.find(ctx, name)
	if err != nil {
		return err
	}
	defer st.Close()
	if from != nil && !slices.Contains(from, org.State) {
		if state == estate.Held {
			return fmt.Errorf("%s: only a ready organisation is held (a pilot is not in the nightly sample)", describe(org))
		}
		return fmt.Errorf("%s: only a held organisation is resumed", describe(org))
	}
	if err := st.SetOrg(ctx, estate.Org{Name: name, State: state, Reason: o.reason, By: by, Since: now}); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s is %s (%s), by %s; it was %s\n", name, state, o.reason, by, org.State)
	return nil
}

// pilotOptions launch an organisation's pilot.
type pilotOptions struct {
	org, spec                         string
	n, cap                            int
	migrateAt, noticeLead, remindLead string
	allowShortNotice                  bool
}

func newOrgPilotCmd(a *app) *cobra.Command {
	var o pilotOptions
	cmd := &cobra.Command{
		Use:   "pilot ORG",
		Short: "Launch an organisation's pilot: a night of its mailboxes only, chosen at random from the estate, told, moved and written back",
		Example: `  starter org pilot trust-a --mailboxes 20 --migrate-at 2027-01-04T20:00:00Z --waves-dir data/waves
  starter org ready trust-a --waves-dir data/waves      # once the pilot is done, within its support budget`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.org = args[0]
			return a.launchPilot(cmd.Context(), o, time.Now())
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.n, "mailboxes", 20, "how many of its mailboxes")
	f.StringVar(&o.migrateAt, "migrate-at", "", "the pilot's night, T: RFC 3339, \"2027-01-04 20:00\" in UTC, or +15d (required)")
	f.StringVar(&o.noticeLead, "notice-lead", "14d", "how long before T the notice goes out")
	f.StringVar(&o.remindLead, "reminder-lead", "1d", "how long before T the reminder goes out")
	f.BoolVar(&o.allowShortNotice, "allow-short-notice", false, "allow less time before T than the notice lead (the notice goes at once)")
	f.IntVar(&o.cap, "concurrency", 0, "mailboxes in copy or cutover at once (0: the default)")
	f.StringVar(&o.spec, "waves-dir", "data/waves", "the roster store holding the estate: a directory or a postgres:// URL")
	_ = cmd.MarkFlagRequired("migrate-at")
	return cmd
}

// launchPilot starts the pilot's night workflow: it chooses the mailboxes
// from the organisation only, writes the roster, runs the wave and writes
// the outcomes back, which org ready then judges. Its IDs come from the
// organisation and T, so the same pilot launched twice starts once.
func (a *app) launchPilot(ctx context.Context, o pilotOptions, now time.Time) error {
	if o.n < 1 || o.n > contract.MaxWaveSize {
		return fmt.Errorf("--mailboxes %d: from 1 to %d", o.n, contract.MaxWaveSize)
	}
	name, err := contract.PilotSchedule(o.org)
	if err != nil {
		return err
	}
	sched, err := parseSchedule(o.migrateAt, o.noticeLead, o.remindLead, now)
	if err != nil {
		return err
	}
	if err := sched.check(now, o.allowShortNotice); err != nil {
		return err
	}
	st, err := estate.Open(ctx, o.spec)
	if err != nil {
		return err
	}
	defer st.Close()
	orgs, err := st.Orgs(ctx)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(orgs, func(x estate.Org) bool { return x.Name == o.org })
	switch {
	case i < 0:
		return fmt.Errorf("no organisation %s in the estate (programme import adds it)", o.org)
	case orgs[i].State != estate.Pilot:
		return fmt.Errorf("organisation %s is %s: a pilot is for an organisation not ready yet", o.org, orgs[i].State)
	}
	// A pilot measures: it does not pause itself past an error budget.
	in := contract.NightInput{Schedule: name, Size: o.n, Lead: sched.NoticeLead, ReminderLead: sched.ReminderLead, Cap: o.cap,
		ErrorBudget: 1, Zone: "UTC", MigrateAt: sched.MigrateAt.UTC().Truncate(time.Second), Orgs: []string{o.org}}
	if err := in.Check(); err != nil {
		return err
	}
	c, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	waveID := contract.NightWaveID(name, in.MigrateAt)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                    "night-" + waveID,
		TaskQueue:             contract.TaskQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		StaticSummary:         "pilot " + waveID,
	}, contract.NightWorkflowName, in)
	var already *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &already) {
		return fmt.Errorf("the pilot %s was launched already", waveID)
	}
	if err != nil {
		return fmt.Errorf("launching the pilot of %s: %w", o.org, err)
	}
	fmt.Fprintf(a.out, "pilot of %s launched: up to %d mailboxes chosen now by workflow %s (run %s); wave %s, notice %s, T %s\n",
		o.org, o.n, run.GetID(), run.GetRunID(), waveID, in.MigrateAt.Add(-in.Lead).Format(time.RFC3339), in.MigrateAt.Format(time.RFC3339))
	return nil
}
