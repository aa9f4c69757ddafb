package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"mailwave/contract"
)

// scheduleOptions describe a programme schedule: the nights it chooses
// (days of the week at a time, in a zone), how many each, and when the
// choice is made (Lead before the night, with the T-14 notice).
type scheduleOptions struct {
	name          string
	days          string
	at            string
	zone          string
	size          int
	lead          string
	reminder      string
	cap           int
	errorBudget   float64
	supportBudget float64
	minSample     int
	start, end    string
	skip          []string
	catchup       time.Duration
	every         time.Duration // tests and rehearsals: a night every so often instead of a calendar
	prestage      prestageFlags
}

var weekdays = map[string]int{"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}

// parseDays reads "mon-fri", "sat,sun" or "mon,wed-fri" as days of the week
// (0 is Sunday), sorted.
func parseDays(s string) ([]int, error) {
	var out []int
	for part := range strings.SplitSeq(strings.ToLower(strings.TrimSpace(s)), ",") {
		from, to, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, ok1 := weekdays[from]
		b, ok2 := weekdays[to]
		if !isRange {
			b, ok2 = a, ok1
		}
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("--days %.40q: days of the week as mon-fri, sat,sun or mon,wed-fri", s)
		}
		for d := a; ; d = (d + 1) % 7 {
			out = append(out, d)
			if d == b {
				break
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// parseClock reads "20:00" or "20:00:30".
func parseClock(s string) (h, m, sec int, err error) {
	for _, layout := range []string{"15:04", "15:04:05"} {
		if t, e := time.Parse(layout, s); e == nil {
			return t.Hour(), t.Minute(), t.Second(), nil
		}
	}
	return 0, 0, 0, fmt.Errorf("--at %.20q: a time of day as 20:00", s)
}

// buildSchedule turns the options into the Temporal schedule that starts
// each night's workflow Lead before the night. With a calendar the lead is
// whole days, so a night's firing is on the day Lead before it at the
// night's time of day; a date to skip leaves out the firing of its night.
func buildSchedule(o scheduleOptions) (client.ScheduleOptions, error) {
	var so client.ScheduleOptions
	if !contract.ValidScheduleName(o.name) {
		return so, fmt.Errorf("--name %.40q: %s", o.name, contract.ScheduleNameRule)
	}
	lead, err := parseLead(o.lead)
	if err != nil {
		return so, fmt.Errorf("--lead: %w", err)
	}
	reminder, err := parseLead(o.reminder)
	if err != nil {
		return so, fmt.Errorf("--reminder: %w", err)
	}
	loc, err := time.LoadLocation(o.zone)
	if err != nil {
		return so, fmt.Errorf("--zone %.40q: %v", o.zone, err)
	}
	if o.errorBudget < 0 || o.errorBudget > 100 || o.supportBudget < 0 || o.supportBudget > 100 {
		return so, errors.New("--error-budget and --support-budget are percentages from 0 to 100")
	}
	prestage, err := o.prestage.policy()
	if err == nil {
		err = checkPrestageLead(prestage, lead)
	}
	if err != nil {
		return so, err
	}
	in := contract.NightInput{
		Schedule: o.name, Size: o.size, Lead: lead, ReminderLead: reminder, Cap: o.cap,
		ErrorBudget: o.errorBudget / 100, SupportBudget: o.supportBudget / 100, MinSample: o.minSample, Zone: loc.String(),
		Prestage: prestage,
	}
	for _, d := range o.skip {
		for one := range strings.SplitSeq(d, ",") {
			if one = strings.TrimSpace(one); one != "" {
				in.Skip = append(in.Skip, one)
			}
		}
	}
	slices.Sort(in.Skip)
	in.Skip = slices.Compact(in.Skip)
	if err := in.Check(); err != nil {
		return so, err
	}
	spec := client.ScheduleSpec{TimeZoneName: loc.String()}
	if o.every > 0 {
		if o.every < time.Second {
			return so, fmt.Errorf("--every %s: at least a second", o.every)
		}
		spec.Intervals = []client.ScheduleIntervalSpec{{Every: o.every}}
		in.Every = o.every
	} else {
		if lead%(24*time.Hour) != 0 {
			return so, fmt.Errorf("--lead %s: whole days with a calendar (14d)", o.lead)
		}
		days, err := parseDays(o.days)
		if err != nil {
			return so, err
		}
		h, m, sec, err := parseClock(o.at)
		if err != nil {
			return so, err
		}
		back := int(lead / (24 * time.Hour))
		var fireDays []client.ScheduleRange
		for _, d := range days {
			fireDays = append(fireDays, client.ScheduleRange{Start: ((d-back)%7 + 7) % 7})
		}
		slices.SortFunc(fireDays, func(a, b client.ScheduleRange) int { return a.Start - b.Start })
		spec.Calendars = []client.ScheduleCalendarSpec{{
			Second: []client.ScheduleRange{{Start: sec}}, Minute: []client.ScheduleRange{{Start: m}},
			Hour: []client.ScheduleRange{{Start: h}}, DayOfWeek: fireDays,
			Comment: fmt.Sprintf("nights %s at %s, chosen %s before", o.days, o.at, o.lead),
		}}
		for _, d := range in.Skip {
			night, _ := time.ParseInLocation(time.DateOnly, d, loc)
			fire := night.AddDate(0, 0, -back)
			spec.Skip = append(spec.Skip, client.ScheduleCalendarSpec{
				Second: []client.ScheduleRange{{Start: sec}}, Minute: []client.ScheduleRange{{Start: m}}, Hour: []client.ScheduleRange{{Start: h}},
				DayOfMonth: []client.ScheduleRange{{Start: fire.Day()}}, Month: []client.ScheduleRange{{Start: int(fire.Month())}},
				Year: []client.ScheduleRange{{Start: fire.Year()}}, DayOfWeek: []client.ScheduleRange{{Start: 0, End: 6}},
				Comment: "the night of " + d,
			})
		}
	}
	// The first night is on or after --start, the last on or before --end:
	// their firings are Lead earlier.
	for _, b := range []struct {
		flag, v string
		to      *time.Time
	}{{"--start", o.start, &spec.StartAt}, {"--end", o.end, &spec.EndAt}} {
		if b.v == "" {
			continue
		}
		t, err := time.ParseInLocation(time.DateOnly, b.v, loc)
		if err != nil {
			return so, fmt.Errorf("%s %.20q: a date (2006-01-02)", b.flag, b.v)
		}
		if b.to == &spec.EndAt {
			t = t.AddDate(0, 0, 1) // the whole of the last night's date
		}
		// Back on the zone's calendar: whole days across a change of the
		// clocks are days, not 24 hours each.
		t = t.AddDate(0, 0, -int(lead/(24*time.Hour))).Add(-(lead % (24 * time.Hour)))
		if b.to == &spec.EndAt {
			t = t.Add(-time.Second)
		}
		*b.to = t
	}
	if !spec.EndAt.IsZero() && spec.EndAt.Before(spec.StartAt) {
		return so, errors.New("--end is before --start")
	}
	catchup := o.catchup
	if catchup <= 0 {
		catchup = time.Hour
	}
	return client.ScheduleOptions{
		ID:   contract.ScheduleID(o.name),
		Spec: spec,
		Action: &client.ScheduleWorkflowAction{
			ID:        "night-" + o.name,
			Workflow:  contract.NightWorkflowName,
			Args:      []any{in},
			TaskQueue: contract.TaskQueue,
		},
		// Nights overlap: each lives from its choice to its wave's end,
		// fourteen days and more.
		Overlap:       enumspb.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL,
		CatchupWindow: catchup,
		Note:          "mailwave programme schedule " + o.name,
	}, nil
}

func newProgrammeScheduleCmd(a *app) *cobra.Command {
	var o scheduleOptions
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "Create a schedule that chooses each night's mailboxes from the ready organisations, Lead before the night, and starts its wave",
		Example: `  starter programme schedule --name weeknights --days mon-fri --at 20:00 --zone Europe/London --size 22000 --start 2027-01-04 --skip 2027-04-02,2027-04-05
  starter programme schedule --name weekends --days sat --at 20:00 --zone Europe/London --size 83000 --start 2027-01-09`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			so, err := buildSchedule(o)
			if err != nil {
				return err
			}
			c, err := a.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			h, err := c.ScheduleClient().Create(cmd.Context(), so)
			if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
				return fmt.Errorf("schedule %s exists already: delete it first, or choose another --name", o.name)
			}
			if err != nil {
				return fmt.Errorf("creating schedule %s: %w", o.name, err)
			}
			desc, err := h.Describe(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(a.out, "schedule %s created (%s); the next nights are chosen at:\n", o.name, h.GetID())
			for _, t := range desc.Info.NextActionTimes[:min(5, len(desc.Info.NextActionTimes))] {
				fmt.Fprintf(a.out, "  %s  for the night at %s\n", t.Format(time.RFC3339), t.Add(so.Action.(*client.ScheduleWorkflowAction).Args[0].(contract.NightInput).Lead).Format(time.RFC3339))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.name, "name", "", "the schedule's name, in its ID and its nights' wave IDs (required)")
	f.StringVar(&o.days, "days", "mon-fri", "the nights' days of the week: mon-fri, sat,sun, ...")
	f.StringVar(&o.at, "at", "20:00", "the nights' time of day, in --zone: T")
	f.StringVar(&o.zone, "zone", "Europe/London", "the nights' time zone")
	f.IntVar(&o.size, "size", 0, "mailboxes chosen each night (required)")
	f.StringVar(&o.lead, "lead", "14d", "the notice lead: each night is chosen, and told, this long before it")
	f.StringVar(&o.reminder, "reminder", "1d", "the reminder's lead")
	f.IntVar(&o.cap, "concurrency", 0, "each night's wave: mailboxes in copy or cutover at once (0: the default)")
	f.Float64Var(&o.errorBudget, "error-budget", 0, "each night's wave pauses past this percentage needing support (0: the default)")
	f.Float64Var(&o.supportBudget, "support-budget", 100*contract.DefaultSupportBudget, "an organisation past this percentage needing support on a night is held")
	f.IntVar(&o.minSample, "hold-min-sample", 20, "an organisation is held only once at least this many of its mailboxes ended on the night")
	f.StringVar(&o.start, "start", "", "the first night's date (2006-01-02, in --zone)")
	f.StringVar(&o.end, "end", "", "the last night's date")
	f.StringSliceVar(&o.skip, "skip", nil, "nights' dates to skip: bank holidays (2006-01-02, comma-separated or repeated)")
	f.DurationVar(&o.catchup, "catchup", time.Hour, "a firing missed while the server was down is made up within this window, else skipped")
	f.DurationVar(&o.every, "every", 0, "a night every so often instead of a calendar (rehearsals and tests)")
	o.prestage.add(f)
	_ = f.MarkHidden("every")
	_ = cmd.MarkFlagRequired("name")
	_ = cmd.MarkFlagRequired("size")
	return cmd
}

// newProgrammeScheduleVerbCmd is pause, resume, trigger or delete of one
// schedule, by name.
func newProgrammeScheduleVerbCmd(a *app, verb, short string) *cobra.Command {
	var name, note string
	cmd := &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name = args[0]
			if !contract.ValidScheduleName(name) {
				return fmt.Errorf("schedule %.40q: %s", name, contract.ScheduleNameRule)
			}
			c, err := a.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			h := c.ScheduleClient().GetHandle(cmd.Context(), contract.ScheduleID(name))
			if _, err := h.Describe(cmd.Context()); err != nil {
				var nf *serviceerror.NotFound
				if errors.As(err, &nf) {
					return fmt.Errorf("no schedule %s (starter programme list shows them)", name)
				}
				return err
			}
			note = strings.TrimSpace(note)
			switch verb {
			case "pause":
				err = h.Pause(cmd.Context(), client.SchedulePauseOptions{Note: cmpStr(note, "paused with starter programme pause")})
			case "resume":
				err = h.Unpause(cmd.Context(), client.ScheduleUnpauseOptions{Note: cmpStr(note, "resumed with starter programme resume")})
			case "trigger":
				err = h.Trigger(cmd.Context(), client.ScheduleTriggerOptions{Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL})
			case "delete":
				err = h.Delete(cmd.Context())
			}
			if err != nil {
				return fmt.Errorf("%s schedule %s: %w", verb, name, err)
			}
			fmt.Fprintf(a.out, "schedule %s: %s\n", name, map[string]string{
				"pause": "paused: no night is chosen until it is resumed", "resume": "resumed",
				"trigger": "a night is being chosen now, for Lead from now", "delete": "deleted; the nights it chose go on",
			}[verb])
			return nil
		},
	}
	if verb == "pause" || verb == "resume" {
		cmd.Flags().StringVar(&note, "reason", "", "why, kept with the schedule")
	}
	return cmd
}

func cmpStr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func newProgrammeListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the programme's schedules: paused or not, the next nights, the last ones, and firings missed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.listSchedules(cmd.Context())
		},
	}
}

