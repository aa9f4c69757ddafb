package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"mailwave/contract"
)

func weeknights() scheduleOptions {
	return scheduleOptions{name: "weeknights", days: "mon-fri", at: "20:00", zone: "Europe/London", size: 22000,
		lead: "14d", reminder: "1d", supportBudget: 1.2, start: "2027-01-04", end: "2027-06-30", skip: []string{"2027-04-02,2027-04-05", "2027-04-02"}}
}

// TestAScheduleFiresFourteenDaysBeforeEachNight: the calendar fires at the
// nights' time of day on the weekdays fourteen days before them (the same
// weekdays), a date to skip leaves out the firing of its night, and the
// first and last nights bound the firings Lead earlier.
func TestAScheduleFiresFourteenDaysBeforeEachNight(t *testing.T) {
	so, err := buildSchedule(weeknights())
	require.NoError(t, err)
	assert.Equal(t, contract.ScheduleID("weeknights"), so.ID)
	cal := so.Spec.Calendars[0]
	assert.Equal(t, []client.ScheduleRange{{Start: 20}}, cal.Hour)
	assert.Equal(t, []client.ScheduleRange{{Start: 0}}, cal.Minute)
	assert.Equal(t, []client.ScheduleRange{{Start: 1}, {Start: 2}, {Start: 3}, {Start: 4}, {Start: 5}}, cal.DayOfWeek)
	assert.Equal(t, "Europe/London", so.Spec.TimeZoneName)

	// Good Friday and Easter Monday 2027: their firings are on 19 and 22 March.
	require.Len(t, so.Spec.Skip, 2)
	assert.Equal(t, []client.ScheduleRange{{Start: 19}}, so.Spec.Skip[0].DayOfMonth)
	assert.Equal(t, []client.ScheduleRange{{Start: 3}}, so.Spec.Skip[0].Month)
	assert.Equal(t, []client.ScheduleRange{{Start: 22}}, so.Spec.Skip[1].DayOfMonth)
	assert.Equal(t, []client.ScheduleRange{{Start: 20}}, so.Spec.Skip[1].Hour)

	london, _ := time.LoadLocation("Europe/London")
	assert.Equal(t, time.Date(2026, 12, 21, 0, 0, 0, 0, london), so.Spec.StartAt, "the first night's firing, 14 days before 4 January")
	assert.Equal(t, time.Date(2027, 6, 16, 23, 59, 59, 0, london), so.Spec.EndAt)

	act := so.Action.(*client.ScheduleWorkflowAction)
	in := act.Args[0].(contract.NightInput)
	assert.Equal(t, contract.NightWorkflowName, act.Workflow)
	assert.Equal(t, contract.NightInput{Schedule: "weeknights", Size: 22000, Lead: 14 * 24 * time.Hour, ReminderLead: 24 * time.Hour,
		SupportBudget: 0.012, Zone: "Europe/London", Skip: []string{"2027-04-02", "2027-04-05"}}, in)

	// A lead of 10 days moves the firings' weekdays back by three.
	o := weeknights()
	o.days, o.lead = "sat", "10d"
	so, err = buildSchedule(o)
	require.NoError(t, err)
	assert.Equal(t, []client.ScheduleRange{{Start: 3}}, so.Spec.Calendars[0].DayOfWeek, "a Saturday night is chosen on the Wednesday ten days before")

	// Pre-staged nights: each night's wave has the policy.
	o = weeknights()
	o.prestage = prestageFlags{on: true, cap: 1500, mailboxMBps: 0.5, efficiency: 0.9, margin: 24 * time.Hour, every: 12 * time.Hour, wait: time.Hour}
	so, err = buildSchedule(o)
	require.NoError(t, err)
	in = so.Action.(*client.ScheduleWorkflowAction).Args[0].(contract.NightInput)
	assert.Equal(t, &contract.Prestage{MailboxRate: 0.5e6, Efficiency: 0.9, PassOverhead: contract.DefaultPrestage.PassOverhead,
		StartDelay: time.Hour, Margin: 24 * time.Hour, IncrementalEvery: 12 * time.Hour, Cap: 1500}, in.Prestage)
}

// TestAScheduleThatCannotBeKeptIsRefused: each bad option is named.
func TestAScheduleThatCannotBeKeptIsRefused(t *testing.T) {
	for name, c := range map[string]struct {
		change func(*scheduleOptions)
		want   string
	}{
		"a name with a slash":    {func(o *scheduleOptions) { o.name = "../x" }, "schedule name"},
		"no size":                {func(o *scheduleOptions) { o.size = 0 }, "size 0"},
		"a day that is not one":  {func(o *scheduleOptions) { o.days = "mon-fry" }, "--days"},
		"a time that is not one": {func(o *scheduleOptions) { o.at = "8pm" }, "--at"},
		"an unknown zone":        {func(o *scheduleOptions) { o.zone = "Europe/Londres" }, "--zone"},
		"a lead of hours":        {func(o *scheduleOptions) { o.lead = "36h" }, "whole days"},
		"a reminder after T-14":  {func(o *scheduleOptions) { o.reminder = "15d" }, "reminder"},
		"a skip that is no date": {func(o *scheduleOptions) { o.skip = []string{"Easter"} }, "skip"},
		"an end before start":    {func(o *scheduleOptions) { o.end = "2026-01-01" }, "--end is before --start"},
		"a pre-stage pool of none": {func(o *scheduleOptions) {
			o.prestage = prestageFlags{on: true, cap: 0, mailboxMBps: 0.5, efficiency: 0.9, margin: 24 * time.Hour}
		}, "--prestage: pre-stage: pool cap 0"},
		"a pre-stage efficiency over 1": {func(o *scheduleOptions) {
			o.prestage = prestageFlags{on: true, cap: 10, mailboxMBps: 0.5, efficiency: 1.5, margin: 24 * time.Hour}
		}, "efficiency 1.5"},
	} {
		t.Run(name, func(t *testing.T) {
			o := weeknights()
			c.change(&o)
			_, err := buildSchedule(o)
			assert.ErrorContains(t, err, c.want)
		})
	}
}

// TestAScheduleBoundsItsNightsOnTheirZonesCalendar: across a change of the
// clocks the first and last nights' firings are fourteen calendar days
// before them, so a night at 23:30 on the first date is in, and one on the
// day before is out; the last night's date is in whole.
func TestAScheduleBoundsItsNightsOnTheirZonesCalendar(t *testing.T) {
	o := weeknights()
	o.days, o.at, o.start, o.end, o.skip = "sun-sat", "23:30", "2027-04-05", "2027-11-01", nil
	so, err := buildSchedule(o)
	require.NoError(t, err)
	london, _ := time.LoadLocation("Europe/London")
	assert.Equal(t, time.Date(2027, 3, 22, 0, 0, 0, 0, london), so.Spec.StartAt, "the firing of the night of 5 April, on 22 March")
	assert.Equal(t, time.Date(2027, 10, 18, 23, 59, 59, 0, london), so.Spec.EndAt, "the firing of the night of 1 November, on 18 October")
}