func (a *app) listSchedules(ctx context.Context) error {
	dc, _, err := a.converters()
	if err != nil {
		return err
	}
	c, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	it, err := c.ScheduleClient().List(ctx, client.ScheduleListOptions{})
	if err != nil {
		return err
	}
	var names []string
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return err
		}
		if name, ok := strings.CutPrefix(e.ID, contract.ScheduleIDPrefix); ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	if len(names) == 0 {
		fmt.Fprintln(a.out, "no programme schedules (starter programme schedule makes one)")
		return nil
	}
	for _, name := range names {
		d, err := c.ScheduleClient().GetHandle(ctx, contract.ScheduleID(name)).Describe(ctx)
		if err != nil {
			return err
		}
		state := "active"
		if d.Schedule.State.Paused {
			state = "paused: " + d.Schedule.State.Note
		}
		var in contract.NightInput
		if act, ok := d.Schedule.Action.(*client.ScheduleWorkflowAction); ok && len(act.Args) == 1 {
			if p, ok := act.Args[0].(*commonpb.Payload); ok {
				if err := dc.FromPayload(p, &in); err != nil {
					return fmt.Errorf("reading schedule %s's nights: %w", name, err)
				}
			}
		}
		fmt.Fprintf(a.out, "%s (%s): %d a night, chosen %s before; %d nights chosen, %d firings missed (past the catch-up window), %d skipped as overlapping\n",
			name, state, in.Size, in.Lead, d.Info.NumActions, d.Info.NumActionsMissedCatchupWindow, d.Info.NumActionsSkippedOverlap)
		for _, t := range d.Info.NextActionTimes[:min(3, len(d.Info.NextActionTimes))] {
			fmt.Fprintf(a.out, "  next: chosen %s, the night at %s\n", t.Format(time.RFC3339), t.Add(in.Lead).Format(time.RFC3339))
		}
		for _, r := range d.Info.RecentActions {
			late := ""
			if lag := r.ActualTime.Sub(r.ScheduleTime); lag > 5*time.Second {
				late = " (caught up " + lag.Round(time.Second).String() + " late)"
			}
			fmt.Fprintf(a.out, "  last: due %s%s, night workflow %s\n", r.ScheduleTime.Format(time.RFC3339), late, r.StartWorkflowResult.WorkflowID)
		}
	}
	return nil
}
